//! One client connection's lifetime: a first request within a bound, an
//! idle bound once no call is open, a maximum age (GOAWAY, so clients
//! rebalance across replicas) with a grace before a hard close, and the
//! process's drain. None of these cuts a call in flight short of the hard
//! limit: a graceful shutdown lets open streams finish.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{sync::watch, time::Instant};

/// The bounds of one connection's life (`[proxy]` settings).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A TLS handshake must finish within this.
    pub tls_handshake: Duration,
    /// The first call must start within this after the connection opens.
    pub first_request: Duration,
    /// With no call open for this long, the connection is closed.
    pub idle: Duration,
    /// After this, GOAWAY: no new calls, open ones finish.
    pub max_age: Duration,
    /// After `max_age` plus this, the connection is closed regardless.
    pub max_age_grace: Duration,
}

/// What a connection's calls are doing, for its idle bound.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    open: AtomicUsize,
    seen: AtomicBool,
    /// Milliseconds after `born` of the last call's start or end.
    last_ms: AtomicU64,
}

/// One open call on a connection; its end is activity too.
pub struct Call(Arc<Activity>);

impl Drop for Call {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Relaxed);
    }
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            open: AtomicUsize::new(0),
            seen: AtomicBool::new(false),
            last_ms: AtomicU64::new(0),
        })
    }

    /// A call starts; it counts until the returned guard drops. (Its start
    /// needs no time stamp: while a call is open the connection is not
    /// idle, and its end stamps the time.)
    pub fn begin(self: &Arc<Self>) -> Call {
        self.open.fetch_add(1, Relaxed);
        self.seen.store(true, Relaxed);
        Call(self.clone())
    }

    fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Relaxed);
    }

    /// When the connection may be closed for idleness, if no call opens
    /// or ends before then; `None` while calls are open.
    fn idle_deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.open.load(Relaxed) > 0 {
            return None;
        }
        let bound = if self.seen.load(Relaxed) {
            limits.idle
        } else {
            limits.first_request
        };
        Some(self.born + Duration::from_millis(self.last_ms.load(Relaxed)) + bound)
    }
}

/// Why a connection was asked to go away (for the debug log).
fn closing(why: &'static str) {
    tracing::debug!(why, "closing the connection gracefully (GOAWAY)");
}

/// Drives `conn` to its end within `limits`; `shutdown` starts its graceful
/// shutdown (hyper's `graceful_shutdown`), and `drain` turning true does the
/// same for the whole process.
pub async fn drive<C, E>(
    conn: C,
    shutdown: fn(Pin<&mut C>),
    activity: &Activity,
    limits: &Limits,
    mut drain: watch::Receiver<bool>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    tokio::pin!(conn);
    let born = activity.born;
    let soft = tokio::time::sleep_until(born + limits.max_age);
    let hard = tokio::time::sleep_until(born + limits.max_age + limits.max_age_grace);
    let idle = tokio::time::sleep_until(born + limits.first_request);
    tokio::pin!(soft, hard, idle);
    let mut going = false;
    loop {
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %crate::errors::error_chain(&e), "connection ended");
                }
                return;
            }
            () = &mut hard => {
                tracing::debug!("closing the connection: its maximum age and grace have passed");
                return;
            }
            () = &mut soft, if !going => {
                closing("maximum connection age");
                shutdown(conn.as_mut());
                going = true;
            }
            changed = drain.wait_for(|d| *d), if !going => {
                let _ = changed;
                shutdown(conn.as_mut());
                going = true;
            }
            () = &mut idle, if !going => match activity.idle_deadline(limits) {
                Some(at) if at <= Instant::now() => {
                    if !activity.seen.load(Relaxed) {
                        // Never a call (a slowloris, perhaps before the
                        // HTTP/2 preface): nothing to let finish.
                        tracing::debug!("closing the connection: no first call in time");
                        return;
                    }
                    closing("idle");
                    shutdown(conn.as_mut());
                    going = true;
                }
                // Still busy, or active since: look again later.
                Some(at) => idle.as_mut().reset(at),
                None => idle.as_mut().reset(Instant::now() + limits.idle),
            },
        }
    }
}

/// Counts the connections being served, so a drain can wait for them.
#[derive(Debug, Default)]
pub struct Live {
    count: AtomicUsize,
    zero: tokio::sync::Notify,
}

/// One live connection, until dropped.
pub struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Relaxed) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

impl Live {
    pub fn enter(self: &Arc<Self>) -> LiveGuard {
        self.count.fetch_add(1, Relaxed);
        LiveGuard(self.clone())
    }

    /// Resolves once no connection is left.
    pub async fn none_left(&self) {
        loop {
            let notified = self.zero.notified();
            if self.count.load(Relaxed) == 0 {
                return;
            }
            notified.await;
        }
    }
}
