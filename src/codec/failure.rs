//! The `json/plain` payload that carries a failure's message and stack trace
//! when failure encoding is on, as the SDKs' failure converters write it.

use serde::{Deserialize, Serialize};

use super::payload::{self, PayloadView};

/// Marks attributes that sealgate (not an SDK) moved, so that only those are
/// moved back on the way to the worker.
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
    payload::marshal(
        &[(payload::ENCODING, b"json/plain"), (MARKER, b"1")],
        &json,
        &[],
    )
}

/// Message and stack trace from attributes that sealgate wrote.
pub(crate) fn parse_attributes(bytes: &[u8]) -> Option<(String, String)> {
    let view = PayloadView::parse(bytes).ok()?;
    if view.metadata(MARKER).is_none() || view.encoding() != Some(b"json/plain") {
        return None;
    }
    let a: Attributes<'_> = serde_json::from_slice(view.data).ok()?;
    Some((a.message.into_owned(), a.stack_trace.into_owned()))
}
