//! The data plane: an HTTP/2 gRPC proxy that classifies every call before
//! it reads a byte of its body, and rewrites or refuses it.
//!
//! A call's life, as named phases (cloudflare/pingora's shape):
//! admit (head checks) → authenticate (headers only) → classify (path and
//! schema) → read (bounded) → authorize (every namespace the call names) →
//! route → encode → send → decode → respond. Each is a small function in
//! [`unary`] (buffered, rewritten calls) or [`stream`] (services that carry
//! neither payloads nor namespaces); failures become gRPC statuses in one
//! place, [`ProxyError::into_response`]; [`metrics::CallGuard`] records the
//! call when it drops, cancelled calls included.

pub mod body;
pub mod budget;
pub mod classify;
pub mod conn;
mod error;
pub mod headers;
mod health;
mod metrics;
pub mod reflection;
pub mod router;
pub mod server;
pub mod shards;
mod stream;
mod unary;

use std::{borrow::Cow, convert::Infallible, sync::Arc};

use http::{Request, Response};
use hyper::body::Incoming;
use tracing::Instrument;

pub use error::{ProxyError, Side};

use crate::{
    codec::Pipeline,
    inbound::Peer,
    schema::Schema,
    telemetry::{self, Metrics},
    upstream::{Body, Upstream},
};

/// A response, its status label (a gRPC code, or `stream` for a streamed
/// response whose status comes later), and the upstream that served it
/// (none when sealgate answered itself).
pub(crate) type Routed = (Response<Body>, &'static str, Option<Arc<Upstream>>);

/// The `[proxy]` section.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Largest gRPC message (request or response) sealgate buffers.
    pub max_message_bytes: usize,
    /// gRPC services forwarded; anything else gets UNIMPLEMENTED.
    pub allowed_services: Vec<String>,
    /// How long in-flight calls may run after SIGTERM/SIGINT.
    pub shutdown_grace: std::time::Duration,
    /// After SIGTERM/SIGINT, how long sealgate reports NOT_SERVING (health,
    /// `/ready`) while still serving, before it stops accepting.
    pub shutdown_delay: std::time::Duration,
    /// Forward the caller's `authorization` header upstream.
    pub forward_authorization: bool,
    /// Answer gRPC server reflection (v1, v1alpha) for the allowed services.
    pub reflection: bool,
    /// How calls are spread over threads.
    pub runtime: Runtime,
    /// Threads serving gRPC (`threads = 0` in the file: one per core).
    pub threads: usize,
    /// Services not in the schema that stream through unread (explicitly
    /// opaque: a warning at start).
    pub opaque_services: Vec<String>,
    /// Bytes all calls together may buffer (requests and responses).
    pub memory_budget_bytes: usize,
    /// How long a request's body may take to arrive.
    pub request_body_timeout: std::time::Duration,
    /// HTTP/2 streams one client connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Largest header list (request metadata) accepted, in bytes.
    pub max_header_list_bytes: u32,
    /// `[schema] unknown_request_fields = "forward"`: forward requests with
    /// fields the schema does not define (counted and warned about) instead
    /// of refusing them.
    pub forward_unknown_fields: bool,
    /// `[schema] plaintext_paths`: payload paths the server itself reads,
    /// left plaintext (besides search attributes, always).
    pub plaintext_paths: Vec<String>,
    /// `[schema] descriptor_set`: a newer Temporal API descriptor set to use
    /// instead of the embedded one.
    pub descriptor_set: Option<std::path::PathBuf>,
    /// A caller's TLS handshake must finish within this.
    pub tls_handshake_timeout: std::time::Duration,
    /// A connection's first call must start within this.
    pub first_request_timeout: std::time::Duration,
    /// A connection with no call open for this long is closed (GOAWAY).
    pub idle_timeout: std::time::Duration,
    /// After this, a connection gets GOAWAY so its client reconnects (and
    /// rebalances across replicas); open calls finish.
    pub max_connection_age: std::time::Duration,
    /// After max_connection_age plus this, the connection is closed.
    pub max_connection_age_grace: std::time::Duration,
    /// Caller credential headers dropped before forwarding (lower-case),
    /// unless the upstream forwards the caller's authorization.
    pub credential_headers: Vec<String>,
}

