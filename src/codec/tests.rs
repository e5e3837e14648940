use std::sync::atomic::Ordering::Relaxed;

use aes_gcm::{Aes256Gcm, KeyInit, aead::Aead as _};
use prost::Message;
use temporalio_protos::temporal::api::{
    common::v1::{Payload, payload::ExternalPayloadDetails},
    failure::v1::{ApplicationFailureInfo, Failure, failure::FailureInfo},
};

use super::*;
use crate::{
    keys::Key,
    rewrite::rewrite,
    schema::{FAILURE, Schema},
};

const K1: [u8; 32] = [1; 32];
const K2: [u8; 32] = [2; 32];

/// A session that encrypts and encodes failure text (no compression).
fn encrypting_failures() -> Session {
    session(&ChainOptions {
        encryption: true,
        encode_failures: true,
        ..Default::default()
    })
}

/// A session over keys k1 and k2, k1 active.
fn session(opts: &ChainOptions) -> Session {
    let keys = vec![Key::new("k1", &K1).unwrap(), Key::new("k2", &K2).unwrap()];
    Pipeline::fixed(opts, keys, Some("k1")).unwrap().session("")
}

fn chain(compression: bool, encryption: bool) -> Session {
    session(&ChainOptions {
        compression,
        encryption,
        ..Default::default()
    })
}

fn json(data: &str) -> Vec<u8> {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    }
    .encode_to_vec()
}

fn parse(bytes: &[u8]) -> Payload {
    Payload::decode(bytes).unwrap()
}

#[test]
fn encryption_format_matches_the_sdk_samples() {
    let c = chain(false, true);
    let input = json("\"hello\"");
    let out = parse(&c.encode_payload(&input).unwrap().unwrap());
    assert_eq!(out.metadata.len(), 2);
    assert_eq!(out.metadata["encoding"], b"binary/encrypted");
    assert_eq!(out.metadata["encryption-key-id"], b"k1");
    assert_eq!(out.data.len(), NONCE_LEN + input.len() + TAG_LEN);
    // An independent AES-GCM implementation reads nonce ‖ ciphertext ‖ tag.
    let (nonce, sealed) = out.data.split_at(NONCE_LEN);
    let plain = Aes256Gcm::new(&K1.into())
        .decrypt(nonce.into(), sealed)
        .unwrap();
    assert_eq!(plain, input, "the whole marshaled payload is encrypted");
    // Fresh nonce each time.
    let again = parse(&c.encode_payload(&input).unwrap().unwrap());
    assert_ne!(again.data[..NONCE_LEN], out.data[..NONCE_LEN]);
}

#[test]
fn payloads_encrypted_elsewhere_decrypt_with_any_keyring_key() {
    let input = json("{\"from\":\"aes-gcm\"}");
    let nonce = [9u8; NONCE_LEN];
    let mut data = nonce.to_vec();
    data.extend(
        Aes256Gcm::new(&K2.into())
            .encrypt(&nonce.into(), input.as_slice())
            .unwrap(),
    );
    let enc = payload::marshal(
        &[
            ("encoding", b"binary/encrypted"),
            ("encryption-key-id", b"k2"),
        ],
        &data,
        &[],
    );
    // k1 is active, k2 still decrypts.
    assert_eq!(chain(true, true).decode_payload(&enc).unwrap(), Some(input));
}

/// `input` sealed under `key` as `id`, the SDK samples' format.
fn sealed(key: &[u8; 32], id: &str, input: &[u8]) -> Vec<u8> {
    let nonce = [7u8; NONCE_LEN];
    let mut data = nonce.to_vec();
    data.extend(
        Aes256Gcm::new(key.into())
            .encrypt(&nonce.into(), input)
            .unwrap(),
    );
    payload::marshal(
        &[
            ("encoding", b"binary/encrypted"),
            ("encryption-key-id", id.as_bytes()),
        ],
        &data,
        &[],
    )
}

