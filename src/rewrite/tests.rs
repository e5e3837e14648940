use std::borrow::Cow;

use prost::Message;
use temporalio_protos::temporal::api::{
    common::v1::{Payload, Payloads, WorkflowType},
    failure::v1::Failure,
    update::v1::{Input, Request},
    workflowservice::v1::StartWorkflowExecutionRequest,
};

use super::*;
use crate::codec::payload;

/// Wraps every payload in a `test/wrapped` payload and records what it saw.
#[derive(Default)]
struct Wrap {
    seen: Vec<Vec<u8>>,
}

impl PayloadVisitor for Wrap {
    fn payload(&mut self, p: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        self.seen.push(p.to_vec());
        Ok(Some(payload::marshal(
            &[("encoding", b"test/wrapped")],
            p,
            &[],
        )))
    }
}

/// Unwraps what [`Wrap`] made.
struct Unwrap;

impl PayloadVisitor for Unwrap {
    fn payload(&mut self, p: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        let view = payload::PayloadView::parse(p).map_err(CodecError::MalformedPayload)?;
        Ok((view.encoding() == Some(b"test/wrapped")).then(|| view.data.to_vec()))
    }
}

/// Leaves every payload alone.
struct Keep;

impl PayloadVisitor for Keep {
    fn payload(&mut self, _: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        Ok(None)
    }
}

fn schema() -> Schema {
    Schema::embedded().unwrap()
}

