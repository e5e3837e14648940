//! Failed query answers: `RespondQueryTaskCompletedRequest` and
//! `WorkflowQueryResult` carry the failure's text twice, as the plain
//! `error_message` string and in the optional `failure`.
//!
//! With failure encoding on, the failure is encoded like any other (its
//! text moved into encoded attributes) and `error_message` is set to the
//! encoded failure's message (`Encoded failure`), as the SDKs do with
//! `encode_common_attributes`. An SDK that sends only `error_message` (the
//! Java SDK does) gets a failure made from it, encoded, so the text is
//! stored encrypted and the query's caller can still have it back: the
//! proxy restores it into `grpc-message` from the decoded
//! `QueryFailedFailure`, and drops the failure it made (`source:
//! "sealgate"`), so the caller sees what the SDK sent.

use super::{
    Edit, PayloadVisitor, RewriteError, Walker, failure::ENCODED_FAILURE, last_len_field,
    top_level_string, wire,
};
use crate::schema::{FAILURE, MessageId};

/// `Failure.source` of a failure sealgate made from an `error_message`.
pub const MADE_BY: &str = "sealgate";

/// Encodes one failed query answer of type `id`; `None` when unchanged.
pub(super) fn encode<V: PayloadVisitor>(
    w: &mut Walker<'_, '_, V>,
    id: MessageId,
    bytes: &[u8],
    depth: u32,
    (error_message, failure): (u32, u32),
) -> Result<Option<Vec<u8>>, RewriteError> {
    let walked = w.walk(id, bytes, depth, &[])?;
    let cur = walked.as_deref().unwrap_or(bytes);
    let Some(text) = top_level_string(cur, error_message).filter(|t| !t.is_empty()) else {
        return Ok(walked);
    };
    let present = last_len_field(cur, failure);
    let (message, added) = match present {
        // The SDKs duplicate the failure's message here; only that text is
        // replaced (decoding restores it from the failure). A different
        // text is not the failure's and stays as it is.
        Some(f) => {
            let original = last_len_field(bytes, failure).and_then(|f| top_level_string(f, 1));
            if original != Some(text) {
                return Ok(walked);
            }
            (
                top_level_string(f, 1)
                    .unwrap_or(ENCODED_FAILURE)
                    .to_string(),
                None,
            )
        }
        None => {
            let Some(failure_id) = w.schema.message_id(FAILURE) else {
                return Ok(walked);
            };
            let mut made = Vec::with_capacity(text.len() + 16);
            wire::write_len_field(1, text.as_bytes(), &mut made);
            // Failure.source: made here, so the way back can drop it again.
            wire::write_len_field(2, MADE_BY.as_bytes(), &mut made);
            let encoded = w.sub_message(failure_id, &made, depth + 1)?.unwrap_or(made);
            let message = top_level_string(&encoded, 1)
                .unwrap_or_default()
                .to_string();
            (message, Some(encoded))
        }
    };
    if message == text {
        return Ok(walked); // nothing was encoded (the setting is off)
    }
    let name = w.schema.message(id).name();
    let edits = [(error_message, Edit::Replace(message.as_bytes()))];
    let mut out = w
        .splice_vec(cur, depth, &edits, name, |_| None)?
        .unwrap_or_else(|| cur.to_vec());
    if let Some(f) = added {
        wire::write_len_field(failure, &f, &mut out);
    }
    Ok(Some(out))
}

/// Decodes one failed query answer (a worker's request seen on its way
/// back, as in the tests and tools that read both directions): the failure
/// is decoded, `error_message` gets its text back, and a failure sealgate
/// made is dropped again.
pub(super) fn decode<V: PayloadVisitor>(
    w: &mut Walker<'_, '_, V>,
    id: MessageId,
    bytes: &[u8],
    depth: u32,
    (error_message, failure): (u32, u32),
) -> Result<Option<Vec<u8>>, RewriteError> {
    let walked = w.walk(id, bytes, depth, &[])?;
    if top_level_string(bytes, error_message) != Some(ENCODED_FAILURE) {
        return Ok(walked);
    }
    let cur = walked.as_deref().unwrap_or(bytes);
    let Some(f) = last_len_field(cur, failure) else {
        return Ok(walked);
    };
    let Some(text) = top_level_string(f, 1).filter(|t| *t != ENCODED_FAILURE) else {
        return Ok(walked);
    };
    let made = top_level_string(f, 2) == Some(MADE_BY);
    let mut edits = vec![(error_message, Edit::Replace(text.as_bytes()))];
    if made {
        edits.push((failure, Edit::Drop));
    }
    let name = w.schema.message(id).name();
    Ok(Some(
        w.splice_vec(cur, depth, &edits, name, |_| None)?
            .unwrap_or_else(|| cur.to_vec()),
    ))
}
