//! The memory budget: every byte sealgate buffers for a call (the request
//! as read, inflated and rewritten; the response likewise, until the
//! caller has read it) is taken from one process-wide budget. When it is
//! spent, new work is refused with a retryable RESOURCE_EXHAUSTED instead
//! of growing without bound; bytes return as each call's buffers drop.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// The process-wide budget of buffered bytes: a counter taken from and
/// given back to with atomics (no lock on the call path); callers that may
/// wait are woken when bytes come back.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    used: AtomicUsize,
    total: usize,
    /// Holders waiting for bytes (rare: answers when the budget is spent).
    waiters: AtomicUsize,
    freed: Notify,
}

impl Inner {
    fn try_take(&self, n: usize) -> bool {
        let mut cur = self.used.load(Relaxed);
        loop {
            let Some(next) = cur.checked_add(n).filter(|&v| v <= self.total) else {
                return false;
            };
            match self.used.compare_exchange_weak(cur, next, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    fn give_back(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.used.fetch_sub(n, Relaxed);
        if self.waiters.load(Relaxed) > 0 {
            self.freed.notify_waiters();
        }
    }
}

/// The budget is spent: the call is refused, and may be retried.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error(
    "sealgate's buffer budget of {total} bytes is in use by other calls (needed {wanted} more); this is temporary, retry the call (proxy.memory_budget_bytes sets the budget)"
)]
pub struct Exhausted {
    pub total: usize,
    pub wanted: usize,
}

impl Budget {
    pub fn new(total: usize) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                used: AtomicUsize::new(0),
                total,
                waiters: AtomicUsize::new(0),
                freed: Notify::new(),
            }),
        }
    }

    /// Bytes in use now.
    pub fn in_use(&self) -> usize {
        self.inner.used.load(Relaxed)
    }

    pub fn total(&self) -> usize {
        self.inner.total
    }

    /// An empty holding for one call.
    pub fn hold(&self) -> Held {
        Held {
            budget: self.clone(),
            bytes: 0,
            wait: std::time::Duration::ZERO,
        }
    }
}

/// Bytes one call holds from the budget; returned when dropped.
#[derive(Debug)]
pub struct Held {
    budget: Budget,
    bytes: usize,
    /// How long [`Held::reserve`] may wait for bytes to come back.
    wait: std::time::Duration,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.inner.give_back(self.bytes);
    }
}

impl Held {
    /// Takes `n` more bytes, or fails at once when the budget lacks them.
    pub fn take(&mut self, n: usize) -> Result<(), Exhausted> {
        if n == 0 {
            return Ok(());
        }
        if self.budget.inner.try_take(n) {
            self.bytes += n;
            Ok(())
        } else {
            Err(Exhausted {
                total: self.budget.inner.total,
                wanted: n,
            })
        }
    }

    /// From now on, [`Held::reserve`] waits up to `wait` for bytes other
    /// calls give back (for an answer the upstream already acted on, which
    /// would be lost if refused) instead of failing at once.
    pub fn wait_up_to(&mut self, wait: std::time::Duration) {
        self.wait = wait;
    }

    /// Takes `n` more bytes: at once, or within the wait set by
    /// [`Held::wait_up_to`].
    pub async fn reserve(&mut self, n: usize) -> Result<(), Exhausted> {
        let first = self.take(n);
        if first.is_ok() || self.wait.is_zero() {
            return first;
        }
        let inner = self.budget.inner.clone();
        let deadline = tokio::time::Instant::now() + self.wait;
        inner.waiters.fetch_add(1, Relaxed);
        let result = loop {
            let freed = inner.freed.notified();
            if self.take(n).is_ok() {
                break Ok(());
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                break self.take(n);
            }
        };
        inner.waiters.fetch_sub(1, Relaxed);
        result
    }

