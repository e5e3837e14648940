//! Legacy Nexus failures: `temporal.api.nexus.v1.Failure` with a whole
//! Temporal Failure in `details` as protojson.
//!
//! When a Nexus caller does not announce failure support, sdk-core answers
//! a failed operation or task with a `nexus.v1.Failure` whose `metadata`
//! says `type = temporal.api.failure.v1.Failure`, whose `message` and
//! `stack_trace` are the failure's, and whose `details` are the failure
//! itself as protojson (without `message`), payloads base64 inside. The
//! server parses it back into a Failure for history.
//!
//! sealgate rewrites it losslessly in meaning: the JSON is parsed into a
//! Failure with the schema (unknown JSON fields are refused: they may hold
//! data sealgate cannot see), the Failure goes through the same walk as any
//! other (payloads encoded, text moved when failure encoding is on), and the
//! result is written back as protojson, with `message` and `stack_trace`
//! set from it. The bytes of the JSON change (field order, spacing); what
//! the server parses does not.
//!
//! A Nexus failure that is not a Temporal Failure (no such `type`) cannot
//! be rewritten: in a request its `details` (arbitrary JSON), and with
//! failure encoding on its text, are refused rather than sent in clear.

use prost::Message as _;
use prost_reflect::{DeserializeOptions, DynamicMessage, ReflectMessage, SerializeOptions};

use super::{
    FailureMode, MAX_DEPTH, PayloadVisitor, RewriteError, RewriteErrorKind, Walker,
    wire::{self, WireError},
};
use crate::schema::{FAILURE, MessageId};

const MESSAGE: u32 = 1;
const METADATA: u32 = 2;
const DETAILS: u32 = 3;
const STACK_TRACE: u32 = 4;
const CAUSE: u32 = 5;

/// The `metadata` entry that says `details` is a Temporal Failure.
const TYPE: (&[u8], &[u8]) = (b"type", FAILURE.as_bytes());

/// The fields of one Nexus failure (last occurrence wins).
#[derive(Default)]
struct Scan<'a> {
    message: &'a [u8],
    details: &'a [u8],
    stack_trace: &'a [u8],
    cause: Option<&'a [u8]>,
    typed: bool,
}

fn scan(bytes: &[u8]) -> Result<Scan<'_>, WireError> {
    let mut s = Scan::default();
    for f in wire::Fields::new(bytes, MAX_DEPTH) {
        let (tag, value) = f?;
        if tag.wire_type != wire::LEN {
            continue;
        }
        match tag.field {
            MESSAGE => s.message = value,
            DETAILS => s.details = value,
            STACK_TRACE => s.stack_trace = value,
            CAUSE => s.cause = Some(value),
            METADATA => s.typed |= wire::len_pair(value, MAX_DEPTH)? == TYPE,
            _ => {}
        }
    }
    Ok(s)
}

fn refuse(why: &str) -> RewriteError {
    RewriteError::new(RewriteErrorKind::NexusFailure(why.to_string()))
}

