//! Reading a unary call's body, bounded three ways: at most one frame of at
//! most `max_message_bytes` (counted again while inflating), every byte
//! taken from the memory budget as it arrives (once a body spans several
//! chunks, the room its frame header announces), and (for requests) a time
//! limit for the body to arrive. Inflating yields to the runtime every
//! [`INFLATE_SLICE`] bytes, so a gzip bomb costs its own call's time, not
//! its neighbours'.

use std::{future::Future, io::Read, time::Duration};

use bytes::{Bytes, BytesMut};
use flate2::read::GzDecoder;
use http::HeaderMap;
use http_body::Body;
use http_body_util::BodyExt;

use super::budget::{Exhausted, Held};
use crate::grpc::frame::{self, Frame, FrameError};

/// Output between two yields while inflating.
pub const INFLATE_SLICE: usize = 256 << 10;

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Budget(#[from] Exhausted),
    #[error("body over the {limit}-byte limit (proxy.max_message_bytes)")]
    TooLarge { limit: usize },
    #[error(
        "the body did not arrive within {0:?} (proxy.request_body_timeout); nothing was forwarded"
    )]
    Timeout(Duration),
    #[error("reading the body: {0}")]
    Read(String),
}

/// A body read whole: its bytes and trailers.
pub struct Whole {
    pub bytes: Bytes,
    pub trailers: Option<HeaderMap>,
}

/// Reads `body` whole: at most `limit` message bytes plus a frame header,
/// each chunk taken from `held` as it arrives, within `timeout` if given.
pub async fn read<B>(
    body: B,
    limit: usize,
    held: &mut Held,
    timeout: Option<Duration>,
) -> Result<Whole, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let reading = read_all(body, limit, held);
    // Pinned first, so each await below holds a reference to it rather
    // than a second copy of the whole reading state.
    tokio::pin!(reading);
    let Some(t) = timeout else {
        return reading.await;
    };
    // A body that has already arrived (most unary requests) is read
    // without arming a timer.
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(reading.as_mut().poll(cx))).await;
    if let std::task::Poll::Ready(done) = first {
        return done;
    }
    tokio::time::timeout(t, reading)
        .await
        .map_err(|_| BodyError::Timeout(t))?
}

/// [`read`] with no time limit. Its future is a fraction of `read`'s (no
/// timer, no second copy of the reading state), and an upstream's answer
/// is read inside the future a long poll holds for minutes.
pub async fn read_all<B>(mut body: B, limit: usize, held: &mut Held) -> Result<Whole, BodyError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let max = limit.saturating_add(frame::HEADER);
    let mut got = Got::Nothing;
    let mut len = 0usize;
    // Bytes taken from `held` so far: what has come, or more once the
    // buffer is sized for the whole frame.
    let mut taken = 0usize;
    let mut trailers = None;
    while let Some(f) = body.frame().await {
        let f = f.map_err(|e| BodyError::Read(crate::errors::error_chain(&e)))?;
        let f = match f.into_data() {
            Ok(data) => {
                if len + data.len() > max {
                    return Err(BodyError::TooLarge { limit });
                }
                len += data.len();
                got = match got {
                    // One chunk (small messages) is used as it is.
                    Got::Nothing => {
                        held.reserve(data.len()).await?;
                        taken = len;
                        Got::One(data)
                    }
                    // From the second on, chunks are copied as they come
                    // into one buffer sized for the frame the header
                    // announces (taken from the budget now), instead of
                    // being kept: a chunk is a slice of the connection's
                    // receive buffer and would keep all of it alive,
                    // other calls' bytes included, while this body arrives.
                    Got::One(first) => {
                        let size = announced(&first).map_or(len, |n| n.clamp(len, max));
                        held.reserve(size - taken).await?;
                        taken = size;
                        let mut buf = BytesMut::with_capacity(size);
                        buf.extend_from_slice(&first);
                        buf.extend_from_slice(&data);
                        Got::Copied(buf)
                    }
                    Got::Copied(mut buf) => {
                        if len > taken {
                            held.reserve(len - taken).await?;
                            taken = len;
                        }
                        buf.extend_from_slice(&data);
                        Got::Copied(buf)
                    }
                };
                continue;
            }
            Err(f) => f,
        };
        if let Ok(t) = f.into_trailers() {
            trailers = Some(t);
        }
    }
    let bytes = match got {
        Got::Nothing => Bytes::new(),
        Got::One(b) => b,
        Got::Copied(b) => b.freeze(),
    };
    Ok(Whole { bytes, trailers })
}