fn json(data: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn start_request() -> Vec<u8> {
    StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: "wf-1".into(),
        workflow_type: Some(WorkflowType {
            name: "Greet".into(),
        }),
        input: Some(Payloads {
            payloads: vec![json("\"secret-1\""), json("\"secret-2\"")],
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

const START: &str = "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest";

fn id(s: &Schema, name: &str) -> MessageId {
    s.message_id(name).unwrap()
}

#[test]
fn unchanged_input_is_returned_without_a_copy() {
    let s = schema();
    let bytes = start_request();
    let out = rewrite(&s, id(&s, START), &bytes, &mut Keep).unwrap();
    match out {
        Cow::Borrowed(b) => assert!(std::ptr::eq(b, bytes.as_slice())),
        Cow::Owned(_) => panic!("expected the input slice back"),
    }
}

#[test]
fn payloads_are_rewritten_and_round_trip() {
    let s = schema();
    let bytes = start_request();
    let mut wrap = Wrap::default();
    let enc = rewrite(&s, id(&s, START), &bytes, &mut wrap)
        .unwrap()
        .into_owned();
    assert_eq!(wrap.seen.len(), 2);
    assert_eq!(wrap.seen[0], json("\"secret-1\"").encode_to_vec());
    let decoded = StartWorkflowExecutionRequest::decode(enc.as_slice()).unwrap();
    assert_eq!(decoded.workflow_id, "wf-1");
    let p = &decoded.input.unwrap().payloads[0];
    assert_eq!(p.metadata["encoding"], b"test/wrapped");
    let back = rewrite(&s, id(&s, START), &enc, &mut Unwrap).unwrap();
    assert_eq!(back.as_ref(), bytes.as_slice());
}

/// Appends an unknown varint field and an unknown length-delimited field.
fn with_unknown(mut bytes: Vec<u8>, marker: &[u8]) -> Vec<u8> {
    wire::write_varint(9_999 << 3, &mut bytes);
    wire::write_varint(42, &mut bytes);
    wire::write_len_field(9_998, marker, &mut bytes);
    bytes
}

#[test]
fn unknown_fields_and_order_survive_at_every_depth() {
    let s = schema();
    // Unknown fields inside the payload, inside Payloads, and at the top.
    let payload = with_unknown(json("\"x\"").encode_to_vec(), b"in-payload");
    let mut payloads = Vec::new();
    wire::write_len_field(1, &payload, &mut payloads);
    let payloads = with_unknown(payloads, b"in-payloads");
    // The unknown field comes first, before known ones: order must hold.
    let mut top = with_unknown(Vec::new(), b"top");
    wire::write_len_field(2, b"wf-1", &mut top); // workflow_id
    wire::write_len_field(5, &payloads, &mut top); // input
    let mut wrap = Wrap::default();
    let enc = rewrite(&s, id(&s, START), &top, &mut wrap)
        .unwrap()
        .into_owned();
    assert_eq!(
        wrap.seen,
        vec![payload.clone()],
        "the whole payload, unknown fields included"
    );
    assert!(enc.starts_with(&with_unknown(Vec::new(), b"top")));
    assert!(enc.windows(11).any(|w| w == b"in-payloads"));
    let back = rewrite(&s, id(&s, START), &enc, &mut Unwrap).unwrap();
    assert_eq!(back.as_ref(), top.as_slice());
}

#[test]
fn any_bodies_are_resolved_by_type_url() {
    let s = schema();
    let request = Request {
        input: Some(Input {
            name: "set".into(),
            args: Some(Payloads {
                payloads: vec![json("\"update-arg\"")],
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let bytes = protocol_message("temporal.api.update.v1.Request", &request.encode_to_vec());
    let mut wrap = Wrap::default();
    let enc = rewrite(
        &s,
        id(&s, "temporal.api.protocol.v1.Message"),
        &bytes,
        &mut wrap,
    )
    .unwrap();
    assert_eq!(wrap.seen, vec![json("\"update-arg\"").encode_to_vec()]);
    assert_eq!(
        rewrite(
            &s,
            id(&s, "temporal.api.protocol.v1.Message"),
            &enc,
            &mut Unwrap
        )
        .unwrap()
        .as_ref(),
        bytes.as_slice()
    );
    // An unknown type passes through untouched.
    let other = protocol_message("example.Unknown", &request.encode_to_vec());
    let mut wrap = Wrap::default();
    let out = rewrite(
        &s,
        id(&s, "temporal.api.protocol.v1.Message"),
        &other,
        &mut wrap,
    )
    .unwrap();
    assert!(matches!(out, Cow::Borrowed(_)) && wrap.seen.is_empty());
}

#[test]
fn an_any_holding_a_payload_or_payloads_is_a_payload() {
    let s = schema();
    let msg = id(&s, "temporal.api.protocol.v1.Message");
    let p = json("\"in-any\"");
    let bytes = protocol_message(schema::PAYLOAD, &p.encode_to_vec());
    let mut wrap = Wrap::default();
    let enc = rewrite(&s, msg, &bytes, &mut wrap).unwrap();
    assert_eq!(wrap.seen, vec![p.encode_to_vec()]);
    assert!(enc.windows(12).any(|w| w == b"test/wrapped"), "rewritten");
    assert_eq!(rewrite(&s, msg, &enc, &mut Unwrap).unwrap().as_ref(), bytes);

    let ps = Payloads {
        payloads: vec![json("\"a\""), json("\"b\"")],
    };
    let bytes = protocol_message("temporal.api.common.v1.Payloads", &ps.encode_to_vec());
    let mut wrap = Wrap::default();
    let enc = rewrite(&s, msg, &bytes, &mut wrap).unwrap();
    assert_eq!(wrap.seen.len(), 2);
    assert_eq!(rewrite(&s, msg, &enc, &mut Unwrap).unwrap().as_ref(), bytes);

    // The namespace plan never takes a Payload for a name.
    let names = Schema::embedded_namespaces().unwrap();
    let bytes = protocol_message(schema::PAYLOAD, &p.encode_to_vec());
    let mut wrap = Wrap::default();
    let nid = names
        .message_id("temporal.api.protocol.v1.Message")
        .unwrap();
    rewrite(&names, nid, &bytes, &mut wrap).unwrap();
    assert!(wrap.seen.is_empty());
}

/// `temporal.api.protocol.v1.Message { id: "m1", body: Any(name, value) }`.
fn protocol_message(name: &str, value: &[u8]) -> Vec<u8> {
    let mut any = Vec::new();
    wire::write_len_field(
        1,
        format!("type.googleapis.com/{name}").as_bytes(),
        &mut any,
    );
    wire::write_len_field(2, value, &mut any);
    let mut msg = Vec::new();
    wire::write_len_field(1, b"m1", &mut msg);
    wire::write_len_field(5, &any, &mut msg);
    msg
}

fn failure_chain(depth: usize) -> Failure {
    let mut f = Failure {
        message: "root".into(),
        encoded_attributes: Some(json("\"attrs\"")),
        ..Default::default()
    };
    for i in 0..depth {
        f = Failure {
            message: format!("level {i}"),
            cause: Some(Box::new(f)),
            ..Default::default()
        };
    }
    f
}

#[test]
fn recursion_is_followed_up_to_the_depth_limit() {
    let s = schema();
    let ok = failure_chain(90).encode_to_vec();
    let mut wrap = Wrap::default();
    rewrite(&s, id(&s, schema::FAILURE), &ok, &mut wrap).unwrap();
    assert_eq!(wrap.seen.len(), 1, "the payload at the bottom is found");

    let deep = failure_chain(150).encode_to_vec();
    let err = rewrite(&s, id(&s, schema::FAILURE), &deep, &mut Wrap::default()).unwrap_err();
    assert!(
        matches!(
            err.kind,
            RewriteErrorKind::Wire(WireError::TooDeep { limit: 100 })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Failure.cause.cause"), "{err}");
}

#[test]
fn malformed_input_gives_typed_errors_with_a_path() {
    let s = schema();
    let start = id(&s, START);
    let bytes = start_request();
    // Truncated anywhere: an error or (when cut between fields) success, never a panic.
    for cut in 0..bytes.len() {
        let _ = rewrite(&s, start, &bytes[..cut], &mut Wrap::default());
    }
    // Truncated varint key.
    let err = rewrite(&s, start, &[0x80], &mut Keep).unwrap_err();
    assert!(matches!(
        err.kind,
        RewriteErrorKind::Wire(WireError::TruncatedVarint { .. })
    ));
    assert!(err.is_malformed());
    // Length past the end, on a planned field.
    let err = rewrite(&s, start, &[0x2a, 0x10, 0x01], &mut Keep).unwrap_err();
    assert!(matches!(
        err.kind,
        RewriteErrorKind::Wire(WireError::LengthPastEnd { .. })
    ));
    assert!(
        err.to_string()
            .contains("StartWorkflowExecutionRequest.input"),
        "{err}"
    );
    // Length past the end on an unplanned field too.
    let err = rewrite(&s, start, &[0x12, 0x10, 0x01], &mut Keep).unwrap_err();
    assert!(matches!(
        err.kind,
        RewriteErrorKind::Wire(WireError::LengthPastEnd { .. })
    ));
    // Wrong wire type on a planned field: input (5) as a varint.
    let err = rewrite(&s, start, &[0x28, 0x01], &mut Keep).unwrap_err();
    assert!(
        matches!(
            err.kind,
            RewriteErrorKind::Wire(WireError::WrongWireType {
                field: 5,
                found: 0,
                ..
            })
        ),
        "{err}"
    );
    // Field number zero and wire types 6/7.
    for bad in [&[0x02, 0x00][..], &[0x0e], &[0x0f]] {
        assert!(
            rewrite(&s, start, bad, &mut Keep)
                .unwrap_err()
                .is_malformed()
        );
    }
    // A stray end-group.
    assert!(rewrite(&s, start, &[0x0c], &mut Keep).is_err());
}

#[test]
fn unknown_groups_are_copied_through() {
    let s = schema();
    let mut bytes = vec![0xcb, 0x3e, 0x08, 0x01, 0xcc, 0x3e]; // group 1001 { 1: 1 }
    bytes.extend(start_request());
    let mut wrap = Wrap::default();
    let enc = rewrite(&s, id(&s, START), &bytes, &mut wrap).unwrap();
    assert!(enc.starts_with(&[0xcb, 0x3e, 0x08, 0x01, 0xcc, 0x3e]));
    assert_eq!(wrap.seen.len(), 2);
}

#[test]
fn visitor_errors_name_the_field() {
    struct Fail;
    impl PayloadVisitor for Fail {
        fn payload(&mut self, _: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
            Err(CodecError::NoActiveKey {
                policy: "default".into(),
            })
        }
    }
    let s = schema();
    let err = rewrite(&s, id(&s, START), &start_request(), &mut Fail).unwrap_err();
    assert!(!err.is_malformed());
    assert_eq!(err.path(), "StartWorkflowExecutionRequest.input.payloads");
}

#[test]
fn raw_history_blobs_are_walked_as_histories() {
    use temporalio_protos::temporal::api::{
        common::v1::DataBlob,
        history::v1::{
            History, HistoryEvent, WorkflowExecutionStartedEventAttributes, history_event,
        },
        workflowservice::v1::GetWorkflowExecutionHistoryResponse,
    };
    let s = schema();
    let history = History {
        events: vec![HistoryEvent {
            event_id: 1,
            attributes: Some(
                history_event::Attributes::WorkflowExecutionStartedEventAttributes(
                    WorkflowExecutionStartedEventAttributes {
                        input: Some(Payloads {
                            payloads: vec![json("\"in-raw-history\"")],
                        }),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }],
    };
    let response = GetWorkflowExecutionHistoryResponse {
        raw_history: vec![DataBlob {
            encoding_type: 1, // proto3
            data: history.encode_to_vec(),
        }],
        ..Default::default()
    }
    .encode_to_vec();
    let id = id(
        &s,
        "temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse",
    );
    let mut wrap = Wrap::default();
    let wrapped = rewrite(&s, id, &response, &mut wrap).unwrap().into_owned();
    assert_eq!(wrap.seen, vec![json("\"in-raw-history\"").encode_to_vec()]);
    let back = rewrite(&s, id, &wrapped, &mut Unwrap).unwrap();
    assert_eq!(back.as_ref(), response.as_slice());
    // A blob in another encoding (JSON) is left as it is.
    let json_blob = GetWorkflowExecutionHistoryResponse {
        raw_history: vec![DataBlob {
            encoding_type: 2,
            data: b"{\"events\":[]}".to_vec(),
        }],
        ..Default::default()
    }
    .encode_to_vec();
    let out = rewrite(&s, id, &json_blob, &mut Wrap::default()).unwrap();
    assert!(matches!(out, Cow::Borrowed(_)));
    // A proto3 blob whose data is not a History is left as it is too.
    let garbage = GetWorkflowExecutionHistoryResponse {
        raw_history: vec![DataBlob {
            encoding_type: 1,
            data: vec![0x0c, 0xff, 0x01],
        }],
        ..Default::default()
    }
    .encode_to_vec();
    let out = rewrite(&s, id, &garbage, &mut Wrap::default()).unwrap();
    assert!(matches!(out, Cow::Borrowed(_)));
}

/// A workflow task completion that schedules a System Nexus operation
/// (SignalWithStart through `__temporal_system`), the way the SDKs build it.
fn system_nexus_completion(envelope_type: &str) -> (Vec<u8>, Vec<u8>) {
    use temporalio_protos::temporal::api::{
        command::v1::{Command, ScheduleNexusOperationCommandAttributes, command},
        common::v1::SearchAttributes,
        workflowservice::v1::{
            RespondWorkflowTaskCompletedRequest, SignalWithStartWorkflowExecutionRequest,
        },
    };
    let inner = SignalWithStartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: "target".into(),
        signal_name: "poke".into(),
        input: Some(Payloads {
            payloads: vec![json("\"start-secret\"")],
        }),
        signal_input: Some(Payloads {
            payloads: vec![json("\"signal-secret\"")],
        }),
        search_attributes: Some(SearchAttributes {
            indexed_fields: [("Owner".to_string(), json("\"indexed\""))].into(),
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let envelope = Payload {
        metadata: [
            ("encoding".to_string(), b"binary/protobuf".to_vec()),
            ("messageType".to_string(), envelope_type.as_bytes().to_vec()),
            ("__temporal_system_payload".to_string(), b"true".to_vec()),
        ]
        .into(),
        data: inner.clone(),
        ..Default::default()
    };
    let req = RespondWorkflowTaskCompletedRequest {
        namespace: "default".into(),
        commands: vec![Command {
            attributes: Some(
                command::Attributes::ScheduleNexusOperationCommandAttributes(
                    ScheduleNexusOperationCommandAttributes {
                        endpoint: "__temporal_system".into(),
                        service: "temporal.api.workflowservice.v1.WorkflowService".into(),
                        operation: "SignalWithStartWorkflowExecution".into(),
                        input: Some(envelope),
                        ..Default::default()
                    },
                ),
            ),
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec();
    (req, inner)
}

#[test]
fn system_nexus_envelopes_stay_readable_and_their_payloads_are_encoded() {
    use temporalio_protos::temporal::api::workflowservice::v1::{
        RespondWorkflowTaskCompletedRequest, SignalWithStartWorkflowExecutionRequest,
    };
    let s = schema();
    let completed = id(
        &s,
        "temporal.api.workflowservice.v1.RespondWorkflowTaskCompletedRequest",
    );
    let swt = "temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest";
    let (req, _) = system_nexus_completion(swt);
    let mut wrap = Wrap::default();
    let enc = rewrite(&s, completed, &req, &mut wrap)
        .unwrap()
        .into_owned();
    // The two inner payloads, not the envelope nor the search attribute.
    assert_eq!(wrap.seen.len(), 2, "{:?}", wrap.seen);
    let out = RespondWorkflowTaskCompletedRequest::decode(enc.as_slice()).unwrap();
    let Some(
        temporalio_protos::temporal::api::command::v1::command::Attributes::ScheduleNexusOperationCommandAttributes(a),
    ) = &out.commands[0].attributes
    else {
        panic!("attributes lost")
    };
    let envelope = a.input.as_ref().unwrap();
    assert_eq!(envelope.metadata["encoding"], b"binary/protobuf");
    assert_eq!(envelope.metadata["__temporal_system_payload"], b"true");
    let inner = SignalWithStartWorkflowExecutionRequest::decode(envelope.data.as_slice()).unwrap();
    assert_eq!(inner.workflow_id, "target");
    assert_eq!(
        inner.input.unwrap().payloads[0].metadata["encoding"],
        b"test/wrapped"
    );
    assert_eq!(
        inner.search_attributes.unwrap().indexed_fields["Owner"],
        json("\"indexed\"")
    );
    // Decoding (commands and history alike) restores the bytes exactly.
    let back = rewrite(&s, completed, &enc, &mut Unwrap).unwrap();
    assert_eq!(back.as_ref(), req.as_slice());

    // A type the schema lacks: the envelope is encoded whole.
    let (req, _) = system_nexus_completion("temporal.api.future.v1.Thing");
    let mut wrap = Wrap::default();
    rewrite(&s, completed, &req, &mut wrap).unwrap();
    assert_eq!(wrap.seen.len(), 1);
    assert!(wrap.seen[0].windows(7).any(|w| w == b"binary/"));
}

#[test]
fn api_files_the_crate_leaves_out_are_in_the_schema() {
    let s = schema();
    // OnCompleteRequest { success = 1 (Payload), failure = 2, source_context = 3 }
    let on_complete = id(&s, "temporal.api.notificationservice.v1.OnCompleteRequest");
    let secret = json("\"result\"").encode_to_vec();
    let mut msg = vec![0x0a, secret.len() as u8];
    msg.extend_from_slice(&secret);
    let mut wrap = Wrap::default();
    let out = rewrite(&s, on_complete, &msg, &mut wrap).unwrap();
    assert!(matches!(out, Cow::Owned(_)));
    assert_eq!(wrap.seen, vec![secret]);
    for name in [
        "temporal.api.export.v1.WorkflowExecutions",
        "temporal.api.sdk.v1.ExternalStorageReference",
    ] {
        assert!(s.message_id(name).is_some(), "{name}");
    }
    assert!(
        !s.message(id(&s, "temporal.api.export.v1.WorkflowExecutions"))
            .is_empty()
    );
}