#[test]
fn one_decoder_finds_each_payloads_own_key() {
    // The decoder remembers the last key it looked up: payloads that
    // alternate keys, or name one the keyring lacks, still get their own.
    let c = chain(false, true);
    let mut d = c.decoder();
    let (a, b) = (json("\"a\""), json("\"b\""));
    let cases = [
        (sealed(&K2, "k2", &a), Some(a.clone())),
        (sealed(&K2, "k2", &b), Some(b.clone())),
        (sealed(&K1, "k1", &a), Some(a.clone())),
        // Sealed under k1 but named k2: k2 is tried, and fails.
        (sealed(&K1, "k2", &a), None),
        (sealed(&K1, "other", &a), None),
        (sealed(&K2, "k2", &b), Some(b.clone())),
    ];
    for (i, (enc, want)) in cases.into_iter().enumerate() {
        let mut arena = Arena::take();
        match (d.payload_into(&enc, None, &mut arena), want) {
            (Ok(Replacement::InArena(r)), Some(w)) => assert_eq!(arena.get(r), &w[..], "case {i}"),
            (Err(CodecError::Authentication { key_id }), None) => {
                assert_eq!(key_id, "k2", "case {i}")
            }
            (Ok(Replacement::Kept), None) => {}
            (other, want) => panic!("case {i}: {:?}, wanted {want:?}", other.map(|_| ())),
        }
        arena.give_back();
    }
    assert_eq!(c.stats().unknown_key.load(Relaxed), 1);
}

#[test]
fn unknown_key_ids_pass_through_and_are_counted() {
    let c = chain(false, true);
    let enc = payload::marshal(
        &[
            ("encoding", b"binary/encrypted"),
            ("encryption-key-id", b"other"),
        ],
        &[0u8; 40],
        &[],
    );
    assert_eq!(c.decode_payload(&enc).unwrap(), None);
    assert_eq!(c.stats().unknown_key.load(Relaxed), 1);
}

#[test]
fn tampering_is_an_error_naming_the_key() {
    let c = chain(false, true);
    let mut enc = parse(&c.encode_payload(&json("\"x\"")).unwrap().unwrap());
    let last = enc.data.len() - 1;
    enc.data[last] ^= 1;
    let err = c.decode_payload(&enc.encode_to_vec()).unwrap_err();
    assert!(matches!(&err, CodecError::Authentication { key_id } if key_id == "k1"));
    assert!(err.to_string().contains("\"k1\""), "{err}");
    assert_eq!(c.stats().failed.load(Relaxed), 1);
    enc.data.truncate(20);
    let err = c.decode_payload(&enc.encode_to_vec()).unwrap_err();
    assert!(matches!(err, CodecError::Truncated { len: 20, .. }));
}

#[test]
fn compression_is_skipped_when_it_does_not_shrink() {
    let c = chain(true, false);
    let small = json("1");
    assert_eq!(c.encode_payload(&small).unwrap(), None);
    let big = json(&"abc".repeat(1000));
    let out = c.encode_payload(&big).unwrap().unwrap();
    assert!(out.len() < big.len() / 10);
    let p = parse(&out);
    assert_eq!(p.metadata["encoding"], b"binary/snappy");
    assert_eq!(
        snap::raw::Decoder::new().decompress_vec(&p.data).unwrap(),
        big
    );
    assert_eq!(c.decode_payload(&out).unwrap(), Some(big));
}

#[test]
fn caller_snappy_payloads_are_wrapped_so_decode_is_exact() {
    let c = chain(true, true);
    // Incompressible data that is already labelled binary/snappy.
    let theirs = payload::marshal(&[("encoding", b"binary/snappy")], &[0x00], &[]);
    let enc = c.encode_payload(&theirs).unwrap().unwrap();
    assert_eq!(c.decode_payload(&enc).unwrap(), Some(theirs));
}

