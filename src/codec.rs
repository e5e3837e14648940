//! Payload codecs and the chain that applies them.
//!
//! Every codec takes one whole marshaled `Payload` (metadata included) and
//! returns a new marshaled `Payload` that carries it, so decoding restores the
//! original exactly. Encode runs the chain in order (compress, then encrypt);
//! decode removes only the layers sealgate itself applied:
//!
//! - a `binary/encrypted` layer under a key this namespace's policy holds;
//! - the one `binary/snappy` layer directly inside it (sealgate compresses
//!   before it encrypts, and so do the SDK samples whose payloads sealgate
//!   reads after a migration);
//! - a top-level `binary/snappy` layer only when it carries sealgate's mark
//!   ([`SNAPPY_MARK`], written when compression is on and encryption off).
//!
//! A compression or encryption layer a client applied itself is left for
//! the client's own codec, and a malformed unauthenticated layer never fails
//! a read: it passes through as it is.

mod aead;
pub mod arena;
mod compressed;
pub(crate) mod failure;
pub mod json;
pub mod payload;
mod pipeline;
mod snappy;
#[cfg(test)]
mod tests;

use std::{
    borrow::Cow,
    fmt,
    ops::Range,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use thiserror::Error;

pub use aead::{BOUND, DEK, ENCODING_ENCRYPTED, KEY_ID, NONCE_LEN, TAG_LEN};
pub use arena::Arena;
pub use payload::PayloadView;
pub use pipeline::{Pipeline, Session, Setup};
pub use snappy::{ENCODING_SNAPPY, SNAPPY_MARK};

use crate::{
    keys::{
        Key, KeyOpsRegistry,
        envelope::DekStore,
        kms::{Kek, KmsError},
        policy::{KeysSpec, Policies, Policy, PolicyError},
    },
    wire::WireError,
};

/// Default bound on one decoded payload (the SDKs' default message limit).
pub const DEFAULT_MAX_DECODED: usize = 128 << 20;

/// The `[codec]` section.
#[derive(Debug, Clone)]
pub struct CodecConfig {
    /// Snappy-compress payloads before encrypting (skipped when it does not shrink).
    pub compression: bool,
    /// Encrypt payloads with each namespace's policy; fail closed when that is
    /// impossible. Off: decrypt only.
    pub encryption: bool,
    /// Move failure messages and stack traces into encoded attributes.
    pub encode_failure_attributes: bool,
    /// Static keys, KEK providers and policies.
    pub keys: KeysSpec,
    /// Unwrapped data keys kept in memory.
    pub dek_cache_size: usize,
}

impl CodecConfig {
    pub fn chain_options(&self) -> ChainOptions {
        ChainOptions {
            compression: self.compression,
            encryption: self.encryption,
            encode_failures: self.encode_failure_attributes,
            max_decoded: None,
        }
    }

    /// One generation of chain and policies. `stats` and `ops` are shared
    /// across generations; providers are reused from `previous` when their
    /// settings did not change.
    pub fn setup(
        &self,
        stats: Arc<CodecStats>,
        ops: &KeyOpsRegistry,
        previous: Option<&Policies>,
    ) -> Result<Setup, PolicyError> {
        Ok(Setup {
            chain: Chain::new(&self.chain_options(), stats),
            policies: Policies::build(&self.keys, self.encryption, ops, previous)?,
        })
    }
}

/// What the optional failure encoding does on this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Leave failure messages as they are.
    Off,
    /// Move message and stack trace into `encoded_attributes`.
    Encode,
    /// Restore message and stack trace that sealgate moved.
    Decode,
}

/// What a visitor made of one payload.
#[derive(Debug)]
pub enum Replacement {
    /// Keep it as it is.
    Kept,
    /// These bytes instead.
    Owned(Vec<u8>),
    /// The bytes in this range of the arena instead.
    InArena(Range<usize>),
}

impl From<Option<Vec<u8>>> for Replacement {
    /// What [`PayloadVisitor::payload`] answered.
    fn from(new: Option<Vec<u8>>) -> Self {
        new.map_or(Replacement::Kept, Replacement::Owned)
    }
}

