//! The remote-codec JSON shape (proto3 JSON of `temporal.api.common.v1.Payloads`)
//! used by `sealgate payloads` and the Codec Server:
//! `{"payloads":[{"metadata":{"k":"<base64>"},"data":"<base64>"}]}`.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use super::{CodecError, payload::PayloadView};
use crate::wire;

/// The JSON body could not be used.
#[derive(Debug, Error)]
pub enum JsonError {
    #[error("body is not remote-codec JSON ({{\"payloads\":[…]}}): {0}")]
    Parse(#[from] serde_json::Error),
    #[error("{field}: {message}")]
    Field { field: String, message: String },
    #[error("payload {index}: {source}")]
    Codec {
        index: usize,
        #[source]
        source: CodecError,
    },
    #[error("payload {index} is not valid protobuf: {source}")]
    Malformed {
        index: usize,
        #[source]
        source: wire::WireError,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PayloadsJson {
    #[serde(default)]
    payloads: Vec<PayloadJson>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PayloadJson {
    #[serde(default)]
    metadata: BTreeMap<String, Bytes>,
    #[serde(default, skip_serializing_if = "Bytes::is_empty")]
    data: Bytes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    external_payloads: Vec<ExternalJson>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExternalJson {
    #[serde(default, with = "int64")]
    size_bytes: i64,
}

/// Bytes as proto3 JSON writes them: standard base64; URL-safe and unpadded
/// are accepted on input, as the proto3 JSON spec asks.
#[derive(Debug, Default)]
struct Bytes(Vec<u8>);

impl Bytes {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let trimmed = s.trim_end_matches('=');
        general_purpose::STANDARD_NO_PAD
            .decode(trimmed)
            .or_else(|_| general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
            .map(Bytes)
            .map_err(|_| serde::de::Error::custom("invalid base64"))
    }
}

/// int64 as proto3 JSON writes it (a string), accepting a number too.
mod int64 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub(super) fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(i64),
            S(String),
        }
        match Either::deserialize(d)? {
            Either::N(n) => Ok(n),
            Either::S(s) => s.parse().map_err(D::Error::custom),
        }
    }
}

impl PayloadJson {
    fn marshal(&self) -> Vec<u8> {
        let metadata: Vec<(&str, &[u8])> = self
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.as_slice()))
            .collect();
        let external: Vec<Vec<u8>> = self
            .external_payloads
            .iter()
            .map(|e| {
                let mut b = Vec::new();
                if e.size_bytes != 0 {
                    wire::write_varint(1 << 3, &mut b); // size_bytes = 1, varint
                    wire::write_varint(e.size_bytes as u64, &mut b);
                }
                b
            })
            .collect();
        let external: Vec<&[u8]> = external.iter().map(Vec::as_slice).collect();
        super::payload::marshal(&metadata, &self.data.0, &external)
    }

    fn unmarshal(bytes: &[u8]) -> Result<PayloadJson, wire::WireError> {
        let view = PayloadView::parse(bytes)?;
        let metadata = view
            .metadata_entries()
            .iter()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), Bytes(v.to_vec())))
            .collect();
        let mut external_payloads = Vec::new();
        for body in &view.external {
            let mut size_bytes = 0;
            for f in wire::Fields::new(body, 8) {
                let (tag, value) = f?;
                if tag.field == 1 && tag.wire_type == 0 {
                    let mut pos = 0;
                    size_bytes = wire::read_varint(value, &mut pos)? as i64;
                }
            }
            external_payloads.push(ExternalJson { size_bytes });
        }
        Ok(PayloadJson {
            metadata,
            data: Bytes(view.data.to_vec()),
            external_payloads,
        })
    }
}

/// Reads remote-codec JSON, runs `f` over each marshaled payload (`None`
/// keeps it), and writes the result in the same shape.
pub fn transform(
    body: &[u8],
    mut f: impl FnMut(&[u8]) -> Result<Option<Vec<u8>>, CodecError>,
) -> Result<Vec<u8>, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let input: PayloadsJson = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field.is_empty() || field == "." {
            JsonError::Parse(inner)
        } else {
            JsonError::Field {
                field,
                message: inner.to_string(),
            }
        }
    })?;
    de.end()?;
    let mut output = PayloadsJson {
        payloads: Vec::with_capacity(input.payloads.len()),
    };
    for (index, p) in input.payloads.into_iter().enumerate() {
        let bytes = p.marshal();
        match f(&bytes).map_err(|source| JsonError::Codec { index, source })? {
            Some(new) => output.payloads.push(
                PayloadJson::unmarshal(&new)
                    .map_err(|source| JsonError::Malformed { index, source })?,
            ),
            None => output.payloads.push(p),
        }
    }
    Ok(serde_json::to_vec(&output)?)
}