/// What of a body has come so far.
enum Got {
    Nothing,
    One(Bytes),
    Copied(BytesMut),
}

/// The length of the framed message `body` starts with, header included,
/// once its header has come.
fn announced(body: &[u8]) -> Option<usize> {
    let h = body.get(..frame::HEADER)?;
    let n = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
    Some(frame::HEADER.saturating_add(n))
}

/// The one message of a unary body; `None` for an empty body. A second
/// message is refused: it would travel under the first one's checks.
pub fn one_message(body: Bytes, limit: usize) -> Result<Option<Frame>, FrameError> {
    let mut frames = frame::split(body, limit)?;
    match frames.len() {
        0 => Ok(None),
        1 => Ok(frames.pop()),
        n => Err(FrameError::Several(n)),
    }
}

/// The plain message of `frame`: inflated when compressed (gzip), at most
/// `limit` bytes, each inflated byte taken from `held`; yields to the
/// runtime every [`INFLATE_SLICE`] bytes.
pub async fn plain(
    frame: Frame,
    encoding: Option<&str>,
    limit: usize,
    held: &mut Held,
) -> Result<Bytes, BodyError> {
    if !frame.compressed {
        return Ok(frame.message);
    }
    match encoding {
        Some("gzip") => {}
        Some(other) => return Err(FrameError::UnsupportedEncoding(other.to_string()).into()),
        None => return Err(FrameError::MissingEncoding.into()),
    }
    let mut decoder = GzDecoder::new(frame.message.as_ref());
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let mut since_yield = 0;
    loop {
        let n = decoder
            .read(&mut chunk)
            .map_err(|e| FrameError::Gzip(e.to_string()))?;
        if n == 0 {
            break;
        }
        if out.len() + n > limit {
            return Err(FrameError::TooLarge {
                len: out.len() + n,
                limit,
            }
            .into());
        }
        held.reserve(n).await?;
        out.extend_from_slice(&chunk[..n]);
        since_yield += n;
        if since_yield >= INFLATE_SLICE {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::{Compression, write::GzEncoder};
    use http_body_util::Full;

    use super::*;
    use crate::proxy::budget::Budget;

    fn framed(messages: &[&[u8]]) -> Bytes {
        let mut out = BytesMut::new();
        for m in messages {
            frame::push(&mut out, m);
        }
        out.freeze()
    }

    #[tokio::test]
    async fn reads_within_the_limit_and_the_budget() {
        let budget = Budget::new(1 << 20);
        let mut held = budget.hold();
        let w = read(Full::new(framed(&[b"hello"])), 100, &mut held, None)
            .await
            .unwrap();
        assert_eq!(w.bytes.len(), 10);
        assert_eq!(held.bytes(), 10);
        let mut held = budget.hold();
        let e = read(Full::new(framed(&[&[0; 200]])), 100, &mut held, None)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, BodyError::TooLarge { limit: 100 }), "{e}");
        let small = Budget::new(8);
        let mut held = small.hold();
        let e = read(Full::new(framed(&[b"hello"])), 100, &mut held, None)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, BodyError::Budget(_)), "{e}");
    }

    /// `chunks` as a body, one DATA frame each.
    fn chunked(chunks: Vec<Bytes>) -> impl Body<Data = Bytes, Error = std::io::Error> + Unpin {
        http_body_util::StreamBody::new(tokio_stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(http_body::Frame::data(c))),
        ))
    }

    #[tokio::test]
    async fn chunks_are_copied_into_one_buffer_sized_by_the_header() {
        let budget = Budget::new(1 << 20);
        let whole = framed(&[&[7; 1000]]);
        let parts = vec![whole.slice(..3), whole.slice(3..400), whole.slice(400..)];
        let mut held = budget.hold();
        let w = read(chunked(parts), 1000, &mut held, None).await.unwrap();
        assert_eq!(w.bytes, whole);
        assert_eq!(held.bytes(), whole.len());
        // The copy owns its bytes: it does not share the chunks' buffer.
        let (a, b) = (w.bytes.as_ptr() as usize, whole.as_ptr() as usize);
        assert!(a + w.bytes.len() <= b || b + whole.len() <= a);

        // A header that announces more than comes: the room it asked for
        // is taken from the budget as soon as the chunks are copied.
        let parts = vec![whole.slice(..10), whole.slice(10..20)];
        let mut held = budget.hold();
        let w = read(chunked(parts), 1000, &mut held, None).await.unwrap();
        assert_eq!(w.bytes, whole.slice(..20));
        assert_eq!(held.bytes(), whole.len());
        // ... and that room counts against the budget like bytes that came.
        let small = Budget::new(500);
        let mut held = small.hold();
        let parts = vec![whole.slice(..10), whole.slice(10..20)];
        let e = read(chunked(parts), 1000, &mut held, None)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, BodyError::Budget(_)), "{e}");
    }

    #[tokio::test]
    async fn a_body_that_never_comes_times_out() {
        let budget = Budget::new(1 << 20);
        let mut held = budget.hold();
        let e = read(Never, 100, &mut held, Some(Duration::from_millis(20)))
            .await
            .err()
            .unwrap();
        assert!(matches!(e, BodyError::Timeout(_)), "{e}");
    }

    /// A body whose data never comes.
    struct Never;

    impl Body for Never {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[test]
    fn exactly_one_message() {
        assert_eq!(one_message(Bytes::new(), 100), Ok(None));
        assert!(one_message(framed(&[b"a"]), 100).unwrap().is_some());
        assert_eq!(
            one_message(framed(&[b"a", b"b"]), 100),
            Err(FrameError::Several(2))
        );
    }

    #[tokio::test]
    async fn compressed_frames_need_a_known_encoding_and_valid_gzip() {
        let budget = Budget::new(1 << 20);
        let f = || Frame {
            compressed: true,
            message: Bytes::from_static(b"xx"),
        };
        let err = |r: Result<Bytes, BodyError>| match r {
            Err(BodyError::Frame(e)) => e,
            other => panic!("{other:?}"),
        };
        let mut held = budget.hold();
        assert_eq!(
            err(plain(f(), None, 10, &mut held).await),
            FrameError::MissingEncoding
        );
        assert!(matches!(
            err(plain(f(), Some("zstd"), 10, &mut held).await),
            FrameError::UnsupportedEncoding(_)
        ));
        assert!(matches!(
            err(plain(f(), Some("gzip"), 10, &mut held).await),
            FrameError::Gzip(_)
        ));
    }

    #[tokio::test]
    async fn inflating_is_capped_by_the_limit_and_the_budget() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&vec![0u8; 1 << 20]).unwrap();
        let bomb = Bytes::from(gz.finish().unwrap());
        let f = || Frame {
            compressed: true,
            message: bomb.clone(),
        };
        let budget = Budget::new(4 << 20);
        let mut held = budget.hold();
        let e = plain(f(), Some("gzip"), 100_000, &mut held)
            .await
            .err()
            .unwrap();
        assert!(
            matches!(e, BodyError::Frame(FrameError::TooLarge { .. })),
            "{e}"
        );
        assert!(held.bytes() <= 100_000);
        let mut held = budget.hold();
        let out = plain(f(), Some("gzip"), 2 << 20, &mut held).await.unwrap();
        assert_eq!(out.len(), 1 << 20);
        assert_eq!(held.bytes(), 1 << 20);
        let tight = Budget::new(512 << 10);
        let mut held = tight.hold();
        let e = plain(f(), Some("gzip"), 2 << 20, &mut held)
            .await
            .err()
            .unwrap();
        assert!(matches!(e, BodyError::Budget(_)), "{e}");
    }
}