/// Receives each marshaled `Payload` the rewriter (`crate::rewrite`) finds:
/// the codec's encoder and decoder, and namespace translation.
pub trait PayloadVisitor {
    /// Returns the replacement payload, or `None` to keep it as it is.
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError>;

    /// [`Self::payload`], free to write the replacement into `arena` (the
    /// buffer the rewriter writes the message out from) rather than into a
    /// buffer of its own. The decoder does: no allocation per payload.
    /// `view` is the payload already parsed, when the rewriter parsed it
    /// (`None`: it did not parse).
    fn payload_into(
        &mut self,
        payload: &[u8],
        view: Option<&PayloadView<'_>>,
        arena: &mut Arena,
    ) -> Result<Replacement, CodecError> {
        let _ = (view, arena);
        Ok(self.payload(payload)?.into())
    }

    /// How `temporal.api.failure.v1.Failure` messages are treated.
    fn failure_mode(&self) -> FailureMode {
        FailureMode::Off
    }
}

impl<V: PayloadVisitor + ?Sized> PayloadVisitor for &mut V {
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        (**self).payload(payload)
    }

    fn payload_into(
        &mut self,
        payload: &[u8],
        view: Option<&PayloadView<'_>>,
        arena: &mut Arena,
    ) -> Result<Replacement, CodecError> {
        (**self).payload_into(payload, view, arena)
    }

    fn failure_mode(&self) -> FailureMode {
        (**self).failure_mode()
    }
}

/// A payload could not be encoded or decoded. Never carries payload bytes.
#[derive(Debug, Error)]
pub enum CodecError {
    #[error(
        "payload encrypted with key {key_id:?} is bound to {binding:?}, a binding this sealgate does not know; upgrade it"
    )]
    UnknownBinding { key_id: String, binding: String },
    #[error("payload is not a valid temporal.api.common.v1.Payload: {0}")]
    MalformedPayload(WireError),
    #[error("encryption is on but policy {policy:?} has no key ready to encrypt with")]
    NoActiveKey { policy: String },
    #[error(transparent)]
    Kms(Box<KmsError>),
    #[error(
        "payload encrypted with key {key_id:?} failed authentication (wrong key material or tampered data)"
    )]
    Authentication { key_id: String },
    #[error("payload encrypted with key {key_id:?} is {len} bytes, shorter than nonce and tag")]
    Truncated { key_id: String, len: usize },
    #[error("binary/snappy payload does not decompress: {0}")]
    Decompress(snap::Error),
    #[error("binary/compressed payload ({algorithm}) does not decompress: {reason}")]
    Inflate { algorithm: String, reason: String },
    #[error("payload does not compress: {0}")]
    Compress(snap::Error),
    #[error("decoded payload would be {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("the system random number generator failed")]
    Random,
    #[error("AES-GCM encryption failed")]
    Seal,
    /// The external store could not be used: nothing was forwarded.
    #[error(transparent)]
    Storage(Box<crate::storage::StorageError>),
}

impl From<crate::storage::StorageError> for CodecError {
    fn from(e: crate::storage::StorageError) -> Self {
        CodecError::Storage(Box::new(e))
    }
}

/// One call's external storage: the store, the namespace's offload policy,
/// the objects this call's encode made (to upload before anything is
/// forwarded), and the references its decode met and those fetched.
pub struct Offloads {
    pub(crate) store: Arc<crate::storage::Store>,
    pub(crate) policy: Option<crate::storage::Offload>,
    pub(crate) namespace: Box<str>,
    pub(crate) pending: std::sync::Mutex<Vec<(crate::storage::Claim, bytes::Bytes)>>,
    pub(crate) wanted: std::sync::Mutex<Vec<crate::storage::Claim>>,
    pub(crate) fetched:
        std::sync::Mutex<std::collections::HashMap<crate::storage::Claim, bytes::Bytes>>,
    /// Leave references as they are (the Codec Server's
    /// `?preserveStorageRefs=true`).
    pub(crate) preserve: bool,
}

