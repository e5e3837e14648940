//! The wire-level rewriter: walks protobuf bytes along the schema plan and
//! hands every `Payload` it finds to a [`PayloadVisitor`].
//!
//! Bytes the plan does not name are copied verbatim, so unknown fields, field
//! order and non-canonical encodings survive. A message whose payloads all
//! come back unchanged is returned as the input slice itself (no copy).
//!
//! The walk does not build nested copies: it records [`Patch`]es (new
//! payloads, and the new length prefixes of the messages around them) against
//! the input, and the output is written once, straight into its final buffer
//! (a gRPC frame, say), with its exact size known before the first byte.
//!
//! Why: docs/design.md#the-rewriter-works-on-the-protobuf-wire-format.

pub mod audit;
mod failure;
mod nexus;
pub mod query;
#[cfg(test)]
mod tests;
pub(crate) use crate::wire;
pub use crate::wire::{last_len_field, set_varint_at, top_level_string};

use std::{borrow::Cow, fmt};

use bytes::BufMut;

use thiserror::Error;

use crate::{
    codec::{
        Arena, CodecError, PayloadView, Replacement,
        arena::{keep_spare, take_spare},
    },
    schema::{self, Action, MessageId, MessageKind, Schema},
};
pub use wire::WireError;

pub use crate::codec::{FailureMode, PayloadVisitor};
pub use crate::wire::MAX_DEPTH;

/// What went wrong, without where.
#[derive(Debug, Error)]
pub enum RewriteErrorKind {
    #[error("malformed protobuf: {0}")]
    Wire(#[from] WireError),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("a Nexus failure cannot be forwarded: {0}")]
    NexusFailure(String),
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
            RewriteErrorKind::Wire(_)
                | RewriteErrorKind::Codec(CodecError::MalformedPayload(_))
                | RewriteErrorKind::NexusFailure(_)
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

/// True when a `DataBlob`'s `encoding_type` (field 1) is proto3 (1).
fn proto3_blob(blob: &[u8]) -> bool {
    let mut proto3 = false;
    for f in wire::Fields::new(blob, 1) {
        match f {
            Ok((tag, value)) if tag.field == 1 && tag.wire_type == wire::VARINT => {
                let mut pos = 0;
                proto3 = wire::read_varint(value, &mut pos).is_ok_and(|v| v == 1);
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    proto3
}

/// Rewrites one message of type `message`, returning the input untouched
/// when no payload changed.
pub fn rewrite<'a, V: PayloadVisitor>(
    schema: &Schema,
    message: MessageId,
    bytes: &'a [u8],
    visitor: &mut V,
) -> Result<Cow<'a, [u8]>, RewriteError> {
    Ok(rewrite_patched(schema, message, bytes, visitor)?.into_cow())
}

/// Rewrites one message of type `message` without writing it out yet: the
/// result knows its length and writes itself into any buffer.
pub fn rewrite_patched<'a, V: PayloadVisitor>(
    schema: &Schema,
    message: MessageId,
    bytes: &'a [u8],
    visitor: &mut V,
) -> Result<Rewritten<'a>, RewriteError> {
    let mut walker = Walker {
        schema,
        visitor,
        failures: FailureMode::Off,
        patches: take_spare(&SPARE_PATCHES),
        arena: Arena::take(),
    };
    walker.failures = walker.visitor.failure_mode();
    let delta = walker.message(message, bytes, 0, 0);
    // The result owns the patches and the arena from here, and hands their
    // room back to the thread when dropped, on failure too.
    let mut out = Rewritten {
        len: 0,
        input: bytes,
        patches: walker.patches,
        arena: walker.arena,
    };
    out.len = new_len(bytes, delta?.unwrap_or(0));
    Ok(out)
}

/// The most patches a thread keeps room for between messages.
const KEEP_PATCHES: usize = 4096;

thread_local! {
    static SPARE_PATCHES: std::cell::RefCell<Vec<Patch>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The length of `input` grown by `delta`.
fn new_len(input: &[u8], delta: isize) -> usize {
    input.len().checked_add_signed(delta).unwrap_or(0)
}

/// Writes `input` with `patches` applied (values in `arena`) to `out`.
fn write_patched(input: &[u8], patches: &[Patch], arena: &Arena, out: &mut impl BufMut) {
    let mut copied = 0;
    for p in patches {
        out.put_slice(&input[copied..p.start]);
        p.fill.write(arena, out);
        copied = p.end;
    }
    out.put_slice(&input[copied..]);
}

/// A rewritten message: its input, the patches that turn it into the
/// output (in input order), and the arena that holds their new payloads.
#[derive(Debug)]
pub struct Rewritten<'a> {
    input: &'a [u8],
    patches: Vec<Patch>,
    len: usize,
    arena: Arena,
}

impl Drop for Rewritten<'_> {
    fn drop(&mut self) {
        self.arena.give_back();
        let mut patches = std::mem::take(&mut self.patches);
        patches.clear();
        keep_spare(&SPARE_PATCHES, patches, KEEP_PATCHES);
    }
}

