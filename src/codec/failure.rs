//! The `json/plain` payload that carries a failure's message and stack trace
//! when failure encoding is on, as the SDKs' failure converters write it.

use serde::{Deserialize, Serialize};

use super::payload::{self, PayloadView};
use crate::wire;

/// Metadata on the *outer* (encoded) attributes payload saying sealgate moved
/// the failure's text there. A client cannot forge it: whatever a client
/// sends is wrapped by the codec, which writes its own outer metadata.
pub(crate) const MARKER: &str = "sealgate-encoded-failure";

#[derive(Serialize, Deserialize)]
struct Attributes<'a> {
    #[serde(borrow)]
    message: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    stack_trace: std::borrow::Cow<'a, str>,
}

/// A marshaled `json/plain` payload `{"message":…,"stack_trace":…}`.
pub(crate) fn attributes_payload(message: &str, stack_trace: &str) -> Vec<u8> {
    let json = serde_json::to_vec(&Attributes {
        message: message.into(),
        stack_trace: stack_trace.into(),
    })
    .unwrap_or_default(); // serializing two strings cannot fail
    payload::marshal(&[(payload::ENCODING, b"json/plain")], &json, &[])
}

/// Adds the marker to an encoded attributes payload (a map entry may be
/// appended anywhere in a message).
pub(crate) fn mark(mut outer: Vec<u8>) -> Vec<u8> {
    let mut entry = Vec::new();
    wire::write_len_field(1, MARKER.as_bytes(), &mut entry);
    wire::write_len_field(2, b"1", &mut entry);
    wire::write_len_field(1, &entry, &mut outer);
    outer
}

/// True when an attributes payload carries the marker.
pub(crate) fn is_marked(outer: &[u8]) -> bool {
    PayloadView::parse(outer).is_ok_and(|v| v.metadata(MARKER).is_some())
}

/// Message and stack trace from a decoded `json/plain` attributes payload.
pub(crate) fn parse_attributes(bytes: &[u8]) -> Option<(String, String)> {
    let view = PayloadView::parse(bytes).ok()?;
    if view.encoding() != Some(b"json/plain") {
        return None;
    }
    let a: Attributes<'_> = serde_json::from_slice(view.data).ok()?;
    Some((a.message.into_owned(), a.stack_trace.into_owned()))
}