impl Offloads {
    /// `encoded` (sealgate's own encrypted payload) stored instead, when it
    /// reaches the threshold: the reference to send; else `encoded` itself.
    fn offload(&self, encoded: Vec<u8>) -> Vec<u8> {
        let Some(policy) = &self.policy else {
            return encoded;
        };
        if encoded.len() < policy.threshold {
            return encoded;
        }
        // Only ciphertext ever goes to the bucket.
        if payload::encoding_of(&encoded).ok().flatten() != Some(ENCODING_ENCRYPTED) {
            return encoded;
        }
        let sha256 = crate::storage::sha256_hex(&encoded);
        let claim = crate::storage::Claim {
            bucket: policy.bucket.clone(),
            key: self.store.key(&self.namespace, &sha256),
            sha256,
        };
        let reference = crate::storage::reference_payload(&claim, encoded.len());
        if let Ok(mut p) = self.pending.lock() {
            p.push((claim, bytes::Bytes::from(encoded)));
        }
        reference
    }

    /// The stored payload a reference names, when fetched; otherwise it is
    /// noted for [`Session::fetch_missing`]. `None` when `payload` is not a
    /// reference sealgate can resolve (then it stays as it is).
    fn resolve(&self, payload: &[u8]) -> Option<Result<bytes::Bytes, ()>> {
        if self.preserve {
            return None;
        }
        let view = PayloadView::parse(payload).ok()?;
        let claim = crate::storage::parse_reference(
            view.encoding(),
            view.metadata("messageType"),
            view.data,
        )
        .ok()??;
        if let Some(obj) = self.fetched.lock().ok()?.get(&claim) {
            return Some(Ok(obj.clone()));
        }
        if let Ok(mut w) = self.wanted.lock() {
            w.push(claim);
        }
        Some(Err(()))
    }
}

/// Wrapped data keys (their KEK and the base64 `encryption-dek`) a decode
/// found missing from the cache.
pub type MissingDeks = std::sync::Mutex<Vec<(Arc<Kek>, Box<[u8]>)>>;

/// The keys one call may use: its namespace's policy, the key resolved for
/// encryption, and the data keys found missing while decoding.
pub struct CallKeys<'a> {
    pub policy: &'a Policy,
    /// The call's namespace: associated data of bound payloads, part of the
    /// KMS encryption context, and of the data key cache's key.
    pub namespace: &'a str,
    /// The static key or current DEK that encrypts; `None` when none is
    /// ready (encoding then fails closed).
    pub encrypt: Option<&'a Arc<Key>>,
    pub deks: &'a DekStore,
    /// Wrapped DEKs (KEK, base64) that were not cached: the payloads stay as
    /// they are, and the caller fetches these and decodes again.
    pub missing: &'a MissingDeks,
    /// Set when a payload needed encrypting and no key was ready.
    pub wanted_key: &'a std::sync::atomic::AtomicBool,
    /// External storage, when configured.
    pub offloads: Option<&'a Offloads>,
    /// The static key the last payload named (the payloads of a message
    /// mostly share one): the next with the same id skips the policy's
    /// map.
    pub last_static: std::cell::Cell<Option<&'a Arc<Key>>>,
}

impl<'a> CallKeys<'a> {
    /// The policy's static key named `id`, if it allows one.
    pub fn static_key(&self, id: &[u8]) -> Option<&'a Arc<Key>> {
        if let Some(k) = self.last_static.get()
            && k.id().as_bytes() == id
        {
            return Some(k);
        }
        let k = self.policy.static_key(id)?;
        self.last_static.set(Some(k));
        Some(k)
    }
}

impl From<KmsError> for CodecError {
    fn from(e: KmsError) -> Self {
        CodecError::Kms(Box::new(e))
    }
}

/// One step of the chain.
pub trait Codec: Send + Sync + fmt::Debug {
    /// The `encoding` metadata value this codec writes and reads.
    fn encoding(&self) -> &'static [u8];

    /// Wraps `payload`; `None` leaves it as it is.
    fn encode(
        &self,
        payload: &[u8],
        view: &PayloadView<'_>,
        keys: &CallKeys<'_>,
    ) -> Result<Option<Vec<u8>>, CodecError>;
}

