//! The upstream Temporal frontend: TCP or TLS (rustls, optional client
//! certificate), HTTP/2 with keepalive, a fixed number of connections used
//! round-robin and re-dialled when they drop, and an optional API key.

use std::{
    fmt,
    future::poll_fn,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri, uri::Scheme};
use http_body::Body as _;
use http_body_util::combinators::UnsyncBoxBody;
use thiserror::Error;
use tokio::{
    net::TcpStream,
    sync::{MappedMutexGuard, Mutex, MutexGuard, watch},
};

use crate::errors::error_chain;

pub use crate::tls::{Pem, TlsError, TlsSettings};
use conn::Conn;
pub use conn::Incoming;

mod conn;

/// An error inside a body (hyper's, or a locally served service's status).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Bodies sealgate sends: buffered (rewritten), streamed through, or made
/// by a service it answers itself.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Default of `[proxy] max_header_list_bytes` (grpc-go's frontend accepts
/// more; 1 MiB holds any real metadata).
pub const DEFAULT_MAX_HEADER_LIST: u32 = 1 << 20;

/// The `[upstream_options]` section, completed from Temporal's environment
/// variables where the file is silent: how sealgate talks to the upstream.
#[derive(Clone)]
pub struct UpstreamOptions {
    /// HTTP/2 connections kept open per serving thread, used round-robin
    /// (in runs of consecutive calls).
    pub connections: usize,
    pub connect_timeout: std::time::Duration,
    /// HTTP/2 PING interval; Temporal's server rejects pings under 10 s apart.
    pub keepalive_interval: std::time::Duration,
    /// How long a PING may go unanswered before the connection is dropped.
    pub keepalive_timeout: std::time::Duration,
    /// Sent as `authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// The size guard: a `Payload` or `Payloads` list, and a request,
    /// larger than these (after encryption) are refused before they reach
    /// the server (Temporal Cloud: 2 MiB and 4 MiB).
    pub max_payload_bytes: usize,
    pub max_request_bytes: usize,
    /// gRPC metadata added to every call (`grpc_meta`, Temporal's
    /// `grpc_meta` / `TEMPORAL_GRPC_META_*`): lower-case name, value.
    pub grpc_meta: Vec<(String, String)>,
    /// Used when the upstream is TLS.
    pub tls: TlsSettings,
    /// Send an API key or client certificate to a plaintext (`http://`)
    /// upstream: for a local test upstream only; warned about at start.
    pub allow_plaintext_credentials: bool,
    /// Local namespace names ↔ the upstream's (`namespaces` sub-table).
    pub namespaces: Option<crate::translate::Translation>,
    /// Pass the caller's own `authorization` header to this upstream
    /// (default false; `proxy.forward_authorization` does it for all).
    pub forward_authorization: bool,
}

impl std::fmt::Debug for UpstreamOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamOptions")
            .field("connections", &self.connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("keepalive_timeout", &self.keepalive_timeout)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "grpc_meta",
                &self.grpc_meta.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("tls", &self.tls)
            .field("namespaces", &self.namespaces)
            .field("forward_authorization", &self.forward_authorization)
            .finish()
    }
}

/// An upstream address: `http://host:port`, `https://host:port` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub tls: bool,
    /// `host:port`.
    pub authority: String,
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

impl Address {
    /// True when the address contains `{namespace}`.
    pub fn is_template(&self) -> bool {
        self.authority.contains("{namespace}")
    }

    /// The address for `namespace` (the address itself unless a template).
    pub fn for_namespace(&self, namespace: &str) -> Address {
        Address {
            tls: self.tls,
            authority: self.authority.replace("{namespace}", namespace),
        }
    }

