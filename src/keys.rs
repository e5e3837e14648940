//! Data-encryption keys: a keyring of AES-256-GCM keys by id, one of them
//! active for encryption, all of them usable for decryption.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use base64::{Engine, engine::general_purpose::STANDARD};
use ring::{
    aead::{AES_256_GCM, LessSafeKey, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use thiserror::Error;

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

/// One named AES-256-GCM key.
pub struct Key {
    id: Box<str>,
    aead: LessSafeKey,
    encrypts: AtomicU64,
    decrypts: AtomicU64,
}

impl Key {
    /// Builds a key from raw material.
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
            aead: LessSafeKey::new(unbound),
            encrypts: AtomicU64::new(0),
            decrypts: AtomicU64::new(0),
        })
    }

    /// The key's id, as written in `encryption-key-id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn aead(&self) -> &LessSafeKey {
        &self.aead
    }

    pub(crate) fn count_encrypt(&self) {
        self.encrypts.fetch_add(1, Relaxed);
    }

    pub(crate) fn count_decrypt(&self) {
        self.decrypts.fetch_add(1, Relaxed);
    }

    /// Payloads encrypted and decrypted with this key so far.
    pub fn operations(&self) -> (u64, u64) {
        (self.encrypts.load(Relaxed), self.decrypts.load(Relaxed))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .field("material", &"<redacted>")
            .finish()
    }
}

/// Decodes base64 (standard alphabet, padding optional) key material.
pub fn decode_material(text: &str) -> Result<Vec<u8>, KeyError> {
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|_| KeyError::NotBase64)?;
    if bytes.len() != KEY_LEN {
        return Err(KeyError::WrongLength(bytes.len()));
    }
    Ok(bytes)
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

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every key, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &Arc<Key>> {
        self.by_id.values()
    }
}

/// A fresh key: `(id, base64 material)`. The id is `key-` and 8 random hex digits.
pub fn generate() -> Result<(String, String), KeyError> {
    let rng = SystemRandom::new();
    let mut material = [0u8; KEY_LEN];
    let mut tag = [0u8; 4];
    rng.fill(&mut material).map_err(|_| KeyError::Random)?;
    rng.fill(&mut tag).map_err(|_| KeyError::Random)?;
    let id = format!("key-{:08x}", u32::from_be_bytes(tag));
    Ok((id, STANDARD.encode(material)))
}

#[cfg(test)]
mod tests;