impl<'a> Rewritten<'a> {
    /// `input` as it is.
    pub fn unchanged(input: &'a [u8]) -> Self {
        Rewritten {
            input,
            patches: Vec::new(),
            len: input.len(),
            arena: Arena::default(),
        }
    }

    /// The output's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the output is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the output differs from the input.
    pub fn changed(&self) -> bool {
        !self.patches.is_empty()
    }

    /// Appends the output to `out` (exactly [`Self::len`] bytes).
    pub fn write_to(&self, out: &mut impl BufMut) {
        write_patched(self.input, &self.patches, &self.arena, out);
    }

    /// The output: the input itself when nothing changed.
    pub fn into_cow(self) -> Cow<'a, [u8]> {
        if !self.changed() {
            return Cow::Borrowed(self.input);
        }
        let mut out = Vec::with_capacity(self.len);
        self.write_to(&mut out);
        debug_assert_eq!(out.len(), self.len, "patched length");
        Cow::Owned(out)
    }
}

/// Input bytes `start..end` (offsets into the message being rewritten)
/// become `fill`.
#[derive(Debug)]
struct Patch {
    start: usize,
    end: usize,
    fill: Fill,
}

#[derive(Debug)]
enum Fill {
    /// A message field's new length prefix.
    Varint(u64),
    /// A length-delimited value: its length prefix, then the bytes.
    Value(Vec<u8>),
    /// The same, with the bytes in the walk's arena.
    InArena(std::ops::Range<usize>),
    /// A whole message body (a rewritten `Failure`).
    Raw(Vec<u8>),
    /// Nothing: a dropped field.
    Nothing,
}

impl Fill {
    fn len(&self) -> usize {
        match self {
            Fill::Varint(v) => wire::varint_len(*v),
            Fill::Value(b) => wire::varint_len(b.len() as u64) + b.len(),
            Fill::InArena(r) => wire::varint_len(r.len() as u64) + r.len(),
            Fill::Raw(b) => b.len(),
            Fill::Nothing => 0,
        }
    }

    fn write(&self, arena: &Arena, out: &mut impl BufMut) {
        match self {
            Fill::Varint(v) => wire::write_varint(*v, out),
            Fill::Value(b) => {
                wire::write_varint(b.len() as u64, out);
                out.put_slice(b);
            }
            Fill::InArena(r) => {
                wire::write_varint(r.len() as u64, out);
                out.put_slice(arena.get(r.clone()));
            }
            Fill::Raw(b) => out.put_slice(b),
            Fill::Nothing => {}
        }
    }
}

/// `new - old` as a signed size change.
fn growth(new: usize, old: usize) -> isize {
    new as isize - old as isize
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
    /// Changes so far, in input order; offsets are into the message the
    /// current walk started from.
    patches: Vec<Patch>,
    /// The new payloads the visitor wrote here instead of into buffers of
    /// their own.
    arena: Arena,
}

