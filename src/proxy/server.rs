//! Accepting connections: h2c (HTTP/2 with prior knowledge), a span per
//! connection, and drain-based graceful shutdown with a grace period.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::mpsc,
};
use tracing::Instrument;

use super::{Proxy, conn};
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

/// HTTP/2 settings for a gateway: bounded streams per connection, header
/// lists as large as a Temporal frontend takes (hyper's 16 KiB default
/// refused them, and closed the connection at 64 KiB).
fn builder(config: &super::ProxyConfig) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .max_concurrent_streams(config.max_concurrent_streams)
        .max_header_list_size(config.max_header_list_bytes)
        .initial_stream_window_size(crate::upstream::STREAM_WINDOW)
        .initial_connection_window_size(crate::upstream::CONNECTION_WINDOW)
        .max_frame_size(crate::upstream::MAX_FRAME);
    b
}

/// Resolves once `stop` turns true (or its sender is gone).
pub(crate) async fn stopped(mut stop: tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Where a serving loop gets its connections.
pub(crate) enum Source {
    /// Accepted here.
    Listener(TcpListener),
    /// Accepted by another thread and handed over; `load` counts this
    /// thread's open connections (the acceptor picks the least loaded).
    Handed {
        streams: mpsc::UnboundedReceiver<std::net::TcpStream>,
        load: Arc<AtomicUsize>,
    },
}

impl crate::serve::Incoming for Source {
    async fn next(&mut self) -> crate::serve::Next {
        use crate::serve::Next;
        match self {
            Source::Listener(l) => l.next().await,
            Source::Handed { streams, .. } => {
                // `None` from the channel: the acceptor has stopped, and
                // nothing more comes until shutdown.
                let Some(s) = streams.recv().await else {
                    return std::future::pending().await;
                };
                let handed = TcpStream::from_std(s).and_then(|s| Ok((s.peer_addr()?, s)));
                match handed {
                    Ok((peer, s)) => Next::Conn(s, peer),
                    Err(e) => {
                        // Handed over, then gone before it could be served.
                        tracing::debug!(error = %e, "connection lost before serving");
                        Next::Lost
                    }
                }
            }
        }
    }
}

impl Source {
    /// This thread's open-connection count, when connections are handed.
    fn load(&self) -> Option<Arc<AtomicUsize>> {
        match self {
            Source::Listener(_) => None,
            Source::Handed { load, .. } => Some(load.clone()),
        }
    }
}

/// One open connection counted in a thread's load, until dropped.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
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
    serve_from(Source::Listener(listener), proxy, shutdown, grace).await
}

/// [`serve`], for connections from `source`.
pub(crate) async fn serve_from(
    mut source: Source,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> Drained {
    let (drain, draining) = tokio::sync::watch::channel(false);
    let live = Arc::new(conn::Live::default());
    let load = source.load();
    crate::serve::accept_loop("grpc", &mut source, shutdown, |stream, peer| {
        let held = load.clone().map(Held);
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let span = tracing::info_span!("conn", %peer);
        let limits = proxy.limits;
        let draining = draining.clone();
        let live = live.enter();
        // The acceptor current now: a reload affects new connections.
        let tls = proxy.inbound_tls.0.borrow().clone();
        tokio::spawn(
            async move {
                let stream =
                    crate::write_batch::WriteBatch::new(crate::read_ahead::ReadAhead::new(stream));
                match tls {
                    None => serve_one(stream, proxy, Peer::default(), &limits, draining).await,
                    Some(acceptor) => {
                        let accepted =
                            tokio::time::timeout(limits.tls_handshake, acceptor.accept(stream))
                                .await;
                        let stream = match accepted {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::info!(error = %e, "TLS handshake with a caller failed");
                                return;
                            }
                            Err(_) => {
                                tracing::info!(timeout = ?limits.tls_handshake, "TLS handshake with a caller timed out (proxy.tls_handshake_timeout)");
                                return;
                            }
                        };
                        let who = Peer::from_certs(stream.get_ref().1.peer_certificates());
                        serve_one(stream, proxy, who, &limits, draining).await;
                    }
                }
                drop(held);
                drop(live);
            }
            .instrument(span),
        );
        std::ops::ControlFlow::Continue(())
    })
    .await;
    drop(source);
    tracing::info!(grace = ?grace, "shutting down: no new connections, draining in-flight calls");
    let _ = drain.send(true);
    tokio::select! {
        () = live.none_left() => Drained::Clean,
        () = tokio::time::sleep(grace) => Drained::GraceExpired,
    }
}

/// Serves one accepted connection (plaintext or TLS) for its lifetime.
async fn serve_one<I>(
    io: I,
    proxy: Arc<Proxy>,
    who: Peer,
    limits: &conn::Limits,
    draining: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let h2 = builder(&proxy.config);
    let activity = conn::Activity::new();
    let service = calls(proxy, Arc::new(who), activity.clone());
    let c = h2.serve_connection(TokioIo::new(io), service);
    conn::drive(c, |c| c.graceful_shutdown(), &activity, limits, draining).await;
}

/// The service of one connection: each call through [`Proxy::handle`],
/// counted in the connection's activity while it runs.
fn calls(
    proxy: Arc<Proxy>,
    who: Arc<Peer>,
    activity: Arc<conn::Activity>,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<crate::upstream::Body>,
    Error = std::convert::Infallible,
    Future = impl Future<
        Output = Result<http::Response<crate::upstream::Body>, std::convert::Infallible>,
    > + Send,
> + Clone {
    service_fn(move |req| {
        let call = activity.begin();
        let handled = proxy.clone().handle(req, who.clone());
        async move {
            let resp = handled.await;
            drop(call);
            resp
        }
    })
}
