//! The codec chain and key policies in force, swapped whole on reload, and
//! the per-call [`Session`] that picks a namespace's policy.
//!
//! A call takes one snapshot when it starts and keeps it to the end, so a
//! reload never changes the keys under a call in flight.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering::Relaxed},
    },
};

use tokio::sync::watch;

use super::{
    CallKeys, Chain, ChainOptions, CodecError, CodecStats, Decoder, Encoder, MissingDeks, Offloads,
};
use crate::keys::{
    Key, KeyError, KeyOpsRegistry,
    envelope::{DEFAULT_CACHE_SIZE, DekStore},
    policy::{Encrypt, Policies, Policy},
};

/// One generation of codec settings and keys.
#[derive(Debug)]
pub struct Setup {
    pub chain: Chain,
    pub policies: Policies,
}

/// The current [`Setup`] and the state that outlives reloads.
#[derive(Debug)]
pub struct Pipeline {
    current: watch::Sender<Arc<Setup>>,
    deks: Arc<DekStore>,
    ops: Arc<KeyOpsRegistry>,
    /// External storage for large payloads, when configured.
    store: Option<Arc<crate::storage::Store>>,
}

impl Pipeline {
    pub fn new(setup: Setup, deks: Arc<DekStore>, ops: Arc<KeyOpsRegistry>) -> Pipeline {
        Pipeline {
            current: watch::Sender::new(Arc::new(setup)),
            deks,
            ops,
            store: None,
        }
    }

    /// Offloads large payloads to `store` (and resolves references).
    pub fn with_store(mut self, store: Option<Arc<crate::storage::Store>>) -> Pipeline {
        self.store = store;
        self
    }

    /// A pipeline over one static keyring that never reloads (tests,
    /// benchmarks and tools).
    pub fn fixed(
        opts: &ChainOptions,
        keys: Vec<Key>,
        active: Option<&str>,
    ) -> Result<Pipeline, KeyError> {
        let ops = Arc::new(KeyOpsRegistry::default());
        let keys = keys.into_iter().map(|k| {
            let ops = ops.for_id(k.id());
            k.with_ops(ops)
        });
        let setup = Setup {
            chain: Chain::new(opts, Arc::default()),
            policies: Policies::from_static(keys.collect(), active)?,
        };
        let deks = Arc::new(DekStore::new(DEFAULT_CACHE_SIZE, ops.clone()));
        Ok(Pipeline::new(setup, deks, ops))
    }

    /// Makes `setup` the one new calls use. Calls in flight keep theirs.
    pub fn publish(&self, setup: Setup) {
        self.current.send_replace(Arc::new(setup));
    }

    pub fn current(&self) -> Arc<Setup> {
        self.current.borrow().clone()
    }

    /// Counters shared by every generation (the first generation's).
    pub fn stats(&self) -> Arc<CodecStats> {
        self.current.borrow().chain.stats().clone()
    }

    pub fn deks(&self) -> &Arc<DekStore> {
        &self.deks
    }

    pub fn ops(&self) -> &Arc<KeyOpsRegistry> {
        &self.ops
    }

    /// The keys for one call in `namespace` (`""` when the call names none:
    /// the default policy).
    pub fn session(&self, namespace: &str) -> Session {
        self.session_with(namespace, false)
    }

    /// [`Pipeline::session`]; `preserve_refs` leaves storage references as
    /// they are when decoding (the Codec Server's `preserveStorageRefs`).
    pub fn session_with(&self, namespace: &str, preserve_refs: bool) -> Session {
        let setup = self.current();
        let policy = setup.policies.for_namespace(namespace).clone();
        let encrypt = match policy.encrypt() {
            Some(Encrypt::Static(k)) => Some(k.clone()),
            _ => None,
        };
        Session {
            setup,
            policy,
            namespace: namespace.into(),
            deks: self.deks.clone(),
            encrypt,
            missing: MissingDeks::default(),
            wanted_key: AtomicBool::new(false),
            offloads: self.store.as_ref().map(|store| Offloads {
                policy: store.policy(namespace),
                store: store.clone(),
                namespace: namespace.into(),
                pending: Default::default(),
                wanted: Default::default(),
                fetched: Default::default(),
                preserve: preserve_refs,
            }),
        }
    }
}

