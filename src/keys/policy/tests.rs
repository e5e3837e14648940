use super::*;

fn key(id: &str, b: u8) -> KeySpec {
    KeySpec {
        id: id.into(),
        material: Zeroizing::new(vec![b; 32]),
    }
}

fn spec(policies: Vec<PolicySpec>) -> KeysSpec {
    KeysSpec {
        keys: vec![key("k-old", 1), key("k-new", 2), key("k-pay", 3)],
        providers: vec![ProviderSpec {
            config: ProviderConfig {
                name: "local".into(),
                settings: ProviderSettings::Local,
                timeout: super::super::kms::DEFAULT_TIMEOUT,
            },
            local_keys: vec![key("kek-1", 4)],
            remote_keys: Vec::new(),
        }],
        policies,
    }
}

fn policy(name: &str, active: &str, decrypt: &[&str]) -> PolicySpec {
    PolicySpec {
        active_key: Some(active.into()),
        decrypt_keys: decrypt.iter().map(|s| s.to_string()).collect(),
        ..PolicySpec::new(name)
    }
}

#[test]
fn namespaces_without_an_override_use_the_default() {
    let ops = KeyOpsRegistry::default();
    let p = Policies::build(
        &spec(vec![
            policy("default", "k-new", &["k-old"]),
            policy("payments", "kek-1", &["k-pay"]),
        ]),
        true,
        &ops,
        None,
    )
    .unwrap();
    let d = p.for_namespace("created-later");
    assert_eq!(d.name(), "default");
    assert_eq!(d.format(), "static");
    assert_eq!(d.active_id(), Some("k-new"));
    assert!(d.static_key(b"k-old").is_some() && d.static_key(b"k-pay").is_none());
    let pay = p.for_namespace("payments");
    assert_eq!(pay.format(), "envelope");
    assert!(pay.kek(b"kek-1").is_some() && pay.static_key(b"k-new").is_none());
    assert_eq!(pay.decrypt_ids(), ["k-pay", "kek-1"]);
}

#[test]
fn encryption_needs_a_default_policy_with_an_active_key() {
    let ops = KeyOpsRegistry::default();
    let e = Policies::build(
        &spec(vec![policy("payments", "kek-1", &[])]),
        true,
        &ops,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, PolicyError::NoDefault), "{e}");
    let e = Policies::build(&spec(vec![PolicySpec::new("default")]), true, &ops, None).unwrap_err();
    assert!(matches!(e, PolicyError::NoActiveKey(_)), "{e}");
    let e = Policies::build(
        &spec(vec![policy("default", "nope", &[])]),
        true,
        &ops,
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
}

#[test]
fn decrypt_only_posture_decrypts_with_every_key() {
    let ops = KeyOpsRegistry::default();
    // Encryption off and no policy at all: every key still decrypts.
    let p = Policies::build(&spec(Vec::new()), false, &ops, None).unwrap();
    let d = p.for_namespace("any");
    assert_eq!(d.format(), "decrypt-only");
    assert!(d.encrypt().is_none());
    assert_eq!(d.decrypt_ids(), ["k-new", "k-old", "k-pay", "kek-1"]);
    // With a policy, its active key keeps decrypting.
    let p = Policies::build(
        &spec(vec![policy("default", "k-new", &[])]),
        false,
        &ops,
        None,
    )
    .unwrap();
    assert!(p.default_policy().encrypt().is_none());
    assert!(p.default_policy().static_key(b"k-new").is_some());
}

#[test]
fn providers_survive_a_rebuild_with_the_same_settings() {
    let ops = KeyOpsRegistry::default();
    let s = spec(vec![policy("default", "kek-1", &[])]);
    let a = Policies::build(&s, true, &ops, None).unwrap();
    let b = Policies::build(&s, true, &ops, Some(&a)).unwrap();
    assert!(Arc::ptr_eq(&a.providers[0], &b.providers[0]));
}

#[test]
fn ids_are_unique_across_keys_and_keks() {
    let ops = KeyOpsRegistry::default();
    let mut s = spec(vec![policy("default", "k-new", &[])]);
    s.providers[0].local_keys.push(key("k-old", 9));
    let e = Policies::build(&s, true, &ops, None).unwrap_err();
    assert!(
        matches!(e, PolicyError::Duplicate(ref id) if id == "k-old"),
        "{e}"
    );
}
