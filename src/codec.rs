//! Payload codecs and the chain that applies them.
//!
//! Every codec takes one whole marshaled `Payload` (metadata included) and
//! returns a new marshaled `Payload` that carries it, so decoding restores the
//! original exactly. Encode runs the chain in order (compress, then encrypt);
//! decode runs it in reverse, each codec touching only payloads that carry
//! its own `encoding`.

mod aead;
pub(crate) mod failure;
pub mod json;
pub mod payload;
mod snappy;
#[cfg(test)]
mod tests;

use std::{
    borrow::Cow,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use thiserror::Error;

pub use aead::{ENCODING_ENCRYPTED, KEY_ID, NONCE_LEN, TAG_LEN};
pub use payload::PayloadView;
pub use snappy::ENCODING_SNAPPY;

use crate::{
    keys::Keyring,
    rewrite::{FailureMode, PayloadVisitor, WireError},
};

/// Default bound on one decoded payload (the SDKs' default message limit).
pub const DEFAULT_MAX_DECODED: usize = 128 << 20;

/// A payload could not be encoded or decoded. Never carries payload bytes.
#[derive(Debug, Error)]
pub enum CodecError {
    #[error("payload is not a valid temporal.api.common.v1.Payload: {0}")]
    MalformedPayload(WireError),
    #[error("encryption is on but no active key is configured")]
    NoActiveKey,
    #[error(
        "payload encrypted with key {key_id:?} failed authentication (wrong key material or tampered data)"
    )]
    Authentication { key_id: String },
    #[error("payload encrypted with key {key_id:?} is {len} bytes, shorter than nonce and tag")]
    Truncated { key_id: String, len: usize },
    #[error("binary/snappy payload does not decompress: {0}")]
    Decompress(snap::Error),
    #[error("payload does not compress: {0}")]
    Compress(snap::Error),
    #[error("decoded payload would be {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("the system random number generator failed")]
    Random,
    #[error("AES-GCM encryption failed")]
    Seal,
}

/// One step of the chain.
pub trait Codec: Send + Sync + fmt::Debug {
    /// The `encoding` metadata value this codec writes and reads.
    fn encoding(&self) -> &'static [u8];