#[test]
fn decode_removes_only_sealgates_own_layers() {
    let enc_on = chain(true, true);
    let snappy_only = chain(true, false);
    let big = json(&"abc".repeat(1000));
    // A top-level snappy layer the client applied itself: left for the client,
    // by every chain, and a malformed one never fails the read.
    let theirs = snappy_only.encode_payload(&big).unwrap().unwrap();
    let mut unmarked = parse(&theirs);
    unmarked.metadata.remove("sealgate-codec");
    let unmarked = unmarked.encode_to_vec();
    assert_eq!(enc_on.decode_payload(&unmarked).unwrap(), None);
    assert_eq!(snappy_only.decode_payload(&unmarked).unwrap(), None);
    let junk = payload::marshal(&[("encoding", b"binary/snappy")], b"\xff\xff\xff", &[]);
    assert_eq!(enc_on.decode_payload(&junk).unwrap(), None);
    // sealgate's own outer snappy layer is marked and decodes.
    assert_eq!(parse(&theirs).metadata["sealgate-codec"], b"snappy");
    assert_eq!(enc_on.decode_payload(&theirs).unwrap(), Some(big.clone()));
    // A forged mark on junk passes through and is counted, not an error.
    let forged = payload::marshal(
        &[
            ("encoding", b"binary/snappy"),
            ("sealgate-codec", b"snappy"),
        ],
        b"\xff\xff\xff",
        &[],
    );
    assert_eq!(enc_on.decode_payload(&forged).unwrap(), None);
    assert_eq!(enc_on.stats().bad_unauthenticated.load(Relaxed), 1);
    // Inside our encryption the snappy layer is unmarked (no bytes spent)
    // and still ours; only that one layer is removed.
    let sealed = enc_on.encode_payload(&unmarked).unwrap().unwrap();
    assert_eq!(enc_on.decode_payload(&sealed).unwrap(), Some(unmarked));
}

#[test]
fn sdk_sample_snappy_inside_sample_encryption_decodes() {
    // The SDK samples' layout (migration): their snappy codec, then their
    // encryption codec with a key sealgate holds.
    let c = chain(false, true);
    let input = json(&"secret ".repeat(200));
    let compressed = snap::raw::Encoder::new().compress_vec(&input).unwrap();
    let snappy = payload::marshal(&[("encoding", b"binary/snappy")], &compressed, &[]);
    let sealed = c.encode_payload(&snappy).unwrap().unwrap();
    assert_eq!(c.decode_payload(&sealed).unwrap(), Some(input));
}

#[test]
fn chain_compresses_then_encrypts_and_decodes_in_reverse() {
    let c = chain(true, true);
    let input = json(&"secret ".repeat(200));
    let enc = c.encode_payload(&input).unwrap().unwrap();
    let outer = parse(&enc);
    assert_eq!(outer.metadata["encoding"], b"binary/encrypted");
    assert!(!enc.windows(6).any(|w| w == b"secret"));
    let (nonce, sealed) = outer.data.split_at(NONCE_LEN);
    let inner = Aes256Gcm::new(&K1.into())
        .decrypt(nonce.into(), sealed)
        .unwrap();
    assert_eq!(parse(&inner).metadata["encoding"], b"binary/snappy");
    assert_eq!(c.decode_payload(&enc).unwrap().as_ref(), Some(&input));
    // Decoding knows both formats whatever the encode settings.
    assert_eq!(
        chain(false, false).decode_payload(&enc).unwrap(),
        Some(input)
    );
}

#[test]
fn foreign_and_malformed_payloads_are_left_alone_on_decode() {
    let c = chain(true, true);
    assert_eq!(c.decode_payload(&json("\"plain\"")).unwrap(), None);
    assert_eq!(c.decode_payload(&[0xff, 0xff]).unwrap(), None);
    // ...but an encoder refuses what it cannot parse (fail closed).
    assert!(matches!(
        c.encode_payload(&[0x0a, 0x10]),
        Err(CodecError::MalformedPayload(_))
    ));
}

