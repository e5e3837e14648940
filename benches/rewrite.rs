//! Criterion benchmarks of the rewriter and the AEAD choice.
//!
//! - `rewrite/<message>/<codec>`: one message through the rewriter, requests
//!   encoded (towards the server), the poll response decoded (towards the
//!   worker), with codec off / snappy / AES-256-GCM / both;
//! - `audit/<message>`: the outgoing audit of an encoded request (every
//!   field walked by type: unknown fields, the plaintext tripwire);
//! - `aead/<impl>/<size>`: AES-256-GCM seal alone, RustCrypto `aes-gcm` vs
//!   `ring` (the rustls crypto provider sealgate uses).
//!
//! Run: `cargo bench --bench rewrite`; numbers go in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{hint::black_box, time::Duration};

use aes_gcm::{Aes256Gcm, KeyInit, aead::AeadInPlace};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use sealgate::{
    codec::{ChainOptions, Pipeline, Session},
    keys::Key,
    rewrite::{
        audit::{Checks, audit},
        rewrite,
    },
    schema::Schema,
};
use temporalio_protos::temporal::api::{
    common::v1::WorkflowType,
    workflowservice::v1::{RespondActivityTaskCompletedRequest, StartWorkflowExecutionRequest},
};
use workload::payloads;

#[path = "support/workload.rs"]
mod workload;

