//! `binary/snappy`: snappy block format of the whole marshaled payload.

use std::{cell::RefCell, ops::Range};

use super::{Arena, CallKeys, Codec, CodecError, PayloadView, payload};

thread_local! {
    // The encoder keeps its hash table between calls; making one per payload
    // costs more than compressing a small payload. The buffer it compresses
    // into is kept too: allocating and zero-filling one per payload cost
    // more than the copy out of it.
    static ENCODER: RefCell<(snap::raw::Encoder, Vec<u8>)> =
        RefCell::new((snap::raw::Encoder::new(), Vec::new()));
}

/// Largest compression buffer a thread keeps between payloads.
const KEEP: usize = 256 << 10;

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
        let marked = [(payload::ENCODING, ENCODING_SNAPPY), SNAPPY_MARK];
        let meta = if self.mark { &marked[..] } else { &marked[..1] };
        let out = ENCODER.with(|cell| {
            let (encoder, buf) = &mut *cell.borrow_mut();
            // 0 when the input is too large: compress then says so.
            let bound = snap::raw::max_compress_len(input.len());
            if buf.len() < bound {
                buf.resize(bound, 0);
            }
            let compressed = encoder.compress(input, &mut buf[..bound]);
            let out = compressed.map(|n| payload::marshal(meta, &buf[..n], &view.external));
            if buf.len() > KEEP {
                *buf = Vec::new();
            }
            out
        });
        let out = out.map_err(CodecError::Compress)?;
        // Skip when it does not shrink, unless the input is itself
        // binary/snappy: inside the encryption layer decode unwraps exactly
        // one snappy layer, which must then be ours, not the caller's.
        if out.len() >= input.len() && view.encoding() != Some(ENCODING_SNAPPY) {
            return Ok(None);
        }
        Ok(Some(out))
    }
}

impl Snappy {
    /// Decompresses `data` into `arena`, straight into its free bytes (no
    /// zero-fill, no buffer of its own): the range of the result.
    pub(super) fn decode_into(
        &self,
        data: &[u8],
        arena: &mut Arena,
    ) -> Result<Range<usize>, CodecError> {
        let size = self.checked_len(data)?;
        let out = arena.grow(size);
        let written = snap::raw::Decoder::new().decompress(data, arena.get_mut(out.clone()));
        self.finish(written, out, arena)
    }

    /// [`Self::decode_into`] for data that is itself in the arena, at `from`
    /// (a layer just decrypted there).
    pub(super) fn decode_within(
        &self,
        from: Range<usize>,
        arena: &mut Arena,
    ) -> Result<Range<usize>, CodecError> {
        let size = self.checked_len(arena.get(from.clone()))?;
        let out = arena.grow(size);
        let (data, to) = arena.split(from, out.clone());
        let written = snap::raw::Decoder::new().decompress(data, to);
        self.finish(written, out, arena)
    }

    fn checked_len(&self, data: &[u8]) -> Result<usize, CodecError> {
        let size = snap::raw::decompress_len(data).map_err(CodecError::Decompress)?;
        if size > self.max_decoded {
            return Err(CodecError::TooLarge {
                size,
                limit: self.max_decoded,
            });
        }
        Ok(size)
    }

    fn finish(
        &self,
        written: Result<usize, snap::Error>,
        out: Range<usize>,
        arena: &mut Arena,
    ) -> Result<Range<usize>, CodecError> {
        match written {
            Ok(n) => {
                arena.truncate(out.start + n);
                Ok(out.start..out.start + n)
            }
            Err(e) => {
                arena.truncate(out.start);
                Err(CodecError::Decompress(e))
            }
        }
    }
}