#[test]
fn external_payloads_stay_visible_on_the_outer_payload() {
    let c = chain(true, true);
    let input = Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: b"\"ref\"".to_vec(),
        external_payloads: vec![ExternalPayloadDetails {
            size_bytes: 1 << 20,
        }],
    }
    .encode_to_vec();
    let enc = c.encode_payload(&input).unwrap().unwrap();
    assert_eq!(
        parse(&enc).external_payloads,
        vec![ExternalPayloadDetails {
            size_bytes: 1 << 20
        }]
    );
    assert_eq!(c.decode_payload(&enc).unwrap(), Some(input));
}

#[test]
fn decompression_is_bounded() {
    let opts = ChainOptions {
        compression: true,
        max_decoded: Some(1000),
        ..Default::default()
    };
    let c = Pipeline::fixed(&opts, Vec::new(), None)
        .unwrap()
        .session("");
    let enc = c.encode_payload(&json(&"z".repeat(5000))).unwrap().unwrap();
    // Outer (marked, unauthenticated) layer: left as it is, and counted.
    assert_eq!(c.decode_payload(&enc).unwrap(), None);
    assert_eq!(c.stats().bad_unauthenticated.load(Relaxed), 1);
    // Inside the encryption layer: an error.
    let c = session(&ChainOptions {
        compression: true,
        encryption: true,
        max_decoded: Some(1000),
        ..Default::default()
    });
    let enc = c.encode_payload(&json(&"z".repeat(5000))).unwrap().unwrap();
    assert!(matches!(
        c.decode_payload(&enc),
        Err(CodecError::TooLarge { limit: 1000, .. })
    ));
}

#[test]
fn encryption_without_an_active_key_is_refused() {
    let opts = ChainOptions {
        encryption: true,
        ..Default::default()
    };
    // Fail closed: nothing is encoded, the call gets an error.
    let s = Pipeline::fixed(&opts, vec![Key::new("k1", &K1).unwrap()], None)
        .unwrap()
        .session("");
    assert!(matches!(
        s.encode_payload(&json("1")),
        Err(CodecError::NoActiveKey { .. })
    ));
}

