//! Temporal Proxy's `binary/compressed` layer, decoded for migration: the
//! whole marshaled payload compressed, with `compression-algorithm` naming
//! `lz4` (LZ4 frame format), `zstd` (a zstd frame) or `snappy` (snappy
//! block format). sealgate never writes it; it reads it where the proxy
//! put it: directly inside an encryption layer one of its keys opens, or
//! as the outer layer of a payload the proxy compressed without
//! encrypting.

use std::io::Read;

use super::{CodecError, PayloadView};

pub(super) const ENCODING_COMPRESSED: &[u8] = b"binary/compressed";
/// Metadata key naming the algorithm.
pub(super) const ALGORITHM: &str = "compression-algorithm";

/// The payload `view` compressed, decompressed (at most `max` bytes): the
/// marshaled payload it holds.
pub(super) fn decompress(view: &PayloadView<'_>, max: usize) -> Result<Vec<u8>, CodecError> {
    let algorithm = view.metadata(ALGORITHM).unwrap_or_default();
    let name = String::from_utf8_lossy(algorithm).into_owned();
    let fail = |reason: String| CodecError::Inflate {
        algorithm: name.clone(),
        reason,
    };
    let bounded = |r: &mut dyn Read| -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::new();
        r.take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| fail(e.to_string()))?;
        if out.len() > max {
            return Err(CodecError::TooLarge {
                size: out.len(),
                limit: max,
            });
        }
        Ok(out)
    };
    let out = match algorithm.to_ascii_lowercase().as_slice() {
        b"lz4" => bounded(&mut lz4_flex::frame::FrameDecoder::new(view.data))?,
        b"zstd" => {
            let mut d = ruzstd::decoding::StreamingDecoder::new(view.data)
                .map_err(|e| fail(e.to_string()))?;
            bounded(&mut d)?
        }
        b"snappy" => {
            let size = snap::raw::decompress_len(view.data).map_err(|e| fail(e.to_string()))?;
            if size > max {
                return Err(CodecError::TooLarge { size, limit: max });
            }
            snap::raw::Decoder::new()
                .decompress_vec(view.data)
                .map_err(|e| fail(e.to_string()))?
        }
        _ => return Err(fail("not one of lz4, zstd, snappy".into())),
    };
    // What it held must be a payload.
    PayloadView::parse(&out).map_err(|e| fail(format!("not a payload inside: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests;
