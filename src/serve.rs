//! The one accept loop every listener uses (the gRPC listener, its
//! per-core acceptor and serving threads, the Codec Server, the admin
//! listener): accept until shutdown, back off when accepting fails, and
//! hand each connection to the listener's own code. Draining what is open
//! after shutdown stays with each protocol (HTTP/2 GOAWAY, HTTP/1.1
//! graceful close).
//!
//! Back-off matters when file descriptors run out: `accept` then fails at
//! once, every time, and a loop that retries at once spins a core while
//! the process can do nothing else.

use std::{future::Future, io, net::SocketAddr, ops::ControlFlow, time::Duration};

use tokio::net::{TcpListener, TcpStream};

/// What one wait for a connection gave.
pub(crate) enum Next {
    /// A connection and its peer.
    Conn(TcpStream, SocketAddr),
    /// Accepting failed (out of file descriptors, memory…): back off.
    Failed(io::Error),
    /// A connection was lost before it could be served (logged): go on.
    Lost,
}

/// Where a listener's connections come from.
pub(crate) trait Incoming {
    fn next(&mut self) -> impl Future<Output = Next> + Send;
}

impl Incoming for TcpListener {
    async fn next(&mut self) -> Next {
        match self.accept().await {
            Ok((stream, peer)) => Next::Conn(stream, peer),
            Err(e) => Next::Failed(e),
        }
    }
}

/// Accepts from `incoming` until `shutdown`, passing each connection to
/// `handle` (which spawns what serves it); `ControlFlow::Break` from
/// `handle` ends the loop too. `name` labels the logs.
pub(crate) async fn accept_loop<I: Incoming>(
    name: &'static str,
    incoming: &mut I,
    shutdown: impl Future<Output = ()>,
    mut handle: impl FnMut(TcpStream, SocketAddr) -> ControlFlow<()>,
) {
    tokio::pin!(shutdown);
    let mut backoff = Backoff::default();
    loop {
        let next = tokio::select! {
            next = incoming.next() => next,
            () = &mut shutdown => break,
        };
        match next {
            Next::Conn(stream, peer) => {
                backoff.reset(name);
                if handle(stream, peer).is_break() {
                    break;
                }
            }
            Next::Failed(e) => {
                let wait = backoff.failed(name, &e);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = &mut shutdown => break,
                }
            }
            Next::Lost => {}
        }
    }
}

/// Exponential back-off for failed accepts: 5 ms doubling to 1 s, logged
/// once per run of failures rather than once per failure.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

const FIRST_WAIT: Duration = Duration::from_millis(5);
const MAX_WAIT: Duration = Duration::from_secs(1);

impl Backoff {
    /// Records a failure; returns how long to wait before the next accept.
    pub(crate) fn failed(&mut self, name: &str, e: &io::Error) -> Duration {
        self.failures = self.failures.saturating_add(1);
        if self.failures == 1 {
            tracing::warn!(
                listener = name,
                error = %e,
                "accept failed; backing off until it works again (out of file descriptors? raise the limit, e.g. LimitNOFILE)"
            );
        }
        FIRST_WAIT
            .saturating_mul(1 << (self.failures - 1).min(8))
            .min(MAX_WAIT)
    }

    /// An accept worked: the next failure starts the back-off afresh.
    pub(crate) fn reset(&mut self, name: &str) {
        if self.failures > 0 {
            tracing::info!(
                listener = name,
                failures = self.failures,
                "accepting connections again"
            );
            self.failures = 0;
        }
    }
}

#[cfg(test)]
mod tests;
