//! The built-in Codec Server: Temporal's remote-codec HTTP API
//! (`POST /encode`, `POST /decode`, also under `/{namespace}/…`) for the Web
//! UI and the CLI, with CORS and optional bearer or JWT auth.

pub(crate) mod auth;
mod cors;

#[cfg(test)]
mod tests;

use std::{convert::Infallible, future::Future, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use auth::{Auth, AuthError};
pub use cors::Cors;

use crate::codec::{CodecError, PayloadVisitor, Pipeline, json as codec_json};

/// Which way a request goes.
/// The `[codec_server]` section.
#[derive(Debug, Clone)]
pub struct CodecServerConfig {
    pub listen: std::net::SocketAddr,
    /// Origins allowed by CORS (`"*"` allows any, without credentials).
    pub cors_origins: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true` (explicit origins only).
    pub cors_allow_credentials: bool,
    pub max_body_bytes: usize,
    /// Serve HTTPS with this certificate chain and key.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub auth: CodecServerAuth,
    /// `[[codec_server.auth.rules]]`: who may decode (or encode) which
    /// namespaces; none: every authenticated caller, every namespace.
    pub rules: Vec<CodecRule>,
}

/// One `[[codec_server.auth.rules]]`.
#[derive(Clone, PartialEq, Eq)]
pub struct CodecRule {
    /// A bearer token (mode "bearer") or a JWT claim (mode "jwt").
    pub who: crate::auth::Who,
    /// Namespaces (exact or patterns) this caller may use.
    pub namespaces: Vec<String>,
    pub decode: bool,
    pub encode: bool,
}

impl std::fmt::Debug for CodecRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodecRule")
            .field("who", &self.who)
            .field("namespaces", &self.namespaces)
            .field("decode", &self.decode)
            .field("encode", &self.encode)
            .finish()
    }
}

/// Who may call the codec server.
#[derive(Clone)]
pub enum CodecServerAuth {
    /// Anyone who can reach it (loopback listeners only, unless allowed).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer { token: String },
    /// A JWT verified against a JWKS.
    Jwt(crate::auth::JwtConfig),
}

impl std::fmt::Debug for CodecServerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodecServerAuth::None => write!(f, "None"),
            CodecServerAuth::Bearer { .. } => write!(f, "Bearer(<redacted>)"),
            CodecServerAuth::Jwt(j) => f.debug_tuple("Jwt").field(j).finish(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Encode,
    Decode,
}

/// The codec server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CodecServerError {
    #[error("codec_server TLS: {0}")]
    Tls(String),
    #[error("{0}")]
    Restart(&'static str),
}

/// Everything a codec-server request needs.
pub struct CodecServer {
    codec: Arc<Pipeline>,
    cors: Cors,
    /// Who may call; swapped whole on reload (a request keeps the one it
    /// started with).
    auth: tokio::sync::watch::Sender<Arc<Auth>>,
    /// Without auth: the host names a request may address (a web page the
    /// operator visits must not reach it through DNS rebinding).
    open_hosts: Option<Vec<String>>,
    /// Upstream namespace naming, to find a Cloud name's local policy.
    translations: Vec<crate::translate::Translation>,
    max_body: usize,
    tls: Option<tokio::sync::watch::Sender<TlsAcceptor>>,
}

impl std::fmt::Debug for CodecServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodecServer")
            .field("cors", &self.cors)
            .field("auth", &*self.auth.borrow())
            .field("max_body", &self.max_body)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

type Resp = Response<Full<Bytes>>;

fn json_response(status: StatusCode, body: serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: impl Into<String>) -> Resp {
    json_response(status, json!({ "error": message.into() }))
}

impl CodecServer {
    pub fn new(
        config: &CodecServerConfig,
        codec: Arc<Pipeline>,
        translations: Vec<crate::translate::Translation>,
    ) -> Result<CodecServer, CodecServerError> {
        let tls = match &config.tls {
            Some((cert, key)) => Some(tokio::sync::watch::Sender::new(tls_acceptor(cert, key)?)),
            None => None,
        };
        Ok(CodecServer {
            codec,
            cors: Cors::new(&config.cors_origins, config.cors_allow_credentials),
            auth: tokio::sync::watch::Sender::new(Arc::new(Auth::new(&config.auth, &config.rules))),
            open_hosts: matches!(config.auth, CodecServerAuth::None).then(|| {
                let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
                hosts.push(config.listen.ip().to_string());
                hosts
            }),
            translations,
            max_body: config.max_body_bytes,
            tls,
        })
    }

    /// Serves one request; every failure is a JSON error with a status.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Resp, Infallible> {
        let origin = req.headers().get(header::ORIGIN).cloned();
        let mut resp = if req.method() == Method::OPTIONS {
            self.cors.preflight(origin.as_ref())
        } else {
            self.route(req).await
        };
        self.cors.decorate(origin.as_ref(), resp.headers_mut());
        Ok(resp)
    }

    async fn route(&self, req: Request<Incoming>) -> Resp {
        let path = req.uri().path().trim_end_matches('/').to_string();
        let (namespace, op, download) = match parse_path(&path) {
            Some(x) => x,
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no route {path:?}: use POST /encode, /decode or /download, or /{{namespace}}/… of each"
                    ),
                );
            }
        };
        let preserve = preserve_refs(req.uri().query()) && !download;
        if req.method() != Method::POST {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            return r;
        }
        // The namespace picks the key policy; with one [codec] policy every
        // namespace shares it, but it is still checked and logged.
        let namespace = namespace
            .map(str::to_string)
            .or_else(|| {
                req.headers()
                    .get("x-namespace")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_default();
        if let Some(refused) = self.open_checks(req.headers()) {
            return refused;
        }
        let namespace = self.local_name(namespace);
        let auth = self.auth.borrow().clone();
        if let Err(e) = auth.check(req.headers(), op, &namespace).await {
            tracing::info!(%namespace, ?op, error = %e, "codec server refused a request");
            return e.response();
        }
        let body = match Limited::new(req.into_body(), self.max_body).collect().await {
            Ok(c) => c.to_bytes(),
            Err(e) if e.is::<LengthLimitError>() => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "body over the {}-byte limit (codec_server.max_body_bytes)",
                        self.max_body
                    ),
                );
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("reading the body: {e}")),
        };
        let mut session = self.codec.session_with(&namespace, preserve);
        let kms_failed = |e: CodecError| {
            tracing::warn!(%namespace, error = %e, "codec server could not get a data key");
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        };
        // The same KMS round trip as the gRPC path: a data key that is not
        // ready (encode) or not cached (decode) is fetched, then the body is
        // transformed once more.
        let result = match op {
            Op::Encode => {
                session
                    .encode_with(|enc| {
                        codec_json::transform(&body, |p| enc.payload(p)).map_err(Failed::Json)
                    })
                    .await
            }
            Op::Decode if download => {
                let mut not_references = false;
                let out = session
                    .decode_with(|dec| {
                        codec_json::transform(&body, |p| {
                            if !is_reference(p) {
                                not_references = true;
                                return Ok(None);
                            }
                            dec.payload(p)
                        })
                        .map_err(Failed::Json)
                    })
                    .await;
                if not_references {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "all payloads must be storage references: /download fetches offloaded payloads",
                    );
                }
                out
            }
            Op::Decode => {
                session
                    .decode_with(|dec| {
                        codec_json::transform(&body, |p| {
                            // What cannot be decoded comes back unchanged.
                            Ok(dec.payload(p).unwrap_or_else(|e| {
                                tracing::warn!(%namespace, error = %e, "payload left as it is");
                                None
                            }))
                        })
                        .map_err(Failed::Json)
                    })
                    .await
            }
        };
        let result = match result {
            Ok(out) => Ok(out),
            Err(Failed::Kms(e)) => return kms_failed(e),
            Err(Failed::Json(e)) => Err(e),
        };
        match result {
            Ok(out) => {
                let mut r = Response::new(Full::new(Bytes::from(out)));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                r
            }
            Err(codec_json::JsonError::Codec { index, source }) => error(
                StatusCode::BAD_REQUEST,
                format!("payloads[{index}] cannot be encoded: {source}"),
            ),
            Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

impl CodecServer {
    /// Without auth, only requests addressed to this host by name or
    /// address, with a JSON body (which a browser cannot send cross-origin
    /// without a CORS preflight), are served.
    fn open_checks(&self, headers: &http::HeaderMap) -> Option<Resp> {
        let hosts = self.open_hosts.as_ref()?;
        let host = headers.get(header::HOST).map(|v| {
            // host, host:port, [v6]:port; what does not parse matches nothing
            http::uri::Authority::try_from(v.as_bytes())
                .map(|a| {
                    a.host()
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_string()
                })
                .unwrap_or_default()
        });
        if let Some(h) = host
            && !hosts.iter().any(|a| a.eq_ignore_ascii_case(&h))
        {
            return Some(error(
                StatusCode::MISDIRECTED_REQUEST,
                "this codec server serves without auth, so only requests addressed to localhost or its own address are served",
            ));
        }
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json {
            return Some(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send Content-Type: application/json",
            ));
        }
        None
    }

    /// The local policy name for `namespace`: an upstream's name (a Cloud
    /// namespace such as `orders.a1b2c`) maps back to the local one.
    fn local_name(&self, namespace: String) -> String {
        self.translations
            .iter()
            .map(|t| t.to_local(&namespace))
            .find(|local| *local != namespace)
            .unwrap_or(namespace)
    }

    /// Builds what a reload changes from `config`: the certificate (when
    /// it serves TLS) and who may call, for [`CodecServer::publish`] once
    /// the whole reload has loaded. Turning TLS or auth on or off needs a
    /// restart (the listener's scheme and the hosts served without auth are
    /// fixed at start).
    pub fn prepare(&self, config: &CodecServerConfig) -> Result<Reloaded, CodecServerError> {
        let tls = match (&self.tls, &config.tls) {
            (Some(_), Some((cert, key))) => Some(tls_acceptor(cert, key)?),
            (None, None) => None,
            _ => {
                return Err(CodecServerError::Restart(
                    "turning the Codec Server's TLS on or off needs a restart",
                ));
            }
        };
        if self.open_hosts.is_some() != matches!(config.auth, CodecServerAuth::None) {
            return Err(CodecServerError::Restart(
                "turning the Codec Server's auth on or off needs a restart",
            ));
        }
        Ok(Reloaded {
            tls,
            auth: Auth::new(&config.auth, &config.rules),
        })
    }

    /// New connections use the new certificate, new requests the new auth.
    pub fn publish(&self, next: Reloaded) {
        if let (Some(sender), Some(acceptor)) = (&self.tls, next.tls) {
            sender.send_replace(acceptor);
        }
        let auth = Arc::new(next.auth);
        auth.warm_up();
        self.auth.send_replace(auth);
    }
}

/// Why a request's payloads could not be transformed: the KMS (503) or
/// the request (400).
enum Failed {
    Kms(CodecError),
    Json(codec_json::JsonError),
}

impl From<CodecError> for Failed {
    fn from(e: CodecError) -> Failed {
        Failed::Kms(e)
    }
}

/// What a reload changes in the Codec Server.
#[allow(missing_debug_implementations)]
pub struct Reloaded {
    tls: Option<TlsAcceptor>,
    auth: Auth,
}

/// `/encode`, `/decode`, `/download`, each also under `/{ns}/`. A
/// download is a decode (the same rights) of storage references only.
fn parse_path(path: &str) -> Option<(Option<&str>, Op, bool)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (ns, last) = match segments.as_slice() {
        [op] => (None, *op),
        [ns, op] if !ns.is_empty() => (Some(*ns), *op),
        _ => return None,
    };
    let (op, download) = match last {
        "encode" => (Op::Encode, false),
        "decode" => (Op::Decode, false),
        "download" => (Op::Decode, true),
        _ => return None,
    };
    Some((ns, op, download))
}

/// `?preserveStorageRefs=true` (Temporal's storage-aware codec contract):
/// storage references come back as they are, for the UI to download on
/// demand.
fn preserve_refs(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&').any(|kv| {
            kv.split_once('=')
                .is_some_and(|(k, v)| k == "preserveStorageRefs" && v.eq_ignore_ascii_case("true"))
        })
    })
}

/// The payload is an external storage reference sealgate can resolve.
fn is_reference(payload: &[u8]) -> bool {
    crate::codec::PayloadView::parse(payload).is_ok_and(|v| {
        crate::storage::parse_reference(v.encoding(), v.metadata("messageType"), v.data)
            .is_ok_and(|c| c.is_some())
    })
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<TlsAcceptor, CodecServerError> {
    use crate::tls::{self, Pem};
    tls::acceptor(
        (
            &Pem::File(cert.to_path_buf()),
            &Pem::File(key.to_path_buf()),
        ),
        None,
        &[b"http/1.1"],
        ["certificate", "key", "client CA"],
    )
    .map_err(|e| CodecServerError::Tls(e.to_string()))
}

/// Serves HTTP/1.1 (plain or TLS) until `shutdown`, then drains briefly.
pub async fn serve(
    listener: TcpListener,
    server: Arc<CodecServer>,
    shutdown: impl Future<Output = ()>,
) {
    server.auth.borrow().warm_up();
    let tls = server.tls.as_ref().map(|t| t.subscribe());
    let handler = move |req| server.clone().handle(req);
    crate::http1::serve(
        "codec server",
        listener,
        tls,
        handler,
        shutdown,
        std::time::Duration::from_secs(5),
    )
    .await;
}
