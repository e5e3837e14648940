//! Temporal Proxy's `binary/compressed` layer (lz4 frame, zstd frame,
//! snappy block), through the decode chain as a payload arrives.
//!
//! Input: the first byte picks the algorithm, the rest is the compressed
//! data. Properties: nothing panics, no output over the decode limit; a
//! layer that opens holds a payload.

use sealgate::codec::{ChainOptions, PayloadView, Pipeline, payload::marshal};

pub(crate) fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let algorithm = ["lz4", "zstd", "snappy", "LZ4", "other"][usize::from(pick) % 5];
    let payload = marshal(
        &[
            ("encoding", b"binary/compressed"),
            ("compression-algorithm", algorithm.as_bytes()),
        ],
        rest,
        &[],
    );
    let opts = ChainOptions {
        max_decoded: Some(1 << 20),
        ..ChainOptions::default()
    };
    let Ok(pipeline) = Pipeline::fixed(&opts, Vec::new(), None) else {
        return;
    };
    if let Ok(Some(out)) = pipeline.session("").decode_payload(&payload) {
        assert!(out.len() <= 1 << 20, "over the decode limit");
        assert!(PayloadView::parse(&out).is_ok(), "opened to something else");
    }
}
