//! The payload view: the zero-copy reader of a marshaled
//! `temporal.api.common.v1.Payload` that every codec uses, and the
//! metadata-only readers beside it (the audit's encoding check, the System
//! Nexus envelope check).
//!
//! Properties: nothing panics; the full view and the metadata-only reader
//! agree on the encoding; re-marshaling a view and reading it again gives
//! the same metadata, data and external payload entries.

use sealgate::codec::payload::{self, PayloadView};

pub(crate) fn run(data: &[u8]) {
    let _ = payload::system_message_type(data);
    let Ok(view) = PayloadView::parse(data) else {
        return;
    };
    if let Ok(encoding) = payload::encoding_of(data) {
        assert_eq!(encoding, view.encoding(), "the two readers agree");
    }
    let meta: Vec<(String, &[u8])> = view
        .metadata_entries()
        .iter()
        .filter_map(|(k, v)| Some((std::str::from_utf8(k).ok()?.to_string(), *v)))
        .collect();
    if meta.len() != view.metadata_entries().len() {
        return; // a non-UTF-8 key cannot be written back as a string
    }
    let pairs: Vec<(&str, &[u8])> = meta.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let again = payload::marshal(&pairs, view.data, &view.external);
    let back = PayloadView::parse(&again).expect("what marshal wrote parses");
    assert_eq!(back.metadata_entries(), view.metadata_entries());
    assert_eq!(back.data, view.data);
    assert_eq!(back.external, view.external);
}
