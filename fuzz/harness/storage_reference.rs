//! External storage references: the `Payload` a reference is carried in,
//! the JSON claim inside it, and the strict check the outgoing audit uses.
//!
//! Input: a marshaled `Payload`, and the same bytes as a reference's JSON.
//! Properties: nothing panics; what the audit accepts as sealgate's own
//! reference parses as a reference.

use sealgate::{
    codec::PayloadView,
    storage::{REFERENCE_TYPE, is_own_reference, parse_reference},
};

pub(crate) fn run(data: &[u8]) {
    if let Ok(view) = PayloadView::parse(data) {
        let parsed = parse_reference(view.encoding(), view.metadata("messageType"), view.data);
        if is_own_reference(view.metadata_entries(), view.data) {
            assert!(
                matches!(parsed, Ok(Some(_))),
                "accepted but not a reference"
            );
        }
    }
    let _ = parse_reference(
        Some(b"json/protobuf"),
        Some(REFERENCE_TYPE.as_bytes()),
        data,
    );
}
