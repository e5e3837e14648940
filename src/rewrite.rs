//! The wire-level rewriter: walks protobuf bytes along the schema plan and
//! hands every `Payload` it finds to a [`PayloadVisitor`].
//!
//! Bytes the plan does not name are copied verbatim, so unknown fields, field
//! order and non-canonical encodings survive. A message whose payloads all
//! come back unchanged is returned as the input slice itself (no copy).

mod failure;
#[cfg(test)]
mod tests;
pub(crate) mod wire;

use std::{borrow::Cow, fmt};

use thiserror::Error;

use crate::{
    codec::CodecError,
    schema::{self, Action, MessageId, MessageKind, Schema},
};
pub use wire::WireError;

/// Deepest message nesting the rewriter follows.
pub const MAX_DEPTH: u32 = 100;

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

/// Receives each marshaled `Payload` the rewriter finds.
pub trait PayloadVisitor {
    /// Returns the replacement payload, or `None` to keep it as it is.
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError>;

    /// How `temporal.api.failure.v1.Failure` messages are treated.
    fn failure_mode(&self) -> FailureMode {
        FailureMode::Off
    }
}

impl<V: PayloadVisitor + ?Sized> PayloadVisitor for &mut V {
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        (**self).payload(payload)
    }

    fn failure_mode(&self) -> FailureMode {
        (**self).failure_mode()
    }
}

/// What went wrong, without where.
#[derive(Debug, Error)]
pub enum RewriteErrorKind {
    #[error("malformed protobuf: {0}")]
    Wire(#[from] WireError),
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// A rewrite failed; `path` says where in the message.
#[derive(Debug)]
pub struct RewriteError {
    pub kind: RewriteErrorKind,
    /// `(message type, field name)` from the outermost message inwards.
    path: Vec<(Box<str>, Box<str>)>,
}

impl RewriteError {
    fn new(kind: impl Into<RewriteErrorKind>) -> Self {
        RewriteError {
            kind: kind.into(),
            path: Vec::new(),
        }
    }

    fn within(mut self, message: &str, field: &str) -> Self {
        self.path.push((message.into(), field.into()));
        self
    }

    /// True when the input itself is malformed (as opposed to a codec failure).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self.kind,
            RewriteErrorKind::Wire(_) | RewriteErrorKind::Codec(CodecError::MalformedPayload(_))
        )
    }

    /// The field path, outermost first, e.g. `StartWorkflowExecutionRequest.input`.
    pub fn path(&self) -> String {
        let mut s = String::new();
        for (i, (msg, field)) in self.path.iter().rev().enumerate() {
            if i == 0 {
                s.push_str(msg.rsplit('.').next().unwrap_or(msg));
            }
            s.push('.');
            s.push_str(field);
        }
        s
    }
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "at {}: {}", self.path(), self.kind)
        }
    }
}

impl std::error::Error for RewriteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

impl From<WireError> for RewriteError {
    fn from(e: WireError) -> Self {
        RewriteError::new(e)
    }
}

impl From<CodecError> for RewriteError {
    fn from(e: CodecError) -> Self {
        RewriteError::new(e)
    }
}

/// The last occurrence of top-level string field `number` in `message` (the
/// value protobuf parsers keep), without parsing anything else; `None` when
/// absent, not UTF-8, or the bytes before it do not parse.
pub fn top_level_string(message: &[u8], number: u32) -> Option<&str> {
    let mut found = None;
    for field in wire::Fields::new(message, MAX_DEPTH) {
        let (tag, value) = field.ok()?;
        if tag.field == number && tag.wire_type == wire::LEN {
            found = Some(value);
        }
    }
    found.and_then(|v| std::str::from_utf8(v).ok())
}

/// Rewrites one message of type `message`, returning the input untouched
/// when no payload changed.
pub fn rewrite<'a, V: PayloadVisitor>(
    schema: &Schema,
    message: MessageId,
    bytes: &'a [u8],
    visitor: &mut V,
) -> Result<Cow<'a, [u8]>, RewriteError> {
    let mut walker = Walker {
        schema,
        visitor,
        failures: FailureMode::Off,
    };
    walker.failures = walker.visitor.failure_mode();
    Ok(match walker.message(message, bytes, 0)? {
        Some(v) => Cow::Owned(v),
        None => Cow::Borrowed(bytes),
    })
}

/// A change to one field number, wherever it occurs in a message.
#[derive(Debug, Clone, Copy)]
enum Edit<'a> {
    Drop,
    /// New value for a length-delimited field, written in place.
    Replace(&'a [u8]),
}

struct Walker<'s, 'v, V> {
    schema: &'s Schema,
    visitor: &'v mut V,
    failures: FailureMode,
}