fn app_failure(message: &str, stack: &str, cause: Option<Failure>) -> Failure {
    Failure {
        message: message.into(),
        source: "PythonSDK".into(),
        stack_trace: stack.into(),
        cause: cause.map(Box::new),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(
            ApplicationFailureInfo {
                r#type: "ValueError".into(),
                details: None,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

#[test]
fn failure_encoding_hides_messages_and_restores_them() {
    let s = Schema::embedded().unwrap();
    let id = s.message_id(FAILURE).unwrap();
    let opts = ChainOptions {
        compression: true,
        encryption: true,
        encode_failures: true,
        ..Default::default()
    };
    let c = session(&opts);
    let original = app_failure(
        "card 4111 declined",
        "at charge()",
        Some(app_failure("inner secret", "", None)),
    );
    let bytes = original.encode_to_vec();
    let enc = rewrite(&s, id, &bytes, &mut c.encoder())
        .unwrap()
        .into_owned();
    assert!(!enc.windows(4).any(|w| w == b"4111" || w == b"inne"));
    let stored = Failure::decode(enc.as_slice()).unwrap();
    assert_eq!(stored.message, "Encoded failure");
    assert_eq!(stored.stack_trace, "");
    assert_eq!(stored.source, "PythonSDK", "other fields stay");
    assert_eq!(
        stored.encoded_attributes.unwrap().metadata["encoding"],
        b"binary/encrypted"
    );
    assert_eq!(stored.cause.unwrap().message, "Encoded failure");
    let dec = rewrite(&s, id, &enc, &mut c.decoder()).unwrap();
    assert_eq!(Failure::decode(dec.as_ref()).unwrap(), original);

    // Without failure encoding, messages stay and nothing changes.
    let plain = chain(true, true);
    assert!(matches!(
        rewrite(&s, id, &bytes, &mut plain.encoder()).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
    // Attributes an SDK encoded itself are only decrypted, never unpacked.
    let sdk = Failure {
        message: "Encoded failure".into(),
        encoded_attributes: Some(parse(&json("{\"message\":\"m\",\"stack_trace\":\"\"}"))),
        ..Default::default()
    }
    .encode_to_vec();
    let enc = rewrite(&s, id, &sdk, &mut c.encoder())
        .unwrap()
        .into_owned();
    let dec = rewrite(&s, id, &enc, &mut c.decoder()).unwrap();
    assert_eq!(dec.as_ref(), sdk.as_slice());
}

#[test]
fn nonces_never_repeat_across_batches() {
    let c = chain(false, true);
    let input = json("1");
    let mut seen = std::collections::HashSet::new();
    for _ in 0..1000 {
        let out = parse(&c.encode_payload(&input).unwrap().unwrap());
        assert!(seen.insert(out.data[..NONCE_LEN].to_vec()), "nonce reused");
    }
}

/// A legacy Nexus handler error as sdk-core writes it for a caller without
/// failure support (captured from the Python SDK 1.35 and a dev server).
fn legacy_nexus_failed(details: &str, typed: bool) -> Vec<u8> {
    use temporalio_protos::temporal::api::{
        nexus::v1::{Failure as NexusFailure, HandlerError},
        workflowservice::v1::RespondNexusTaskFailedRequest,
    };
    #[allow(deprecated)]
    RespondNexusTaskFailedRequest {
        namespace: "default".into(),
        task_token: b"token".to_vec(),
        error: Some(HandlerError {
            error_type: "BAD_REQUEST".into(),
            failure: Some(NexusFailure {
                message: "bad req msg".into(),
                stack_trace: "at handler.py:1".into(),
                metadata: if typed {
                    [("type".to_string(), FAILURE.to_string())].into()
                } else {
                    Default::default()
                },
                details: details.as_bytes().to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

const LEGACY_DETAILS: &str = r#"{"stackTrace":"at handler.py:1","cause":{"message":"hcause","applicationFailureInfo":{"type":"HType","details":{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"InNlY3JldC1kZXRhaWwi"}]}}},"nexusHandlerFailureInfo":{"type":"BAD_REQUEST"}}"#;

#[test]
fn legacy_nexus_failures_are_encoded_inside_their_json() {
    use temporalio_protos::temporal::api::workflowservice::v1::RespondNexusTaskFailedRequest;
    let s = Schema::embedded().unwrap();
    let id = s
        .message_id("temporal.api.workflowservice.v1.RespondNexusTaskFailedRequest")
        .unwrap();
    let c = encrypting_failures();
    let raw = legacy_nexus_failed(LEGACY_DETAILS, true);
    let enc = rewrite(&s, id, &raw, &mut c.encoder())
        .unwrap()
        .into_owned();
    #[allow(deprecated)]
    let nf = RespondNexusTaskFailedRequest::decode(enc.as_slice())
        .unwrap()
        .error
        .unwrap()
        .failure
        .unwrap();
    // No text and no payload in clear: "secret-detail" is base64 "InNlY3JldC1kZXRhaWwi".
    let details = String::from_utf8(nf.details.clone()).unwrap();
    for clear in [
        "InNlY3JldC1kZXRhaWwi",
        "hcause",
        "handler.py",
        "bad req msg",
    ] {
        assert!(
            !details.contains(clear) && !nf.message.contains(clear),
            "{clear} in {details}"
        );
    }
    assert_eq!(nf.message, "Encoded failure");
    assert_eq!(nf.stack_trace, "");
    assert_eq!(nf.metadata["type"], FAILURE);
    // The server parses details as protojson: it is one, with the structure kept.
    let v: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(v["nexusHandlerFailureInfo"]["type"], "BAD_REQUEST");
    assert_eq!(v["cause"]["applicationFailureInfo"]["type"], "HType");
    assert!(v["encodedAttributes"]["metadata"]["encoding"].is_string());
    assert!(v.get("message").is_none());
    // Reading it back (as the server would, then decoding) restores everything.
    let failure_id = s.message_id(FAILURE).unwrap();
    let pool = s.pool().unwrap();
    let mut de = serde_json::Deserializer::from_str(&details);
    let mut stored = prost_reflect::DynamicMessage::deserialize(
        pool.get_message_by_name(FAILURE).unwrap(),
        &mut de,
    )
    .unwrap();
    stored.set_field_by_name("message", prost_reflect::Value::String(nf.message.clone()));
    let stored = stored.encode_to_vec();
    let back = rewrite(&s, failure_id, &stored, &mut c.decoder()).unwrap();
    let back = Failure::decode(back.as_ref()).unwrap();
    assert_eq!(back.message, "bad req msg");
    assert_eq!(back.stack_trace, "at handler.py:1");
    let cause = back.cause.unwrap();
    assert_eq!(cause.message, "hcause");
    let Some(FailureInfo::ApplicationFailureInfo(info)) = cause.failure_info else {
        panic!("failure info lost")
    };
    assert_eq!(info.details.unwrap().payloads[0].data, b"\"secret-detail\"");
}

#[test]
fn nexus_failures_that_cannot_be_rewritten_are_refused() {
    let s = Schema::embedded().unwrap();
    let id = s
        .message_id("temporal.api.workflowservice.v1.RespondNexusTaskFailedRequest")
        .unwrap();
    let c = encrypting_failures();
    // Unknown JSON fields may hold what sealgate cannot see.
    let unknown = legacy_nexus_failed(r#"{"futureField":{"data":"c2VjcmV0"}}"#, true);
    let err = rewrite(&s, id, &unknown, &mut c.encoder()).unwrap_err();
    assert!(err.is_malformed(), "{err}");
    assert!(err.to_string().contains("Nexus failure"), "{err}");
    // Not a Temporal Failure: arbitrary JSON details cannot be encrypted.
    let untyped = legacy_nexus_failed(r#"{"x":1}"#, false);
    let err = rewrite(&s, id, &untyped, &mut c.encoder()).unwrap_err();
    assert!(err.to_string().contains("not a Temporal Failure"), "{err}");
    // Without failure encoding, an untyped failure with text only passes.
    let plain = session(&ChainOptions {
        encryption: true,
        ..Default::default()
    });
    let text_only = legacy_nexus_failed("", false);
    assert!(rewrite(&s, id, &text_only, &mut plain.encoder()).is_ok());
    assert!(rewrite(&s, id, &text_only, &mut c.encoder()).is_err());
}

/// A pipeline whose default policy binds payloads to their namespace, with
/// `active` a static key ("k1") or a local KEK ("kek").
fn bound_pipeline(active: &str) -> Pipeline {
    use crate::keys::{
        KeyOpsRegistry,
        envelope::DekStore,
        kms::{DEFAULT_TIMEOUT, ProviderConfig, ProviderSettings},
        policy::{KeySpec, KeysSpec, Policies, PolicySpec, ProviderSpec},
    };
    let key = |id: &str, b: u8| KeySpec {
        id: id.into(),
        material: zeroize::Zeroizing::new(vec![b; 32]),
    };
    let spec = KeysSpec {
        keys: vec![key("k1", 1)],
        providers: vec![ProviderSpec {
            config: ProviderConfig {
                name: "local".into(),
                settings: ProviderSettings::Local,
                timeout: DEFAULT_TIMEOUT,
            },
            local_keys: vec![key("kek", 4)],
            remote_keys: Vec::new(),
        }],
        policies: vec![PolicySpec {
            active_key: Some(active.into()),
            decrypt_keys: vec!["k1".into(), "kek".into()],
            bind_namespace: true,
            ..PolicySpec::new("default")
        }],
    };
    let ops = std::sync::Arc::new(KeyOpsRegistry::default());
    let policies = Policies::build(&spec, true, &ops, None).unwrap();
    let setup = Setup {
        chain: Chain::new(
            &ChainOptions {
                encryption: true,
                ..Default::default()
            },
            Default::default(),
        ),
        policies,
    };
    Pipeline::new(
        setup,
        std::sync::Arc::new(DekStore::new(10, ops.clone())),
        ops,
    )
}

#[tokio::test]
async fn bound_payloads_decrypt_only_in_their_namespace() {
    for active in ["k1", "kek"] {
        let p = bound_pipeline(active);
        let mut orders = p.session("orders");
        orders.prepare_encode().await.unwrap();
        let input = json("\"card 4111\"");
        let enc = orders.encode_payload(&input).unwrap().unwrap();
        let view = parse(&enc);
        assert_eq!(view.metadata["sealgate-bound"], b"namespace", "{active}");
        assert_eq!(orders.decode_payload(&enc).unwrap(), Some(input.clone()));
        // In another namespace: the associated data differs, GCM refuses.
        let payments = p.session("payments");
        let decoded = payments
            .decode_with(|d| Ok::<_, CodecError>(d.chain.decode_payload(&enc, &d.keys)))
            .await
            .unwrap();
        assert!(
            matches!(decoded, Err(CodecError::Authentication { .. })),
            "{active}: {decoded:?}"
        );
        // Stripping the marker does not help: the tag covers the namespace.
        let mut stripped = view.clone();
        stripped.metadata.remove("sealgate-bound");
        assert!(matches!(
            orders.decode_payload(&stripped.encode_to_vec()),
            Err(CodecError::Authentication { .. })
        ));
        // A binding this build does not know is named, not guessed.
        let mut odd = view;
        odd.metadata
            .insert("sealgate-bound".into(), b"tenant".to_vec());
        let e = orders.decode_payload(&odd.encode_to_vec()).unwrap_err();
        assert!(e.to_string().contains("\"tenant\""), "{e}");
    }
}

#[test]
fn failed_query_text_is_encoded_with_or_without_a_failure() {
    use temporalio_protos::temporal::api::workflowservice::v1::RespondQueryTaskCompletedRequest;
    let s = Schema::embedded().unwrap();
    let id = s
        .message_id("temporal.api.workflowservice.v1.RespondQueryTaskCompletedRequest")
        .unwrap();
    let c = encrypting_failures();
    let text = "IllegalStateException: card 4111\n\tat Handler.query(Handler.java:9)";
    // The Java SDK: error_message only, no failure.
    let java = RespondQueryTaskCompletedRequest {
        task_token: b"t".to_vec(),
        completed_type: 2,
        error_message: text.into(),
        ..Default::default()
    };
    // The Python SDK: the failure, and its message duplicated.
    let python = RespondQueryTaskCompletedRequest {
        failure: Some(Failure {
            message: text.into(),
            ..Default::default()
        }),
        ..java.clone()
    };
    for (sdk, req) in [("java", java), ("python", python)] {
        let raw = req.encode_to_vec();
        let enc = rewrite(&s, id, &raw, &mut c.encoder())
            .unwrap()
            .into_owned();
        assert!(
            !enc.windows(4).any(|w| w == b"4111"),
            "{sdk}: text in clear"
        );
        let out = RespondQueryTaskCompletedRequest::decode(enc.as_slice()).unwrap();
        assert_eq!(out.error_message, "Encoded failure", "{sdk}");
        let failure = out.failure.unwrap();
        assert_eq!(failure.message, "Encoded failure", "{sdk}");
        // Only the failure sealgate made says so (the way back drops it).
        let made = if sdk == "java" { "sealgate" } else { "" };
        assert_eq!(failure.source, made, "{sdk}");
        // What the server hands the caller decodes to the text.
        let stored = failure.encode_to_vec();
        let back = rewrite(
            &s,
            s.message_id(FAILURE).unwrap(),
            &stored,
            &mut c.decoder(),
        )
        .unwrap();
        assert_eq!(
            Failure::decode(back.as_ref()).unwrap().message,
            text,
            "{sdk}"
        );
    }
    // With failure encoding off, the request goes as it came.
    let off = chain(false, true);
    let raw = RespondQueryTaskCompletedRequest {
        error_message: text.into(),
        ..Default::default()
    }
    .encode_to_vec();
    assert!(matches!(
        rewrite(&s, id, &raw, &mut off.encoder()).unwrap(),
        std::borrow::Cow::Borrowed(_)
    ));
}

fn offloading(threshold: usize) -> Pipeline {
    let opts = ChainOptions {
        compression: false,
        encryption: true,
        encode_failures: false,
        max_decoded: None,
    };
    let keys = vec![Key::new("k1", &K1).unwrap()];
    let store = crate::storage::Store::new(crate::storage::StorageConfig {
        enabled: true,
        bucket: "payloads".into(),
        endpoint: None,
        region: None,
        prefix: String::new(),
        threshold,
        path_style: false,
        max_concurrent: 1,
        namespaces: vec![],
    });
    Pipeline::fixed(&opts, keys, Some("k1"))
        .unwrap()
        .with_store(Some(Arc::new(store)))
}

#[test]
fn a_payload_over_the_threshold_is_stored_encrypted_and_a_reference_sent() {
    let pipeline = offloading(1000);
    let s = pipeline.session("orders");
    let big = json(&"x".repeat(5000));
    let small = json("small");
    let out = s.encoder().payload(&big).unwrap().unwrap();
    let reference = parse(&out);
    assert_eq!(reference.metadata["encoding"], b"json/protobuf");
    assert!(reference.data.len() < 400, "only the reference is sent");
    // The small one is encrypted inline.
    let inline = s.encoder().payload(&small).unwrap().unwrap();
    assert_eq!(parse(&inline).metadata["encoding"], ENCODING_ENCRYPTED);
    let o = s.offloads.as_ref().unwrap();
    let pending = o.pending.lock().unwrap();
    assert_eq!(pending.len(), 1);
    let (claim, object) = &pending[0];
    // The object is the encrypted payload: no plaintext in the bucket.
    assert_eq!(parse(object).metadata["encoding"], ENCODING_ENCRYPTED);
    assert!(!object.windows(5).any(|w| w == b"xxxxx"));
    assert_eq!(claim.sha256, crate::storage::sha256_hex(object));
    assert_eq!(
        reference.external_payloads[0].size_bytes as usize,
        object.len()
    );
    assert!(claim.key.starts_with("v0/ns/orders/d/sha256/"));

    // On the way back: first noted, then, once fetched, inlined decoded.
    let back = pipeline.session("orders");
    let d = back.offloads.as_ref().unwrap();
    assert_eq!(back.decoder().payload(&out).unwrap(), None);
    assert_eq!(
        d.wanted.lock().unwrap().as_slice(),
        std::slice::from_ref(claim)
    );
    d.fetched
        .lock()
        .unwrap()
        .insert(claim.clone(), object.clone());
    assert_eq!(back.decoder().payload(&out).unwrap(), Some(big));
}

#[test]
fn the_codec_server_can_leave_references_as_they_are() {
    let pipeline = offloading(10);
    let s = pipeline.session("orders");
    let out = s
        .encoder()
        .payload(&json(&"y".repeat(100)))
        .unwrap()
        .unwrap();
    let preserve = pipeline.session_with("orders", true);
    assert_eq!(preserve.decoder().payload(&out).unwrap(), None);
    assert!(
        preserve
            .offloads
            .as_ref()
            .unwrap()
            .wanted
            .lock()
            .unwrap()
            .is_empty()
    );
}