/// One call's view of the keys: its snapshot, its namespace's policy, and
/// the key that encrypts.
pub struct Session {
    setup: Arc<Setup>,
    policy: Arc<Policy>,
    namespace: Box<str>,
    deks: Arc<DekStore>,
    encrypt: Option<Arc<Key>>,
    missing: MissingDeks,
    wanted_key: AtomicBool,
    pub(crate) offloads: Option<Offloads>,
}

impl Session {
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// True when this call's payloads are encrypted (the chain encrypts and
    /// the namespace's policy has a key to encrypt with).
    pub fn encrypts(&self) -> bool {
        self.setup.chain.encrypts() && self.policy.encrypt().is_some()
    }

    /// True when this call's namespace offloads large payloads to
    /// external storage.
    pub fn offloads(&self) -> bool {
        self.offloads.as_ref().is_some_and(|o| o.policy.is_some())
    }

    /// The chain's counters.
    pub fn stats(&self) -> &Arc<CodecStats> {
        self.setup.chain.stats()
    }

    /// Makes the encrypting key ready: for an envelope policy, the
    /// namespace's current data key (created, and wrapped by the KMS, on
    /// first use). A no-op when the chain does not encrypt.
    pub async fn prepare_encode(&mut self) -> Result<(), CodecError> {
        if !self.setup.chain.encrypts() {
            return Ok(());
        }
        if let Some(Encrypt::Envelope { kek, rotation }) = self.policy.encrypt() {
            let key = self
                .deks
                .encrypting_key(
                    &self.namespace,
                    kek,
                    *rotation,
                    !self.setup.policies.has_own(&self.namespace),
                )
                .await?;
            self.encrypt = Some(key);
        }
        Ok(())
    }