    /// Holds exactly `n` bytes: takes the difference (as [`Held::reserve`]
    /// does) or gives the surplus back, in one step.
    pub async fn set_to(&mut self, n: usize) -> Result<(), Exhausted> {
        if n > self.bytes {
            self.reserve(n - self.bytes).await
        } else {
            self.shrink_to(n);
            Ok(())
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps at most `n` bytes, giving the rest back now.
    pub fn shrink_to(&mut self, n: usize) {
        if n < self.bytes {
            self.budget.inner.give_back(self.bytes - n);
            self.bytes = n;
        }
    }

    /// Gives everything back now.
    pub fn release(&mut self) {
        self.shrink_to(0);
    }
}

/// A buffered response body: one data frame, then optional trailers, with
/// the budget bytes it occupies held until it has been sent (or the call
/// is dropped). With neither data nor trailers it is empty from the start,
/// so the response goes out trailers-only, as one HEADERS frame with
/// END_STREAM.
#[derive(Debug)]
pub struct Buffered {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
    held: Option<Held>,
}

impl Buffered {
    pub fn new(data: Bytes, trailers: Option<HeaderMap>, held: Held) -> Buffered {
        Buffered {
            data: (!data.is_empty()).then_some(data),
            trailers,
            held: Some(held),
        }
    }

    /// A body sealgate made itself, outside the memory budget (a few bytes).
    pub fn unbudgeted(data: Bytes, trailers: HeaderMap) -> Buffered {
        Buffered {
            data: (!data.is_empty()).then_some(data),
            trailers: Some(trailers),
            held: None,
        }
    }

    /// A body with nothing in it (the headers carry the status).
    pub fn empty() -> Buffered {
        Buffered {
            data: None,
            trailers: None,
            held: None,
        }
    }
}

impl Body for Buffered {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(d) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        let frame = this.trailers.take().map(|t| Ok(Frame::trailers(t)));
        // Sent (as far as sealgate can tell): the bytes go back.
        this.held = None;
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    /// Runs a future that never waits (no timer, no wakeup needed).
    fn futures_lite_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn takes_until_spent_and_returns_on_drop() {
        let b = Budget::new(100);
        let mut a = b.hold();
        a.take(60).unwrap();
        let mut c = b.hold();
        assert_eq!(
            c.take(50),
            Err(Exhausted {
                total: 100,
                wanted: 50
            })
        );
        c.take(40).unwrap();
        assert_eq!(b.in_use(), 100);
        drop(a);
        assert_eq!(b.in_use(), 40);
        c.shrink_to(15);
        assert_eq!((b.in_use(), c.bytes()), (15, 15));
        futures_lite_block(c.set_to(25)).unwrap();
        assert_eq!((b.in_use(), c.bytes()), (25, 25));
        futures_lite_block(c.set_to(5)).unwrap();
        assert_eq!((b.in_use(), c.bytes()), (5, 5));
        c.release();
        assert_eq!(b.in_use(), 0);
    }

    #[tokio::test]
    async fn reserve_waits_for_bytes_to_come_back_when_asked() {
        let b = Budget::new(100);
        let mut first = b.hold();
        first.take(80).unwrap();
        let mut second = b.hold();
        assert!(
            second.reserve(50).await.is_err(),
            "no wait: refused at once"
        );
        second.wait_up_to(std::time::Duration::from_secs(5));
        let freed = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            drop(first);
        });
        second.reserve(50).await.unwrap();
        freed.await.unwrap();
        assert_eq!(b.in_use(), 50);
    }

    #[tokio::test]
    async fn a_buffered_body_returns_its_bytes_once_sent() {
        let b = Budget::new(1000);
        let mut held = b.hold();
        held.take(10).unwrap();
        let mut t = HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        let body = Buffered::new(Bytes::from_static(b"0123456789"), Some(t), held);
        assert!(!body.is_end_stream());
        assert_eq!(b.in_use(), 10);
        let c = body.collect().await.unwrap();
        assert_eq!(b.in_use(), 0);
        assert_eq!(c.trailers().unwrap()["grpc-status"], "0");
    }

    #[test]
    fn an_empty_body_is_trailers_only() {
        assert!(Buffered::empty().is_end_stream());
        let b = Budget::new(10);
        assert!(Buffered::new(Bytes::new(), None, b.hold()).is_end_stream());
    }
}