    /// Parses an address already checked with `{namespace}` filled in.
    pub(crate) fn parse_template(s: &str) -> Address {
        let (tls, rest) = match s.strip_prefix("https://") {
            Some(r) => (true, r),
            None => (false, s.strip_prefix("http://").unwrap_or(s)),
        };
        Address {
            tls,
            authority: rest.trim_end_matches('/').to_string(),
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Address, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if s.contains("://") {
            return Err(format!("{s:?}: scheme must be http:// or https://"));
        } else {
            (false, s)
        };
        let rest = rest.trim_end_matches('/');
        let port = rest.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
        match port {
            Some((host, Ok(port))) if !host.is_empty() && port != 0 && !host.contains('/') => {
                Ok(Address {
                    tls,
                    authority: rest.to_string(),
                })
            }
            _ => Err(format!(
                "{s:?}: expected host:port, e.g. \"http://127.0.0.1:7233\""
            )),
        }
    }
}

/// Reaching the upstream failed. Each error carries its [`FailureKind`];
/// the hint shown to operators comes from the kind, never from the text.
#[derive(Debug, Error)]
pub enum UpstreamError {
    #[error("upstream {upstream} is unreachable: {reason}{advice}")]
    Connect {
        upstream: String,
        reason: String,
        kind: FailureKind,
        advice: &'static str,
    },
    #[error(
        "upstream {upstream} did not accept a connection within {timeout:?}; check the address and any firewall in between"
    )]
    ConnectTimeout { upstream: String, timeout: Duration },
    #[error("TLS handshake with upstream {upstream} failed: {reason}{advice}")]
    Handshake {
        upstream: String,
        reason: String,
        kind: FailureKind,
        advice: &'static str,
    },
    #[error("upstream {upstream} failed the request: {reason}{advice}")]
    Request {
        upstream: String,
        reason: String,
        kind: FailureKind,
        advice: &'static str,
    },
}

impl UpstreamError {
    /// What kind of failure this was.
    pub fn kind(&self) -> FailureKind {
        match self {
            UpstreamError::ConnectTimeout { .. } => FailureKind::Timeout,
            UpstreamError::Connect { kind, .. }
            | UpstreamError::Handshake { kind, .. }
            | UpstreamError::Request { kind, .. } => *kind,
        }
    }
}

/// The kinds of failure reaching an upstream. (An HTTP answer that is not
/// gRPC, from a load balancer or proxy in between, is the proxy's
/// `NotGrpc` error, typed by its status.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing listens at the address (TCP connection refused).
    Refused,
    /// No answer in time (TCP connect, TLS handshake, keepalive).
    Timeout,
    /// The upstream's certificate does not verify against the trusted CAs
    /// or the expected name.
    TlsVerification,
    /// The upstream refused our client certificate, or its absence, with a
    /// TLS alert.
    TlsClientCertificate,
    /// Another TLS alert or TLS failure.
    Tls,
    /// TLS spoken to a plaintext server, or plaintext to a TLS one.
    WrongScheme,
    /// The connection was reset or cut as soon as it was used.
    Closed,
    /// An HTTP/2 protocol error.
    Protocol,
    /// Anything else (name resolution, other I/O).
    Other,
}

