//! Interoperability with Temporal's Python encryption sample: payloads it
//! encrypts decode in sealgate, and payloads sealgate encrypts decode there.
//! Migration from Temporal Proxy: its envelope payloads with a local KEK,
//! built independently in Python, decode in sealgate.
//!
//! Needs a Python with `cryptography`, `temporalio` and PyNaCl (scripts/setup-python
//! makes `.venv`). Without one the test says so and passes, unless
//! `SEALGATE_REQUIRE_INTEROP=1` (set by scripts/test), where it fails.

use std::{
    path::PathBuf,
    process::{Command, Stdio},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use sealgate::{
    codec::{ChainOptions, Pipeline, Session, payload},
    keys::Key,
};
use temporalio_protos::temporal::api::common::v1::Payload;

const KEY: [u8; 32] = *b"interop-key-interop-key-interop!";

fn python() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("SEALGATE_PYTHON").map(PathBuf::from),
        Some(root.join(".venv/bin/python")),
    ];
    let found = candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import cryptography, temporalio, nacl"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("SEALGATE_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "no Python with cryptography, temporalio and PyNaCl: run scripts/setup-python"
        );
        eprintln!("SKIPPED: no Python with cryptography+temporalio (run scripts/setup-python)");
    }
    found
}

/// Runs `tests/interop/<script>` with `req` as JSON on stdin; its JSON answer.
fn run_script(py: &PathBuf, script: &str, req: &serde_json::Value) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(script);
    let out =
        crate::support::run_with_stdin(Command::new(py).arg(path), req.to_string().as_bytes());
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_sample(
    py: &PathBuf,
    encode: &[Vec<u8>],
    decode: &[Vec<u8>],
) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let b64 = |v: &[Vec<u8>]| v.iter().map(|p| STANDARD.encode(p)).collect::<Vec<_>>();
    let req = serde_json::json!({
        "key": STANDARD.encode(KEY),
        "key_id": "interop",
        "encode": b64(encode),
        "decode": b64(decode),
    });
    let resp = run_script(py, "sample_codec.py", &req);
    let list = |k: &str| {
        resp[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| STANDARD.decode(s.as_str().unwrap()).unwrap())
            .collect::<Vec<_>>()
    };
    (list("encoded"), list("decoded"))
}

fn chain(compression: bool) -> Session {
    let keys = vec![Key::new("interop", &KEY).unwrap()];
    let opts = ChainOptions {
        compression,
        encryption: true,
        ..Default::default()
    };
    Pipeline::fixed(&opts, keys, Some("interop"))
        .unwrap()
        .session("")
}

fn payloads() -> Vec<Vec<u8>> {
    ["\"hello\"", "{\"card\":\"4111 1111 1111 1111\"}", ""]
        .iter()
        .map(|d| {
            Payload {
                metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
                data: d.as_bytes().to_vec(),
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect()
}

#[test]
fn python_sample_and_sealgate_read_each_other() {
    let Some(py) = python() else { return };
    let originals = payloads();
    let ours = chain(false);
    let sealed: Vec<Vec<u8>> = originals
        .iter()
        .map(|p| ours.encode_payload(p).unwrap().unwrap())
        .collect();
    let (theirs, opened) = run_sample(&py, &originals, &sealed);

    // What we encrypted, the sample decrypts to the same Payload.
    for (o, d) in originals.iter().zip(&opened) {
        assert_eq!(
            Payload::decode(d.as_slice()).unwrap(),
            Payload::decode(o.as_slice()).unwrap()
        );
    }
    // What the sample encrypted, we decrypt to the same Payload.
    for (o, t) in originals.iter().zip(&theirs) {
        let view = payload::PayloadView::parse(t).unwrap();
        assert_eq!(view.encoding(), Some(&b"binary/encrypted"[..]));
        assert_eq!(view.metadata("encryption-key-id"), Some(&b"interop"[..]));
        let back = ours.decode_payload(t).unwrap().unwrap();
        assert_eq!(
            Payload::decode(back.as_slice()).unwrap(),
            Payload::decode(o.as_slice()).unwrap()
        );
    }
}

#[test]
fn compressed_payloads_reach_the_sample_as_snappy_payloads() {
    let Some(py) = python() else { return };
    // With compression on, the sample's decrypt yields our binary/snappy
    // payload, which a chained snappy codec (as in the Go samples) unwraps.
    let big = Payload {
        metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
        data: "\"repeat\"".repeat(200).into_bytes(),
        ..Default::default()
    };
    let sealed = chain(true)
        .encode_payload(&big.encode_to_vec())
        .unwrap()
        .unwrap();
    let (_, opened) = run_sample(&py, &[], &[sealed]);
    let inner = Payload::decode(opened[0].as_slice()).unwrap();
    assert_eq!(inner.metadata["encoding"], b"binary/snappy");
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&inner.data)
        .unwrap();
    assert_eq!(Payload::decode(raw.as_slice()).unwrap(), big);
}

#[tokio::test]
async fn temporal_proxy_envelope_payloads_decode_given_the_kek() {
    let Some(py) = python() else { return };
    let kek = [0x5au8; 32];
    let originals = payloads();
    let req = serde_json::json!({
        "kek": STANDARD.encode(kek),
        "payloads": originals.iter().map(|p| STANDARD.encode(p)).collect::<Vec<_>>(),
    });
    let resp = run_script(&py, "temporal_proxy_envelope.py", &req);
    let kek_id = resp["kek_id"].as_str().unwrap();
    assert!(kek_id.starts_with("base64key://"));

    // Migration config: sealgate's own key encrypts; Temporal Proxy's KEK
    // (given as its URI, which carries the key) only decrypts.
    let text = format!(
        "upstream = \"http://127.0.0.1:1\"\n\
         [[codec.keys]]\nid = \"new\"\nmaterial = \"{}\"\n\
         [codec.kms.temporal-proxy]\nprovider = \"local\"\n\
         [[codec.kms.temporal-proxy.keys]]\nid = \"{kek_id}\"\n\
         [codec.policies.default]\nactive_key = \"new\"\ndecrypt_keys = [\"{kek_id}\"]\n",
        STANDARD.encode(KEY)
    );
    let config = sealgate::config::Config::parse(
        &text,
        "migration.toml",
        std::path::Path::new("."),
        &|_| None,
    )
    .unwrap();
    assert!(
        !format!("{config:?}").contains(&STANDARD.encode(kek)),
        "the KEK never shows in Debug"
    );
    let pipeline = sealgate::pipeline(&config.codec).unwrap();
    let session = pipeline.session("orders");
    let sealed: Vec<Vec<u8>> = resp["sealed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| STANDARD.decode(s.as_str().unwrap()).unwrap())
        .collect();
    // First pass: the DEK is not cached, so payloads stay as they are and
    // the DEK is noted; after one unwrap they decode.
    assert_eq!(session.decode_payload(&sealed[0]).unwrap(), None);
    assert!(session.fetch_missing().await.unwrap());
    for (o, s) in originals.iter().zip(&sealed) {
        let back = session.decode_payload(s).unwrap().unwrap();
        assert_eq!(
            Payload::decode(back.as_slice()).unwrap(),
            Payload::decode(o.as_slice()).unwrap()
        );
    }
    assert_eq!(
        pipeline
            .deks()
            .stats()
            .unwraps
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
