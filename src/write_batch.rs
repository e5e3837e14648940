//! Writing a busy connection's answers together.
//!
//! h2 writes each DATA frame of 256 bytes or more by chaining its payload
//! after the frame header, holds one such frame at a time and flushes
//! before it takes the next: sixteen answers ready at once left in sixteen
//! `writev`s (perf: about 1.2 per 50-event poll). Here writes are copied
//! into a buffer of the connection's, and a flush after new writes is not
//! done at once: it returns `Pending` with the task woken, so the
//! connection yields its turn on the thread and flushes again when next
//! polled, and the answers other calls finish in the meantime go out in
//! the same write. A flush with nothing new since the last one writes, as
//! does one after [`MAX_YIELDS`] put off in a row.
//!
//! The buffer is bounded: a write that would take it past [`LIMIT`] first
//! sends what it holds, and a buffer grown past [`KEEP`] goes once sent,
//! so idle connections and held long polls keep at most that.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most bytes held before they are sent whatever h2 says: the answers
/// held here have left the memory budget (their buffers are freed once
/// copied), so this bounds what a connection adds outside it, as the
/// read-ahead buffer bounds the other direction. A loopback write of
/// more than 64 KiB is split into packets of that size anyway.
const LIMIT: usize = 64 << 10;
/// Largest buffer kept once it is sent (a batch of small answers); a
/// larger one is allocated per batch.
const KEEP: usize = 4 << 10;
/// Most flushes put off in a row: a stream of answers that never pauses
/// still leaves every few turns.
const MAX_YIELDS: u8 = 4;

/// A transport whose writes are batched until the connection's next turn.
pub(crate) struct WriteBatch<T> {
    io: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already sent.
    sent: usize,
    /// Writes came in since the last flush was put off.
    fresh: bool,
    /// Flushes put off in a row.
    yields: u8,
}

impl<T> WriteBatch<T> {
    pub(crate) fn new(io: T) -> Self {
        WriteBatch {
            io,
            buf: Vec::new(),
            sent: 0,
            fresh: false,
            yields: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> WriteBatch<T> {
    /// Sends what is held.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.sent = 0;
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: sends what is held when they would
    /// take it past [`LIMIT`].
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<std::io::Result<()>> {
        if !self.buf.is_empty() && self.buf.len() + len > LIMIT {
            ready!(self.poll_send(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteBatch<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteBatch<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[std::io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        ready!(this.poll_room(cx, len))?;
        if this.buf.is_empty() && len >= LIMIT {
            return Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        }
        this.buf.reserve(len);
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        this.fresh = true;
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.fresh && this.yields < MAX_YIELDS && this.buf.len() < LIMIT {
            // Not done yet: the connection yields its turn (this wake puts
            // it back in line) and flushes again when next polled, by when
            // the calls that were ready have answered into this write.
            this.fresh = false;
            this.yields += 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.fresh = false;
        this.yields = 0;
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    type Io = WriteBatch<tokio::io::DuplexStream>;

    fn flush(io: &mut Io) -> Poll<std::io::Result<()>> {
        Pin::new(io).poll_flush(&mut Context::from_waker(Waker::noop()))
    }

    /// What the far end has received so far.
    async fn received(far: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut got = vec![0u8; 1 << 20];
        let n = tokio::time::timeout(std::time::Duration::from_millis(50), far.read(&mut got))
            .await
            .map_or(0, |r| r.expect("reads"));
        got.truncate(n);
        got
    }

    #[tokio::test]
    async fn writes_wait_one_turn_then_leave_together() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut io = WriteBatch::new(near);
        io.write_all(b"first ").await.expect("writes");
        // New writes: the flush yields the turn instead of writing.
        assert!(flush(&mut io).is_pending());
        assert!(received(&mut far).await.is_empty());
        io.write_all(b"second ").await.expect("writes");
        assert!(flush(&mut io).is_pending());
        // Nothing new since the last flush: everything goes, in order.
        assert!(matches!(flush(&mut io), Poll::Ready(Ok(()))));
        assert_eq!(received(&mut far).await, b"first second ");
        // Nothing held: a flush is done at once.
        assert!(matches!(flush(&mut io), Poll::Ready(Ok(()))));
    }

    #[tokio::test]
    async fn a_stream_of_answers_that_never_pauses_still_leaves() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut io = WriteBatch::new(near);
        for _ in 0..MAX_YIELDS {
            io.write_all(b"x").await.expect("writes");
            assert!(flush(&mut io).is_pending());
        }
        io.write_all(b"x").await.expect("writes");
        assert!(matches!(flush(&mut io), Poll::Ready(Ok(()))));
        assert_eq!(received(&mut far).await.len(), usize::from(MAX_YIELDS) + 1);
    }

    #[tokio::test]
    async fn what_would_pass_the_limit_sends_what_is_held_first() {
        let (near, mut far) = tokio::io::duplex(4 << 20);
        let mut io = WriteBatch::new(near);
        let part = vec![7u8; LIMIT / 2 + 1];
        io.write_all(&part).await.expect("writes");
        assert_eq!(io.buf.len(), part.len());
        io.write_all(&part).await.expect("writes");
        // The first part went out to make room for the second.
        assert_eq!(io.buf.len(), part.len());
        assert_eq!(received(&mut far).await.len(), part.len());
        // A write of the limit or more with nothing held goes straight out.
        io.flush().await.expect("flushes");
        io.write_all(&vec![8u8; LIMIT]).await.expect("writes");
        assert!(io.buf.is_empty());
        // The large buffer was not kept.
        assert_eq!(io.buf.capacity(), 0);
    }

    #[tokio::test]
    async fn shutdown_sends_what_is_held() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut io = WriteBatch::new(near);
        io.write_all(b"goodbye").await.expect("writes");
        io.shutdown().await.expect("shuts down");
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.expect("reads");
        assert_eq!(got, b"goodbye");
    }

    #[tokio::test]
    async fn flush_awaited_completes_and_vectored_writes_keep_their_order() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut io = WriteBatch::new(near);
        let parts = [
            std::io::IoSlice::new(b"head "),
            std::io::IoSlice::new(b"body"),
        ];
        let n = io.write_vectored(&parts).await.expect("writes");
        assert_eq!(n, 9);
        // Awaited, a flush that yields is polled again and completes.
        io.flush().await.expect("flushes");
        assert_eq!(received(&mut far).await, b"head body");
    }
}
