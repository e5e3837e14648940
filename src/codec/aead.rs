//! `binary/encrypted`: AES-256-GCM over the whole marshaled payload.
//!
//! data = nonce(12) ‖ ciphertext ‖ tag(16), random nonce, no AAD; metadata
//! `encryption-key-id` names the key. The layout of Temporal's Go, Python and
//! TypeScript encryption samples. In the envelope format (Temporal Proxy's)
//! the key is a data key, `encryption-key-id` names the KEK that wrapped it,
//! and `encryption-dek` carries the wrapped data key in base64.
//!
//! A policy with `bind_namespace` adds the namespace as associated data and
//! says so in metadata (`sealgate-bound: namespace`): such a payload decrypts
//! only in the namespace it was written in. That variant is sealgate's own;
//! the SDK samples and Temporal Proxy read only the default.

use std::{cell::RefCell, ops::Range, sync::atomic::Ordering::Relaxed};

use ring::{
    aead::{Aad, NONCE_LEN as RING_NONCE_LEN, Nonce},
    rand::{SecureRandom, SystemRandom},
};

use super::{Arena, CallKeys, Codec, CodecError, CodecStats, PayloadView, payload};

pub const ENCODING_ENCRYPTED: &[u8] = b"binary/encrypted";
/// Metadata key naming the key a payload was encrypted with (the KEK in the
/// envelope format).
pub const KEY_ID: &str = "encryption-key-id";
/// Metadata key holding the base64 KEK-wrapped data key (envelope format).
pub const DEK: &str = "encryption-dek";
/// Metadata key naming what a payload's associated data binds it to.
pub const BOUND: &str = "sealgate-bound";
/// The one binding there is: the namespace.
const BOUND_NAMESPACE: &[u8] = b"namespace";
pub const NONCE_LEN: usize = RING_NONCE_LEN;
pub const TAG_LEN: usize = 16;

/// Nonces drawn from the OS random generator in batches: a nonce is public
/// (it travels in front of the ciphertext) and only has to be unpredictable
/// and unique, so buffering OS randomness is safe and saves one syscall per
/// payload.
const NONCE_BATCH: usize = 256;

thread_local! {
    static NONCES: RefCell<([u8; NONCE_LEN * NONCE_BATCH], usize)> =
        const { RefCell::new(([0; NONCE_LEN * NONCE_BATCH], NONCE_LEN * NONCE_BATCH)) };
}

fn fresh_nonce(rng: &SystemRandom) -> Result<[u8; NONCE_LEN], CodecError> {
    NONCES.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (buf, used) = &mut *guard;
        if *used + NONCE_LEN > buf.len() {
            rng.fill(buf).map_err(|_| CodecError::Random)?;
            *used = 0;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[*used..*used + NONCE_LEN]);
        // Never hand out the same bytes twice.
        buf[*used..*used + NONCE_LEN].fill(0);
        *used += NONCE_LEN;
        Ok(nonce)
    })
}

#[derive(Debug)]
pub(super) struct Aead {
    rng: SystemRandom,
}

impl Aead {
    pub(super) fn new() -> Self {
        Aead {
            rng: SystemRandom::new(),
        }
    }
}

impl Codec for Aead {
    fn encoding(&self) -> &'static [u8] {
        ENCODING_ENCRYPTED
    }

    fn encode(
        &self,
        input: &[u8],
        view: &PayloadView<'_>,
        keys: &CallKeys<'_>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let Some(key) = keys.encrypt else {
            // Fail closed; the caller may make the key ready and retry.
            keys.wanted_key.store(true, Relaxed);
            return Err(CodecError::NoActiveKey {
                policy: keys.policy.name().to_string(),
            });
        };
        let nonce = fresh_nonce(&self.rng)?;
        let bound = keys.policy.binds_namespace();
        let mut metadata: Vec<(&str, &[u8])> = Vec::with_capacity(4);
        metadata.push((payload::ENCODING, ENCODING_ENCRYPTED));
        metadata.push((KEY_ID, key.id().as_bytes()));
        if let Some(wrapped) = key.wrapped() {
            metadata.push((DEK, wrapped.as_bytes()));
        }
        if bound {
            metadata.push((BOUND, BOUND_NAMESPACE));
        }
        let aad = if bound {
            Aad::from(keys.namespace.as_bytes())
        } else {
            Aad::from(&[][..])
        };
        let data_len = NONCE_LEN + input.len() + TAG_LEN;
        // Encrypt in place inside the final buffer: one allocation, one copy.
        let out = payload::write_payload(&metadata, data_len, &view.external, |out| {
            out.extend_from_slice(&nonce);
            let start = out.len();
            out.extend_from_slice(input);
            let tag = key
                .aead()
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    aad,
                    &mut out[start..],
                )
                .map_err(|_| CodecError::Seal)?;
            out.extend_from_slice(tag.as_ref());
            Ok::<(), CodecError>(())
        })?;
        key.count_encrypt();
        Ok(Some(out))
    }
}

impl Aead {
    /// Opens a `binary/encrypted` payload into `arena` (decrypted in place
    /// there): the range of the marshaled payload it held. `None` leaves it
    /// as it is (a key this policy does not have, or a data key not yet
    /// unwrapped: noted in `keys.missing`).
    pub(super) fn decode_into(
        &self,
        view: &PayloadView<'_>,
        stats: &CodecStats,
        keys: &CallKeys<'_>,
        arena: &mut Arena,
    ) -> Result<Option<Range<usize>>, CodecError> {
        let id = view.metadata(KEY_ID).unwrap_or_default();
        let dek;
        let found = match view.metadata(DEK) {
            None => keys.static_key(id),
            Some(wrapped) => match keys.policy.kek(id) {
                None => None,
                Some(kek) => match keys.deks.cached(keys.namespace, kek.id(), wrapped) {
                    Some(k) => {
                        dek = k;
                        Some(&dek)
                    }
                    None => {
                        // Fetched by the caller, who then decodes again.
                        if let Ok(mut m) = keys.missing.lock() {
                            m.push((kek.clone(), wrapped.into()));
                        }
                        return Ok(None);
                    }
                },
            },
        };
        let Some(key) = found else {
            // Not one of ours (another gateway's or an SDK's key, or one this
            // namespace's policy does not allow): pass it on.
            stats.unknown_key.fetch_add(1, Relaxed);
            return Ok(None);
        };
        let data = view.data;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(CodecError::Truncated {
                key_id: key.shown_id().to_string(),
                len: data.len(),
            });
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(nonce);
        let aad = match view.metadata(BOUND) {
            None => Aad::from(&[][..]),
            Some(BOUND_NAMESPACE) => Aad::from(keys.namespace.as_bytes()),
            Some(other) => {
                return Err(CodecError::UnknownBinding {
                    key_id: key.shown_id().to_string(),
                    binding: String::from_utf8_lossy(other).into_owned(),
                });
            }
        };
        let r = arena.push(sealed);
        let opened = key
            .aead()
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                aad,
                arena.get_mut(r.clone()),
            )
            .map(|plain| plain.len());
        let Ok(plain_len) = opened else {
            arena.truncate(r.start);
            return Err(CodecError::Authentication {
                key_id: key.shown_id().to_string(),
            });
        };
        arena.truncate(r.start + plain_len);
        key.count_decrypt();
        Ok(Some(r.start..r.start + plain_len))
    }
}