impl<V: PayloadVisitor> Walker<'_, '_, V> {
    /// Walks a message of type `id` found at offset `base`; records its
    /// changes and returns how much it grew (`None`: unchanged).
    fn message(
        &mut self,
        id: MessageId,
        bytes: &[u8],
        base: usize,
        depth: u32,
    ) -> Result<Option<isize>, RewriteError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep { limit: MAX_DEPTH }.into());
        }
        let plan = self.schema.message(id);
        if plan.is_empty() {
            return Ok(None);
        }
        if plan.kind() == MessageKind::HistoryBlob {
            if !proto3_blob(bytes) {
                return Ok(None); // JSON or another encoding: not ours to read
            }
            // Its data is opaque bytes to protobuf: one that does not parse
            // as a History is left as it is (nothing in it was readable).
            let mark = self.patches.len();
            return match self.splice(bytes, base, depth, &[], plan.name(), |n| {
                plan.field(n).map(|f| (f.action, &*f.name))
            }) {
                Err(e) if matches!(e.kind, RewriteErrorKind::Wire(_)) => {
                    self.patches.truncate(mark);
                    Ok(None)
                }
                other => other,
            };
        }
        // Messages rewritten whole by a handler of their own: the new bytes
        // replace the old ones in one patch.
        let whole = match plan.kind() {
            MessageKind::NexusFailure => nexus::rewrite(self, id, bytes, depth)?,
            MessageKind::QueryResult {
                error_message,
                failure,
            } if self.failures == FailureMode::Encode => {
                query::encode(self, id, bytes, depth, (error_message, failure))?
            }
            MessageKind::QueryResult {
                error_message,
                failure,
            } if self.failures == FailureMode::Decode => {
                query::decode(self, id, bytes, depth, (error_message, failure))?
            }
            MessageKind::Failure if self.failures != FailureMode::Off => {
                failure::rewrite(self, id, bytes, depth)?
            }
            _ => {
                return self.splice(bytes, base, depth, &[], plan.name(), |n| {
                    plan.field(n).map(|f| (f.action, &*f.name))
                });
            }
        };
        Ok(whole.map(|new| {
            let d = growth(new.len(), bytes.len());
            self.patches.push(Patch {
                start: base,
                end: base + bytes.len(),
                fill: Fill::Raw(new),
            });
            d
        }))
    }

    /// Walks the planned fields of a message of type `id`, applying `edits`
    /// to the fields they name, into bytes of its own (failure encoding
    /// reads its result). `None` when the output would equal the input.
    fn walk(
        &mut self,
        id: MessageId,
        bytes: &[u8],
        depth: u32,
        edits: &[(u32, Edit<'_>)],
    ) -> Result<Option<Vec<u8>>, RewriteError> {
        let plan = self.schema.message(id);
        self.splice_vec(bytes, depth, edits, plan.name(), |n| {
            plan.field(n).map(|f| (f.action, &*f.name))
        })
    }

    /// [`Self::message`] on a patch list of its own, written out: the new
    /// bytes of a message found inside another one's opaque bytes.
    fn sub_message(
        &mut self,
        id: MessageId,
        bytes: &[u8],
        depth: u32,
    ) -> Result<Option<Vec<u8>>, RewriteError> {
        let outer = std::mem::take(&mut self.patches);
        let walked = self.message(id, bytes, 0, depth);
        let patches = std::mem::replace(&mut self.patches, outer);
        Ok(walked?.map(|d| self.written(bytes, &patches, d)))
    }

    /// [`Self::splice`] on a patch list of its own, written out.
    fn splice_vec<'p>(
        &mut self,
        bytes: &[u8],
        depth: u32,
        edits: &[(u32, Edit<'_>)],
        owner: &str,
        lookup: impl Fn(u32) -> Option<(Action, &'p str)>,
    ) -> Result<Option<Vec<u8>>, RewriteError> {
        let outer = std::mem::take(&mut self.patches);
        let walked = self.splice(bytes, 0, depth, edits, owner, lookup);
        let patches = std::mem::replace(&mut self.patches, outer);
        Ok(walked?.map(|d| self.written(bytes, &patches, d)))
    }

    /// Records that input bytes `start..end` become `fill`; returns how much
    /// that grows the message.
    fn patch(&mut self, start: usize, end: usize, fill: Fill) -> isize {
        let d = growth(fill.len(), end - start);
        self.patches.push(Patch { start, end, fill });
        d
    }

    /// Takes the slot of a child message's length prefix (input bytes
    /// `start..end`) before walking it: the new prefix goes before the
    /// child's own patches (the list stays in input order), and taking the
    /// slot now means nothing is inserted (and moved) later. Filled, or
    /// given back, once the child is walked.
    fn reserve_prefix(&mut self, start: usize, end: usize) {
        self.patches.push(Patch {
            start,
            end,
            fill: Fill::Nothing,
        });
    }

    /// `bytes` with `patches` applied, grown by `delta`, in a buffer of
    /// their own.
    fn written(&self, bytes: &[u8], patches: &[Patch], delta: isize) -> Vec<u8> {
        let mut out = Vec::with_capacity(new_len(bytes, delta));
        write_patched(bytes, patches, &self.arena, &mut out);
        out
    }

    /// `google.protobuf.Any`: descend into `value` (2) when `type_url` (1)
    /// names a message that can lead to payloads, or is a `Payload` itself.
    fn any(
        &mut self,
        bytes: &[u8],
        base: usize,
        depth: u32,
    ) -> Result<Option<isize>, RewriteError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep { limit: MAX_DEPTH }.into());
        }
        let (type_url, _) = wire::len_pair(bytes, MAX_DEPTH.saturating_sub(depth))?;
        let schema = self.schema;
        let Some(target) = schema.resolve_type_url(type_url) else {
            return Ok(None);
        };
        if Some(target) == schema.payload_leaf() {
            // An Any that is itself a Payload: its value is the payload.
            return self.splice(bytes, base, depth, &[], schema::ANY, |n| {
                (n == 2).then_some((Action::Payload, "value"))
            });
        }
        if schema.message(target).is_empty() {
            return Ok(None);
        }
        self.splice(bytes, base, depth, &[], schema::ANY, |n| {
            (n == 2).then_some((Action::Message(target), "value"))
        })
    }

    /// The message inside a System Nexus envelope, when the schema knows its
    /// type; `None` for every other payload. An envelope of a type the
    /// schema does not know is encoded as a whole, like any payload: the
    /// server cannot read it, but nothing leaves in plaintext.
    fn system_envelope(&self, view: &PayloadView<'_>) -> Option<MessageId> {
        let ty = view.system_message_type()?;
        let id = self.schema.message_id(std::str::from_utf8(ty).ok()?);
        if id.is_none() {
            tracing::warn!(
                message_type = %String::from_utf8_lossy(ty),
                "a System Nexus payload names a type sealgate's schema lacks; it is encoded whole"
            );
        }
        id
    }

    /// A System Nexus envelope: the outer payload (metadata, encoding) stays
    /// as it is, for the server to read; the payloads of the message in its
    /// `data` are encoded or decoded as the SDKs' visitors do.
    fn system(
        &mut self,
        target: MessageId,
        bytes: &[u8],
        base: usize,
        depth: u32,
    ) -> Result<Option<isize>, RewriteError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep { limit: MAX_DEPTH }.into());
        }
        self.splice(bytes, base, depth, &[], schema::PAYLOAD, |n| {
            (n == 2).then_some((Action::Message(target), "data"))
        })
    }

    /// The one loop over a message's fields (found at offset `base`): skips
    /// what `lookup` does not name, and records patches for what changes —
    /// a payload's new value, or a child message's new length prefix (its
    /// key bytes stay). Returns how much the message grew.
    fn splice<'p>(
        &mut self,
        bytes: &[u8],
        base: usize,
        depth: u32,
        edits: &[(u32, Edit<'_>)],
        owner: &str,
        lookup: impl Fn(u32) -> Option<(Action, &'p str)>,
    ) -> Result<Option<isize>, RewriteError> {
        let remaining = MAX_DEPTH.saturating_sub(depth);
        let mut changed = false;
        let mut delta = 0isize;
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
                let (from, fill) = match edit {
                    Edit::Drop => (start, Fill::Nothing),
                    Edit::Replace(value) => (key_end, Fill::Value(value.to_vec())),
                };
                delta += self.patch(base + from, base + pos, fill);
                changed = true;
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
            let value_start = pos - body.len();
            let mark = self.patches.len();
            // Parsed once, for the envelope check and the visitor both.
            let view = match action {
                Action::Payload => PayloadView::parse(body).ok(),
                _ => None,
            };
            let child = match action {
                Action::Payload
                    if let Some(target) = view.as_ref().and_then(|v| self.system_envelope(v)) =>
                {
                    self.reserve_prefix(base + key_end, base + value_start);
                    self.system(target, body, base + value_start, depth + 1)
                }
                Action::Payload => {
                    let new = self
                        .visitor
                        .payload_into(body, view.as_ref(), &mut self.arena)
                        .map_err(|e| RewriteError::from(e).within(owner, field))?;
                    // The field's key bytes stay; length and value are new.
                    let fill = match new {
                        Replacement::Kept => continue,
                        Replacement::Owned(new) => Fill::Value(new),
                        Replacement::InArena(r) => Fill::InArena(r),
                    };
                    delta += self.patch(base + key_end, base + pos, fill);
                    changed = true;
                    continue;
                }
                Action::Message(child) => {
                    self.reserve_prefix(base + key_end, base + value_start);
                    self.message(child, body, base + value_start, depth + 1)
                }
                Action::Any => {
                    self.reserve_prefix(base + key_end, base + value_start);
                    self.any(body, base + value_start, depth + 1)
                }
            }
            .map_err(|e| e.within(owner, field))?;
            let Some(d) = child else {
                self.patches.truncate(mark);
                continue;
            };
            changed = true;
            let slot = &mut self.patches[mark];
            if d != 0 {
                let new_len = body.len().checked_add_signed(d).unwrap_or(0) as u64;
                slot.fill = Fill::Varint(new_len);
                delta += d + growth(slot.fill.len(), value_start - key_end);
            } else {
                // Same length: the prefix stays as it is (an empty patch).
                slot.end = slot.start;
            }
        }
        Ok(changed.then_some(delta))
    }
}