/// Counters shared by every use of a chain.
#[derive(Debug, Default)]
pub struct CodecStats {
    pub encoded: AtomicU64,
    pub decoded: AtomicU64,
    /// Payloads left as they were (nothing to do, or not ours to decode).
    pub encode_passed_through: AtomicU64,
    pub decode_passed_through: AtomicU64,
    /// Encrypted payloads whose key id this keyring does not know.
    pub unknown_key: AtomicU64,
    /// Marked snappy layers (no key authenticates them) that did not
    /// decompress and were passed through as they were.
    pub bad_unauthenticated: AtomicU64,
    pub failed: AtomicU64,
    /// Bytes into and out of encoding (compression savings show here).
    pub encode_bytes_in: AtomicU64,
    pub encode_bytes_out: AtomicU64,
    /// Bytes into and out of decoding.
    pub decode_bytes_in: AtomicU64,
    pub decode_bytes_out: AtomicU64,
}

/// What to build a chain from.
#[derive(Debug, Default)]
pub struct ChainOptions {
    pub compression: bool,
    pub encryption: bool,
    pub encode_failures: bool,
    /// Largest payload decoding may produce.
    pub max_decoded: Option<usize>,
}

/// The encode and decode pipelines; keys come with each call.
#[derive(Debug)]
pub struct Chain {
    encoders: Vec<Box<dyn Codec>>,
    aead: aead::Aead,
    snappy: snappy::Snappy,
    encode_failures: bool,
    stats: Arc<CodecStats>,
}

impl Chain {
    /// The largest payload (or sum of fetched objects) one call decodes.
    pub fn max_decoded(&self) -> usize {
        self.snappy.max_decoded
    }

    /// A chain: snappy when `compression`, AES-256-GCM when `encryption`.
    /// Decoding always knows both formats, so data written before a setting
    /// changed still decodes. `stats` outlives the chain (reloads).
    pub fn new(opts: &ChainOptions, stats: Arc<CodecStats>) -> Chain {
        let max = opts.max_decoded.unwrap_or(DEFAULT_MAX_DECODED);
        let snappy = |mark| snappy::Snappy {
            max_decoded: max,
            mark,
        };
        let mut encoders = Vec::new();
        if opts.compression {
            // Marked when it is the outer layer: decode then knows it is ours.
            encoders.push(Box::new(snappy(!opts.encryption)) as Box<dyn Codec>);
        }
        if opts.encryption {
            encoders.push(Box::new(aead::Aead::new()) as Box<dyn Codec>);
        }
        Chain {
            encoders,
            aead: aead::Aead::new(),
            snappy: snappy(false),
            encode_failures: opts.encode_failures,
            stats,
        }
    }

    /// True when this chain encrypts.
    pub fn encrypts(&self) -> bool {
        self.encoders
            .iter()
            .any(|c| c.encoding() == ENCODING_ENCRYPTED)
    }

    /// The chain's counters.
    pub fn stats(&self) -> &Arc<CodecStats> {
        &self.stats
    }

    /// Encodes one marshaled payload; `None` when no codec changed it.
    pub fn encode_payload(
        &self,
        payload: &[u8],
        keys: &CallKeys<'_>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        self.encode_parsed(payload, None, keys)
    }

    /// [`Self::encode_payload`] for a payload already parsed as `parsed`
    /// (`None`: parse it here).
    pub fn encode_parsed(
        &self,
        payload: &[u8],
        parsed: Option<&PayloadView<'_>>,
        keys: &CallKeys<'_>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let res = self.encode_inner(payload, parsed, keys);
        let out = res.as_ref().map(|o| o.as_ref().map(Vec::len));
        self.count(Direction::Encode, out, payload.len());
        res
    }

    fn encode_inner(
        &self,
        payload: &[u8],
        mut parsed: Option<&PayloadView<'_>>,
        keys: &CallKeys<'_>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let mut cur = Cow::Borrowed(payload);
        for codec in &self.encoders {
            let next = match parsed {
                // The input as given, until a layer changes it.
                Some(view) => codec.encode(&cur, view, keys)?,
                None => {
                    let view = PayloadView::parse(&cur).map_err(CodecError::MalformedPayload)?;
                    codec.encode(&cur, &view, keys)?
                }
            };
            if let Some(next) = next {
                cur = Cow::Owned(next);
                parsed = None;
            }
        }
        Ok(changed(cur))
    }

