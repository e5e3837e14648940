//! A fast fake Temporal frontend for load runs (benches/load): answers every
//! WorkflowService call with a canned response and records nothing.
//!
//! - `PollWorkflowTaskQueue` returns a workflow task with an N-event history
//!   whose payloads are encrypted with the keys of `--config` (as Temporal
//!   would have stored them), so the gateway has real decoding to do.
//! - `PollActivityTaskQueue` is held open for `--hold` seconds, like an idle
//!   long poll, then answers empty.
//! - Everything else gets an empty response message.
//!
//! With `--tls-listen ADDR --tls-cert PEM --tls-key PEM` it also serves the
//! same answers over TLS (rustls, ALPN h2) on a second port, as the upstream
//! of the harness's TLS paths.
//!
//! Usage: fake_upstream --listen 127.0.0.1:7234 [--config sealgate.toml] [--events 50] [--hold 60]
//!        [--tls-listen 127.0.0.1:7235 --tls-cert server.pem --tls-key server-key.pem]
#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench tool: fail loudly

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use sealgate::{config::Config, rewrite::rewrite, schema::Schema};

#[path = "../benches/support/workload.rs"]
mod workload;

fn framed(message: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + message.len());
    b.put_u8(0);
    b.put_u32(message.len() as u32);
    b.put_slice(message);
    b.freeze()
}

struct Canned {
    poll_workflow: Bytes,
    empty: Bytes,
    hold: Duration,
}

async fn answer(
    req: Request<Incoming>,
    canned: Arc<Canned>,
) -> Result<Response<http_body_util::combinators::BoxBody<Bytes, Infallible>>, Infallible> {
    let path = req.uri().path().to_string();
    // Read (and drop) the request body, as a server does.
    let _ = req.into_body().collect().await;
    let body = if path.ends_with("/PollWorkflowTaskQueue") {
        canned.poll_workflow.clone()
    } else {
        if path.ends_with("/PollActivityTaskQueue") {
            tokio::time::sleep(canned.hold).await;
        }
        canned.empty.clone()
    };
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let body = Full::new(body)
        .with_trailers(async move { Some(Ok(trailers)) })
        .boxed();
    Ok(Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .unwrap())
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listen: SocketAddr = arg(&args, "--listen")
        .unwrap_or_else(|| "127.0.0.1:7234".into())
        .parse()
        .unwrap();
    let events: usize = arg(&args, "--events").map_or(50, |e| e.parse().unwrap());
    let hold = Duration::from_secs(arg(&args, "--hold").map_or(60, |h| h.parse().unwrap()));
    let mut poll = workload::poll_response(events);
    if let Some(path) = arg(&args, "--config") {
        let config = Config::load(std::path::Path::new(&path)).unwrap_or_else(|e| panic!("{e}"));
        let chain = sealgate::pipeline(&config.codec).unwrap().session("");
        let schema = Schema::embedded().unwrap();
        let id = schema
            .message_id("temporal.api.workflowservice.v1.PollWorkflowTaskQueueResponse")
            .unwrap();
        poll = rewrite(&schema, id, &poll, &mut chain.encoder())
            .unwrap()
            .into_owned();
    }
    let canned = Arc::new(Canned {
        poll_workflow: framed(&poll),
        empty: framed(&[]),
        hold,
    });
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    eprintln!(
        "fake upstream on {listen}: poll response {} bytes",
        poll.len()
    );
    if let Some(tls_listen) = arg(&args, "--tls-listen") {
        let cert = arg(&args, "--tls-cert").expect("--tls-listen needs --tls-cert");
        let key = arg(&args, "--tls-key").expect("--tls-listen needs --tls-key");
        let acceptor = tls_acceptor(&cert, &key);
        let listener = tokio::net::TcpListener::bind(&tls_listen).await.unwrap();
        eprintln!("fake upstream (TLS) on {tls_listen}");
        let canned = canned.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (acceptor, canned) = (acceptor.clone(), canned.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(stream).await {
                        serve(tls, canned).await;
                    }
                });
            }
        });
    }
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        tokio::spawn(serve(stream, canned.clone()));
    }
}

async fn serve<S>(stream: S, canned: Arc<Canned>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| answer(req, canned.clone()));
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(100_000)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

fn tls_acceptor(cert: &str, key: &str) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
