//! Reading a busy connection in large gulps.
//!
//! h2 reads its connection into a buffer with about 8 KiB free, so a 64 KiB
//! request already waiting in the socket took eight reads (perf: recvfrom
//! was a fifth of the gateway's CPU on 64 KiB activity results). When a
//! read fills all the space it was given, more is likely waiting: the next
//! reads go through a 64 KiB buffer of this connection's, one syscall for
//! what h2 takes in several, copied out as h2 asks. After several reads
//! in a row that find little (a quiet connection, small calls) the buffer
//! goes again, so connections that only carry small calls and held long
//! polls keep none; one that turns idle right after a burst keeps its
//! 64 KiB until it reads again.

use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Size of the buffer a busy connection reads into.
const AHEAD: usize = 64 << 10;
/// A read-ahead returning less than this is a quiet one.
const QUIET: usize = 16 << 10;
/// Quiet read-aheads in a row after which the buffer goes (allocating
/// and zero-filling it anew for every burst cost more than it saved).
const QUIET_READS: u8 = 8;

/// A transport read in large gulps while it is busy.
pub(crate) struct ReadAhead<T> {
    io: T,
    /// Empty while the connection is quiet.
    buf: Box<[u8]>,
    /// The unread part of `buf`.
    start: usize,
    end: usize,
    /// Quiet read-aheads in a row: at [`QUIET_READS`], `buf` goes once
    /// drained.
    quiet: u8,
}

impl<T> ReadAhead<T> {
    pub(crate) fn new(io: T) -> Self {
        ReadAhead {
            io,
            buf: Box::default(),
            start: 0,
            end: 0,
            quiet: 0,
        }
    }

    /// Copies what is buffered into `dst`, as much as fits.
    fn copy_out(&mut self, dst: &mut ReadBuf<'_>) {
        let n = dst.remaining().min(self.end - self.start);
        dst.put_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.quiet >= QUIET_READS {
                self.buf = Box::default();
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.start < this.end {
            this.copy_out(dst);
            return Poll::Ready(Ok(()));
        }
        let space = dst.remaining();
        if this.buf.is_empty() || space >= AHEAD {
            // Straight into the caller's buffer.
            let before = dst.filled().len();
            ready!(Pin::new(&mut this.io).poll_read(cx, dst))?;
            let n = dst.filled().len() - before;
            if this.buf.is_empty() && n == space && space > 0 && space < AHEAD {
                this.buf = vec![0; AHEAD].into_boxed_slice();
                this.quiet = 0;
            }
            return Poll::Ready(Ok(()));
        }
        let mut ahead = ReadBuf::new(&mut this.buf);
        ready!(Pin::new(&mut this.io).poll_read(cx, &mut ahead))?;
        let n = ahead.filled().len();
        this.end = n;
        this.quiet = if n < QUIET {
            this.quiet.saturating_add(1)
        } else {
            0
        };
        if n == 0 {
            // End of stream: the caller sees it as a read of nothing.
            this.buf = Box::default();
            return Poll::Ready(Ok(()));
        }
        this.copy_out(dst);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadAhead<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// Reads `io` to its end in reads of at most `each` bytes.
    async fn read_all(io: &mut ReadAhead<tokio::io::DuplexStream>, each: usize) -> Vec<u8> {
        let mut got = Vec::new();
        let mut chunk = vec![0u8; each];
        loop {
            let n = io.read(&mut chunk).await.expect("reads");
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn every_byte_arrives_in_order_through_the_buffer() {
        let (near, mut far) = tokio::io::duplex(256 << 10);
        let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        far.write_all(&sent).await.expect("writes");
        drop(far);
        let mut io = ReadAhead::new(near);
        assert_eq!(read_all(&mut io, 8 << 10).await, sent);
        // The stream ended: no buffer is kept.
        assert!(io.buf.is_empty());
    }

    #[tokio::test]
    async fn a_busy_connection_reads_ahead_and_a_quiet_one_lets_the_buffer_go() {
        let (near, mut far) = tokio::io::duplex(256 << 10);
        let mut io = ReadAhead::new(near);
        let mut small = [0u8; 8 << 10];
        far.write_all(&[1u8; 100 << 10]).await.expect("writes");
        // The first read fills the caller's 8 KiB: the connection is busy.
        assert_eq!(io.read(&mut small).await.expect("reads"), 8 << 10);
        assert_eq!(io.buf.len(), AHEAD);
        // The next read takes 64 KiB at once and hands out 8.
        assert_eq!(io.read(&mut small).await.expect("reads"), 8 << 10);
        assert_eq!(io.end - io.start, 56 << 10);
        let rest = {
            let mut rest = vec![0u8; 84 << 10];
            let mut got = 0;
            while got < rest.len() {
                got += io.read(&mut rest[got..]).await.expect("reads");
            }
            rest
        };
        assert!(rest.iter().all(|b| *b == 1));
        // Short read-aheads (100 bytes): the buffer stays for a few, then
        // goes once drained.
        for _ in 1..QUIET_READS {
            far.write_all(&[2u8; 100]).await.expect("writes");
            assert_eq!(io.read(&mut small).await.expect("reads"), 100);
            assert_eq!(io.buf.len(), AHEAD);
        }
        far.write_all(&[2u8; 100]).await.expect("writes");
        assert_eq!(io.read(&mut small[..50]).await.expect("reads"), 50);
        assert_eq!(io.buf.len(), AHEAD);
        assert_eq!(io.read(&mut small).await.expect("reads"), 50);
        assert!(io.buf.is_empty());
    }
}