    /// Decodes one marshaled payload; `None` when it carries none of our
    /// encodings (it passes through as it is).
    pub fn decode_payload(
        &self,
        payload: &[u8],
        keys: &CallKeys<'_>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let mut arena = Arena::default();
        Ok(self
            .decode_into(payload, keys, &mut arena)?
            .map(|r| arena.into_vec(r)))
    }

    /// [`Self::decode_payload`] into `arena`: the range of the decoded
    /// payload there.
    pub fn decode_into(
        &self,
        payload: &[u8],
        keys: &CallKeys<'_>,
        arena: &mut Arena,
    ) -> Result<Option<Range<usize>>, CodecError> {
        match PayloadView::parse(payload) {
            Ok(view) => self.decode_parsed(payload, &view, keys, arena),
            // Something that is not a Payload is not ours to decode.
            Err(_) => {
                self.count(Direction::Decode, Ok(None), payload.len());
                Ok(None)
            }
        }
    }

    /// [`Self::decode_into`] for a payload already parsed as `view`.
    pub fn decode_parsed(
        &self,
        payload: &[u8],
        view: &PayloadView<'_>,
        keys: &CallKeys<'_>,
        arena: &mut Arena,
    ) -> Result<Option<Range<usize>>, CodecError> {
        let mark = arena.used();
        let res = self.decode_inner(view, keys, arena);
        if !matches!(res, Ok(Some(_))) {
            arena.truncate(mark);
        }
        let out = res.as_ref().map(|o| o.as_ref().map(Range::len));
        self.count(Direction::Decode, out, payload.len());
        res
    }

    fn decode_inner(
        &self,
        view: &PayloadView<'_>,
        keys: &CallKeys<'_>,
        arena: &mut Arena,
    ) -> Result<Option<Range<usize>>, CodecError> {
        let encoding = view.encoding();
        if encoding == Some(ENCODING_SNAPPY) {
            if view.metadata(SNAPPY_MARK.0) != Some(SNAPPY_MARK.1) {
                return Ok(None); // the client's own layer
            }
            // Marked, but nothing authenticates the mark: a layer that does
            // not decompress passes through rather than failing the read.
            return match self.snappy.decode_into(view.data, arena) {
                Ok(out) => Ok(Some(out)),
                Err(_) => {
                    self.stats.bad_unauthenticated.fetch_add(1, Relaxed);
                    Ok(None)
                }
            };
        }
        if encoding == Some(compressed::ENCODING_COMPRESSED) {
            // Temporal Proxy's layer without its encryption: nothing
            // authenticates it, so one that does not open passes through.
            return match compressed::decompress(view, self.snappy.max_decoded) {
                Ok(out) => Ok(Some(arena.push(&out))),
                Err(_) => {
                    self.stats.bad_unauthenticated.fetch_add(1, Relaxed);
                    Ok(None)
                }
            };
        }
        if encoding != Some(ENCODING_ENCRYPTED) {
            return Ok(None);
        }
        let Some(inner) = self.aead.decode_into(view, &self.stats, keys, arena)? else {
            return Ok(None);
        };
        // Authenticated under one of our keys: the snappy layer directly
        // inside is sealgate's (or a migrated SDK sample's) and must decode.
        // Likewise Temporal Proxy's compression inside its encryption.
        enum Inside {
            Snappy(Range<usize>),
            Decompressed(Vec<u8>),
            Plain,
        }
        let inside = match PayloadView::parse(arena.get(inner.clone())) {
            // An empty `data` is not in the arena: an empty range, which
            // fails to decompress like any truncated snappy block.
            Ok(v) if v.encoding() == Some(ENCODING_SNAPPY) => {
                Inside::Snappy(arena.range_of(v.data).unwrap_or(inner.end..inner.end))
            }
            Ok(v) if v.encoding() == Some(compressed::ENCODING_COMPRESSED) => {
                Inside::Decompressed(compressed::decompress(&v, self.snappy.max_decoded)?)
            }
            _ => Inside::Plain,
        };
        match inside {
            Inside::Snappy(data) => Ok(Some(self.snappy.decode_within(data, arena)?)),
            Inside::Decompressed(out) => Ok(Some(arena.push(&out))),
            Inside::Plain => Ok(Some(inner)),
        }
    }

