use super::*;

fn config() -> StorageConfig {
    StorageConfig {
        enabled: true,
        bucket: "payloads".into(),
        endpoint: None,
        region: None,
        prefix: "sealgate/".into(),
        threshold: DEFAULT_THRESHOLD,
        path_style: false,
        max_concurrent: 4,
        namespaces: vec![
            NamespacePolicy {
                namespace: "tiny-*".into(),
                enabled: false,
                bucket: None,
                threshold: None,
            },
            NamespacePolicy {
                namespace: "orders".into(),
                enabled: true,
                bucket: Some("orders-payloads".into()),
                threshold: Some(1 << 20),
            },
        ],
    }
}

#[test]
fn policies_are_per_namespace_first_match_wins() {
    let s = Store::new(config());
    assert_eq!(
        s.policy("billing"),
        Some(Offload {
            bucket: "payloads".into(),
            threshold: DEFAULT_THRESHOLD
        })
    );
    assert_eq!(s.policy("tiny-1"), None);
    assert_eq!(
        s.policy("orders"),
        Some(Offload {
            bucket: "orders-payloads".into(),
            threshold: 1 << 20
        })
    );
}

#[test]
fn keys_are_content_addressed_as_the_sdk_driver_lays_them_out() {
    let s = Store::new(config());
    let h = sha256_hex(b"object");
    assert_eq!(h.len(), 64);
    assert_eq!(
        s.key("orders.a1b2c", &h),
        format!("sealgate/v0/ns/orders.a1b2c/d/sha256/{h}")
    );
    assert_eq!(
        s.key("a b/c", &h),
        format!("sealgate/v0/ns/a%20b%2Fc/d/sha256/{h}")
    );
}

#[test]
fn a_reference_round_trips_and_carries_the_stored_size() {
    use prost::Message;
    let claim = Claim {
        bucket: "payloads".into(),
        key: "v0/ns/default/d/sha256/ab".into(),
        sha256: "ab".into(),
    };
    let bytes = reference_payload(&claim, 300_000);
    let p =
        temporalio_protos::temporal::api::common::v1::Payload::decode(bytes.as_slice()).unwrap();
    assert_eq!(p.metadata["encoding"], b"json/protobuf");
    assert_eq!(p.metadata["messageType"], REFERENCE_TYPE.as_bytes());
    assert_eq!(p.external_payloads.len(), 1);
    assert_eq!(p.external_payloads[0].size_bytes, 300_000);
    let json: serde_json::Value = serde_json::from_slice(&p.data).unwrap();
    assert_eq!(json["driverName"], DRIVER);
    let back = parse_reference(
        Some(b"json/protobuf"),
        Some(REFERENCE_TYPE.as_bytes()),
        &p.data,
    )
    .unwrap();
    assert_eq!(back, Some(claim));
}

#[test]
fn an_sdk_drivers_reference_is_read_and_others_are_refused() {
    // As the Python SDK's S3 driver writes one.
    let sdk = br#"{"claimData":{"bucket":"b","hash_algorithm":"sha256","hash_value":"ABCD","key":"v0/d/sha256/abcd"},"driverName":"aws.s3driver"}"#;
    let c = parse_reference(Some(b"json/protobuf"), Some(REFERENCE_TYPE.as_bytes()), sdk)
        .unwrap()
        .unwrap();
    assert_eq!((c.bucket.as_str(), c.sha256.as_str()), ("b", "abcd"));
    // Not a reference at all.
    assert_eq!(
        parse_reference(Some(b"json/plain"), None, b"{}").unwrap(),
        None
    );
    // Another driver: an error, not a silent pass.
    let other = br#"{"claimData":{},"driverName":"my.driver"}"#;
    assert!(
        parse_reference(
            Some(b"json/protobuf"),
            Some(REFERENCE_TYPE.as_bytes()),
            other
        )
        .is_err()
    );
}

#[test]
fn only_a_bare_reference_passes_the_audit_in_clear() {
    let claim = Claim {
        bucket: "b".into(),
        key: "v0/d/sha256/ab".into(),
        sha256: "ab".into(),
    };
    let bytes = reference_payload(&claim, 10);
    let view = crate::codec::PayloadView::parse(&bytes).unwrap();
    assert!(is_own_reference(view.metadata_entries(), view.data));
    let meta = view.metadata_entries().to_vec();
    // Anything more in the JSON could carry plaintext: refused.
    let extra = br#"{"claimData":{"bucket":"b","hash_algorithm":"sha256","hash_value":"ab","key":"k","note":"SECRET"},"driverName":"aws.s3driver"}"#;
    assert!(!is_own_reference(&meta, extra));
    let extra_top = br#"{"claimData":{"bucket":"b","hash_algorithm":"sha256","hash_value":"ab","key":"k"},"driverName":"aws.s3driver","x":"SECRET"}"#;
    assert!(!is_own_reference(&meta, extra_top));
    // More metadata: refused.
    let mut more = meta.clone();
    more.push((b"secret".as_slice(), b"SECRET".as_slice()));
    assert!(!is_own_reference(&more, view.data));
}
