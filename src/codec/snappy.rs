//! `binary/snappy`: snappy block format of the whole marshaled payload.

use std::cell::RefCell;

use super::{CallKeys, Codec, CodecError, CodecStats, PayloadView, payload};

thread_local! {
    // The encoder keeps its hash table between calls; making one per payload
    // costs more than compressing a small payload.
    static ENCODER: RefCell<snap::raw::Encoder> = RefCell::new(snap::raw::Encoder::new());
}

pub const ENCODING_SNAPPY: &[u8] = b"binary/snappy";

/// Metadata on a snappy layer that sealgate wrote as the outer layer
/// (compression on, encryption off): without it, a top-level `binary/snappy`
/// is the client's own and decoding leaves it alone.
pub const SNAPPY_MARK: (&str, &[u8]) = ("sealgate-codec", b"snappy");

#[derive(Debug)]
pub(super) struct Snappy {
    pub(super) max_decoded: usize,
    /// Write [`SNAPPY_MARK`] (this is the outer layer).
    pub(super) mark: bool,
}

impl Codec for Snappy {
    fn encoding(&self) -> &'static [u8] {
        ENCODING_SNAPPY
    }

    fn encode(
        &self,
        input: &[u8],
        view: &PayloadView<'_>,
        _: &CallKeys<'_>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let compressed = ENCODER
            .with(|e| e.borrow_mut().compress_vec(input))
            .map_err(CodecError::Compress)?;
        let marked = [(payload::ENCODING, ENCODING_SNAPPY), SNAPPY_MARK];
        let meta = if self.mark { &marked[..] } else { &marked[..1] };
        let out = payload::marshal(meta, &compressed, &view.external);
        // Skip when it does not shrink, unless the input is itself
        // binary/snappy: inside the encryption layer decode unwraps exactly
        // one snappy layer, which must then be ours, not the caller's.
        if out.len() >= input.len() && view.encoding() != Some(ENCODING_SNAPPY) {
            return Ok(None);
        }
        Ok(Some(out))
    }

    fn decode(
        &self,
        view: &PayloadView<'_>,
        _: &CodecStats,
        _: &CallKeys<'_>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let size = snap::raw::decompress_len(view.data).map_err(CodecError::Decompress)?;
        if size > self.max_decoded {
            return Err(CodecError::TooLarge {
                size,
                limit: self.max_decoded,
            });
        }
        snap::raw::Decoder::new()
            .decompress_vec(view.data)
            .map(Some)
            .map_err(CodecError::Decompress)
    }
}