    /// Wraps `payload`; `None` leaves it as it is.
    fn encode(&self, payload: &[u8], view: &PayloadView<'_>)
    -> Result<Option<Vec<u8>>, CodecError>;

    /// Unwraps a payload that carries this codec's encoding; `None` leaves it
    /// as it is (e.g. a key this keyring does not have).
    fn decode(
        &self,
        view: &PayloadView<'_>,
        stats: &CodecStats,
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

/// The encode and decode pipelines over one keyring.
#[derive(Debug)]
pub struct Chain {
    encoders: Vec<Box<dyn Codec>>,
    /// In decode order (reverse of encode).
    decoders: Vec<Box<dyn Codec>>,
    encode_failures: bool,
    stats: Arc<CodecStats>,
    keyring: Arc<Keyring>,
}

impl Chain {
    /// A chain: snappy when `compression`, AES-256-GCM with the keyring's
    /// active key when `encryption`. Decoding always knows both formats, so
    /// data written before a setting changed still decodes.
    pub fn new(opts: &ChainOptions, keyring: Arc<Keyring>) -> Result<Chain, CodecError> {
        let max = opts.max_decoded.unwrap_or(DEFAULT_MAX_DECODED);
        let snappy = || Box::new(snappy::Snappy { max_decoded: max }) as Box<dyn Codec>;
        let aead = || Box::new(aead::Aead::new(keyring.clone())) as Box<dyn Codec>;
        let mut encoders = Vec::new();
        if opts.compression {
            encoders.push(snappy());
        }
        if opts.encryption {
            if keyring.active().is_none() {
                return Err(CodecError::NoActiveKey);
            }
            encoders.push(aead());
        }
        let mut decoders = Vec::new();
        if !keyring.is_empty() {
            decoders.push(aead());
        }
        decoders.push(snappy());
        Ok(Chain {
            encoders,
            decoders,
            encode_failures: opts.encode_failures,
            stats: Arc::default(),
            keyring,
        })
    }

    /// The keyring (for per-key operation counts).
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    /// The chain's counters.
    pub fn stats(&self) -> &Arc<CodecStats> {
        &self.stats
    }

    /// Encodes one marshaled payload; `None` when no codec changed it.
    pub fn encode_payload(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        let res = self.encode_inner(payload);
        self.count(&res, &self.stats.encoded, &self.stats.encode_passed_through);
        if let Ok(Some(out)) = &res {
            self.stats
                .encode_bytes_in
                .fetch_add(payload.len() as u64, Relaxed);
            self.stats
                .encode_bytes_out
                .fetch_add(out.len() as u64, Relaxed);
        }
        res
    }

    fn encode_inner(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        let mut cur = Cow::Borrowed(payload);
        for codec in &self.encoders {
            let view = PayloadView::parse(&cur).map_err(CodecError::MalformedPayload)?;
            if let Some(next) = codec.encode(&cur, &view)? {
                cur = Cow::Owned(next);
            }
        }
        Ok(changed(cur))
    }

    /// Decodes one marshaled payload; `None` when it carries none of our
    /// encodings (it passes through as it is).
    pub fn decode_payload(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        let res = self.decode_inner(payload);
        self.count(&res, &self.stats.decoded, &self.stats.decode_passed_through);
        if let Ok(Some(out)) = &res {
            self.stats
                .decode_bytes_in
                .fetch_add(payload.len() as u64, Relaxed);
            self.stats
                .decode_bytes_out
                .fetch_add(out.len() as u64, Relaxed);
        }
        res
    }

    fn decode_inner(&self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        let mut cur = Cow::Borrowed(payload);
        for codec in &self.decoders {
            // Something that is not a Payload is not ours to decode.
            let Ok(view) = PayloadView::parse(&cur) else {
                break;
            };
            if view.encoding() != Some(codec.encoding()) {
                continue;
            }
            match codec.decode(&view, &self.stats)? {
                Some(next) => cur = Cow::Owned(next),
                None => break,
            }
        }
        Ok(changed(cur))
    }

    fn count(
        &self,
        res: &Result<Option<Vec<u8>>, CodecError>,
        changed: &AtomicU64,
        passed: &AtomicU64,
    ) {
        match res {
            Ok(Some(_)) => changed.fetch_add(1, Relaxed),
            Ok(None) => passed.fetch_add(1, Relaxed),
            Err(_) => self.stats.failed.fetch_add(1, Relaxed),
        };
    }

    /// A visitor that encodes every payload the rewriter finds.
    pub fn encoder(&self) -> Encoder<'_> {
        Encoder(self)
    }

    /// A visitor that decodes every payload the rewriter finds.
    pub fn decoder(&self) -> Decoder<'_> {
        Decoder(self)
    }
}

/// The new bytes if any codec produced some, `None` if the input stands.
fn changed(cur: Cow<'_, [u8]>) -> Option<Vec<u8>> {
    match cur {
        Cow::Owned(v) => Some(v),
        Cow::Borrowed(_) => None,
    }
}

/// Rewriter visitor for the request direction (towards the server).
pub struct Encoder<'a>(&'a Chain);

impl PayloadVisitor for Encoder<'_> {
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        self.0.encode_payload(payload)
    }

    fn failure_mode(&self) -> FailureMode {
        if self.0.encode_failures {
            FailureMode::Encode
        } else {
            FailureMode::Off
        }
    }
}

/// Rewriter visitor for the response direction (towards the worker).
pub struct Decoder<'a>(&'a Chain);

impl PayloadVisitor for Decoder<'_> {
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        self.0.decode_payload(payload)
    }

    fn failure_mode(&self) -> FailureMode {
        // Failures sealgate encoded earlier are restored even once the
        // setting is off: decoding never depends on encode settings.
        FailureMode::Decode
    }
}
