use prost::Message;
use temporalio_protos::temporal::api::{
    common::v1::{Payload, Payloads, SearchAttributes},
    workflowservice::v1::StartWorkflowExecutionRequest,
};

use super::*;
use crate::{
    codec::{CodecError, payload},
    rewrite::{PayloadVisitor, rewrite},
};

const START: &str = "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest";
const ENCRYPTED: &[u8] = b"binary/encrypted";

fn checks() -> Checks {
    Checks {
        unknown: true,
        plaintext: true,
        own: ENCRYPTED,
    }
}

fn json(data: &str) -> Payload {
    Payload {
        metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Stands in for the codec: every payload becomes a `binary/encrypted` one.
struct Seal;

impl PayloadVisitor for Seal {
    fn payload(&mut self, p: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        Ok(Some(payload::marshal(&[("encoding", ENCRYPTED)], p, &[])))
    }
}

fn start() -> Vec<u8> {
    StartWorkflowExecutionRequest {
        namespace: "default".into(),
        input: Some(Payloads {
            payloads: vec![json("\"secret\"")],
        }),
        search_attributes: Some(SearchAttributes {
            indexed_fields: [("CustomerId".to_string(), json("\"c-42\""))].into(),
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn field_number(s: &Schema, message: &str, name: &str) -> u32 {
    let id = s.message_id(message).unwrap();
    s.message(id)
        .fields()
        .iter()
        .find(|f| &*f.name == name)
        .unwrap()
        .number
}

#[test]
fn an_encoded_request_passes_and_search_attributes_stay_exempt() {
    let s = Schema::embedded().unwrap();
    let id = s.message_id(START).unwrap();
    let raw = start();
    assert!(matches!(
        audit(&s, id, &raw, checks()),
        Err(Finding::Plaintext { .. })
    ));
    let sealed = rewrite(&s, id, &raw, &mut Seal).unwrap();
    assert_eq!(audit(&s, id, &sealed, checks()), Ok(()));
}

#[test]
fn the_tripwire_fires_when_the_plan_misses_a_path() {
    let full = Schema::embedded().unwrap();
    let input = field_number(&full, START, "input");
    let broken = Schema::embedded_without(&[(START, input)]).unwrap();
    let id = broken.message_id(START).unwrap();
    let raw = start();
    let sealed = rewrite(&broken, id, &raw, &mut Seal).unwrap();
    let found = audit(&full, full.message_id(START).unwrap(), &sealed, checks());
    assert_eq!(
        found,
        Err(Finding::Plaintext {
            message: "temporal.api.common.v1.Payloads".into(),
            encoding: "json/plain".into()
        })
    );
    // Off for a call whose policy does not encrypt.
    let off = Checks {
        plaintext: false,
        ..checks()
    };
    assert_eq!(audit(&full, id, &sealed, off), Ok(()));
}

#[test]
fn unknown_length_delimited_fields_and_any_types_are_found() {
    let s = Schema::embedded().unwrap();
    let id = s.message_id(START).unwrap();
    let raw = start();
    let mut msg = rewrite(&s, id, &raw, &mut Seal).unwrap().into_owned();
    // An unknown varint passes: it cannot hold a payload.
    let mut with_varint = msg.clone();
    with_varint.extend_from_slice(&[0xf8, 0x3e, 0x01]); // field 999, varint 1
    assert_eq!(audit(&s, id, &with_varint, checks()), Ok(()));
    // An unknown length-delimited field is named.
    wire::write_len_field(999, &json("\"new\"").encode_to_vec(), &mut msg);
    assert_eq!(
        audit(&s, id, &msg, checks()),
        Err(Finding::UnknownField {
            message: START.into(),
            number: 999
        })
    );
    let relaxed = Checks {
        unknown: false,
        ..checks()
    };
    assert_eq!(audit(&s, id, &msg, relaxed), Ok(()));

    // An Any of a type the schema lacks, and an Any that is a plaintext Payload.
    let protocol = s.message_id("temporal.api.protocol.v1.Message").unwrap();
    let any_message = |type_url: &str, value: &[u8]| {
        let mut any = Vec::new();
        wire::write_len_field(1, type_url.as_bytes(), &mut any);
        wire::write_len_field(2, value, &mut any);
        let mut m = Vec::new();
        wire::write_len_field(5, &any, &mut m);
        m
    };
    let unknown = any_message("type.googleapis.com/acme.New", b"\x0a\x01x");
    assert!(matches!(
        audit(&s, protocol, &unknown, checks()),
        Err(Finding::UnknownAny { .. })
    ));
    let plain = any_message(
        "type.googleapis.com/temporal.api.common.v1.Payload",
        &json("\"x\"").encode_to_vec(),
    );
    assert!(matches!(
        audit(&s, protocol, &plain, checks()),
        Err(Finding::Plaintext { .. })
    ));
    let sealed = rewrite(&s, protocol, &plain, &mut Seal).unwrap();
    assert_eq!(audit(&s, protocol, &sealed, checks()), Ok(()));
}
