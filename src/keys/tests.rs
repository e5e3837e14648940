use super::*;

#[test]
fn debug_never_shows_material() {
    let key = Key::new("k1", &[7u8; 32]).unwrap();
    let shown = format!("{:?}", Keyring::new(vec![key], Some("k1")).unwrap());
    assert!(
        shown.contains("k1") && shown.contains("<redacted>"),
        "{shown}"
    );
    assert!(!shown.contains("7, 7"), "{shown}");
}

#[test]
fn keyring_rules() {
    let k = |id: &str| Key::new(id, &[1u8; 32]).unwrap();
    assert_eq!(
        Keyring::new(vec![k("a"), k("a")], None).unwrap_err(),
        KeyError::DuplicateId("a".into())
    );
    assert_eq!(
        Keyring::new(vec![k("a")], Some("b")).unwrap_err(),
        KeyError::UnknownActive("b".into())
    );
    assert_eq!(
        Key::new("a", &[0; 16]).unwrap_err(),
        KeyError::WrongLength(16)
    );
    assert_eq!(decode_material("not base64!"), Err(KeyError::NotBase64));
    let ring = Keyring::new(vec![k("a"), k("b")], Some("b")).unwrap();
    assert_eq!(ring.active().unwrap().id(), "b");
    assert!(ring.get(b"a").is_some() && ring.get(b"c").is_none());
}

#[test]
fn generated_keys_load() {
    let (id, material) = generate("key").unwrap();
    assert!(id.starts_with("key-") && id.len() == 12);
    let bytes = decode_material(&material).unwrap();
    Key::new(&id, &bytes).unwrap();
    assert_ne!(*generate("key").unwrap().1, *material);
}
