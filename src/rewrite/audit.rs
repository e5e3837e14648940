//! The audit of an outgoing request, after encoding and before a byte
//! leaves: a walk over every field of every message (not only the payload
//! paths the plan names) that finds
//! - a length-delimited field the schema does not define (how a newer
//!   API's new payload field arrives), or an `Any` of a type it does not
//!   know: either may carry a payload sealgate cannot see;
//! - a `Payload` whose `encoding` is not sealgate's own, outside the paths
//!   that stay plaintext by design (the tripwire): whatever the plan
//!   missed, it is refused rather than forwarded;
//! - a `Payload` or `Payloads` list larger than the upstream accepts (the
//!   size guard): refused here, retryably, rather than by the server, which
//!   would terminate a workflow whose task completion it refuses.
//!
//! It walks by the field types of the descriptor set, independently of the
//! plan, so a plan bug (a path left out) is caught here. Unknown varint and
//! fixed-width fields pass: they cannot hold a payload.

use super::{
    MAX_DEPTH,
    wire::{self, Fields, WireError},
};
use crate::{
    codec::PayloadView,
    schema::{FieldKind, MessageId, Schema},
};

/// What the audit found; the first finding ends it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Finding {
    #[error(
        "field {number} of {message} is not in sealgate's schema, so it may carry a payload sealgate cannot see"
    )]
    UnknownField { message: String, number: u32 },
    #[error(
        "an Any in {message} holds {type_url:?}, a type not in sealgate's schema, so it may carry a payload sealgate cannot see"
    )]
    UnknownAny { message: String, type_url: String },
    #[error("a payload in {message} is still plaintext (encoding {encoding:?}) after encoding")]
    Plaintext { message: String, encoding: String },
    #[error("payloads in {message} are {size} bytes after encoding")]
    PayloadTooLarge { message: String, size: usize },
    #[error("malformed protobuf: {0}")]
    Malformed(#[from] WireError),
}

/// What to look for.
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Report unknown length-delimited fields and unknown `Any` types.
    pub unknown: bool,
    /// Report payloads whose encoding is not `own` (the tripwire); off when
    /// this call's policy does not encrypt.
    pub plaintext: bool,
    /// The encoding sealgate's own encoded payloads carry.
    pub own: &'static [u8],
    /// Report a `Payload`, or a `Payloads` list, larger than this (the
    /// upstream's payload limit); `usize::MAX`: no limit.
    pub max_payload: usize,
}

/// Audits message `id` in `bytes`.
pub fn audit(schema: &Schema, id: MessageId, bytes: &[u8], checks: Checks) -> Result<(), Finding> {
    Auditor {
        schema,
        checks,
        payloads: schema.payload_list(),
    }
    .message(id, bytes, 0)
}

struct Auditor<'s> {
    schema: &'s Schema,
    checks: Checks,
    /// The list a server checks against its blob size limit as one.
    payloads: Option<MessageId>,
}

impl Auditor<'_> {
    fn message(&self, id: MessageId, bytes: &[u8], depth: u32) -> Result<(), Finding> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep { limit: MAX_DEPTH }.into());
        }
        for field in Fields::new(bytes, MAX_DEPTH.saturating_sub(depth)) {
            let (tag, value) = field?;
            let kind = self.schema.field_kind(id, tag.field);
            if tag.wire_type != wire::LEN {
                continue; // scalars, whatever the schema says: no payload fits
            }
            match kind {
                None if self.checks.unknown => {
                    return Err(Finding::UnknownField {
                        message: self.schema.message(id).name().to_string(),
                        number: tag.field,
                    });
                }
                None | Some(FieldKind::Scalar) | Some(FieldKind::Exempt) => {}
                Some(FieldKind::Message(child)) => {
                    if Some(child) == self.payloads {
                        self.size(id, value)?;
                    }
                    self.message(child, value, depth + 1)?
                }
                Some(FieldKind::Payload) => {
                    self.size(id, value)?;
                    self.payload(id, value, depth)?
                }
                Some(FieldKind::Any) => self.any(id, value, depth + 1)?,
            }
        }
        Ok(())
    }

    /// A payload or payload list over the upstream's limit.
    fn size(&self, owner: MessageId, bytes: &[u8]) -> Result<(), Finding> {
        if bytes.len() <= self.checks.max_payload {
            return Ok(());
        }
        Err(Finding::PayloadTooLarge {
            message: self.schema.message(owner).name().to_string(),
            size: bytes.len(),
        })
    }

    /// `google.protobuf.Any`: the message its type URL names, a payload,
    /// or (unknown type) a finding.
    fn any(&self, owner: MessageId, bytes: &[u8], depth: u32) -> Result<(), Finding> {
        let (type_url, value) = wire::len_pair(bytes, MAX_DEPTH.saturating_sub(depth))?;
        if type_url.is_empty() && value.is_empty() {
            return Ok(());
        }
        match self.schema.resolve_type_url(type_url) {
            Some(t) if Some(t) == self.schema.payload_leaf() => self.payload(owner, value, depth),
            Some(t) => self.message(t, value, depth + 1),
            None if self.checks.unknown => Err(Finding::UnknownAny {
                message: self.schema.message(owner).name().to_string(),
                type_url: String::from_utf8_lossy(type_url).into_owned(),
            }),
            None => Ok(()),
        }
    }

    /// A `Payload` inside message `owner`: its `encoding` must be sealgate's,
    /// unless it is a System Nexus envelope of a known type (plaintext by
    /// design for the server), whose message is audited in turn.
    fn payload(&self, owner: MessageId, bytes: &[u8], depth: u32) -> Result<(), Finding> {
        if self.checks.plaintext {
            let encoding = crate::codec::payload::encoding_of(bytes)?;
            if encoding == Some(self.checks.own) {
                return Ok(()); // the common case: one pass over the metadata
            }
            let view = PayloadView::parse(bytes)?;
            if let Some(target) = self.system_envelope(&view) {
                return self.message(target, view.data, depth + 1);
            }
            // A reference to a payload sealgate offloaded (encrypted) to
            // external storage: it names an object and holds nothing else.
            if crate::storage::is_own_reference(view.metadata_entries(), view.data) {
                return Ok(());
            }
            return Err(Finding::Plaintext {
                message: self.schema.message(owner).name().to_string(),
                encoding: encoding
                    .map(|e| String::from_utf8_lossy(e).into_owned())
                    .unwrap_or_default(),
            });
        }
        if !self.checks.unknown {
            return Ok(());
        }
        // A payload that does not parse is not an envelope (the server
        // reads it as it is).
        let Ok(view) = PayloadView::parse(bytes) else {
            return Ok(());
        };
        match self.system_envelope(&view) {
            Some(target) => self.message(target, view.data, depth + 1),
            None => Ok(()),
        }
    }

    /// The message type of a System Nexus envelope, when the schema knows it.
    fn system_envelope(&self, view: &PayloadView<'_>) -> Option<MessageId> {
        view.system_message_type()
            .and_then(|t| std::str::from_utf8(t).ok())
            .and_then(|t| self.schema.message_id(t))
    }
}

#[cfg(test)]
mod tests;