    /// Counts one payload rewritten in `direction`: changed (`len_in`
    /// bytes in, the output's length out), passed through, or failed.
    fn count(&self, direction: Direction, out: Result<Option<usize>, &CodecError>, len_in: usize) {
        let s = &self.stats;
        let [changed, passed, bytes_in, bytes_out] = match direction {
            Direction::Encode => [
                &s.encoded,
                &s.encode_passed_through,
                &s.encode_bytes_in,
                &s.encode_bytes_out,
            ],
            Direction::Decode => [
                &s.decoded,
                &s.decode_passed_through,
                &s.decode_bytes_in,
                &s.decode_bytes_out,
            ],
        };
        match out {
            Ok(Some(len_out)) => {
                changed.fetch_add(1, Relaxed);
                bytes_in.fetch_add(len_in as u64, Relaxed);
                bytes_out.fetch_add(len_out as u64, Relaxed);
            }
            Ok(None) => {
                passed.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.stats.failed.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Which way payloads are rewritten: it picks a chain's counters, and the
/// codec-duration histogram a message's time goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Encode = 0,
    Decode = 1,
}

/// The new bytes if any codec produced some, `None` if the input stands.
fn changed(cur: Cow<'_, [u8]>) -> Option<Vec<u8>> {
    match cur {
        Cow::Owned(v) => Some(v),
        Cow::Borrowed(_) => None,
    }
}

/// Rewriter visitor for the request direction (towards the server).
pub struct Encoder<'a> {
    pub(crate) chain: &'a Chain,
    pub(crate) keys: CallKeys<'a>,
}

impl Encoder<'_> {
    fn encode(
        &self,
        payload: &[u8],
        parsed: Option<&PayloadView<'_>>,
    ) -> Result<Option<Vec<u8>>, CodecError> {
        let out = self.chain.encode_parsed(payload, parsed, &self.keys)?;
        Ok(match (out, self.keys.offloads) {
            (Some(encoded), Some(o)) => Some(o.offload(encoded)),
            (out, _) => out,
        })
    }
}

impl PayloadVisitor for Encoder<'_> {
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        self.encode(payload, None)
    }

    fn payload_into(
        &mut self,
        payload: &[u8],
        view: Option<&PayloadView<'_>>,
        _: &mut Arena,
    ) -> Result<Replacement, CodecError> {
        Ok(self.encode(payload, view)?.into())
    }

    fn failure_mode(&self) -> FailureMode {
        if self.chain.encode_failures {
            FailureMode::Encode
        } else {
            FailureMode::Off
        }
    }
}

/// Rewriter visitor for the response direction (towards the worker).
pub struct Decoder<'a> {
    pub(crate) chain: &'a Chain,
    pub(crate) keys: CallKeys<'a>,
}

impl PayloadVisitor for Decoder<'_> {
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        if let Some(o) = self.keys.offloads {
            match o.resolve(payload) {
                // Inlined: the stored payload, decoded when it is ours.
                Some(Ok(stored)) => {
                    let decoded = self.chain.decode_payload(&stored, &self.keys)?;
                    return Ok(Some(decoded.unwrap_or_else(|| stored.to_vec())));
                }
                // Fetched before the next pass.
                Some(Err(())) => return Ok(None),
                None => {}
            }
        }
        self.chain.decode_payload(payload, &self.keys)
    }

    fn payload_into(
        &mut self,
        payload: &[u8],
        view: Option<&PayloadView<'_>>,
        arena: &mut Arena,
    ) -> Result<Replacement, CodecError> {
        if self.keys.offloads.is_some() {
            // References to stored payloads take the owned path.
            return Ok(self.payload(payload)?.into());
        }
        let decoded = match view {
            Some(view) => self.chain.decode_parsed(payload, view, &self.keys, arena)?,
            None => self.chain.decode_into(payload, &self.keys, arena)?,
        };
        Ok(match decoded {
            Some(r) => Replacement::InArena(r),
            None => Replacement::Kept,
        })
    }

    fn failure_mode(&self) -> FailureMode {
        // Failures sealgate encoded earlier are restored even once the
        // setting is off: decoding never depends on encode settings.
        FailureMode::Decode
    }
}