/// Default of `[proxy] memory_budget_bytes`: 1 GiB.
pub const DEFAULT_MEMORY_BUDGET: usize = 1 << 30;
/// How the gRPC listener's work is spread over threads (`[proxy] runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// `threads` threads, each with its own single-threaded runtime and its
    /// own upstream connections; each connection is handed to the least
    /// loaded thread and stays there, so a call never hops between threads.
    PerCore,
    /// One work-stealing runtime with `threads` workers: the calls of one
    /// connection can use every core, at the cost of cross-thread wakeups.
    WorkStealing,
}

/// Default bound on one gRPC message (the SDKs' default).
pub const DEFAULT_MAX_MESSAGE: usize = 128 << 20;

/// Services forwarded by default.
pub const DEFAULT_SERVICES: [&str; 3] = [
    crate::schema::WORKFLOW_SERVICE,
    "temporal.api.operatorservice.v1.OperatorService",
    "grpc.health.v1.Health",
];

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    pub(crate) schema: Arc<Schema>,
    /// Every namespace field, for authorization and translation.
    pub(crate) namespace_schema: Schema,
    /// The descriptor set both plans come from (server reflection).
    descriptors: crate::schema::Descriptors,
    /// The lane of each served service.
    pub(crate) services: classify::Services,
    /// Bytes all calls together may buffer.
    pub(crate) budget: budget::Budget,
    /// Bounds of each client connection's life.
    pub(crate) limits: conn::Limits,
    /// (message, field) pairs already warned about as unknown.
    pub(crate) warned: std::sync::Mutex<std::collections::HashSet<(String, u32)>>,
    /// Responses seen, for sampling the audit of their unknown fields.
    pub(crate) response_audits: std::sync::atomic::AtomicU64,
    pub(crate) codec: Arc<Pipeline>,
    /// The default upstream (`upstream` + `[upstream_options]`).
    pub(crate) upstream: Arc<Upstream>,
    /// Which upstream serves each call.
    pub(crate) router: tokio::sync::watch::Sender<Arc<router::Router>>,
    /// Who may call, for which namespaces.
    pub(crate) inbound: tokio::sync::watch::Sender<Arc<crate::inbound::Inbound>>,
    /// The listener's TLS acceptor, swapped on reload; new connections
    /// take the current one.
    pub(crate) inbound_tls: crate::inbound::ListenerTls,
    pub(crate) config: ProxyConfig,
    pub(crate) metrics: Metrics,
    /// Server reflection, answered here and built on first use (it decodes
    /// the whole descriptor set twice, which most gateways never need);
    /// `None` when turned off.
    pub(crate) reflection: Option<std::sync::OnceLock<Option<reflection::Reflection>>>,
    /// Build a span per call (only when traces are exported: a span that
    /// goes nowhere still costs the log layer a formatting pass).
    pub(crate) trace_calls: bool,
    /// Shutting down: health checks answer NOT_SERVING, `/ready` 503.
    draining: std::sync::atomic::AtomicBool,
}

