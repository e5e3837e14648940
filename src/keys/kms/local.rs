//! Local KEKs: a 32-byte key held by sealgate, wrapping with NaCl secretbox
//! (XSalsa20-Poly1305), `nonce(24) ‖ tag(16) ‖ ciphertext`. That is the
//! layout of gocloud.dev's `localsecrets` keeper, which Temporal Proxy uses for
//! its `base64key://` KEKs, so such data keys unwrap here unchanged.

use base64::{Engine, engine::general_purpose::STANDARD};
use crypto_secretbox::{
    AeadCore, AeadInPlace, KeyInit, Nonce, Tag, XSalsa20Poly1305,
    aead::{OsRng, generic_array::GenericArray},
};
use zeroize::Zeroizing;

use crate::keys::{KEY_LEN, KeyError};

/// Temporal Proxy names a local KEK by its key: `base64key://<base64>`.
pub const TEMPORAL_PROXY_SCHEME: &str = "base64key://";

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// A local key-encryption key. The cipher wipes its key when dropped.
pub struct LocalKek(XSalsa20Poly1305);

impl LocalKek {
    pub fn new(material: &[u8]) -> Result<LocalKek, KeyError> {
        if material.len() != KEY_LEN {
            return Err(KeyError::WrongLength(material.len()));
        }
        Ok(LocalKek(XSalsa20Poly1305::new(GenericArray::from_slice(
            material,
        ))))
    }

    /// The material in a Temporal Proxy KEK id, `base64key://<base64>`
    /// (standard alphabet; gocloud keeps the first 32 bytes).
    pub fn material_from_uri(id: &str) -> Option<Result<Zeroizing<Vec<u8>>, KeyError>> {
        let text = id.strip_prefix(TEMPORAL_PROXY_SCHEME)?;
        Some(match STANDARD.decode(text.trim_end_matches('/')) {
            Ok(mut bytes) if bytes.len() >= KEY_LEN => {
                bytes.truncate(KEY_LEN);
                Ok(Zeroizing::new(bytes))
            }
            Ok(bytes) => Err(KeyError::WrongLength(bytes.len())),
            Err(_) => Err(KeyError::NotBase64),
        })
    }

    pub(super) fn wrap(&self, dek: &[u8]) -> Result<Vec<u8>, String> {
        let nonce = XSalsa20Poly1305::generate_nonce(&mut OsRng);
        let mut ct = dek.to_vec();
        let tag = self
            .0
            .encrypt_in_place_detached(&nonce, b"", &mut ct)
            .map_err(|_| "secretbox seal failed".to_string())?;
        let mut out = Vec::with_capacity(NONCE_LEN + TAG_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub(super) fn unwrap(&self, wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        if wrapped.len() < NONCE_LEN + TAG_LEN {
            return Err(format!(
                "wrapped data key is {} bytes, shorter than nonce and tag",
                wrapped.len()
            ));
        }
        let (nonce, rest) = wrapped.split_at(NONCE_LEN);
        let (tag, ct) = rest.split_at(TAG_LEN);
        let mut plain = Zeroizing::new(ct.to_vec());
        self.0
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                b"",
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| {
                "the wrapped data key does not authenticate under this KEK (wrong key or tampered)"
                    .to_string()
            })?;
        Ok(plain)
    }
}
