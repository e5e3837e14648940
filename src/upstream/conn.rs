//! One HTTP/2 connection to the upstream, spoken with the `h2` crate
//! directly (docs/design.md#upstream-calls-on-h2).
//!
//! hyper's HTTP/2 client hands every request to its connection task over a
//! channel, spawns a task per call to wait for the answer (and often one to
//! send the body), and answers through a oneshot. A unary call's body is
//! already whole in memory, so here the call's own task opens the stream,
//! queues the body and waits for the answer: one task per call fewer, and
//! no per-call channel. The connection task remains (it reads and writes
//! the socket) and also sends the keepalive PINGs hyper used to send.

use std::{
    future::poll_fn,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
    task::{Context, Poll, ready},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Body, FailureKind};
use crate::errors::error_chain;

/// What every handle on a connection shares with its driving task.
#[derive(Default)]
pub(super) struct State {
    /// The connection task has ended: no new stream may use it.
    closed: AtomicBool,
    /// Why it ended, when it failed (a TLS alert, a keepalive timeout):
    /// added to the errors of the calls it took down.
    ended: OnceLock<(String, FailureKind)>,
}

impl State {
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// No new stream goes on this connection (its peer is going away or
    /// it failed); streams already open finish.
    pub(super) fn retire(&self) {
        self.closed.store(true, Relaxed);
    }

    pub(super) fn ended(&self) -> Option<&(String, FailureKind)> {
        self.ended.get()
    }
}

/// One HTTP/2 connection: the handle that opens streams on it, and its
/// shared state.
pub(super) struct Conn {
    pub(super) send: h2::client::SendRequest<Bytes>,
    pub(super) state: Arc<State>,
}

/// HTTP/2 settings and keepalive for a connection.
pub(super) struct Settings {
    pub(super) keepalive_interval: Duration,
    pub(super) keepalive_timeout: Duration,
    pub(super) tls: bool,
    /// For the log line when the connection ends.
    pub(super) name: Arc<str>,
}

/// The upstream transport, shown to h2 as one without vectored writes.
///
/// h2 writes a DATA frame of 256 bytes or more on a vectored transport by
/// chaining its payload after the frame header, and it holds one chained
/// frame at a time: each such frame is written (a syscall, and over TLS a
/// record) before the next frame can be queued. A request of a few hundred
/// bytes (a 1 KiB start, snappy-compressed and encrypted) then costs a
/// write of its own, however many calls go out together. On a transport
/// without vectored writes h2 copies frames under 1 KiB into its 16 KiB
/// write buffer, so the requests of a batch leave in one write.
///
/// A larger frame h2 then writes in two parts: its buffer (the frames
/// before it, the frame header and the payload's first bytes), then the
/// rest of the payload. A short part is held back here and written with
/// the part after it in one vectored write, or at the flush h2 makes
/// after every batch.
pub(super) struct Unvectored<T> {
    io: T,
    held: Vec<u8>,
}

/// Longest part held back to go out with the next one.
const HOLD: usize = 4 << 10;

impl<T: AsyncWrite + Unpin> Unvectored<T> {
    pub(super) fn new(io: T) -> Self {
        Unvectored {
            io,
            held: Vec::with_capacity(HOLD),
        }
    }

    /// Writes what is held, with `next` after it in the same write; how
    /// many bytes of `next` went too.
    fn poll_release(&mut self, cx: &mut Context<'_>, next: &[u8]) -> Poll<std::io::Result<usize>> {
        while !self.held.is_empty() {
            let parts = [
                std::io::IoSlice::new(&self.held),
                std::io::IoSlice::new(next),
            ];
            let n = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &parts))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            if n >= self.held.len() {
                let of_next = n - self.held.len();
                self.held.clear();
                return Poll::Ready(Ok(of_next));
            }
            self.held.drain(..n);
        }
        Poll::Ready(Ok(0))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Unvectored<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Unvectored<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let went = ready!(this.poll_release(cx, buf))?;
        if went > 0 {
            return Poll::Ready(Ok(went));
        }
        if buf.len() <= HOLD {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx, &[]))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx, &[]))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

