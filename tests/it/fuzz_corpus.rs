//! Replays the committed fuzz corpora (fuzz/corpus/<target>) through the
//! fuzz harnesses on stable, so every CI run checks what the fuzzer once
//! found. There is one target per parser (fuzz/fuzz_targets). Each has
//! seeds built here from real inputs; `SEALGATE_WRITE_CORPUS=1` writes them
//! into the corpus directories.

#[path = "../../fuzz/harness/codec_json.rs"]
mod h_codec_json;
#[path = "../../fuzz/harness/compressed.rs"]
mod h_compressed;
#[path = "../../fuzz/harness/config.rs"]
mod h_config;
#[path = "../../fuzz/harness/frames.rs"]
mod h_frames;
#[path = "../../fuzz/harness/payload.rs"]
mod h_payload;
#[path = "../../fuzz/harness/status.rs"]
mod h_status;
#[path = "../../fuzz/harness/storage_reference.rs"]
mod h_storage_reference;
#[path = "../../fuzz/harness/temporal_toml.rs"]
mod h_temporal_toml;
#[path = "../../fuzz/harness/timeout.rs"]
mod h_timeout;
#[path = "../../fuzz/harness/wire_patch.rs"]
mod h_wire_patch;
#[path = "../../fuzz/harness/rewrite.rs"]
mod harness;

use std::path::PathBuf;

use prost::Message;
use temporalio_protos::temporal::api::{
    common::v1::{Header, Memo, Payload, Payloads, SearchAttributes, WorkflowType},
    failure::v1::Failure,
    workflowservice::v1::{SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest},
};

fn corpus_dir() -> PathBuf {
    target_dir("rewrite")
}

