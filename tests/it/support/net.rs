//! A fake Temporal frontend that records the exact bytes it receives, a
//! minimal gRPC client, and a gateway started on ephemeral ports.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sealgate::{App, config::Config, proxy::server::Drained};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// One request as the fake upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    /// The body exactly as received: gRPC frames.
    pub body: Bytes,
}

impl Recorded {
    /// The single message of a unary request (frames must be uncompressed).
    pub fn message(&self) -> Bytes {
        let frames = sealgate::grpc::frame::split(self.body.clone(), usize::MAX >> 1).unwrap();
        assert_eq!(frames.len(), 1, "one message per unary call");
        assert!(!frames[0].compressed);
        frames[0].message.clone()
    }
}

/// What the fake upstream answers.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// Messages in the body (framed by the fake).
    pub messages: Vec<Bytes>,
    /// Compress frames with gzip.
    pub gzip: bool,
    /// Extra trailers; grpc-status 0 is added unless set.
    pub trailers: Vec<(&'static str, String)>,
    /// Status in the headers and no body at all.
    pub trailers_only: Option<Vec<(&'static str, String)>>,
    /// A plain HTTP answer instead of gRPC (status, text body).
    pub http_error: Option<(u16, &'static str)>,
    pub delay: Duration,
}

impl Reply {
    pub fn message(m: impl Into<Bytes>) -> Reply {
        Reply {
            messages: vec![m.into()],
            ..Reply::default()
        }
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A fake WorkflowService frontend on 127.0.0.1.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Recorded>>>,
    handler: Handler,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeUpstream {
    pub async fn start(
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut f = FakeUpstream {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            handler: Arc::new(handler),
            tls: None,
            stop: None,
            task: None,
        };
        f.serve(listener);
        f
    }

    /// Like `start`, behind TLS that requires a client certificate signed by
    /// `client_ca` (as Temporal Cloud's mTLS does).
    pub async fn start_tls(
        cert_pem: &str,
        key_pem: &str,
        client_ca_pem: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> FakeUpstream {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(client_ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .unwrap();
        let certs: Vec<_> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut f = FakeUpstream {
            addr: listener.local_addr().unwrap(),
            seen: Arc::default(),
            handler: Arc::new(handler),
            tls: Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
            stop: None,
            task: None,
        };
        f.serve(listener);
        f
    }

    fn serve(&mut self, listener: TcpListener) {
        let (tx, mut rx) = oneshot::channel();
        let seen = self.seen.clone();
        let handler = self.handler.clone();
        let tls = self.tls.clone();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(async move {
            let mut conns = Vec::new();
            loop {
                tokio::select! {
                    Ok((stream, _)) = listener.accept() => {
                        stream.set_nodelay(true).unwrap();
                        let seen = seen.clone();
                        let handler = handler.clone();
                        let tls = tls.clone();
                        conns.push(tokio::spawn(async move {
                            let svc = service_fn(move |req| answer(req, seen.clone(), handler.clone()));
                            let builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .timer(TokioTimer::new())
                                .max_concurrent_streams(10_000)
                                // A Temporal frontend (grpc-go) takes large metadata.
                                .max_header_list_size(1 << 20)
                                .clone();
                            match tls {
                                None => {
                                    let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
                                }
                                Some(acceptor) => {
                                    // A refused handshake just drops the connection.
                                    if let Ok(s) = acceptor.accept(stream).await {
                                        let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                                    }
                                }
                            }
                        }));
                    }
                    _ = &mut rx => break,
                }
            }
            // Going down: drop every connection, as a crashed server would.
            for c in conns {
                c.abort();
            }
        }));
    }

    /// Stops listening and drops every connection.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }
}

async fn answer(
    req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Recorded>>>,
    handler: Handler,
) -> Result<
    Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>,
    std::convert::Infallible,
> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let rec = Recorded {
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body,
    };
    seen.lock().unwrap().push(rec.clone());
    let reply = handler(&rec);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    if let Some((status, text)) = reply.http_error {
        let resp = Response::builder()
            .status(status)
            .header("content-type", "text/html")
            .body(Full::new(Bytes::from_static(text.as_bytes())).boxed());
        return Ok(resp.unwrap());
    }
    let mut resp = Response::builder()
        .status(200)
        .header("content-type", "application/grpc");
    if let Some(status) = reply.trailers_only {
        for (k, v) in status {
            resp = resp.header(k, v);
        }
        return Ok(resp.body(Full::new(Bytes::new()).boxed()).unwrap());
    }
    if reply.gzip {
        resp = resp.header("grpc-encoding", "gzip");
    }
    let mut body = BytesMut::new();
    for m in &reply.messages {
        frame_into(&mut body, m, reply.gzip);
    }
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    for (k, v) in reply.trailers {
        trailers.insert(k, HeaderValue::from_str(&v).unwrap());
    }
    let body = Full::new(body.freeze()).with_trailers(async move { Some(Ok(trailers)) });
    Ok(resp.body(body.boxed()).unwrap())
}

/// Appends one gRPC frame, gzip-compressed when asked.
pub fn frame_into(out: &mut BytesMut, message: &[u8], gzip: bool) {
    use std::io::Write;
    let payload = if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(message).unwrap();
        e.finish().unwrap()
    } else {
        message.to_vec()
    };
    out.extend_from_slice(&[u8::from(gzip)]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
}

/// What a client got back.
#[derive(Debug)]
pub struct Answer {
    pub headers: HeaderMap,
    pub messages: Vec<Bytes>,
    pub trailers: HeaderMap,
}

impl Answer {
    /// grpc-status from trailers, or from headers for trailers-only.
    pub fn status(&self) -> u16 {
        let v = self
            .trailers
            .get("grpc-status")
            .or_else(|| self.headers.get("grpc-status"))
            .expect("a grpc-status");
        v.to_str().unwrap().parse().unwrap()
    }

    pub fn grpc_message(&self) -> String {
        let v = self
            .trailers
            .get("grpc-message")
            .or_else(|| self.headers.get("grpc-message"));
        v.map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.trailers.get(name).or_else(|| self.headers.get(name))
    }

    pub fn message(&self) -> Bytes {
        assert_eq!(
            self.messages.len(),
            1,
            "status {} {}",
            self.status(),
            self.grpc_message()
        );
        self.messages[0].clone()
    }
}

/// An HTTP/2 (prior knowledge) connection to `addr`, driven in the
/// background; takes answers with large header lists.
async fn h2c<B>(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<B>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_header_list_size(1 << 20)
        .handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// An h2c gRPC client connection.
#[derive(Clone)]
pub struct Client {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        Client {
            sender: h2c(addr).await,
        }
    }

    /// A unary call with the given raw message bytes and extra headers.
    pub async fn call(
        &self,
        path: &str,
        message: &[u8],
        headers: &[(&str, &str)],
        gzip: bool,
    ) -> Answer {
        let mut body = BytesMut::new();
        frame_into(&mut body, message, gzip);
        self.call_raw(path, body.freeze(), headers, gzip).await
    }

    /// A call with an arbitrary body (for malformed framing).
    pub async fn call_raw(
        &self,
        path: &str,
        body: Bytes,
        headers: &[(&str, &str)],
        gzip: bool,
    ) -> Answer {
        let mut req = Request::builder()
            .method("POST")
            .uri(format!("http://sealgate{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if gzip {
            req = req.header("grpc-encoding", "gzip");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).unwrap();
        let mut sender = self.sender.clone();
        sender.ready().await.unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap_or_default();
        let gz = parts
            .headers
            .get("grpc-encoding")
            .is_some_and(|v| v == "gzip");
        let frames = sealgate::grpc::frame::split(collected.to_bytes(), usize::MAX >> 1).unwrap();
        let messages = frames
            .iter()
            .map(|f| {
                if !f.compressed {
                    return f.message.clone();
                }
                assert!(gz, "a compressed frame without grpc-encoding: gzip");
                let mut out = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(f.message.as_ref()),
                    &mut out,
                )
                .unwrap();
                Bytes::from(out)
            })
            .collect();
        Answer {
            headers: parts.headers,
            messages,
            trailers,
        }
    }
}

/// A running gateway on an ephemeral port in front of `upstream`.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The codec server's address, when configured.
    pub codec_addr: Option<SocketAddr>,
    /// The admin listener's address, when configured.
    pub admin_addr: Option<SocketAddr>,
    pub app: Arc<sealgate::proxy::Proxy>,
    pub codec_server: Option<Arc<sealgate::codec_server::CodecServer>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Drained>>,
}

/// Config text for a gateway in front of `upstream`, with extra top-level
/// settings or sections in `extra`. The key is generated for each call.
pub fn config_text(upstream: SocketAddr, extra: &str) -> String {
    let (_, key) = sealgate::keys::generate("key").unwrap();
    let key = key.as_str();
    format!(
        r#"
listen = "127.0.0.1:0"
upstream = "http://{upstream}"
{extra}
[codec]
compression = true
encryption = true
active_key = "k1"
[[codec.keys]]
id = "k1"
material = "{key}"
[telemetry]
admin_listen = "127.0.0.1:0"
"#
    )
}

pub fn parse_config(text: &str) -> Config {
    Config::parse(text, "test.toml", std::path::Path::new("."), &|_| None).unwrap()
}

impl Gateway {
    pub async fn start(config: Config) -> Gateway {
        Gateway::start_app(App::build(config).unwrap()).await
    }

    /// Serves `app` on the addresses it binds.
    async fn start_app(app: App) -> Gateway {
        let listeners = app.bind().await.unwrap();
        let addr = listeners.proxy.local_addr().unwrap();
        let codec_addr = listeners
            .codec_server
            .as_ref()
            .map(|l| l.local_addr().unwrap());
        let admin_addr = listeners.admin.as_ref().map(|l| l.local_addr().unwrap());
        let proxy = app.proxy().clone();
        let codec_server = app.codec_server().cloned();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listeners, async move {
            let _ = rx.await;
        }));
        Gateway {
            addr,
            codec_addr,
            admin_addr,
            app: proxy,
            codec_server,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// A gateway from the config file at `path`, and a reloader for it that
    /// swaps everything a reload can (keys, upstream credentials, the Codec
    /// Server's and the listener's certificates).
    pub async fn start_reloadable(
        path: &std::path::Path,
    ) -> (Gateway, std::sync::Arc<sealgate::reload::Reloader>) {
        let app = App::build(Config::load(path).unwrap()).unwrap();
        let reloader = app.reloader(path);
        let gateway = Gateway::start_app(app).await;
        (gateway, reloader)
    }

    /// Signals shutdown without waiting for the drain.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for the drain.
    pub async fn shutdown(&mut self) -> Drained {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }
}

/// A StartWorkflowExecutionRequest in `namespace`, with no payloads.
pub fn start_request(namespace: &str) -> Vec<u8> {
    use prost::Message;
    temporalio_protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest {
        namespace: namespace.into(),
        workflow_id: "wf".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A request body for [`RawClient`]: whole, or fed through a channel.
pub type RawBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// A whole body.
pub fn raw_full(bytes: impl Into<Bytes>) -> RawBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body fed chunk by chunk; it ends when the sender is dropped.
pub fn raw_channel() -> (tokio::sync::mpsc::Sender<Bytes>, RawBody) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let frames = tokio_stream::StreamExt::map(stream, |b| {
        Ok::<_, std::io::Error>(hyper::body::Frame::data(b))
    });
    (tx, http_body_util::StreamBody::new(frames).boxed_unsync())
}

/// A POST to `path` with exactly the headers given (no content type unless
/// listed), values as raw bytes.
pub fn raw_request(path: &str, headers: &[(&str, &[u8])], body: RawBody) -> Request<RawBody> {
    let mut req = Request::builder()
        .method("POST")
        .uri(format!("http://sealgate{path}"));
    for (k, v) in headers {
        req = req.header(*k, HeaderValue::from_bytes(v).unwrap());
    }
    req.body(body).unwrap()
}

/// An answer as it came off the wire.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body had ended when the headers arrived: a trailers-only answer.
    pub ended_with_headers: bool,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl RawAnswer {
    pub fn grpc_status(&self) -> Option<String> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-status"))
            .or_else(|| self.headers.get("grpc-status"))
            .map(|v| v.to_str().unwrap().to_string())
    }

    pub fn grpc_message(&self) -> String {
        self.trailers
            .as_ref()
            .and_then(|t| t.get("grpc-message"))
            .or_else(|| self.headers.get("grpc-message"))
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

/// An h2c client that sends requests exactly as built, bodies streamed.
#[derive(Clone)]
pub struct RawClient {
    sender: hyper::client::conn::http2::SendRequest<RawBody>,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient {
            sender: h2c(addr).await,
        }
    }

    /// True once the server has closed this connection (or sent GOAWAY).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends and returns the response head (body unread).
    pub async fn start(&self, req: Request<RawBody>) -> Response<Incoming> {
        let mut sender = self.sender.clone();
        sender.ready().await.unwrap();
        sender.send_request(req).await.unwrap()
    }

    /// Sends and reads the whole answer.
    pub async fn send(&self, req: Request<RawBody>) -> RawAnswer {
        let resp = self.start(req).await;
        let (parts, body) = resp.into_parts();
        let ended_with_headers = hyper::body::Body::is_end_stream(&body);
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        RawAnswer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            ended_with_headers,
            body: collected.to_bytes(),
            trailers,
        }
    }
}
