//! Accepting connections: h2c (HTTP/2 with prior knowledge), a span per
//! connection, and drain-based graceful shutdown with a grace period.

use std::{future::Future, sync::Arc, time::Duration};

use hyper::service::service_fn;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::net::TcpListener;
use tracing::Instrument;

use super::Proxy;
use crate::inbound::Peer;

/// How serving ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight call finished within the grace period.
    Clean,
    /// The grace period ran out with calls still open.
    GraceExpired,
    /// Serving could not start (threads, runtimes); says why.
    Failed(String),
}

fn builder() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(10_000)
        .initial_stream_window_size(crate::upstream::STREAM_WINDOW)
        .initial_connection_window_size(crate::upstream::CONNECTION_WINDOW)
        .max_frame_size(crate::upstream::MAX_FRAME);
    b
}

async fn ended<E: std::error::Error + 'static>(conn: impl Future<Output = Result<(), E>>) {
    if let Err(e) = conn.await {
        tracing::debug!(error = %crate::upstream::error_chain(&e), "connection ended");
    }
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight
/// calls finish for up to `grace`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Drained {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let proxy = proxy.clone();
                let span = tracing::info_span!("conn", %peer);
                // The acceptor current now: a reload affects new connections.
                let tls = proxy.inbound_tls.0.borrow().clone();
                match &tls {
                    None => {
                        let who = Arc::new(Peer::default());
                        let service = service_fn(move |req| proxy.clone().handle(req, who.clone()));
                        let conn = graceful.watch(builder().serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(ended(conn).instrument(span));
                    }
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let watcher = graceful.watcher();
                        tokio::spawn(async move {
                            let stream = match acceptor.accept(stream).await {
                                Ok(s) => s,
                                Err(e) => {
                                    tracing::info!(error = %e, "TLS handshake with a caller failed");
                                    return;
                                }
                            };
                            let who = Arc::new(Peer::from_certs(stream.get_ref().1.peer_certificates()));
                            let service = service_fn(move |req| proxy.clone().handle(req, who.clone()));
                            ended(watcher.watch(builder().serve_connection(TokioIo::new(stream), service))).await;
                        }.instrument(span));
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(grace = ?grace, "shutting down: no new connections, draining in-flight calls");
    tokio::select! {
        () = graceful.shutdown() => Drained::Clean,
        () = tokio::time::sleep(grace) => Drained::GraceExpired,
    }
}