impl FailureKind {
    /// The kind of `e`, from the types in its source chain (I/O, rustls
    /// and h2 errors; an unanswered keepalive PING is typed where it is
    /// found, in `conn`). `tls`: the connection was meant to be TLS.
    pub fn of(e: &(dyn std::error::Error + 'static), tls: bool) -> FailureKind {
        let mut found = FailureKind::Other;
        let mut cur = Some(e);
        while let Some(err) = cur {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                found = match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return FailureKind::Refused,
                    std::io::ErrorKind::TimedOut => FailureKind::Timeout,
                    std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::UnexpectedEof => FailureKind::Closed,
                    // What rustls reports once the connection is in use (an
                    // alert after the handshake) reaches us as InvalidData,
                    // often as text only.
                    std::io::ErrorKind::InvalidData if tls => FailureKind::Tls,
                    _ => found,
                };
                // io::Error's source() skips the error it wraps (rustls').
                if let Some(inner) = io.get_ref() {
                    cur = Some(inner as &(dyn std::error::Error + 'static));
                    continue;
                }
            } else if let Some(t) = err.downcast_ref::<rustls::Error>() {
                return match t {
                    rustls::Error::InvalidCertificate(_) => FailureKind::TlsVerification,
                    rustls::Error::AlertReceived(
                        rustls::AlertDescription::CertificateRequired
                        | rustls::AlertDescription::BadCertificate
                        | rustls::AlertDescription::UnknownCA
                        | rustls::AlertDescription::CertificateUnknown
                        | rustls::AlertDescription::UnsupportedCertificate,
                    ) => FailureKind::TlsClientCertificate,
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                        FailureKind::WrongScheme
                    }
                    _ => FailureKind::Tls,
                };
            } else if let Some(h2) = err.downcast_ref::<h2::Error>() {
                // A TLS server's first bytes, read as HTTP/2, are a frame of
                // impossible size.
                let garbled = matches!(
                    h2.reason(),
                    Some(h2::Reason::FRAME_SIZE_ERROR | h2::Reason::PROTOCOL_ERROR)
                );
                if garbled && !tls {
                    return FailureKind::WrongScheme;
                }
                // Its source() skips the I/O error it wraps.
                if let Some(io) = h2.get_io() {
                    cur = Some(io as &(dyn std::error::Error + 'static));
                    continue;
                }
                found = FailureKind::Protocol;
            }
            cur = err.source();
        }
        found
    }
}

/// Connection counters, for metrics and tests.
#[derive(Debug, Default)]
pub struct UpstreamStats {
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Unary calls sent again on a fresh connection because the upstream
    /// had not taken them (GOAWAY, REFUSED_STREAM, a connection that closed
    /// before the request went out).
    pub retries: AtomicU64,
}

/// A pool of HTTP/2 connections to one upstream.
pub struct Upstream {
    /// `host:port`.
    authority: String,
    /// The same, parsed once for request URIs.
    uri_authority: http::uri::Authority,
    options: UpstreamOptions,
    /// `http://authority` or `https://authority`, for messages.
    display: Arc<str>,
    scheme: Scheme,
    /// TLS material and API key; swapped on reload (new connections and
    /// requests use the new ones, open connections keep theirs).
    credentials: watch::Sender<Arc<Credentials>>,
    /// `connections` slots per serving thread (`Upstream::new`'s `shards`): each
    /// thread dials and uses its own, so a call stays on its thread.
    slots: Vec<Mutex<Option<Conn>>>,
    connections: usize,
    /// Calls picked so far, per thread group: the round-robin position.
    next: Box<[AtomicUsize]>,
    stats: UpstreamStats,
}

/// A thread's consecutive calls share a connection until they add up to a
/// run: 16 calls, or 64 KiB of requests (a call weighs one, plus one per
/// 4 KiB of its body). Calls that arrive together (one read of a client's
/// connection) then leave together, in one write upstream; picking a new
/// connection per call made it a write (and, over TLS, a record) per
/// call. Large requests still spread over the connections, within each
/// one's flow-control window, and over time every connection gets an even
/// share.
const RUN: usize = 16;
/// Request bytes that weigh as much as a call in a run.
const RUN_UNIT: usize = 4 << 10;

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("upstream", &self.display)
            .field("connections", &self.slots.len())
            .finish()
    }
}

/// What sealgate presents to the upstream: TLS settings and an API key.
pub struct Credentials {
    tls: Option<crate::tls::Connector>,
    api_key: Option<HeaderValue>,
    /// Added to every call.
    metadata: Vec<(http::HeaderName, HeaderValue)>,
}

