//! Optional failure encoding: `Failure.message` and `Failure.stack_trace` move
//! into `Failure.encoded_attributes` as a `json/plain` payload (the SDKs' own
//! convention), which is then encoded like any other payload.
//!
//! Both fields are rewritten in place (message → `Encoded failure`, stack
//! trace → empty) and the attributes are appended, so decoding can put the
//! originals back where they were and the bytes come back exactly.

use super::{Edit, FailureMode, PayloadVisitor, RewriteError, Walker, wire};
use crate::{codec::failure as attrs, schema::MessageId};

const MESSAGE: u32 = 1;
const STACK_TRACE: u32 = 3;
const ENCODED_ATTRIBUTES: u32 = 20;
/// What the SDKs put in `message` once it has moved into the attributes.
pub(crate) const ENCODED_FAILURE: &str = "Encoded failure";

pub(super) fn rewrite<V: PayloadVisitor>(
    w: &mut Walker<'_, '_, V>,
    id: MessageId,
    bytes: &[u8],
    depth: u32,
) -> Result<Option<Vec<u8>>, RewriteError> {
    match w.failures {
        FailureMode::Encode => encode(w, id, bytes, depth),
        FailureMode::Decode => decode(w, id, bytes, depth),
        FailureMode::Off => w.walk(id, bytes, depth, &[]),
    }
}

#[derive(Default)]
struct Scan<'a> {
    message: Option<&'a [u8]>,
    stack_trace: Option<&'a [u8]>,
    attributes: Option<&'a [u8]>,
}

/// The last occurrence of each field wins, as in protobuf parsing.
fn scan(bytes: &[u8]) -> Result<Scan<'_>, RewriteError> {
    let mut s = Scan::default();
    for f in wire::Fields::new(bytes, super::MAX_DEPTH) {
        let (tag, value) = f?;
        if tag.wire_type != wire::LEN {
            continue;
        }
        match tag.field {
            MESSAGE => s.message = Some(value),
            STACK_TRACE => s.stack_trace = Some(value),
            ENCODED_ATTRIBUTES => s.attributes = Some(value),
            _ => {}
        }
    }
    Ok(s)
}

fn encode<V: PayloadVisitor>(
    w: &mut Walker<'_, '_, V>,
    id: MessageId,
    bytes: &[u8],
    depth: u32,
) -> Result<Option<Vec<u8>>, RewriteError> {
    let s = scan(bytes)?;
    let (Ok(message), Ok(stack_trace)) = (
        std::str::from_utf8(s.message.unwrap_or_default()),
        std::str::from_utf8(s.stack_trace.unwrap_or_default()),
    ) else {
        // Not valid proto3 strings: leave them for the server to judge.
        return w.walk(id, bytes, depth, &[]);
    };
    if s.attributes.is_some() || (message.is_empty() && stack_trace.is_empty()) {
        // Already encoded (by an SDK) or nothing to hide.
        return w.walk(id, bytes, depth, &[]);
    }
    let edits = [
        (MESSAGE, Edit::Replace(ENCODED_FAILURE.as_bytes())),
        (STACK_TRACE, Edit::Replace(b"")),
    ];
    let rest = w
        .walk(id, bytes, depth, &edits)?
        .unwrap_or_else(|| bytes.to_vec());
    let payload = attrs::attributes_payload(message, stack_trace);
    let payload = attrs::mark(w.visitor.payload(&payload)?.unwrap_or(payload));
    let mut out = Vec::with_capacity(rest.len() + payload.len() + 32);
    if s.message.is_none() {
        wire::write_len_field(MESSAGE, ENCODED_FAILURE.as_bytes(), &mut out);
    }
    out.extend_from_slice(&rest);
    wire::write_len_field(ENCODED_ATTRIBUTES, &payload, &mut out);
    Ok(Some(out))
}

fn decode<V: PayloadVisitor>(
    w: &mut Walker<'_, '_, V>,
    id: MessageId,
    bytes: &[u8],
    depth: u32,
) -> Result<Option<Vec<u8>>, RewriteError> {
    let before = scan(bytes)?;
    let ours = before.message == Some(ENCODED_FAILURE.as_bytes())
        && before.attributes.is_some_and(attrs::is_marked);
    let walked = w.walk(id, bytes, depth, &[])?;
    if !ours {
        return Ok(walked);
    }
    let cur = walked.as_deref().unwrap_or(bytes);
    let s = scan(cur)?;
    // Restore only what the codec actually decoded in this pass.
    if s.attributes == before.attributes {
        return Ok(walked);
    }
    let Some((message, stack_trace)) = s.attributes.and_then(attrs::parse_attributes) else {
        return Ok(walked);
    };
    let message_edit = if message.is_empty() {
        Edit::Drop // sealgate added the field; the original had none
    } else {
        Edit::Replace(message.as_bytes())
    };
    let edits = [
        (MESSAGE, message_edit),
        (STACK_TRACE, Edit::Replace(stack_trace.as_bytes())),
        (ENCODED_ATTRIBUTES, Edit::Drop),
    ];
    let mut out = w
        .splice_vec(cur, depth, &edits, crate::schema::FAILURE, |_| None)?
        .unwrap_or_else(|| cur.to_vec());
    if s.stack_trace.is_none() && !stack_trace.is_empty() {
        wire::write_len_field(STACK_TRACE, stack_trace.as_bytes(), &mut out);
    }
    Ok(Some(out))
}