impl<V: PayloadVisitor> Walker<'_, '_, V> {
    fn message(
        &mut self,
        id: MessageId,
        bytes: &[u8],
        depth: u32,
    ) -> Result<Option<Vec<u8>>, RewriteError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep { limit: MAX_DEPTH }.into());
        }
        let plan = self.schema.message(id);
        if plan.is_empty() {
            return Ok(None);
        }
        if plan.kind() == MessageKind::Failure && self.failures != FailureMode::Off {
            return failure::rewrite(self, id, bytes, depth);
        }
        self.walk(id, bytes, depth, &[])
    }

    /// Walks the planned fields of a message of type `id`, applying `edits`
    /// to the fields they name. `None` when the output would equal the input.
    fn walk(
        &mut self,
        id: MessageId,
        bytes: &[u8],
        depth: u32,
        edits: &[(u32, Edit<'_>)],
    ) -> Result<Option<Vec<u8>>, RewriteError> {
        let plan = self.schema.message(id);
        self.splice(bytes, depth, edits, plan.name(), |n| {
            plan.field(n).map(|f| (f.action, &*f.name))
        })
    }

    /// `google.protobuf.Any`: descend into `value` (2) when `type_url` (1)
    /// names a message that can lead to payloads.
    fn any(&mut self, bytes: &[u8], depth: u32) -> Result<Option<Vec<u8>>, RewriteError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep { limit: MAX_DEPTH }.into());
        }
        let mut type_url: &[u8] = &[];
        for f in wire::Fields::new(bytes, MAX_DEPTH.saturating_sub(depth)) {
            let (tag, value) = f?;
            if tag.field == 1 && tag.wire_type == wire::LEN {
                type_url = value;
            }
        }
        let schema = self.schema;
        let Some(target) = schema.resolve_type_url(type_url) else {
            return Ok(None);
        };
        if schema.message(target).is_empty() {
            return Ok(None);
        }
        self.splice(bytes, depth, &[], schema::ANY, |n| {
            (n == 2).then_some((Action::Message(target), "value"))
        })
    }

    /// The one loop over a message's fields: copies what `lookup` does not
    /// name, rewrites what it does, and splices changed children back in with
    /// their original key bytes and a new length.
    fn splice<'p>(
        &mut self,
        bytes: &[u8],
        depth: u32,
        edits: &[(u32, Edit<'_>)],
        owner: &str,
        lookup: impl Fn(u32) -> Option<(Action, &'p str)>,
    ) -> Result<Option<Vec<u8>>, RewriteError> {
        let remaining = MAX_DEPTH.saturating_sub(depth);
        let mut out: Option<Vec<u8>> = None;
        let mut copied = 0;
        let mut pos = 0;
        while pos < bytes.len() {
            let start = pos;
            let tag = wire::read_tag(bytes, &mut pos)?;
            if let Some((_, edit)) = edits.iter().find(|(n, _)| *n == tag.field) {
                if matches!(edit, Edit::Replace(_)) && tag.wire_type != wire::LEN {
                    let e = WireError::WrongWireType {
                        offset: start,
                        field: tag.field,
                        found: tag.wire_type,
                    };
                    return Err(RewriteError::from(e).within(owner, "(edited field)"));
                }
                let key_end = pos;
                wire::skip_value(bytes, &mut pos, tag, remaining, MAX_DEPTH)?;
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                match edit {
                    Edit::Drop => out.extend_from_slice(&bytes[copied..start]),
                    Edit::Replace(value) => {
                        out.extend_from_slice(&bytes[copied..key_end]);
                        wire::write_varint(value.len() as u64, out);
                        out.extend_from_slice(value);
                    }
                }
                copied = pos;
                continue;
            }
            let Some((action, field)) = lookup(tag.field) else {
                wire::skip_value(bytes, &mut pos, tag, remaining, MAX_DEPTH)?;
                continue;
            };
            if tag.wire_type != wire::LEN {
                let e = WireError::WrongWireType {
                    offset: start,
                    field: tag.field,
                    found: tag.wire_type,
                };
                return Err(RewriteError::from(e).within(owner, field));
            }
            let key_end = pos;
            let body = wire::read_len_delimited(bytes, &mut pos)
                .map_err(|e| RewriteError::from(e).within(owner, field))?;
            let new = match action {
                Action::Payload => self.visitor.payload(body).map_err(RewriteError::from),
                Action::Message(child) => self.message(child, body, depth + 1),
                Action::Any => self.any(body, depth + 1),
            }
            .map_err(|e| e.within(owner, field))?;
            if let Some(new) = new {
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 256));
                // Everything before this field, then its original key bytes.
                out.extend_from_slice(&bytes[copied..key_end]);
                wire::write_varint(new.len() as u64, out);
                out.extend_from_slice(&new);
                copied = pos;
            }
        }
        Ok(out.map(|mut out| {
            out.extend_from_slice(&bytes[copied..]);
            out
        }))
    }
}