fn target_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Writes `seeds` into the target's corpus when asked, then replays every
/// corpus file and every seed through `run`.
fn replay(target: &str, seeds: Vec<(&str, Vec<u8>)>, run: fn(&[u8])) {
    let dir = target_dir(target);
    if std::env::var("SEALGATE_WRITE_CORPUS").as_deref() == Ok("1") {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, input) in &seeds {
            std::fs::write(dir.join(format!("seed-{name}")), input).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        run(&std::fs::read(entry.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(
        n >= seeds.len().min(2),
        "{target}: the committed corpus has {n} files"
    );
    for (_, input) in &seeds {
        run(input);
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn frame(compressed: bool, message: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::from(compressed)];
    out.extend((message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[test]
fn frames_corpus_replays_cleanly() {
    let start = seeds()[0].1[1..].to_vec();
    let mut one = vec![0u8];
    one.extend(frame(false, &start));
    let mut zipped = vec![1u8];
    zipped.extend(frame(true, &gzip(&start)));
    let mut bomb = vec![0u8];
    bomb.extend(frame(true, &gzip(&vec![0u8; 1 << 20])));
    let mut two = vec![2u8];
    two.extend(frame(false, b"a"));
    two.extend(frame(false, b"b"));
    replay(
        "frames",
        vec![
            ("plain", one),
            ("gzip", zipped),
            ("bomb", bomb),
            ("two", two),
        ],
        h_frames::run,
    );
}

#[test]
fn payload_corpus_replays_cleanly() {
    let plain = json("\"a\"").encode_to_vec();
    let envelope = Payload {
        metadata: [
            ("encoding".into(), b"binary/protobuf".to_vec()),
            (
                "messageType".into(),
                b"temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest".to_vec(),
            ),
            ("__temporal_system_payload".into(), b"true".to_vec()),
        ]
        .into(),
        data: b"\x0a\x07default".to_vec(),
        external_payloads: vec![Default::default()],
    }
    .encode_to_vec();
    replay(
        "payload",
        vec![("json", plain), ("system-envelope", envelope)],
        h_payload::run,
    );
}

#[test]
fn codec_json_corpus_replays_cleanly() {
    let one = br#"{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"ImEi"}]}"#;
    let ext =
        br#"{"payloads":[{"metadata":{},"data":"","externalPayloads":[{"sizeBytes":"12"}]}]}"#;
    replay(
        "codec_json",
        vec![
            ("one", one.to_vec()),
            ("external", ext.to_vec()),
            ("empty", b"{}".to_vec()),
        ],
        h_codec_json::run,
    );
}

#[test]
fn config_corpus_replays_cleanly() {
    let minimal = b"listen = \"${HOST}:${PORT}\"\nupstream = \"http://127.0.0.1:7234\"\n\
[codec]\nactive_key = \"k\"\n[[codec.keys]]\nid = \"k\"\nmaterial = \"${KEY}\"\n";
    let reference =
        std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/reference.toml"))
            .unwrap();
    replay(
        "config",
        vec![("minimal", minimal.to_vec()), ("reference", reference)],
        h_config::run,
    );
}

#[test]
fn timeout_corpus_replays_cleanly() {
    replay(
        "timeout",
        ["300m", "5S", "1H", "99999999n", "+5S"]
            .iter()
            .map(|t| (*t, t.as_bytes().to_vec()))
            .collect(),
        h_timeout::run,
    );
}

#[test]
fn status_corpus_replays_cleanly() {
    use temporalio_protos::temporal::api::errordetails::v1::QueryFailedFailure;
    let failure = Failure {
        message: "boom".into(),
        encoded_attributes: Some(json("{}")),
        ..Default::default()
    };
    let details = prost_types::Any {
        type_url: "type.googleapis.com/temporal.api.errordetails.v1.QueryFailedFailure".into(),
        value: QueryFailedFailure {
            failure: Some(failure),
        }
        .encode_to_vec(),
    };
    // google.rpc.Status { code = 1, message = 2, details = 3 }
    let mut status = vec![0x08, 0x03, 0x12, 0x04];
    status.extend_from_slice(b"oops");
    let any = details.encode_to_vec();
    status.push(0x1a);
    status.push(any.len() as u8);
    status.extend(any);
    replay(
        "status",
        vec![("query-failed", status), ("garbage", b"\xff\x00=".to_vec())],
        h_status::run,
    );
}

fn json(data: &str) -> Payload {
    Payload {
        metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Seed inputs: real messages of a few types, prefixed by their selector.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let start = StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: "wf".into(),
        workflow_type: Some(WorkflowType { name: "W".into() }),
        input: Some(Payloads {
            payloads: vec![json("\"a\""), json(&"b".repeat(300))],
        }),
        memo: Some(Memo {
            fields: [("m".into(), json("1"))].into(),
        }),
        header: Some(Header {
            fields: [("h".into(), json("2"))].into(),
        }),
        search_attributes: Some(SearchAttributes {
            indexed_fields: [("CustomKeyword".into(), json("\"k\""))].into(),
        }),
        ..Default::default()
    };
    let signal = SignalWorkflowExecutionRequest {
        signal_name: "s".into(),
        input: Some(Payloads {
            payloads: vec![json("[1,2,3]")],
        }),
        ..Default::default()
    };
    let failure = Failure {
        message: "boom".into(),
        stack_trace: "at x".into(),
        cause: Some(Box::new(Failure {
            message: "inner".into(),
            encoded_attributes: Some(json("{}")),
            ..Default::default()
        })),
        ..Default::default()
    };
    // A legacy Nexus handler error (a Failure as protojson in details), as
    // sdk-core writes it for a caller without failure support.
    #[allow(deprecated)]
    let nexus_failed = temporalio_protos::temporal::api::workflowservice::v1::RespondNexusTaskFailedRequest {
        namespace: "default".into(),
        error: Some(temporalio_protos::temporal::api::nexus::v1::HandlerError {
            error_type: "BAD_REQUEST".into(),
            failure: Some(temporalio_protos::temporal::api::nexus::v1::Failure {
                message: "bad".into(),
                metadata: [("type".into(), "temporal.api.failure.v1.Failure".into())].into(),
                details: br#"{"cause":{"message":"c","applicationFailureInfo":{"details":{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"ImQi"}]}}}}"#.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A System Nexus envelope (SignalWithStart through __temporal_system).
    let system =
        temporalio_protos::temporal::api::history::v1::NexusOperationScheduledEventAttributes {
            endpoint: "__temporal_system".into(),
            input: Some(Payload {
                metadata: [
                    ("encoding".into(), b"binary/protobuf".to_vec()),
                    (
                        "messageType".into(),
                        b"temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest"
                            .to_vec(),
                    ),
                    ("__temporal_system_payload".into(), b"true".to_vec()),
                ]
                .into(),
                data: signal.encode_to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
    let poll = temporalio_protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse {
        history: Some(temporalio_protos::temporal::api::history::v1::History {
            events: vec![temporalio_protos::temporal::api::history::v1::HistoryEvent {
                attributes: Some(temporalio_protos::temporal::api::history::v1::history_event::Attributes::NexusOperationScheduledEventAttributes(system)),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let ws = "temporal.api.workflowservice.v1.";
    [
        (
            format!("{ws}RespondNexusTaskFailedRequest"),
            nexus_failed.encode_to_vec(),
        ),
        (
            format!("{ws}PollWorkflowTaskQueueResponse"),
            poll.encode_to_vec(),
        ),
        (
            format!("{ws}StartWorkflowExecutionRequest"),
            start.encode_to_vec(),
        ),
        (
            format!("{ws}SignalWorkflowExecutionRequest"),
            signal.encode_to_vec(),
        ),
        (
            "temporal.api.failure.v1.Failure".to_string(),
            failure.encode_to_vec(),
        ),
    ]
    .into_iter()
    .map(|(name, bytes)| {
        let mut input = vec![harness::selector(&name).unwrap()];
        input.extend(bytes);
        (name.rsplit('.').next().unwrap().to_string(), input)
    })
    .collect()
}

#[test]
fn corpus_replays_cleanly() {
    if std::env::var("SEALGATE_WRITE_CORPUS").as_deref() == Ok("1") {
        std::fs::create_dir_all(corpus_dir()).unwrap();
        for (name, input) in seeds() {
            std::fs::write(corpus_dir().join(format!("seed-{name}")), input).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        harness::run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n >= 3, "the committed corpus has {n} files");
    // The seeds are also run as built, so a schema change cannot orphan them.
    for (_, input) in seeds() {
        harness::run(&input);
    }
}

#[test]
fn storage_reference_corpus_replays_cleanly() {
    let claim = sealgate::storage::Claim {
        bucket: "payloads".into(),
        key: "v0/ns/default/d/sha256/ab".into(),
        sha256: "ab".into(),
    };
    let ours = sealgate::storage::reference_payload(&claim, 300_000);
    let sdk = br#"{"claimData":{"bucket":"b","hash_algorithm":"sha256","hash_value":"ABCD","key":"v0/d/sha256/abcd"},"driverName":"aws.s3driver"}"#;
    let smuggled = br#"{"claimData":{"bucket":"b","hash_algorithm":"sha256","hash_value":"ab","key":"k","x":"SECRET"},"driverName":"aws.s3driver"}"#;
    replay(
        "storage_reference",
        vec![
            ("ours", ours),
            ("sdk-json", sdk.to_vec()),
            ("smuggled-json", smuggled.to_vec()),
        ],
        h_storage_reference::run,
    );
}

#[test]
fn compressed_corpus_replays_cleanly() {
    use std::io::Write;
    let inner = Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: br#""migrated from Temporal Proxy""#.to_vec(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut lz4 = lz4_flex::frame::FrameEncoder::new(Vec::new());
    lz4.write_all(&inner).unwrap();
    let seed = |pick: u8, data: Vec<u8>| [vec![pick], data].concat();
    replay(
        "compressed",
        vec![
            ("lz4", seed(0, lz4.finish().unwrap())),
            (
                "zstd",
                seed(
                    1,
                    ruzstd::encoding::compress_to_vec(
                        inner.as_slice(),
                        ruzstd::encoding::CompressionLevel::Fastest,
                    ),
                ),
            ),
            (
                "snappy",
                seed(2, snap::raw::Encoder::new().compress_vec(&inner).unwrap()),
            ),
        ],
        h_compressed::run,
    );
}

#[test]
fn temporal_toml_corpus_replays_cleanly() {
    let full = br#"
[profile.default]
address = "localhost:7233"
namespace = "default"

[profile.prod]
address = "prod.a1b2c.tmprl.cloud:7233"
api_key = "k"
[profile.prod.tls]
server_name = "prod.example"
client_cert_path = "c.pem"
client_cert_data = "both"
disable_host_verification = true
[profile.prod.grpc_meta]
X_Team = "payments"
"#;
    replay(
        "temporal_toml",
        vec![
            ("profiles", full.to_vec()),
            ("wrong-types", b"[profile.default]\naddress = 5\n".to_vec()),
        ],
        h_temporal_toml::run,
    );
}

#[test]
fn wire_patch_corpus_replays_cleanly() {
    // DescribeNamespaceResponse-like: 1 { 1: "default", 8 { 1: 2097152 } }.
    let limits = [0x08, 0x80, 0x80, 0x80, 0x01];
    let mut info = vec![0x0a, 7];
    info.extend_from_slice(b"default");
    info.extend_from_slice(&[0x42, limits.len() as u8]);
    info.extend_from_slice(&limits);
    let mut message = vec![0x0a, info.len() as u8];
    message.extend_from_slice(&info);
    replay(
        "wire_patch",
        vec![
            ("describe-namespace", [vec![0, 0], message.clone()].concat()),
            ("top-level", [vec![2, 3], message].concat()),
        ],
        h_wire_patch::run,
    );
}