impl Credentials {
    /// Loads TLS material (for a TLS upstream) and checks the API key.
    pub fn load(address: &Address, options: &UpstreamOptions) -> Result<Credentials, TlsError> {
        let tls = if address.tls {
            Some(crate::tls::Connector::new(
                &options.tls,
                &address.authority,
                &[b"h2"],
            )?)
        } else {
            None
        };
        let api_key = match &options.api_key {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}")).map_err(|_| {
                    TlsError::Config("the API key has characters a header cannot carry".into())
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let mut metadata = Vec::new();
        for (name, value) in &options.grpc_meta {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TlsError::Config(format!("{name:?} is not a header name")))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| TlsError::Config(format!("metadata {name}: not a header value")))?;
            // May be a credential: never printed, never indexed by HPACK.
            value.set_sensitive(true);
            metadata.push((name, value));
        }
        Ok(Credentials {
            tls,
            api_key,
            metadata,
        })
    }
}

impl Upstream {
    /// Prepares the pool (TLS material is loaded now; nothing is dialled).
    /// TLS is used when the address says so; `options.tls` says how.
    /// `shards`: the serving threads that each get a share of the pool
    /// (1 unless `[proxy] runtime = "per-core"`).
    pub fn new(
        address: &Address,
        options: &UpstreamOptions,
        shards: usize,
    ) -> Result<Upstream, TlsError> {
        let authority = address.authority.clone();
        let uri_authority = http::uri::Authority::try_from(authority.as_str())
            .map_err(|e| TlsError::Config(format!("upstream address {authority:?}: {e}")))?;
        let scheme = if address.tls {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let credentials = Credentials::load(address, options)?;
        let display: Arc<str> = format!("{scheme}://{authority}").into();
        let connections = options.connections.max(1);
        let slots = (0..connections * shards.max(1))
            .map(|_| Mutex::new(None))
            .collect();
        let next = (0..shards.max(1)).map(|_| AtomicUsize::new(0)).collect();
        Ok(Upstream {
            authority,
            uri_authority,
            options: options.clone(),
            display,
            scheme,
            credentials: watch::Sender::new(Arc::new(credentials)),
            slots,
            connections,
            next,
            stats: UpstreamStats::default(),
        })
    }

    /// Uses `credentials` from now on: new connections present the new TLS
    /// material and requests carry the new API key; calls and connections
    /// already open are not disturbed.
    /// True when this pool was made for `address` with `options` as far as
    /// anything but credentials goes (those are reloaded on their own).
    pub fn same_setup(&self, address: &Address, options: &UpstreamOptions) -> bool {
        *self.display == *address.to_string()
            && format!("{:?}", self.options) == format!("{options:?}")
    }

    pub fn set_credentials(&self, credentials: Credentials) {
        self.credentials.send_replace(Arc::new(credentials));
    }

    /// True when callers' own `authorization` headers go to this upstream.
    pub fn forwards_authorization(&self) -> bool {
        self.options.forward_authorization
    }

    /// Namespace translation towards this upstream, if any.
    pub fn translation(&self) -> Option<&crate::translate::Translation> {
        self.options.namespaces.as_ref()
    }

    /// `http(s)://host:port`.
    /// The settings this pool was made with.
    pub fn options(&self) -> &UpstreamOptions {
        &self.options
    }

    /// How many serving threads this pool has a share for.
    pub fn shards(&self) -> usize {
        self.slots.len() / self.connections
    }

    pub fn name(&self) -> &str {
        &self.display
    }

    pub fn stats(&self) -> &UpstreamStats {
        &self.stats
    }

    /// Connections currently open (best effort: a busy slot is not counted).
    pub fn open_connections(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| {
                s.try_lock()
                    .is_ok_and(|g| g.as_ref().is_some_and(|c| !c.state.is_closed()))
            })
            .count()
    }

    /// True when a connection to the upstream is open or can be opened now.
    pub async fn reachable(&self, within: Duration) -> Result<(), UpstreamError> {
        match tokio::time::timeout(within, self.ready_slot(0)).await {
            Ok(r) => r.map(|_| ()),
            Err(_) => Err(UpstreamError::ConnectTimeout {
                upstream: self.display.to_string(),
                timeout: within,
            }),
        }
    }