/// Completes the HTTP/2 handshake on `io` and spawns the task that drives
/// the connection and pings the peer.
pub(super) async fn handshake<T>(io: T, settings: Settings) -> Result<Conn, h2::Error>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (send, mut connection) = h2::client::Builder::new()
        .initial_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .max_frame_size(super::MAX_FRAME)
        // Trailers carry status details (a failed query's failure): as
        // large as the listener accepts.
        .max_header_list_size(super::DEFAULT_MAX_HEADER_LIST)
        // hyper's client settings, kept: a server never pushes to gRPC
        // clients, at most 100 streams before the server's SETTINGS say
        // how many, 1 MiB of queued DATA per stream.
        .enable_push(false)
        .initial_max_send_streams(100)
        .max_send_buffer_size(1 << 20)
        .handshake::<_, Bytes>(Unvectored::new(io))
        .await?;
    let state = Arc::new(State::default());
    let shared = state.clone();
    let pings = connection.ping_pong();
    tokio::spawn(async move {
        // Owned by this task, not by `drive`, so that it outlives the
        // recording of why it ended (below).
        let mut connection = std::pin::pin!(connection);
        let end = drive(connection.as_mut(), pings, &settings).await;
        shared.retire();
        if let Err(e) = end {
            let (why, kind) = match &e {
                Ended::H2(e) => (error_chain(e), FailureKind::of(e, settings.tls)),
                Ended::Unanswered(_) => (e.to_string(), FailureKind::Timeout),
            };
            tracing::info!(upstream = %settings.name, error = %why, ?kind, "upstream connection closed");
            let _ = shared.ended.set((why, kind));
        }
        // The connection is dropped as this task ends, after `ended` says
        // why: h2 then fails the streams still open on it, and their errors
        // can name the cause whichever thread reads them.
    });
    Ok(Conn { send, state })
}

#[derive(Debug, thiserror::Error)]
enum Ended {
    #[error(transparent)]
    H2(h2::Error),
    #[error("no answer to a keepalive PING within {0:?}")]
    Unanswered(Duration),
}

/// Drives `connection` until it ends, sending a PING every
/// `keepalive_interval` (idle or not, as hyper's `keep_alive_while_idle`
/// did) and giving up when one goes unanswered for `keepalive_timeout`.
async fn drive<T>(
    mut connection: Pin<&mut h2::client::Connection<T, Bytes>>,
    pings: Option<h2::PingPong>,
    settings: &Settings,
) -> Result<(), Ended>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let Some(mut pings) = pings else {
        return connection.await.map_err(Ended::H2);
    };
    loop {
        tokio::select! {
            done = connection.as_mut() => return done.map_err(Ended::H2),
            () = tokio::time::sleep(settings.keepalive_interval) => {}
        }
        pings.send_ping(h2::Ping::opaque()).map_err(Ended::H2)?;
        let timeout = settings.keepalive_timeout;
        let pong = tokio::time::timeout(timeout, poll_fn(|cx| pings.poll_pong(cx)));
        tokio::select! {
            done = connection.as_mut() => return done.map_err(Ended::H2),
            answered = pong => match answered {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(Ended::H2(e)),
                Err(_) => return Err(Ended::Unanswered(timeout)),
            },
        }
    }
}

/// An answer's body, read from the upstream's stream. Flow-control credit
/// is given back as each chunk is taken, so the upstream may send more.
pub struct Incoming {
    recv: h2::RecvStream,
    data_done: bool,
}

impl Incoming {
    pub(super) fn new(recv: h2::RecvStream) -> Incoming {
        Incoming {
            recv,
            data_done: false,
        }
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("stream", &self.recv.stream_id())
            .finish()
    }
}

impl HttpBody for Incoming {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        if !self.data_done {
            match ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                // RST_STREAM(NO_ERROR) ends an answer early without failing
                // it (RFC 9113 §8.1).
                Some(Err(e)) if e.reason() == Some(h2::Reason::NO_ERROR) => {
                    return Poll::Ready(None);
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => self.data_done = true,
            }
        }
        match ready!(self.recv.poll_trailers(cx)) {
            Ok(trailers) => Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t)))),
            Err(e) if e.reason() == Some(h2::Reason::NO_ERROR) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}

/// Sends a streamed request's body on `tx` as it comes, within the
/// stream's flow-control window, then its trailers. Stops (resetting the
/// stream) when the caller's body fails, and stops reading it when the
/// upstream resets the stream.
pub(super) async fn pump(mut body: Body, mut tx: h2::SendStream<Bytes>) {
    loop {
        let frame = tokio::select! {
            frame = body.frame() => frame,
            // The upstream reset the stream (or answered and closed it):
            // nothing more of the caller's body is wanted.
            _ = poll_fn(|cx| tx.poll_reset(cx)) => return,
        };
        let frame = match frame {
            None => {
                let _ = tx.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(e)) => {
                tracing::debug!(error = %error_chain(&*e), "caller's request body failed");
                tx.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => frame,
        };
        match frame.into_data() {
            Ok(mut data) => {
                while !data.is_empty() {
                    tx.reserve_capacity(data.len());
                    match poll_fn(|cx| tx.poll_capacity(cx)).await {
                        Some(Ok(0)) => continue,
                        Some(Ok(n)) => {
                            let chunk = data.split_to(n.min(data.len()));
                            if tx.send_data(chunk, false).is_err() {
                                return;
                            }
                        }
                        Some(Err(_)) | None => return,
                    }
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers() {
                    let _ = tx.send_trailers(trailers);
                    return;
                }
            }
        }
    }
}
