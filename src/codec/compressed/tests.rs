use std::io::Write;

use prost::Message;
use temporalio_protos::temporal::api::common::v1::Payload;

use super::*;

fn inner() -> Vec<u8> {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: br#""the original payload, repeated, repeated, repeated""#.to_vec(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn wrapped(algorithm: &str, data: Vec<u8>) -> Vec<u8> {
    Payload {
        metadata: [
            ("encoding".to_string(), ENCODING_COMPRESSED.to_vec()),
            (ALGORITHM.to_string(), algorithm.as_bytes().to_vec()),
        ]
        .into(),
        data,
        ..Default::default()
    }
    .encode_to_vec()
}

fn open(bytes: &[u8], max: usize) -> Result<Vec<u8>, CodecError> {
    decompress(&PayloadView::parse(bytes).unwrap(), max)
}

#[test]
fn every_algorithm_the_proxy_writes_decodes() {
    let plain = inner();
    let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz4.write_all(&plain).unwrap();
    let lz4 = lz4.finish().unwrap();
    let zstd = ruzstd::encoding::compress_to_vec(
        plain.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    let snappy = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
    for (alg, data) in [("lz4", lz4), ("zstd", zstd), ("snappy", snappy)] {
        assert_eq!(open(&wrapped(alg, data), 1 << 20).unwrap(), plain, "{alg}");
    }
}

#[test]
fn bad_input_is_an_error_not_a_panic_or_a_bomb() {
    let plain = inner();
    let snappy = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
    assert!(matches!(
        open(&wrapped("snappy", snappy), 10),
        Err(CodecError::TooLarge { .. })
    ));
    let big = vec![0u8; 1 << 20];
    let zstd = ruzstd::encoding::compress_to_vec(
        big.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    );
    assert!(matches!(
        open(&wrapped("zstd", zstd), 1000),
        Err(CodecError::TooLarge { .. }) | Err(CodecError::Inflate { .. })
    ));
    assert!(open(&wrapped("lz4", b"garbage".to_vec()), 1000).is_err());
    assert!(open(&wrapped("brotli", plain.clone()), 1000).is_err());
}
