//! Length-prefixed message framing: 1 byte compressed flag, 4 bytes big-endian
//! length, then the message. Parsing is a bounded walk over a buffered body.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Bytes before each message: the compressed flag and the length.
pub const HEADER: usize = 5;

/// One framed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub compressed: bool,
    pub message: Bytes,
}

/// The body is not valid gRPC framing, or breaks a limit.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("gRPC message of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge { len: usize, limit: usize },
    #[error("body ends inside a gRPC frame ({missing} more bytes expected)")]
    Truncated { missing: usize },
    #[error("gRPC frame has compressed flag {0}; only 0 and 1 exist")]
    BadFlag(u8),
    #[error("compressed gRPC message with encoding {0:?}; sealgate reads gzip and identity")]
    UnsupportedEncoding(String),
    #[error("compressed gRPC message without a grpc-encoding header")]
    MissingEncoding,
    #[error("gzip message does not decompress: {0}")]
    Gzip(String),
    #[error("{0} gRPC messages in a unary call: it carries exactly one")]
    Several(usize),
}

/// Splits a buffered body into frames, each at most `limit` bytes.
pub fn split(mut body: Bytes, limit: usize) -> Result<Vec<Frame>, FrameError> {
    let mut frames = Vec::with_capacity(1);
    while !body.is_empty() {
        if body.len() < HEADER {
            return Err(FrameError::Truncated {
                missing: HEADER - body.len(),
            });
        }
        let flag = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if flag > 1 {
            return Err(FrameError::BadFlag(flag));
        }
        if len > limit {
            return Err(FrameError::TooLarge { len, limit });
        }
        if body.len() - HEADER < len {
            return Err(FrameError::Truncated {
                missing: len - (body.len() - HEADER),
            });
        }
        let _ = body.split_to(HEADER);
        frames.push(Frame {
            compressed: flag == 1,
            message: body.split_to(len),
        });
    }
    Ok(frames)
}

/// Appends one uncompressed frame carrying `message`.
pub fn push(out: &mut BytesMut, message: &[u8]) {
    out.reserve(HEADER + message.len());
    push_header(out, message.len());
    out.put_slice(message);
}

/// Appends the header of an uncompressed frame whose `len`-byte message the
/// caller writes next.
pub fn push_header(out: &mut BytesMut, len: usize) {
    out.put_u8(0);
    out.put_u32(len as u32);
}
