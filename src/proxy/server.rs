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

/// How serving ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Every in-flight call finished within the grace period.
    Clean,
    /// The grace period ran out with calls still open.
    GraceExpired,
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
                let service = service_fn(move |req| proxy.clone().handle(req));
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(10_000)
                    .adaptive_window(true)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                let span = tracing::info_span!("conn", %peer);
                tokio::spawn(
                    async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %crate::upstream::error_chain(&e), "connection ended");
                        }
                    }
                    .instrument(span),
                );
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