/// Rewrites one Nexus failure of type `id`; `None` when nothing changed.
pub(super) fn rewrite<V: PayloadVisitor>(
    w: &mut Walker<'_, '_, V>,
    id: MessageId,
    bytes: &[u8],
    depth: u32,
) -> Result<Option<Vec<u8>>, RewriteError> {
    let s = scan(bytes)?;
    let request = w.failures != FailureMode::Decode;
    let cause = match s.cause {
        Some(c) => w.sub_message(id, c, depth + 1)?,
        None => None,
    };
    let failure = if s.typed && !s.details.is_empty() {
        match failure_json(w, &s, depth) {
            Ok(f) => f,
            // On the way back, what does not parse was not written by us.
            Err(_) if !request => None,
            Err(e) => return Err(e),
        }
    } else {
        if request && !s.details.is_empty() {
            return Err(refuse(
                "its details are not a Temporal Failure (metadata type), so payloads in them cannot be found",
            ));
        }
        if request
            && w.failures == FailureMode::Encode
            && !(s.message.is_empty() && s.stack_trace.is_empty())
        {
            return Err(refuse(
                "it is not a Temporal Failure (metadata type), so its message and stack trace cannot be moved into an encoded payload (codec.encode_failure_attributes)",
            ));
        }
        None
    };
    if cause.is_none() && failure.is_none() {
        return Ok(None);
    }
    // Rebuild: every field it had, with the changed ones replaced, in
    // field-number order (a protobuf writer's order, so a message written
    // by one comes back byte for byte after encode and decode).
    let mut fields: Vec<(u32, Vec<u8>)> = Vec::new();
    for f in wire::RawFields::new(bytes, MAX_DEPTH) {
        let (tag, _, raw) = f?;
        let replaced = tag.wire_type == wire::LEN
            && match tag.field {
                MESSAGE | DETAILS | STACK_TRACE => failure.is_some(),
                CAUSE => cause.is_some(),
                _ => false,
            };
        if !replaced {
            fields.push((tag.field, raw.to_vec()));
        }
    }
    let mut field = |number: u32, value: &[u8]| {
        let mut f = Vec::with_capacity(value.len() + 6);
        wire::write_len_field(number, value, &mut f);
        fields.push((number, f));
    };
    if let Some(f) = &failure {
        if !f.message.is_empty() {
            field(MESSAGE, f.message.as_bytes());
        }
        field(DETAILS, &f.details);
        if !f.stack_trace.is_empty() {
            field(STACK_TRACE, f.stack_trace.as_bytes());
        }
    }
    if let Some(c) = &cause {
        field(CAUSE, c);
    }
    fields.sort_by_key(|(n, _)| *n);
    let out: Vec<u8> = fields.into_iter().flat_map(|(_, f)| f).collect();
    Ok(Some(out))
}

/// A rewritten Temporal Failure, as a Nexus failure carries it.
struct Rewritten {
    message: String,
    stack_trace: String,
    details: Vec<u8>,
}

/// Parses `details` as a Failure, restores its message and stack trace from
/// the Nexus fields (the server does the same), walks it, and writes it back
/// as protojson. `None` when the walk changed nothing.
fn failure_json<V: PayloadVisitor>(
    w: &mut Walker<'_, '_, V>,
    s: &Scan<'_>,
    depth: u32,
) -> Result<Option<Rewritten>, RewriteError> {
    let (pool, id) = match (w.schema.pool(), w.schema.message_id(FAILURE)) {
        (Some(p), Some(id)) => (p, id),
        _ => return Err(refuse("the schema cannot read a Temporal Failure as JSON")),
    };
    let desc = pool
        .get_message_by_name(FAILURE)
        .ok_or_else(|| refuse("the schema does not define temporal.api.failure.v1.Failure"))?;
    let mut de = serde_json::Deserializer::from_slice(s.details);
    let mut msg =
        DynamicMessage::deserialize_with_options(desc, &mut de, &DeserializeOptions::new())
            .map_err(|e| {
                refuse(&format!(
                    "its details are not a valid Temporal Failure in JSON ({e})"
                ))
            })?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    msg.set_field_by_name("message", prost_reflect::Value::String(text(s.message)));
    msg.set_field_by_name(
        "stack_trace",
        prost_reflect::Value::String(text(s.stack_trace)),
    );
    let binary = msg.encode_to_vec();
    let Some(new) = w.sub_message(id, &binary, depth + 1)? else {
        return Ok(None);
    };
    let mut out = DynamicMessage::decode(msg.descriptor(), new.as_slice())
        .map_err(|e| refuse(&format!("re-reading the rewritten failure: {e}")))?;
    let take = |m: &mut DynamicMessage, name: &str| match m.get_field_by_name(name).as_deref() {
        Some(prost_reflect::Value::String(v)) => v.clone(),
        _ => String::new(),
    };
    let message = take(&mut out, "message");
    let stack_trace = take(&mut out, "stack_trace");
    // As sdk-core writes it: message lives in the Nexus field only.
    out.clear_field_by_name("message");
    // Through a serde_json Value: its objects sort their keys, so the same
    // failure always gives the same bytes (a map's own order is a hash's).
    let value = out
        .serialize_with_options(serde_json::value::Serializer, &SerializeOptions::new())
        .map_err(|e| refuse(&format!("writing the rewritten failure as JSON: {e}")))?;
    let details = serde_json::to_vec(&value)
        .map_err(|e| refuse(&format!("writing the rewritten failure as JSON: {e}")))?;
    Ok(Some(Rewritten {
        message,
        stack_trace,
        details,
    }))
}
