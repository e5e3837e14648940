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

use super::{CallKeys, Chain, ChainOptions, CodecError, CodecStats, Decoder, Encoder, MissingDeks};
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
}

impl Pipeline {
    pub fn new(setup: Setup, deks: Arc<DekStore>, ops: Arc<KeyOpsRegistry>) -> Pipeline {
        Pipeline {
            current: watch::Sender::new(Arc::new(setup)),
            deks,
            ops,
        }
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
        let missing = match self.missing.lock() {
            Ok(mut m) => std::mem::take(&mut *m),
            Err(_) => return Ok(false),
        };
        if missing.is_empty() {
            return Ok(false);
        }
        let mut seen = HashSet::new();
        for (kek, wrapped) in &missing {
            if seen.insert(wrapped) {
                self.deks.unwrap(kek, &self.namespace, wrapped).await?;
            }
        }
        Ok(true)
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
        let first = run(&mut self.encoder());
        if envelope.is_none() || !self.wanted_key.swap(false, Relaxed) {
            return first;
        }
        // Boxed: KMS client futures are large, and an unboxed one would
        // grow every call's future (and every held long poll) by its size.
        // The box is made in a statement of its own: a temporary lives to the
        // end of its statement, so inside `Box::pin(f).await` the unboxed
        // future would still take room in the caller's future.
        let prepare = Box::pin(self.prepare_encode());
        prepare.await?;
        run(&mut self.encoder())
    }

    /// Runs a decode; when it met data keys that were not cached, fetches
    /// them (one KMS call each) and runs it once more.
    pub async fn decode_with<T, E: From<CodecError>>(
        &self,
        mut run: impl FnMut(&mut Decoder<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let first = run(&mut self.decoder());
        let fetch = Box::pin(self.fetch_missing());
        if !fetch.await? {
            return first;
        }
        let again = run(&mut self.decoder());
        if let Ok(mut m) = self.missing.lock() {
            m.clear();
        }
        again
    }
}
