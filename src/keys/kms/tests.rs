use super::*;
use crate::keys::KeyError;

fn local_provider() -> Arc<Provider> {
    Arc::new(
        Provider::new(ProviderConfig {
            name: "local".into(),
            settings: ProviderSettings::Local,
            timeout: DEFAULT_TIMEOUT,
        })
        .unwrap(),
    )
}

#[tokio::test]
async fn local_kek_wraps_in_the_secretbox_layout() {
    let kek = Kek::local("kek-1", local_provider(), LocalKek::new(&[9; 32]).unwrap());
    let dek = [4u8; 32];
    let wrapped = kek.wrap(&dek, "ns").await.unwrap();
    // nonce(24) ‖ tag(16) ‖ ciphertext(32)
    assert_eq!(wrapped.len(), 24 + 16 + 32);
    assert_eq!(&kek.unwrap(&wrapped, "ns").await.unwrap()[..], &dek);
    // Two wraps of the same key differ (random nonce).
    assert_ne!(kek.wrap(&dek, "ns").await.unwrap(), wrapped);

    let mut tampered = wrapped.clone();
    tampered[30] ^= 1;
    let e = kek.unwrap(&tampered, "ns").await.unwrap_err();
    assert!(e.to_string().contains("does not authenticate"), "{e}");
    assert!(!e.is_unavailable());
    let other = Kek::local("kek-2", local_provider(), LocalKek::new(&[8; 32]).unwrap());
    assert!(other.unwrap(&wrapped, "ns").await.is_err());
}

#[test]
fn temporal_proxy_ids_carry_their_key_and_are_redacted() {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let id = format!("base64key://{}", STANDARD.encode([7u8; 32]));
    let m = LocalKek::material_from_uri(&id).unwrap().unwrap();
    assert_eq!(&m[..], &[7u8; 32]);
    assert!(LocalKek::material_from_uri("kek-1").is_none());
    assert_eq!(
        LocalKek::material_from_uri("base64key://c2hvcnQ=")
            .unwrap()
            .unwrap_err(),
        KeyError::WrongLength(5)
    );
    assert_eq!(redact_id(&id), "base64key://<redacted>");
    let kek = Kek::local(&id, local_provider(), LocalKek::new(&m).unwrap());
    assert!(!format!("{kek:?}").contains(&STANDARD.encode([7u8; 32])));
}

#[tokio::test]
async fn an_unreachable_extension_is_unavailable_and_named() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = Arc::new(
        Provider::new(ProviderConfig {
            name: "hsm".into(),
            settings: ProviderSettings::Extension(ExtensionSettings {
                endpoint: format!("http://127.0.0.1:{port}"),
                ca_pem: None,
            }),
            timeout: Duration::from_secs(2),
        })
        .unwrap(),
    );
    let kek = Kek::remote("hsm-key-1", provider);
    let e = kek.wrap(&[1; 32], "ns").await.unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("\"hsm\"") && text.contains("hsm-key-1"),
        "{text}"
    );
}

#[test]
fn temporal_proxy_aws_urls_map_to_key_ids() {
    use super::aws::aws_key_id;
    let arn = "arn:aws:kms:us-east-1:111122223333:key/1234";
    assert_eq!(aws_key_id(arn), arn);
    assert_eq!(
        aws_key_id(&format!("awskms:///{arn}?region=us-east-1")),
        arn
    );
    assert_eq!(
        aws_key_id("awskms://alias/sealgate?region=eu-west-1"),
        "alias/sealgate"
    );
}
