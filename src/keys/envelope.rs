//! Envelope encryption: one random data key (DEK) per namespace, wrapped by
//! the policy's KEK, rotated by age off the hot path, and a bounded cache of
//! unwrapped DEKs so that KMS calls stay rare and concurrent misses share
//! one call.
//!
//! The store outlives reloads: a namespace keeps its DEK as long as its
//! policy's KEK stays the same, and cached DEKs are only used when the
//! current policy still names their KEK.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use dashmap::DashMap;
use tokio::sync::OnceCell;

use super::{
    Key, KeyOpsRegistry,
    kms::{Kek, KmsError},
    random_key,
};

/// Default number of unwrapped DEKs kept.
pub const DEFAULT_CACHE_SIZE: usize = 1000;
/// Most namespaces holding a current DEK at once; beyond it the oldest
/// namespace's DEK is dropped (and re-created on its next call).
const MAX_NAMESPACES: usize = 4096;
/// First data keys for namespaces without a policy of their own, per
/// minute (each is a KMS Wrap; invented names must not run up the bill).
pub const NEW_DEKS_PER_MINUTE: u32 = 60;
/// How long a wrapped DEK the KMS refused to unwrap is refused without
/// asking again.
const FAILED_UNWRAP_TTL: Duration = Duration::from_secs(60);
/// Most refused wrapped DEKs remembered.
const MAX_FAILED: usize = 10_000;

/// KMS and cache counters.
#[derive(Debug, Default)]
pub struct EnvelopeStats {
    pub wraps: AtomicU64,
    pub unwraps: AtomicU64,
    pub kms_failures: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// DEKs created (first use of a namespace, or rotation).
    pub rotations: AtomicU64,
    /// First DEKs refused by the per-minute limit.
    pub rate_limited: AtomicU64,
    /// Unwraps refused from the negative cache, without a KMS call.
    pub known_bad: AtomicU64,
}

/// A token bucket: `per_minute` tokens, refilled continuously.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// How long a namespace's DEK encrypts, and when a fresh one is prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub lifetime: Duration,
    pub renew_before: Duration,
}

struct Dek {
    key: Arc<Key>,
    renew_at: Instant,
    expires: Instant,
}

#[derive(Default)]
struct Slot {
    current: RwLock<Option<Arc<Dek>>>,
    renewing: AtomicBool,
    /// Held while a DEK is being created synchronously, so concurrent first
    /// calls make one KMS call.
    create: tokio::sync::Mutex<()>,
}

impl Slot {
    fn get(&self) -> Option<Arc<Dek>> {
        self.current.read().ok().and_then(|g| g.clone())
    }

    fn set(&self, dek: Arc<Dek>) {
        if let Ok(mut g) = self.current.write() {
            *g = Some(dek);
        }
    }
}

type CacheCell = Arc<OnceCell<Arc<Key>>>;

/// A DEK encrypts while it was wrapped by the policy's KEK and is not expired.
fn usable(d: &Dek, kek: &Kek) -> bool {
    d.key.id() == kek.id() && Instant::now() < d.expires
}

/// Current DEKs by namespace and unwrapped DEKs by their wrapped form.
pub struct DekStore {
    slots: DashMap<Box<str>, Arc<Slot>>,
    slot_order: Mutex<VecDeque<Box<str>>>,
    /// Keyed by namespace and the `encryption-dek` value as it appears in
    /// payloads ([`cache_key`]): a data key unwrapped for one namespace is
    /// never handed to a call in another (the KMS binds it to the namespace
    /// it was wrapped for; the cache must not undo that).
    cache: DashMap<Box<[u8]>, CacheCell>,
    cache_order: Mutex<VecDeque<Box<[u8]>>>,
    capacity: usize,
    ops: Arc<KeyOpsRegistry>,
    stats: EnvelopeStats,
    new_deks: Mutex<Bucket>,
    /// Wrapped DEKs the KMS refused (by [`cache_key`]), and when.
    failed: DashMap<Box<[u8]>, Instant>,
}

/// `namespace ‖ 0 ‖ wrapped`: unambiguous, as base64 holds no 0 byte.
fn cache_key(namespace: &str, wrapped: &[u8]) -> Box<[u8]> {
    let mut k = Vec::with_capacity(namespace.len() + 1 + wrapped.len());
    k.extend_from_slice(namespace.as_bytes());
    k.push(0);
    k.extend_from_slice(wrapped);
    k.into_boxed_slice()
}

