//! Optional failure encoding: `Failure.message` and `Failure.stack_trace` move
//! into `Failure.encoded_attributes` as a `json/plain` payload (the SDKs' own
//! convention), which is then encoded like any other payload.

use super::{FailureMode, PayloadVisitor, RewriteError, Walker, wire};
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

/// The last occurrence of each field wins, as in protobuf parsing.
fn scan(bytes: &[u8]) -> Result<Scan<'_>, RewriteError> {
    let mut s = Scan::default();
    for f in wire::Fields::new(bytes, super::MAX_DEPTH) {
        let (tag, value) = f?;
        if tag.wire_type != wire::LEN {
            continue;
        }
        match tag.field {
            MESSAGE => s.message = value,
            STACK_TRACE => s.stack_trace = value,
            ENCODED_ATTRIBUTES => s.attributes = Some(value),
            _ => {}
        }
    }
    Ok(s)
}

#[derive(Default)]
struct Scan<'a> {
    message: &'a [u8],
    stack_trace: &'a [u8],
    attributes: Option<&'a [u8]>,
}

fn encode<V: PayloadVisitor>(
    w: &mut Walker<'_, '_, V>,
    id: MessageId,
    bytes: &[u8],
    depth: u32,
) -> Result<Option<Vec<u8>>, RewriteError> {
    let s = scan(bytes)?;
    let (Ok(message), Ok(stack_trace)) = (
        std::str::from_utf8(s.message),
        std::str::from_utf8(s.stack_trace),
    ) else {
        // Not valid proto3 strings: leave them for the server to judge.
        return w.walk(id, bytes, depth, &[]);
    };
    if s.attributes.is_some() || (message.is_empty() && stack_trace.is_empty()) {
        // Already encoded (by an SDK) or nothing to hide.
        return w.walk(id, bytes, depth, &[]);
    }
    let rest = w
        .walk(id, bytes, depth, &[MESSAGE, STACK_TRACE])?
        .unwrap_or_else(|| bytes.to_vec());
    let payload = attrs::attributes_payload(message, stack_trace);
    let payload = w.visitor.payload(&payload)?.unwrap_or(payload);
    let mut out = Vec::with_capacity(rest.len() + payload.len() + 32);
    wire::write_len_field(MESSAGE, ENCODED_FAILURE.as_bytes(), &mut out);
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
    let walked = w.walk(id, bytes, depth, &[])?;
    let cur = walked.as_deref().unwrap_or(bytes);
    let s = scan(cur)?;
    if s.message != ENCODED_FAILURE.as_bytes() {
        return Ok(walked);
    }
    let Some((message, stack_trace)) = s.attributes.and_then(attrs::parse_attributes) else {
        return Ok(walked);
    };
    // Put message and stack trace back at their place in field order and
    // drop the attributes sealgate added; every other field is copied as is.
    let mut out = Vec::with_capacity(cur.len() + message.len() + stack_trace.len());
    if !message.is_empty() {
        wire::write_len_field(MESSAGE, message.as_bytes(), &mut out);
    }
    let mut stack_written = stack_trace.is_empty();
    let mut pos = 0;
    while pos < cur.len() {
        let start = pos;
        let tag = wire::read_tag(cur, &mut pos)?;
        wire::skip_value(cur, &mut pos, tag, super::MAX_DEPTH, super::MAX_DEPTH)?;
        if !stack_written && tag.field > STACK_TRACE {
            wire::write_len_field(STACK_TRACE, stack_trace.as_bytes(), &mut out);
            stack_written = true;
        }
        if !matches!(tag.field, MESSAGE | STACK_TRACE | ENCODED_ATTRIBUTES) {
            out.extend_from_slice(&cur[start..pos]);
        }
    }
    if !stack_written {
        wire::write_len_field(STACK_TRACE, stack_trace.as_bytes(), &mut out);
    }
    Ok(Some(out))
}