    /// Points `req` at this upstream and adds its credentials.
    pub fn prepare<B>(&self, req: &mut Request<B>) {
        let mut parts = std::mem::take(req.uri_mut()).into_parts();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.uri_authority.clone());
        if parts.path_and_query.is_none() {
            parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        }
        // Scheme, authority and path are all set, so this cannot fail.
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
        let credentials = self.credentials.borrow();
        if let Some(key) = &credentials.api_key {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, key.clone());
        }
        for (name, value) in &credentials.metadata {
            req.headers_mut().insert(name.clone(), value.clone());
        }
    }

    /// Sends a request on the next connection, dialling it when needed; its
    /// body is sent as it comes, by a task of its own.
    pub async fn send(&self, req: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        let (head, body) = req.into_parts();
        let end = body.is_end_stream();
        let head = Request::from_parts(head, ());
        let (answer, state) = self
            .open(0, || head, |send, head| send.send_request(head, end))
            .await
            .map_err(|(e, _)| e)?;
        let (answer, tx) = answer;
        if !end {
            tokio::spawn(conn::pump(body, tx));
        }
        self.answer(answer, &state).await.map_err(|(e, _)| e)
    }

    /// Sends a unary call made by `make`; when the upstream did not take it
    /// (it is going away, refused the stream, or the connection closed
    /// before the request went out), once more on a fresh connection, as a
    /// gRPC client's transparent retry does. A server rotating its
    /// connections (Temporal's frontend does every 5 minutes) is then never
    /// an error the caller sees.
    ///
    /// `size` is the body's length: large requests are spread over the
    /// connections.
    pub async fn send_unary(
        &self,
        size: usize,
        make: impl Fn() -> Request<Bytes>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match self.try_send(size, &make).await {
            Err((_, true)) => {
                self.stats.retries.fetch_add(1, Relaxed);
                // Boxed: rare, and inline it would add a second send's
                // state to the future every call holds while it waits.
                let again = Box::pin(self.try_send(size, &make));
                again.await.map_err(|(e, _)| e)
            }
            other => other.map_err(|(e, _)| e),
        }
    }

    /// Sends the request `make` gives once a connection is ready, its body
    /// queued whole: the error, and whether the upstream cannot have acted
    /// on the request. (The request is made after the wait for a
    /// connection, so the future does not carry it across that wait.)
    async fn try_send(
        &self,
        size: usize,
        make: impl FnOnce() -> Request<Bytes>,
    ) -> Result<Response<Incoming>, (UpstreamError, bool)> {
        let (answer, state) = self
            .open(size, make, |send, req| {
                let (head, body) = req.into_parts();
                let end = body.is_empty();
                let (answer, mut tx) = send.send_request(Request::from_parts(head, ()), end)?;
                if !end {
                    // Queued whole: h2 sends it as the window allows.
                    tx.send_data(body, true)?;
                }
                Ok(answer)
            })
            .await?;
        self.answer(answer, &state).await
    }

    /// Opens a stream with `open` on the next connection once it can take
    /// one. An error here means the request never went out: it is always
    /// safe to send again, unless h2 refused the request itself.
    async fn open<R, T>(
        &self,
        size: usize,
        make: impl FnOnce() -> R,
        open: impl FnOnce(&mut h2::client::SendRequest<Bytes>, R) -> Result<T, h2::Error>,
    ) -> Result<(T, Arc<conn::State>), (UpstreamError, bool)> {
        let mut c = self.ready_slot(size).await.map_err(|e| (e, false))?;
        match open(&mut c.send, make()) {
            Ok(t) => Ok((t, c.state.clone())),
            Err(e) => {
                // A connection-level error (GOAWAY, a closed connection):
                // later calls dial afresh. A request h2 finds malformed is
                // refused alike on any connection, so it is not retried.
                let untaken = e.is_go_away() || e.is_io() || e.reason().is_some();
                if untaken {
                    c.state.retire();
                }
                Err((self.request_error(&e, &c.state), untaken))
            }
        }
    }

    /// Waits for the answer's head on a stream opened on the connection
    /// `state` belongs to.
    async fn answer(
        &self,
        answer: h2::client::ResponseFuture,
        state: &conn::State,
    ) -> Result<Response<Incoming>, (UpstreamError, bool)> {
        match answer.await {
            Ok(resp) => Ok(resp.map(Incoming::new)),
            Err(e) => {
                let untaken = Self::not_taken(&e);
                if e.is_go_away() {
                    state.retire();
                }
                Err((self.request_error(&e, state), untaken))
            }
        }
    }

    fn request_error(&self, e: &h2::Error, state: &conn::State) -> UpstreamError {
        // "connection closed" alone hides why: a TLS alert (no client
        // certificate) arrives only once the connection is in use.
        let (reason, kind) = match state.ended() {
            Some((why, kind)) => (format!("{}: {why}", error_chain(e)), *kind),
            None => (error_chain(e), self.kind_of(e)),
        };
        UpstreamError::Request {
            upstream: self.display.to_string(),
            reason,
            kind,
            advice: self.advice(kind),
        }
    }

    /// True when the upstream cannot have acted on the request: the server
    /// refused the stream, or its GOAWAY named a last stream before this one.
    fn not_taken(e: &h2::Error) -> bool {
        e.reason() == Some(h2::Reason::REFUSED_STREAM) || (e.is_go_away() && e.is_remote())
    }

    fn kind_of(&self, e: &(dyn std::error::Error + 'static)) -> FailureKind {
        FailureKind::of(e, self.scheme == Scheme::HTTPS)
    }

    /// What to do about a failure of `kind`, appended to the error.
    fn advice(&self, kind: FailureKind) -> &'static str {
        let tls = self.scheme == Scheme::HTTPS;
        match kind {
            FailureKind::Refused => " (is the Temporal frontend running at that address?)",
            FailureKind::TlsClientCertificate => {
                " (the upstream wants a client certificate it trusts: set upstream_options.client_cert_file \
                 and client_key_file, or TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)"
            }
            FailureKind::TlsVerification => {
                " (the upstream's certificate does not verify: check upstream_options.ca_file / \
                 TEMPORAL_TLS_SERVER_CA_CERT_PATH and server_name / TEMPORAL_TLS_SERVER_NAME)"
            }
            FailureKind::WrongScheme => {
                " (does the upstream speak TLS? use https:// for TLS and http:// for plaintext)"
            }
            // A server that refuses the client certificate (or its absence)
            // says so in a TLS alert after the handshake, then closes; when
            // the close wins the race with our first write, all we see is a
            // broken pipe or a reset, and the alert itself reaches us as an
            // untyped TLS error.
            FailureKind::Closed | FailureKind::Tls
                if tls && self.options.tls.client_cert.is_none() =>
            {
                " (the upstream closed the TLS connection as soon as it was used: if it wants a \
                 client certificate, set upstream_options.client_cert_file and client_key_file, or \
                 TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH)"
            }
            FailureKind::Closed | FailureKind::Tls if tls => {
                " (the upstream closed the TLS connection as soon as it was used: check that it \
                 trusts the CA of upstream_options.client_cert_file)"
            }
            FailureKind::Timeout
            | FailureKind::Closed
            | FailureKind::Tls
            | FailureKind::Protocol
            | FailureKind::Other => "",
        }
    }

    /// The next slot of this thread's share (in runs: [`RUN`]), for a call
    /// with a body of `size` bytes, holding a connection that can
    /// take another stream (dialled when there is none or it has ended).
    /// The slot stays locked while the caller opens its stream.
    async fn ready_slot(&self, size: usize) -> Result<MappedMutexGuard<'_, Conn>, UpstreamError> {
        let group = crate::shard::index() % (self.slots.len() / self.connections);
        let picked = self.next[group].fetch_add(1 + size / RUN_UNIT, Relaxed);
        let i = group * self.connections + picked / RUN % self.connections;
        let mut slot = self.slots[i].lock().await;
        // A live connection that can take another stream (it waits while
        // the server's stream limit is reached). It stays in its slot while
        // it waits: a call cancelled meanwhile leaves it there.
        let live = match slot.as_mut() {
            Some(c) => !c.state.is_closed() && poll_fn(|cx| c.send.poll_ready(cx)).await.is_ok(),
            None => false,
        };
        if live {
            match MutexGuard::try_map(slot, Option::as_mut) {
                Ok(c) => return Ok(c),
                Err(unmapped) => slot = unmapped,
            }
        }
        *slot = None;
        // Boxed: dialling (TCP, TLS, HTTP/2 handshake) is rare, and inline it
        // would make every call's future several KB larger for as long as
        // the call lasts (a long poll: a minute).
        // (The box is made in a statement of its own: see
        // `Session::encode_with`.)
        let connect = Box::pin(self.connect());
        let c = connect.await.inspect_err(|_| {
            self.stats.connect_failures.fetch_add(1, Relaxed);
        })?;
        self.stats.connects.fetch_add(1, Relaxed);
        Ok(MutexGuard::map(slot, |s| s.insert(c)))
    }

    async fn connect(&self) -> Result<Conn, UpstreamError> {
        let upstream = || self.display.to_string();
        let timeout = self.options.connect_timeout;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&self.authority))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout {
                upstream: upstream(),
                timeout,
            })?
            .map_err(|e| {
                let kind = self.kind_of(&e);
                UpstreamError::Connect {
                    upstream: upstream(),
                    reason: e.to_string(),
                    kind,
                    advice: self.advice(kind),
                }
            })?;
        let _ = tcp.set_nodelay(true);
        let credentials = self.credentials.borrow().clone();
        match &credentials.tls {
            None => self.handshake(tcp).await,
            Some(connector) => {
                let stream = tokio::time::timeout(timeout, connector.connect(tcp))
                    .await
                    .map_err(|_| UpstreamError::Handshake {
                        upstream: upstream(),
                        reason: format!("no answer within {timeout:?}"),
                        kind: FailureKind::Timeout,
                        advice: "",
                    })?
                    .map_err(|e| {
                        let kind = self.kind_of(&e);
                        UpstreamError::Handshake {
                            upstream: upstream(),
                            reason: error_chain(&e),
                            kind,
                            advice: self.advice(kind),
                        }
                    })?;
                // Boxed: the connection task holds the I/O type inline, and
                // rustls's 1.1 KB connection state in it made every task of
                // that type larger (with hyper's client, which spawned two
                // per call: 4 MB at 2,000 held polls).
                self.handshake(Box::new(stream)).await
            }
        }
    }

    async fn handshake<S>(&self, io: S) -> Result<Conn, UpstreamError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let settings = conn::Settings {
            keepalive_interval: self.options.keepalive_interval,
            keepalive_timeout: self.options.keepalive_timeout,
            tls: self.scheme == Scheme::HTTPS,
            name: self.display.clone(),
        };
        conn::handshake(io, settings).await.map_err(|e| {
            let kind = self.kind_of(&e);
            UpstreamError::Handshake {
                upstream: self.display.to_string(),
                reason: error_chain(&e),
                kind,
                advice: self.advice(kind),
            }
        })
    }
}

/// HTTP/2 flow control, both sides (docs/design.md#fixed-http2-windows).
/// Fixed windows rather than hyper's
/// adaptive (BDP ping) windows: the pings cost a frame exchange and wakeups
/// on every burst of data, and 2 MiB per stream covers a long fat WAN hop.
pub(crate) const STREAM_WINDOW: u32 = 2 << 20;
pub(crate) const CONNECTION_WINDOW: u32 = 8 << 20;
/// The largest DATA frame peers may send us: fewer, larger frames for big
/// payloads (the protocol default is 16 KiB).
pub(crate) const MAX_FRAME: u32 = 64 << 10;

#[cfg(test)]
mod tests;