impl std::fmt::Debug for DekStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DekStore")
            .field("namespaces", &self.slots.len())
            .field("cached", &self.cache.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl DekStore {
    pub fn new(capacity: usize, ops: Arc<KeyOpsRegistry>) -> DekStore {
        DekStore {
            slots: DashMap::new(),
            slot_order: Mutex::default(),
            cache: DashMap::new(),
            cache_order: Mutex::default(),
            capacity: capacity.max(1),
            ops,
            stats: EnvelopeStats::default(),
            new_deks: Mutex::new(Bucket {
                tokens: f64::from(NEW_DEKS_PER_MINUTE),
                at: Instant::now(),
            }),
            failed: DashMap::new(),
        }
    }

    pub fn stats(&self) -> &EnvelopeStats {
        &self.stats
    }

    /// The DEK that encrypts `namespace`'s payloads under `kek`. Creates one
    /// (one KMS call, shared by concurrent callers) when there is none, it
    /// expired, or the policy's KEK changed; starts a background renewal
    /// once it is within `renew_before` of expiry.
    ///
    /// `limited`: the namespace has no policy of its own, so its first DEK
    /// counts against [`NEW_DEKS_PER_MINUTE`].
    pub async fn encrypting_key(
        self: &Arc<Self>,
        namespace: &str,
        kek: &Arc<Kek>,
        rotation: Rotation,
        limited: bool,
    ) -> Result<Arc<Key>, KmsError> {
        if let Some(k) = self.ready_key(namespace, kek, rotation) {
            return Ok(k);
        }
        if limited && !self.slots.contains_key(namespace) && !self.take_new_dek() {
            self.stats.rate_limited.fetch_add(1, Relaxed);
            return Err(KmsError::Call {
                provider: kek.provider().name().to_string(),
                kek: kek.id().to_string(),
                op: "generate",
                reason: format!(
                    "new data keys for namespaces without a policy of their own are limited to \
                     {NEW_DEKS_PER_MINUTE} a minute; retry shortly, or give the namespace its own policy"
                ),
                unavailable: true,
            });
        }
        let slot = self.slot(namespace);
        let _one = slot.create.lock().await;
        if let Some(d) = slot.get().filter(|d| usable(d, kek)) {
            return Ok(d.key.clone()); // another call just made it
        }
        let d = self.create(namespace, kek, rotation).await?;
        let key = d.key.clone();
        slot.set(d);
        Ok(key)
    }

    /// The namespace's current DEK when one is usable now, without waiting
    /// for the KMS; starts the background renewal when it is due.
    pub fn ready_key(
        self: &Arc<Self>,
        namespace: &str,
        kek: &Arc<Kek>,
        rotation: Rotation,
    ) -> Option<Arc<Key>> {
        let slot = self.slots.get(namespace).map(|s| s.clone())?;
        let d = slot.get().filter(|d| usable(d, kek))?;
        if Instant::now() >= d.renew_at && !slot.renewing.swap(true, Relaxed) {
            let (store, slot, kek, ns) = (
                self.clone(),
                slot.clone(),
                kek.clone(),
                namespace.to_string(),
            );
            tokio::spawn(async move {
                match store.create(&ns, &kek, rotation).await {
                    Ok(d) => slot.set(d),
                    Err(e) => {
                        tracing::warn!(namespace = %ns, error = %e, "could not renew the data key; the current one stays in use until it expires")
                    }
                }
                slot.renewing.store(false, Relaxed);
            });
        }
        Some(d.key.clone())
    }

    /// One token from the new-DEK bucket, if there is one.
    fn take_new_dek(&self) -> bool {
        let Ok(mut b) = self.new_deks.lock() else {
            return false;
        };
        let per_minute = f64::from(NEW_DEKS_PER_MINUTE);
        let now = Instant::now();
        let refill = now.duration_since(b.at).as_secs_f64() * per_minute / 60.0;
        b.tokens = (b.tokens + refill).min(per_minute);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn slot(&self, namespace: &str) -> Arc<Slot> {
        if let Some(s) = self.slots.get(namespace) {
            return s.clone();
        }
        let slot = self.slots.entry(namespace.into()).or_default().clone();
        if let Ok(mut order) = self.slot_order.lock() {
            order.push_back(namespace.into());
            while order.len() > MAX_NAMESPACES {
                if let Some(old) = order.pop_front() {
                    self.slots.remove(&old);
                }
            }
        }
        slot
    }

    async fn create(
        &self,
        namespace: &str,
        kek: &Arc<Kek>,
        rotation: Rotation,
    ) -> Result<Arc<Dek>, KmsError> {
        let material = random_key().map_err(|e| KmsError::Call {
            provider: kek.provider().name().to_string(),
            kek: kek.id().to_string(),
            op: "generate",
            reason: e.to_string(),
            unavailable: false,
        })?;
        let wrapped = kek.wrap(&material[..], namespace).await.inspect_err(|_| {
            self.stats.kms_failures.fetch_add(1, Relaxed);
        })?;
        self.stats.wraps.fetch_add(1, Relaxed);
        self.stats.rotations.fetch_add(1, Relaxed);
        let wrapped = STANDARD.encode(wrapped);
        let key = Key::dek(kek.id(), &wrapped, &material[..])
            .map_err(|_| KmsError::BadDek {
                kek: kek.id().to_string(),
                len: material.len(),
            })?
            .with_ops(self.ops.for_id(kek.id()));
        let key = Arc::new(key);
        // Our own payloads decode without asking the KMS.
        self.insert(cache_key(namespace, wrapped.as_bytes()), key.clone());
        tracing::info!(namespace = %namespace, kek = %super::kms::redact_id(kek.id()), provider = %kek.provider().name(), "new data key");
        let now = Instant::now();
        Ok(Arc::new(Dek {
            key,
            renew_at: now + rotation.lifetime.saturating_sub(rotation.renew_before),
            expires: now + rotation.lifetime,
        }))
    }

    /// An unwrapped DEK from the cache, if it was unwrapped for `namespace`
    /// and `kek_id` is the KEK it was wrapped by.
    pub fn cached(&self, namespace: &str, kek_id: &str, wrapped: &[u8]) -> Option<Arc<Key>> {
        let key = self
            .cache
            .get(&cache_key(namespace, wrapped))
            .and_then(|c| c.get().cloned());
        match key {
            Some(k) if k.id() == kek_id => {
                self.stats.cache_hits.fetch_add(1, Relaxed);
                Some(k)
            }
            _ => {
                self.stats.cache_misses.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Unwraps `wrapped` (the base64 `encryption-dek`) with `kek` for a call
    /// in `namespace` and caches it; concurrent calls for the same DEK share
    /// one KMS call.
    pub async fn unwrap(
        &self,
        kek: &Arc<Kek>,
        namespace: &str,
        wrapped: &[u8],
    ) -> Result<Arc<Key>, KmsError> {
        let ck = cache_key(namespace, wrapped);
        if let Some(at) = self.failed.get(&ck).map(|a| *a) {
            if at.elapsed() < FAILED_UNWRAP_TTL {
                self.stats.known_bad.fetch_add(1, Relaxed);
                return Err(KmsError::Call {
                    provider: kek.provider().name().to_string(),
                    kek: kek.id().to_string(),
                    op: "unwrap",
                    reason: "the KMS refused this data key recently; not asking again yet".into(),
                    unavailable: false,
                });
            }
            self.failed.remove(&ck);
        }
        // Shared by concurrent callers; it joins the bounded cache (and may
        // evict an older key) only once it has unwrapped.
        // The call that adds the cell records it in the cache's order.
        let (cell, fresh) = match self.cache.get(&ck) {
            Some(c) => (c.clone(), false),
            None => (self.cache.entry(ck.clone()).or_default().clone(), true),
        };
        let result = cell
            .get_or_try_init(|| async {
                let raw = STANDARD.decode(wrapped).map_err(|_| KmsError::NotBase64 {
                    kek: kek.id().to_string(),
                })?;
                let material = kek.unwrap(&raw, namespace).await.inspect_err(|_| {
                    self.stats.kms_failures.fetch_add(1, Relaxed);
                })?;
                self.stats.unwraps.fetch_add(1, Relaxed);
                let text = std::str::from_utf8(wrapped).unwrap_or_default();
                let key = Key::dek(kek.id(), text, &material).map_err(|_| KmsError::BadDek {
                    kek: kek.id().to_string(),
                    len: material.len(),
                })?;
                Ok::<_, KmsError>(Arc::new(key.with_ops(self.ops.for_id(kek.id()))))
            })
            .await
            .cloned();
        let key = match result {
            Ok(k) => {
                if fresh {
                    self.remember(ck);
                }
                k
            }
            Err(e) => {
                // A failure never takes a good key's place in the cache.
                self.cache.remove_if(&ck, |_, c| !c.initialized());
                if !e.is_unavailable() {
                    if self.failed.len() >= MAX_FAILED {
                        self.failed.clear();
                    }
                    self.failed.insert(ck, Instant::now());
                }
                return Err(e);
            }
        };
        if key.id() != kek.id() {
            // Cached under another KEK: never hand a DEK out for a KEK
            // that did not wrap it.
            return Err(KmsError::Call {
                provider: kek.provider().name().to_string(),
                kek: kek.id().to_string(),
                op: "unwrap",
                reason: "this data key was wrapped by a different KEK".into(),
                unavailable: false,
            });
        }
        Ok(key)
    }

    fn insert(&self, ck: Box<[u8]>, key: Arc<Key>) {
        let cell = Arc::new(OnceCell::new_with(Some(key)));
        self.cache.insert(ck.clone(), cell);
        self.remember(ck);
    }

    /// Records insertion order and evicts the oldest entries over capacity.
    fn remember(&self, ck: Box<[u8]>) {
        if let Ok(mut order) = self.cache_order.lock() {
            order.push_back(ck);
            while order.len() > self.capacity {
                if let Some(old) = order.pop_front() {
                    self.cache.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
