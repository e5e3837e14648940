//! Keys: AES-256-GCM keys by id, key policies per namespace, envelope
//! encryption with KMS-wrapped data keys, and their hot reload.
//!
//! A [`Key`] encrypts payloads. In the static format its id is the
//! `encryption-key-id` the payload carries; in the envelope format it is a
//! data key (DEK) whose id is the id of the key-encryption key (KEK) that
//! wrapped it, and it also carries that wrapped DEK. Key material lives only
//! in `Zeroizing` buffers while it is being loaded and in the AEAD context
//! afterwards; nothing here prints it.

pub mod envelope;
pub mod kms;
pub mod policy;

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use base64::{Engine, engine::general_purpose::STANDARD};
use dashmap::DashMap;
use ring::{
    aead::{AES_256_GCM, LessSafeKey, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use thiserror::Error;
use zeroize::Zeroizing;

/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// A key could not be loaded. Never carries key material.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key material is not valid base64")]
    NotBase64,
    #[error("key material is {0} bytes; AES-256-GCM needs exactly 32")]
    WrongLength(usize),
    #[error("key id must not be empty")]
    EmptyId,
    #[error("key id {0:?} appears more than once")]
    DuplicateId(String),
    #[error("active key {0:?} is not in the keyring")]
    UnknownActive(String),
    #[error("the system random number generator failed")]
    Random,
}

/// Payloads encrypted and decrypted under one key id (a static key, or a
/// KEK for all the DEKs it wrapped).
#[derive(Debug, Default)]
pub struct KeyOps {
    encrypts: AtomicU64,
    decrypts: AtomicU64,
}

impl KeyOps {
    /// `(encrypted, decrypted)` so far.
    pub fn get(&self) -> (u64, u64) {
        (self.encrypts.load(Relaxed), self.decrypts.load(Relaxed))
    }
}

/// Operation counters by key id, shared by every generation of keys so
/// that counts survive a reload.
#[derive(Debug, Default)]
pub struct KeyOpsRegistry(DashMap<Box<str>, Arc<KeyOps>>);

impl KeyOpsRegistry {
    /// The counters for `id`, created on first use.
    pub fn for_id(&self, id: &str) -> Arc<KeyOps> {
        if let Some(ops) = self.0.get(id) {
            return ops.clone();
        }
        self.0.entry(id.into()).or_default().clone()
    }

    /// Every id seen so far with its counters.
    pub fn snapshot(&self) -> Vec<(Box<str>, (u64, u64))> {
        self.0
            .iter()
            .map(|e| (e.key().clone(), e.value().get()))
            .collect()
    }
}

/// One AES-256-GCM key: a static key, or a DEK with its wrapped form.
pub struct Key {
    id: Box<str>,
    /// The id is the key material itself (the SDK samples' test key): it is
    /// never shown, in logs or metrics.
    self_keyed: bool,
    /// Envelope format: base64 (standard) of the KEK-wrapped DEK, written as
    /// `encryption-dek`.
    wrapped: Option<Box<str>>,
    aead: LessSafeKey,
    ops: Arc<KeyOps>,
}

/// How a key whose id is its own material is shown.
pub const SELF_KEYED: &str = "<id is the key material>";

impl Key {
    /// Builds a static key from raw material.
    pub fn new(id: &str, material: &[u8]) -> Result<Key, KeyError> {
        if id.is_empty() {
            return Err(KeyError::EmptyId);
        }
        if material.len() != KEY_LEN {
            return Err(KeyError::WrongLength(material.len()));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, material)
            .map_err(|_| KeyError::WrongLength(material.len()))?;
        Ok(Key {
            id: id.into(),
            self_keyed: id.as_bytes() == material,
            wrapped: None,
            aead: LessSafeKey::new(unbound),
            ops: Arc::default(),
        })
    }

    /// A data key wrapped by KEK `kek_id`; `wrapped` is the base64 form.
    pub fn dek(kek_id: &str, wrapped: &str, material: &[u8]) -> Result<Key, KeyError> {
        let mut key = Key::new(kek_id, material)?;
        key.wrapped = Some(wrapped.into());
        Ok(key)
    }

    /// Counts this key's operations in `ops` (shared by id across reloads).
    pub fn with_ops(mut self, ops: Arc<KeyOps>) -> Key {
        self.ops = ops;
        self
    }

    /// The key's id, as written in `encryption-key-id` (a KEK's id for a DEK).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id as logs, metrics and errors show it: the id, unless it is the
    /// key material itself.
    pub fn shown_id(&self) -> &str {
        if self.self_keyed {
            SELF_KEYED
        } else {
            &self.id
        }
    }

    /// The wrapped DEK (base64), for envelope keys.
    pub fn wrapped(&self) -> Option<&str> {
        self.wrapped.as_deref()
    }

    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.aead
    }

    pub(crate) fn count_encrypt(&self) {
        self.ops.encrypts.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_decrypt(&self) {
        self.ops.decrypts.fetch_add(1, Relaxed);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.shown_id())
            .field("envelope", &self.wrapped.is_some())
            .field("material", &"<redacted>")
            .finish()
    }
}

/// Decodes base64 (standard alphabet, padding optional) key material. The
/// result is wiped when dropped.
pub fn decode_material(text: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let text = text.trim();
    let bytes = Zeroizing::new(
        STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| KeyError::NotBase64)?,
    );
    if bytes.len() != KEY_LEN {
        return Err(KeyError::WrongLength(bytes.len()));
    }
    Ok(bytes)
}

/// 32 bytes from the OS random generator, wiped when dropped.
pub fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let mut material = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(&mut material[..])
        .map_err(|_| KeyError::Random)?;
    Ok(material)
}

/// Keys by id; `active` encrypts, every key decrypts.
#[derive(Debug, Default)]
pub struct Keyring {
    active: Option<Arc<Key>>,
    by_id: HashMap<Box<str>, Arc<Key>>,
}

impl Keyring {
    /// A keyring from keys and the id of the one to encrypt with.
    pub fn new(keys: Vec<Key>, active: Option<&str>) -> Result<Keyring, KeyError> {
        let mut by_id = HashMap::new();
        for key in keys {
            let key = Arc::new(key);
            if by_id.insert(key.id.clone(), key.clone()).is_some() {
                return Err(KeyError::DuplicateId(key.id.to_string()));
            }
        }
        let active = match active {
            Some(id) => Some(
                by_id
                    .get(id)
                    .cloned()
                    .ok_or_else(|| KeyError::UnknownActive(id.to_string()))?,
            ),
            None => None,
        };
        Ok(Keyring { active, by_id })
    }

    /// The key new payloads are encrypted with.
    pub fn active(&self) -> Option<&Arc<Key>> {
        self.active.as_ref()
    }

    /// A key by id (as found in `encryption-key-id`).
    pub fn get(&self, id: &[u8]) -> Option<&Arc<Key>> {
        std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.by_id.get(id))
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<Key>> {
        self.by_id.values()
    }
}

/// A fresh key: `(id, base64 material)`. The id is `prefix-` and 8 random
/// hex digits (`key` for static keys, `kek` for local KEKs).
pub fn generate(prefix: &str) -> Result<(String, Zeroizing<String>), KeyError> {
    let material = random_key()?;
    let mut tag = [0u8; 4];
    SystemRandom::new()
        .fill(&mut tag)
        .map_err(|_| KeyError::Random)?;
    let id = format!("{prefix}-{:08x}", u32::from_be_bytes(tag));
    Ok((id, Zeroizing::new(STANDARD.encode(&material[..]))))
}

#[cfg(test)]
mod tests;
