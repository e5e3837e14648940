use std::sync::atomic::Ordering::Relaxed;

use base64::{Engine, engine::general_purpose::STANDARD};

use super::*;
use crate::keys::kms::{DEFAULT_TIMEOUT, LocalKek, Provider, ProviderConfig, ProviderSettings};

fn kek(id: &str, b: u8) -> Arc<Kek> {
    let provider = Arc::new(
        Provider::new(ProviderConfig {
            name: "local".into(),
            settings: ProviderSettings::Local,
            timeout: DEFAULT_TIMEOUT,
        })
        .unwrap(),
    );
    Arc::new(Kek::local(id, provider, LocalKek::new(&[b; 32]).unwrap()))
}

const DAY: Rotation = Rotation {
    lifetime: Duration::from_secs(86400),
    renew_before: Duration::from_secs(3600),
};

fn store(capacity: usize) -> Arc<DekStore> {
    Arc::new(DekStore::new(capacity, Arc::default()))
}

#[tokio::test]
async fn one_data_key_per_namespace_until_it_ages() {
    let s = store(10);
    let k = kek("kek-1", 1);
    let a1 = s.encrypting_key("a", &k, DAY, false).await.unwrap();
    let a2 = s.encrypting_key("a", &k, DAY, false).await.unwrap();
    let b = s.encrypting_key("b", &k, DAY, false).await.unwrap();
    assert!(Arc::ptr_eq(&a1, &a2));
    assert_ne!(a1.wrapped(), b.wrapped());
    assert_eq!(a1.id(), "kek-1");
    assert_eq!(s.stats().wraps.load(Relaxed), 2);
    // Our own data keys decode from the cache.
    let wrapped = a1.wrapped().unwrap().as_bytes();
    assert!(s.cached("a", "kek-1", wrapped).is_some());
    // ...but never for a KEK that did not wrap them, nor for a call in
    // another namespace (the KMS bound the key to "a").
    assert!(s.cached("a", "kek-2", wrapped).is_none());
    assert!(s.cached("b", "kek-1", wrapped).is_none());

    // A new KEK for the namespace means a new data key.
    let k2 = kek("kek-2", 2);
    let a3 = s.encrypting_key("a", &k2, DAY, false).await.unwrap();
    assert_eq!(a3.id(), "kek-2");
}

#[tokio::test]
async fn expired_keys_are_replaced_and_renewal_runs_in_the_background() {
    let s = store(10);
    let k = kek("kek-1", 1);
    // Already inside the renewal window: the current key is returned at once
    // and a fresh one is prepared off the call path.
    let soon = Rotation {
        lifetime: Duration::from_secs(60),
        renew_before: Duration::from_secs(59),
    };
    let first = s.encrypting_key("a", &k, soon, false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let same = s.encrypting_key("a", &k, soon, false).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &same),
        "the hot path never waits for renewal"
    );
    for _ in 0..100 {
        if s.stats().rotations.load(Relaxed) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let renewed = s.encrypting_key("a", &k, soon, false).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &renewed));

    // A lifetime that has passed: a new key before encrypting.
    let brief = Rotation {
        lifetime: Duration::from_millis(50),
        renew_before: Duration::from_millis(10),
    };
    let old = s.encrypting_key("b", &k, brief, false).await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    let new = s.encrypting_key("b", &k, brief, false).await.unwrap();
    assert_ne!(old.wrapped(), new.wrapped());
}

#[tokio::test]
async fn concurrent_misses_share_one_unwrap_and_the_cache_is_bounded() {
    let k = kek("kek-1", 1);
    let maker = store(10);
    let dek = maker.encrypting_key("a", &k, DAY, false).await.unwrap();
    let wrapped = dek.wrapped().unwrap().as_bytes().to_vec();

    let s = store(2);
    assert!(s.cached("a", "kek-1", &wrapped).is_none());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (s, k, w) = (s.clone(), k.clone(), wrapped.clone());
        tasks.push(tokio::spawn(
            async move { s.unwrap(&k, "a", &w).await.unwrap() },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.stats().unwraps.load(Relaxed),
        1,
        "one KMS call for 8 misses"
    );
    assert!(s.cached("a", "kek-1", &wrapped).is_some());

    // Two more distinct data keys push the first one out.
    for ns in ["b", "c"] {
        let d = maker.encrypting_key(ns, &k, DAY, false).await.unwrap();
        s.unwrap(&k, "a", d.wrapped().unwrap().as_bytes())
            .await
            .unwrap();
    }
    assert!(s.cached("a", "kek-1", &wrapped).is_none());

    // Garbage is refused with the KEK named, not cached as a key.
    let e = s.unwrap(&k, "a", b"!!!").await.unwrap_err();
    assert!(matches!(e, KmsError::NotBase64 { .. }), "{e}");
    let e = s
        .unwrap(&k, "a", STANDARD.encode([0u8; 72]).as_bytes())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("kek-1"), "{e}");
}

#[tokio::test]
async fn refused_data_keys_neither_evict_good_ones_nor_reach_the_kms_twice() {
    let maker = store(8);
    let s = store(2);
    let k = kek("kek-1", 1);
    let good = maker.encrypting_key("a", &k, DAY, false).await.unwrap();
    let good = good.wrapped().unwrap().to_string();
    s.unwrap(&k, "a", good.as_bytes()).await.unwrap();
    // Many garbage data keys: each refused, none evicts the good one.
    for i in 0..10u8 {
        let bad = STANDARD.encode([i; 72]);
        assert!(s.unwrap(&k, "a", bad.as_bytes()).await.is_err());
    }
    assert!(
        s.cached("a", "kek-1", good.as_bytes()).is_some(),
        "evicted by failures"
    );
    // The same garbage again: refused from memory, not by the KMS.
    let failures = s.stats().kms_failures.load(Relaxed);
    assert!(
        s.unwrap(&k, "a", STANDARD.encode([3u8; 72]).as_bytes())
            .await
            .is_err()
    );
    assert_eq!(s.stats().kms_failures.load(Relaxed), failures);
    assert_eq!(s.stats().known_bad.load(Relaxed), 1);
}

#[tokio::test]
async fn first_data_keys_of_namespaces_without_a_policy_are_rate_limited() {
    let s = store(8);
    let k = kek("kek-1", 1);
    let limit = NEW_DEKS_PER_MINUTE as usize;
    for i in 0..limit {
        s.encrypting_key(&format!("invented-{i}"), &k, DAY, true)
            .await
            .unwrap();
    }
    let e = s
        .encrypting_key("one-too-many", &k, DAY, true)
        .await
        .unwrap_err();
    assert!(
        e.is_unavailable() && e.to_string().contains("a minute"),
        "{e}"
    );
    assert_eq!(s.stats().rate_limited.load(Relaxed), 1);
    // Namespaces with a policy of their own, and known ones, go on.
    s.encrypting_key("payments", &k, DAY, false).await.unwrap();
    s.encrypting_key("invented-0", &k, DAY, true).await.unwrap();
    assert_eq!(s.stats().wraps.load(Relaxed), limit as u64 + 1);
}
