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
        max_payload: usize::MAX,
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

#[test]
fn a_system_nexus_envelope_is_exempt_and_its_message_audited() {
    use temporalio_protos::temporal::api::workflowservice::v1::SignalWithStartWorkflowExecutionRequest;
    let s = Schema::embedded().unwrap();
    let id = s
        .message_id("temporal.api.workflowservice.v1.RespondWorkflowTaskCompletedRequest")
        .unwrap();
    let inner = |input: Payload| {
        SignalWithStartWorkflowExecutionRequest {
            input: Some(Payloads {
                payloads: vec![input],
            }),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let envelope = |data: Vec<u8>| Payload {
        metadata: [
            ("encoding".to_string(), b"binary/protobuf".to_vec()),
            (
                "messageType".to_string(),
                b"temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest".to_vec(),
            ),
            ("__temporal_system_payload".to_string(), b"true".to_vec()),
        ]
        .into(),
        data,
        ..Default::default()
    };
    // commands[0].schedule_nexus_operation_command_attributes.input, by hand:
    // RespondWorkflowTaskCompletedRequest.commands = 2, Command attribute 18
    // (ScheduleNexusOperation), its input = 4.
    let request = |p: Payload| {
        let attrs = [vec![0x22], len(&p.encode_to_vec())].concat();
        let cmd = [vec![0x92, 0x01], len(&attrs)].concat();
        [vec![0x12], len(&cmd)].concat()
    };
    let sealed = payload::marshal(&[("encoding", ENCRYPTED)], b"x", &[]);
    let ok = request(envelope(inner(Payload::decode(sealed.as_slice()).unwrap())));
    assert_eq!(audit(&s, id, &ok, checks()), Ok(()));
    let leak = request(envelope(inner(json("\"secret\""))));
    assert!(matches!(
        audit(&s, id, &leak, checks()),
        Err(Finding::Plaintext { .. })
    ));
}

/// `bytes` as a length-delimited value: its length varint, then itself.
fn len(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut n = bytes.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(bytes);
    out
}

#[test]
fn a_payload_list_over_the_upstream_limit_is_found() {
    let schema = Schema::embedded().unwrap();
    let id = schema
        .message_id("temporal.api.workflowservice.v1.StartWorkflowExecutionRequest")
        .unwrap();
    let big = |n: usize| Payload {
        metadata: [("encoding".to_string(), ENCRYPTED.to_vec())].into(),
        data: vec![7; n],
        ..Default::default()
    };
    let request = |payloads: Vec<Payload>| {
        temporalio_protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest {
            namespace: "default".into(),
            input: Some(temporalio_protos::temporal::api::common::v1::Payloads { payloads }),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let limited = Checks {
        max_payload: 1000,
        ..checks()
    };
    assert_eq!(
        audit(&schema, id, &request(vec![big(500)]), limited),
        Ok(())
    );
    // Two payloads under the limit each, over it as the list the server
    // checks as one.
    let f = audit(&schema, id, &request(vec![big(600), big(600)]), limited).unwrap_err();
    assert!(
        matches!(&f, Finding::PayloadTooLarge { message, size }
            if message.ends_with("StartWorkflowExecutionRequest") && *size > 1200),
        "{f:?}"
    );
}
