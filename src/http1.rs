//! The small HTTP/1.1 listeners (codec server, admin): accept (the shared
//! loop of `crate::serve`), optionally TLS, serve, and drain briefly on
//! shutdown.

use std::{convert::Infallible, future::Future, time::Duration};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

/// Serves `handler` on `listener` (TLS when `tls` is given; each new
/// connection takes the acceptor current then, so certificates reload)
/// until `shutdown`, then lets open requests finish for up to `drain`.
pub(crate) async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    tls: Option<watch::Receiver<TlsAcceptor>>,
    handler: H,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut listener = listener;
    crate::serve::accept_loop(name, &mut listener, shutdown, |stream, peer| {
        let service = service_fn(handler.clone());
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.timer(TokioTimer::new());
        let watcher = graceful.watcher();
        let tls = tls.as_ref().map(|t| t.borrow().clone());
        tokio::spawn(async move {
            match tls {
                None => {
                    let _ = watcher
                        .watch(builder.serve_connection(TokioIo::new(stream), service))
                        .await;
                }
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let _ = watcher
                            .watch(builder.serve_connection(TokioIo::new(tls), service))
                            .await;
                    }
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, listener = name, "TLS handshake failed")
                    }
                },
            }
        });
        std::ops::ControlFlow::Continue(())
    })
    .await;
    drop(listener);
    let _ = tokio::time::timeout(drain, graceful.shutdown()).await;
}