fn start_1k() -> Vec<u8> {
    StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: "order-12345".into(),
        workflow_type: Some(WorkflowType {
            name: "ProcessOrder".into(),
        }),
        task_queue: None,
        input: payloads(1024),
        identity: "worker-1@host".into(),
        request_id: "6f1c0a8e-7d0b-4c1e-9b9e-0d7f3c2a1b00".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn activity_completed_64k() -> Vec<u8> {
    RespondActivityTaskCompletedRequest {
        task_token: vec![7; 120],
        result: payloads(64 * 1024),
        identity: "worker-1@host".into(),
        namespace: "default".into(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn chain(compression: bool, encryption: bool) -> Session {
    let keys = vec![Key::new("bench", &[5; 32]).unwrap()];
    let opts = ChainOptions {
        compression,
        encryption,
        ..Default::default()
    };
    Pipeline::fixed(&opts, keys, Some("bench"))
        .unwrap()
        .session("")
}

const CODECS: [(&str, bool, bool); 4] = [
    ("off", false, false),
    ("snappy", true, false),
    ("aes", false, true),
    ("snappy+aes", true, true),
];

fn rewrite_benches(c: &mut Criterion) {
    let schema = Schema::embedded().unwrap();
    let ws = "temporal.api.workflowservice.v1.";
    let cases = [
        (
            "start_1k/encode",
            "StartWorkflowExecutionRequest",
            start_1k(),
            true,
        ),
        (
            "activity_completed_64k/encode",
            "RespondActivityTaskCompletedRequest",
            activity_completed_64k(),
            true,
        ),
        (
            "poll_100_events/decode",
            "PollWorkflowTaskQueueResponse",
            workload::poll_response(100),
            false,
        ),
    ];
    for (label, ty, plain, encode) in cases {
        let id = schema.message_id(&format!("{ws}{ty}")).unwrap();
        let mut group = c.benchmark_group(format!("rewrite/{label}"));
        group.throughput(Throughput::Bytes(plain.len() as u64));
        for (name, compression, encryption) in CODECS {
            let chain = chain(compression, encryption);
            if encode {
                group.bench_function(name, |b| {
                    b.iter(|| {
                        let out =
                            rewrite(&schema, id, black_box(&plain), &mut chain.encoder()).unwrap();
                        black_box(out.len())
                    })
                });
            } else {
                // Decode what this codec setting stored.
                let stored = rewrite(&schema, id, &plain, &mut chain.encoder())
                    .unwrap()
                    .into_owned();
                group.bench_function(name, |b| {
                    b.iter(|| {
                        let out =
                            rewrite(&schema, id, black_box(&stored), &mut chain.decoder()).unwrap();
                        black_box(out.len())
                    })
                });
            }
        }
        group.finish();
    }
}

fn audit_benches(c: &mut Criterion) {
    let schema = Schema::embedded().unwrap();
    let ws = "temporal.api.workflowservice.v1.";
    let chain = chain(true, true);
    let checks = Checks {
        unknown: true,
        plaintext: true,
        own: b"binary/encrypted",
        max_payload: usize::MAX,
    };
    let mut group = c.benchmark_group("audit");
    for (label, ty, plain) in [
        ("start_1k", "StartWorkflowExecutionRequest", start_1k()),
        (
            "activity_completed_64k",
            "RespondActivityTaskCompletedRequest",
            activity_completed_64k(),
        ),
    ] {
        let id = schema.message_id(&format!("{ws}{ty}")).unwrap();
        let sent = rewrite(&schema, id, &plain, &mut chain.encoder())
            .unwrap()
            .into_owned();
        audit(&schema, id, &sent, checks).unwrap();
        group.throughput(Throughput::Bytes(plain.len() as u64));
        group.bench_function(label, |b| {
            b.iter(|| audit(&schema, id, black_box(&sent), checks).unwrap())
        });
    }
    group.finish();
}

fn aead_benches(c: &mut Criterion) {
    let key = [9u8; 32];
    let rustcrypto = Aes256Gcm::new(&key.into());
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
    for size in [1024usize, 64 * 1024] {
        let mut group = c.benchmark_group("aead");
        group.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x42u8; size];
        group.bench_with_input(BenchmarkId::new("aes-gcm", size), &size, |b, _| {
            b.iter(|| {
                let tag = rustcrypto
                    .encrypt_in_place_detached(&[1u8; 12].into(), b"", black_box(&mut buf))
                    .unwrap();
                black_box(tag)
            })
        });
        group.bench_with_input(BenchmarkId::new("ring", size), &size, |b, _| {
            b.iter(|| {
                let tag = ring_key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key([1u8; 12]),
                        Aad::empty(),
                        black_box(&mut buf),
                    )
                    .unwrap();
                black_box(tag)
            })
        });
        group.finish();
    }
}

/// A large payload's bytes as workflows send them: JSON records with
/// repeated keys and varied values (compressible, not trivially).
fn large_json(size: usize) -> Vec<u8> {
    let mut out = String::from("[");
    let mut i = 0u64;
    while out.len() < size {
        let h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        out.push_str(&format!(
            r#"{{"order_id":"ord-{i:08}","customer":"cust-{:05}","amount_cents":{},"sku":"SKU-{:04X}","note":"{:016x}"}},"#,
            h % 50_000,
            h % 100_000,
            (h >> 20) % 4096,
            h
        ));
        i += 1;
    }
    out.push(']');
    out.into_bytes()
}

/// Is zstd worth offering over snappy for large payloads? Compression
/// ratio and speed of each on the same 1 MiB JSON (issue 19): snappy (what
/// sealgate writes), zstd at ruzstd's fastest level, LZ4 frame.
fn compression_benches(c: &mut Criterion) {
    use std::io::Write;
    let input = large_json(1 << 20);
    let snappy_len = snap::raw::Encoder::new()
        .compress_vec(&input)
        .unwrap()
        .len();
    let zstd_len = ruzstd::encoding::compress_to_vec(
        input.as_slice(),
        ruzstd::encoding::CompressionLevel::Fastest,
    )
    .len();
    let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz4.write_all(&input).unwrap();
    let lz4_len = lz4.finish().unwrap().len();
    eprintln!(
        "compressed sizes of {} bytes of JSON: snappy {snappy_len} ({:.3}), zstd {zstd_len} ({:.3}), lz4 {lz4_len} ({:.3})",
        input.len(),
        snappy_len as f64 / input.len() as f64,
        zstd_len as f64 / input.len() as f64,
        lz4_len as f64 / input.len() as f64,
    );
    let mut group = c.benchmark_group("compress_1mib_json");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("snappy", |b| {
        let mut enc = snap::raw::Encoder::new();
        b.iter(|| black_box(enc.compress_vec(black_box(&input)).unwrap()))
    });
    group.bench_function("zstd-fastest", |b| {
        b.iter(|| {
            black_box(ruzstd::encoding::compress_to_vec(
                black_box(input.as_slice()),
                ruzstd::encoding::CompressionLevel::Fastest,
            ))
        })
    });
    group.bench_function("lz4-frame", |b| {
        b.iter(|| {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(black_box(&input)).unwrap();
            black_box(e.finish().unwrap())
        })
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = rewrite_benches, audit_benches, aead_benches, compression_benches
}
criterion_main!(benches);