    fn keys(&self) -> CallKeys<'_> {
        CallKeys {
            policy: &self.policy,
            namespace: &self.namespace,
            encrypt: self.encrypt.as_ref(),
            deks: &self.deks,
            missing: &self.missing,
            wanted_key: &self.wanted_key,
            offloads: self.offloads.as_ref(),
            last_static: Default::default(),
        }
    }

    /// Visitor that encodes (call [`Session::prepare_encode`] first).
    pub fn encoder(&self) -> Encoder<'_> {
        Encoder {
            chain: &self.setup.chain,
            keys: self.keys(),
        }
    }

    /// Visitor that decodes; data keys it lacks are noted, not fetched.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder {
            chain: &self.setup.chain,
            keys: self.keys(),
        }
    }

    pub fn encode_payload(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        self.setup.chain.encode_payload(payload, &self.keys())
    }

    pub fn decode_payload(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        self.setup.chain.decode_payload(payload, &self.keys())
    }

    /// Unwraps the data keys the decodes so far found missing; true when
    /// there were any (decode again to use them).
    pub async fn fetch_missing(&self) -> Result<bool, CodecError> {
        let objects = self.fetch_objects().await?;
        let missing = match self.missing.lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(_) => return Ok(objects),
        };
        if missing.is_empty() {
            return Ok(objects);
        }
        let mut seen = HashSet::new();
        for (kek, wrapped) in &missing {
            if seen.insert(wrapped) {
                self.deks.unwrap(kek, &self.namespace, wrapped).await?;
            }
        }
        Ok(true)
    }

    /// Fetches the stored payloads the decodes so far met references to;
    /// true when there were any. A store that fails fails the call.
    async fn fetch_objects(&self) -> Result<bool, CodecError> {
        let Some(o) = &self.offloads else {
            return Ok(false);
        };
        let wanted: Vec<crate::storage::Claim> = match o.wanted.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => return Ok(false),
        };
        if wanted.is_empty() {
            return Ok(false);
        }
        // What one call may hold of fetched objects: the decode limit (a
        // response larger than that fails anyway, once inlined).
        let budget = self.setup.chain.max_decoded();
        let mut held: usize = o
            .fetched
            .lock()
            .map(|f| f.values().map(|b| b.len()).sum())
            .unwrap_or(0);
        let mut fetches = tokio::task::JoinSet::new();
        let mut seen = HashSet::new();
        for claim in wanted {
            if seen.insert(claim.clone()) {
                let store = o.store.clone();
                fetches.spawn(async move {
                    let got = store.get(&claim).await;
                    (claim, got)
                });
            }
        }
        while let Some(done) = fetches.join_next().await {
            let (claim, got) = done.map_err(|e| {
                CodecError::from(crate::storage::StorageError::BadReference(e.to_string()))
            })?;
            let object = got?;
            held += object.len();
            if held > budget {
                fetches.abort_all();
                return Err(CodecError::TooLarge {
                    size: held,
                    limit: budget,
                });
            }
            if let Ok(mut f) = o.fetched.lock() {
                f.insert(claim, object);
            }
        }
        Ok(true)
    }

    /// Uploads what this call's encode offloaded; any failure fails the
    /// call (nothing is forwarded with a reference to a missing object).
    async fn upload_pending(&self) -> Result<(), CodecError> {
        let Some(o) = &self.offloads else {
            return Ok(());
        };
        let pending = match o.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Ok(()),
        };
        let mut uploads = tokio::task::JoinSet::new();
        for (claim, object) in pending {
            let store = o.store.clone();
            uploads.spawn(async move { store.put(&claim.bucket, &claim.key, object).await });
        }
        while let Some(done) = uploads.join_next().await {
            done.map_err(|e| {
                CodecError::from(crate::storage::StorageError::BadReference(e.to_string()))
            })??;
        }
        Ok(())
    }

    /// True when the encodes so far left objects to upload.
    fn has_pending(&self) -> bool {
        self.offloads
            .as_ref()
            .is_some_and(|o| o.pending.lock().is_ok_and(|p| !p.is_empty()))
    }

    /// True when the decodes so far met data keys or stored payloads that
    /// [`Self::fetch_missing`] would fetch. Checked first: most calls have
    /// none, and the fetch's future is large to build (it holds a KMS call).
    fn has_missing(&self) -> bool {
        let objects = self
            .offloads
            .as_ref()
            .is_some_and(|o| o.wanted.lock().is_ok_and(|w| !w.is_empty()));
        objects || self.missing.lock().is_ok_and(|m| !m.is_empty())
    }

    fn clear_pending(&self) {
        if let Some(o) = &self.offloads
            && let Ok(mut p) = o.pending.lock()
        {
            p.clear();
        }
    }

    /// Runs an encode. For an envelope policy the namespace's data key is
    /// used when it is ready; when a payload needs one that is not (first
    /// use, or expired), it is made (one KMS call) and the encode runs once
    /// more. Calls that carry no payload never wait for the KMS.
    pub async fn encode_with<T, E: From<CodecError>>(
        &mut self,
        mut run: impl FnMut(&mut Encoder<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let envelope = match self.policy.encrypt() {
            Some(Encrypt::Envelope { kek, rotation }) if self.setup.chain.encrypts() => {
                Some((kek.clone(), *rotation))
            }
            _ => None,
        };
        if let Some((kek, rotation)) = &envelope {
            self.encrypt = self.deks.ready_key(&self.namespace, kek, *rotation);
        }
        self.clear_pending();
        let first = run(&mut self.encoder());
        if envelope.is_none() || !self.wanted_key.swap(false, Relaxed) {
            let out = first?;
            if self.has_pending() {
                let upload = Box::pin(self.upload_pending());
                upload.await?;
            }
            return Ok(out);
        }
        // Boxed: KMS client futures are large, and an unboxed one would
        // grow every call's future (and every held long poll) by its size.
        // The box is made in a statement of its own: a temporary lives to the
        // end of its statement, so inside `Box::pin(f).await` the unboxed
        // future would still take room in the caller's future.
        let prepare = Box::pin(self.prepare_encode());
        prepare.await?;
        self.clear_pending();
        let out = run(&mut self.encoder())?;
        if self.has_pending() {
            let upload = Box::pin(self.upload_pending());
            upload.await?;
        }
        Ok(out)
    }

    /// Runs a decode; when it met data keys that were not cached, fetches
    /// them (one KMS call each) and runs it once more.
    pub async fn decode_with<T, E: From<CodecError>>(
        &self,
        mut run: impl FnMut(&mut Decoder<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut out = run(&mut self.decoder());
        // At most three passes: stored payloads, then the data keys they
        // need, are fetched between them.
        for _ in 0..2 {
            if !self.has_missing() {
                return out;
            }
            let fetch = Box::pin(self.fetch_missing());
            if !fetch.await? {
                return out;
            }
            out = run(&mut self.decoder());
        }
        if let Ok(mut m) = self.missing.lock() {
            m.clear();
        }
        out
    }
}
