//! Reading and writing `temporal.api.common.v1.Payload` at the wire level.
//!
//! ```text
//! message Payload {
//!   map<string, bytes> metadata = 1;
//!   bytes data = 2;
//!   repeated ExternalPayloadDetails external_payloads = 3;
//! }
//! ```

use smallvec::SmallVec;

use crate::wire::{self, WireError};

const METADATA: u32 = 1;
const DATA: u32 = 2;
const EXTERNAL_PAYLOADS: u32 = 3;

/// Metadata key naming a payload's encoding.
pub const ENCODING: &str = "encoding";

/// The parts of one marshaled payload the codecs look at.
#[derive(Debug, Default)]
pub struct PayloadView<'a> {
    /// Inline for the few entries a payload has: parsing allocates nothing.
    metadata: SmallVec<[(&'a [u8], &'a [u8]); 4]>,
    /// Value of the `data` field (last occurrence).
    pub data: &'a [u8],
    /// Bodies of the `external_payloads` entries, in order.
    pub external: Vec<&'a [u8]>,
}

impl<'a> PayloadView<'a> {
    /// Parses a marshaled payload. Unknown fields are ignored (codecs wrap
    /// the whole marshaled payload, so they survive inside).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut view = PayloadView::default();
        for f in wire::Fields::new(bytes, 8) {
            let (tag, value) = f?;
            if tag.wire_type != wire::LEN {
                continue;
            }
            match tag.field {
                METADATA => {
                    let (key, val) = metadata_entry(value)?;
                    // A later entry with the same key replaces an earlier one.
                    if let Some(slot) = view.metadata.iter_mut().find(|(k, _)| *k == key) {
                        slot.1 = val;
                    } else {
                        view.metadata.push((key, val));
                    }
                }
                DATA => view.data = value,
                EXTERNAL_PAYLOADS => view.external.push(value),
                _ => {}
            }
        }
        Ok(view)
    }

    /// The value of metadata key `key`.
    pub fn metadata(&self, key: &str) -> Option<&'a [u8]> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == key.as_bytes())
            .map(|&(_, v)| v)
    }

    /// All metadata entries, in wire order.
    pub fn metadata_entries(&self) -> &[(&'a [u8], &'a [u8])] {
        &self.metadata
    }

    /// The `encoding` metadata value.
    pub fn encoding(&self) -> Option<&'a [u8]> {
        self.metadata(ENCODING)
    }
}

/// One `metadata` map entry's key and value.
fn metadata_entry(entry: &[u8]) -> Result<(&[u8], &[u8]), WireError> {
    wire::len_pair(entry, 8)
}

/// The `encoding` metadata of a marshaled payload, reading only its
/// metadata entries (no allocation, the data skipped by length): for the
/// outgoing audit, which looks at every payload of every request.
pub fn encoding_of(payload: &[u8]) -> Result<Option<&[u8]>, WireError> {
    let mut found = None;
    for f in wire::Fields::new(payload, 8) {
        let (tag, entry) = f?;
        if tag.field == METADATA && tag.wire_type == wire::LEN {
            let (key, val) = metadata_entry(entry)?;
            if key == ENCODING.as_bytes() {
                found = Some(val);
            }
        }
    }
    Ok(found)
}

/// Metadata that marks a System Nexus envelope (`__temporal_system`
/// endpoint): the SDKs keep the outer payload readable for the server and
/// encode the payloads of the message inside it.
pub const SYSTEM_MARK: (&str, &[u8]) = ("__temporal_system_payload", b"true");
/// The envelope's encoding, and the metadata key naming its message type.
pub const SYSTEM_ENCODING: &[u8] = b"binary/protobuf";
pub const MESSAGE_TYPE: &str = "messageType";

/// The message type of a System Nexus envelope (marked, `binary/protobuf`),
/// `None` for any other payload (or one that does not parse).
pub fn system_message_type(payload: &[u8]) -> Option<&[u8]> {
    PayloadView::parse(payload).ok()?.system_message_type()
}

impl<'a> PayloadView<'a> {
    /// [`system_message_type`] of the payload this view was parsed from.
    pub fn system_message_type(&self) -> Option<&'a [u8]> {
        let marked = self.metadata(SYSTEM_MARK.0) == Some(SYSTEM_MARK.1);
        let proto = self.encoding() == Some(SYSTEM_ENCODING);
        (marked && proto)
            .then(|| self.metadata(MESSAGE_TYPE))
            .flatten()
    }
}

/// Writes a payload with the given metadata, a data field of `data_len`
/// bytes filled by `fill`, and the given external payload entries.
///
/// The output is sized exactly once; `fill` receives the data slice, which
/// lets the AEAD encrypt in place inside the final buffer.
pub(crate) fn write_payload<E>(
    metadata: &[(&str, &[u8])],
    data_len: usize,
    external: &[&[u8]],
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let entry_len =
        |k: &str, v: &[u8]| wire::len_field_size(1, k.len()) + wire::len_field_size(2, v.len());
    let mut size = wire::len_field_size(DATA, data_len);
    for (k, v) in metadata {
        size += wire::len_field_size(METADATA, entry_len(k, v));
    }
    for e in external {
        size += wire::len_field_size(EXTERNAL_PAYLOADS, e.len());
    }
    let mut out = Vec::with_capacity(size);
    for (k, v) in metadata {
        wire::write_varint(u64::from(METADATA) << 3 | u64::from(wire::LEN), &mut out);
        wire::write_varint(entry_len(k, v) as u64, &mut out);
        wire::write_len_field(1, k.as_bytes(), &mut out);
        wire::write_len_field(2, v, &mut out);
    }
    wire::write_varint(u64::from(DATA) << 3 | u64::from(wire::LEN), &mut out);
    wire::write_varint(data_len as u64, &mut out);
    let before = out.len();
    fill(&mut out)?;
    debug_assert_eq!(
        out.len() - before,
        data_len,
        "fill wrote the declared length"
    );
    for e in external {
        wire::write_len_field(EXTERNAL_PAYLOADS, e, &mut out);
    }
    Ok(out)
}

/// Writes a payload whose data is already at hand.
pub fn marshal(metadata: &[(&str, &[u8])], data: &[u8], external: &[&[u8]]) -> Vec<u8> {
    let res: Result<_, std::convert::Infallible> =
        write_payload(metadata, data.len(), external, |out| {
            out.extend_from_slice(data);
            Ok(())
        });
    match res {
        Ok(v) => v,
        Err(never) => match never {},
    }
}