impl Proxy {
    /// Assembles the data plane; fails when a configured service cannot be
    /// classified.
    pub fn new(
        (schema, descriptors): (Arc<Schema>, crate::schema::Descriptors),
        codec: Arc<Pipeline>,
        routing: (
            router::Router,
            crate::inbound::Inbound,
            Option<tokio_rustls::TlsAcceptor>,
        ),
        config: ProxyConfig,
        metrics: Metrics,
        trace_calls: bool,
    ) -> Result<Self, String> {
        let reflection = config.reflection.then(std::sync::OnceLock::new);
        let namespace_schema = descriptors.namespaces().map_err(|e| e.to_string())?;
        let services = classify::Services::new(&config, &schema, &namespace_schema)
            .map_err(|e| e.to_string())?;
        let inbound_tls = tokio::sync::watch::Sender::new(routing.2);
        Ok(Proxy {
            inbound_tls: crate::inbound::ListenerTls(inbound_tls),
            namespace_schema,
            descriptors,
            services,
            budget: budget::Budget::new(config.memory_budget_bytes),
            warned: Default::default(),
            response_audits: Default::default(),
            limits: conn::Limits {
                tls_handshake: config.tls_handshake_timeout,
                first_request: config.first_request_timeout,
                idle: config.idle_timeout,
                max_age: config.max_connection_age,
                max_age_grace: config.max_connection_age_grace,
            },
            reflection,
            schema,
            codec,
            upstream: routing.0.default_upstream().clone(),
            router: tokio::sync::watch::Sender::new(Arc::new(routing.0)),
            inbound: tokio::sync::watch::Sender::new(Arc::new(routing.1)),
            config,
            metrics,
            trace_calls,
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// From now on this gateway says it is going away: the gRPC health
    /// service answers NOT_SERVING and `/ready` 503. Serving goes on until
    /// the listener stops.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// True once shutdown has begun.
    pub fn draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// True when the listener serves TLS (turning it on or off needs a
    /// restart: the listener's callers would all break).
    pub fn listener_tls(&self) -> bool {
        self.inbound_tls.0.borrow().is_some()
    }

    /// New calls use these caller rules, and new connections this TLS.
    pub fn publish_inbound(
        &self,
        (inbound, acceptor): (crate::inbound::Inbound, Option<tokio_rustls::TlsAcceptor>),
    ) {
        self.inbound.send_replace(Arc::new(inbound));
        self.inbound_tls.0.send_replace(acceptor);
    }

    /// New calls route with `router`.
    pub fn publish_router(&self, router: router::Router) {
        self.router.send_replace(Arc::new(router));
    }

    /// The routes and upstreams in force (a call keeps the one it took).
    pub fn router(&self) -> Arc<router::Router> {
        self.router.borrow().clone()
    }

    /// The caller rules in force (a call keeps the one it took).
    pub fn inbound(&self) -> Arc<crate::inbound::Inbound> {
        self.inbound.borrow().clone()
    }

    /// The codec pipeline (swapped on reload).
    pub fn codec(&self) -> &Arc<Pipeline> {
        &self.codec
    }

    /// Bytes buffered by calls now, and the budget.
    pub fn buffered(&self) -> (usize, usize) {
        (self.budget.in_use(), self.budget.total())
    }

    /// Serves one request in its own span; a guard records its metrics
    /// when it ends, however it ends.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Arc<Peer>,
    ) -> Result<Response<Body>, Infallible> {
        let path = req.uri().path();
        // Bounded labels: a service this gateway does not serve is "other".
        let service = match classify::service_of(path) {
            s if self.services.class(s).is_some() => s,
            s if s == reflection::V1 || s == reflection::V1ALPHA => s,
            _ => "other",
        };
        // Looked up once: the labels here, the lane in `call`.
        let found = self.schema.method(path);
        // Bounded labels: method names come from the schema, others are
        // "other". The schema's names are shared, not copied per call.
        let (service_label, method) = match found {
            Some(m) if *m.service == *service => {
                (Cow::Borrowed(&*m.service), Cow::Borrowed(&*m.name))
            }
            Some(m) => (label(service), Cow::Borrowed(&*m.name)),
            None => (label(service), Cow::Borrowed("other")),
        };
        let span = if !self.trace_calls {
            tracing::Span::none()
        } else {
            let namespace = headers::namespace(req.headers()).unwrap_or("");
            let span = tracing::info_span!(
            "grpc.call",
            otel.name = %path,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            namespace = %namespace,
            upstream = %self.upstream.name(),
            rpc.grpc.status_code = tracing::field::Empty,
            payloads = tracing::field::Empty,
            );
            telemetry::extract_parent(&span, req.headers());
            span
        };
        let mut guard = metrics::CallGuard::start(
            &self.metrics,
            span.clone(),
            service_label,
            method,
            &self.upstream,
        );
        let path = path.to_string();
        // Boxed: the call future is ~10 KB, and an unboxed one is copied each
        // time hyper and tokio move the stream task (memmove was the top
        // symbol in the profile).
        let call = Box::pin(self.call(req, &peer, found).instrument(span.clone()));
        let (resp, code, routed) = match call.await {
            Ok(ok) => ok,
            Err(e) => {
                let _enter = span.enter();
                match e.side() {
                    Side::Downstream => tracing::info!(%path, error = %e, "call refused"),
                    Side::Upstream => {
                        tracing::warn!(%path, upstream = %self.upstream.name(), error = %e, "call failed upstream")
                    }
                    Side::Internal => tracing::error!(%path, error = %e, "call failed in sealgate"),
                }
                let code = e.code().label();
                (e.into_response(), code, None)
            }
        };
        guard.answered(code, routed);
        Ok(resp)
    }

    /// The phases every call goes through before its lane's own.
    async fn call(
        &self,
        req: Request<Incoming>,
        peer: &Peer,
        method: Option<&crate::schema::Method>,
    ) -> Result<Routed, ProxyError> {
        self.admit(&req)?;
        let inbound = self.inbound();
        let caller = inbound.authenticate(peer, req.headers()).await?;
        if self.draining() && req.uri().path().starts_with(health::HEALTH_PREFIX) {
            // Going away: say so here rather than ask the upstream (whose
            // health is not this replica's).
            return Ok((health::not_serving(), "0", None));
        }
        match classify::classify(
            &self.services,
            method,
            self.reflection.is_some(),
            req.uri().path(),
        )? {
            classify::Class::Rewrite(method) => unary::call(self, method, caller, req).await,
            classify::Class::Reflection(service) => {
                // Reflection describes the API, no namespace's data.
                caller.known()?;
                let Some(r) = self.reflection() else {
                    return Err(ProxyError::ServiceNotAllowed {
                        service: service.to_string(),
                    });
                };
                let serve = Box::pin(r.serve(service, req));
                Ok((serve.await, "stream", None))
            }
            // Boxed, like the rare paths inside `unary`: the call future is
            // as large as its largest branch, and long polls hold it.
            classify::Class::Stream { opaque } => {
                let stream = Box::pin(stream::call(self, caller, opaque, req));
                stream.await
            }
        }
    }

    /// Admit: the request's head is a well-formed gRPC call.
    fn admit(&self, req: &Request<Incoming>) -> Result<(), ProxyError> {
        headers::check(req.method(), req.uri(), req.headers())?;
        Ok(())
    }

    /// Where the schema in use came from.
    pub fn schema_info(&self) -> &crate::schema::SchemaInfo {
        self.descriptors.info()
    }

    /// The reflection service, built on first use; `None` when off or when
    /// it cannot be built (then reflection calls get UNIMPLEMENTED).
    fn reflection(&self) -> Option<&reflection::Reflection> {
        self.reflection
            .as_ref()?
            .get_or_init(|| {
                reflection::Reflection::new(
                    &self.schema,
                    self.descriptors.bytes(),
                    &self.config.allowed_services,
                )
                .inspect_err(|e| tracing::warn!(error = %e, "server reflection is off"))
                .ok()
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests;

/// A service's metric label: the static names as they are, others copied.
fn label(service: &str) -> Cow<'static, str> {
    match service {
        "other" => Cow::Borrowed("other"),
        reflection::V1 => Cow::Borrowed(reflection::V1),
        reflection::V1ALPHA => Cow::Borrowed(reflection::V1ALPHA),
        s => Cow::Owned(s.to_string()),
    }
}
