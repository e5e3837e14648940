//! Replays the committed fuzz corpus (fuzz/corpus/rewrite) through the fuzz
//! harness on stable, so every CI run checks what the fuzzer once found.
//! `SEALGATE_WRITE_CORPUS=1` regenerates the seed files from real messages.

#[path = "../../fuzz/harness.rs"]
mod harness;

use std::path::PathBuf;

use prost::Message;
use temporalio_protos::temporal::api::{
    common::v1::{Header, Memo, Payload, Payloads, SearchAttributes, WorkflowType},
    failure::v1::Failure,
    workflowservice::v1::{SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest},
};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/rewrite")
}

fn json(data: &str) -> Payload {
    Payload {
        metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// Seed inputs: real messages of a few types, prefixed by their selector.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let start = StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: "wf".into(),
        workflow_type: Some(WorkflowType { name: "W".into() }),
        input: Some(Payloads {
            payloads: vec![json("\"a\""), json(&"b".repeat(300))],
        }),
        memo: Some(Memo {
            fields: [("m".into(), json("1"))].into(),
        }),
        header: Some(Header {
            fields: [("h".into(), json("2"))].into(),
        }),
        search_attributes: Some(SearchAttributes {
            indexed_fields: [("CustomKeyword".into(), json("\"k\""))].into(),
        }),
        ..Default::default()
    };
    let signal = SignalWorkflowExecutionRequest {
        signal_name: "s".into(),
        input: Some(Payloads {
            payloads: vec![json("[1,2,3]")],
        }),
        ..Default::default()
    };
    let failure = Failure {
        message: "boom".into(),
        stack_trace: "at x".into(),
        cause: Some(Box::new(Failure {
            message: "inner".into(),
            encoded_attributes: Some(json("{}")),
            ..Default::default()
        })),
        ..Default::default()
    };
    // A legacy Nexus handler error (a Failure as protojson in details), as
    // sdk-core writes it for a caller without failure support.
    #[allow(deprecated)]
    let nexus_failed = temporalio_protos::temporal::api::workflowservice::v1::RespondNexusTaskFailedRequest {
        namespace: "default".into(),
        error: Some(temporalio_protos::temporal::api::nexus::v1::HandlerError {
            error_type: "BAD_REQUEST".into(),
            failure: Some(temporalio_protos::temporal::api::nexus::v1::Failure {
                message: "bad".into(),
                metadata: [("type".into(), "temporal.api.failure.v1.Failure".into())].into(),
                details: br#"{"cause":{"message":"c","applicationFailureInfo":{"details":{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"ImQi"}]}}}}"#.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    // A System Nexus envelope (SignalWithStart through __temporal_system).
    let system =
        temporalio_protos::temporal::api::history::v1::NexusOperationScheduledEventAttributes {
            endpoint: "__temporal_system".into(),
            input: Some(Payload {
                metadata: [
                    ("encoding".into(), b"binary/protobuf".to_vec()),
                    (
                        "messageType".into(),
                        b"temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest"
                            .to_vec(),
                    ),
                    ("__temporal_system_payload".into(), b"true".to_vec()),
                ]
                .into(),
                data: signal.encode_to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        };
    let poll = temporalio_protos::temporal::api::workflowservice::v1::PollWorkflowTaskQueueResponse {
        history: Some(temporalio_protos::temporal::api::history::v1::History {
            events: vec![temporalio_protos::temporal::api::history::v1::HistoryEvent {
                attributes: Some(temporalio_protos::temporal::api::history::v1::history_event::Attributes::NexusOperationScheduledEventAttributes(system)),
                ..Default::default()
            }],
        }),
        ..Default::default()
    };
    let ws = "temporal.api.workflowservice.v1.";
    [
        (
            format!("{ws}RespondNexusTaskFailedRequest"),
            nexus_failed.encode_to_vec(),
        ),
        (
            format!("{ws}PollWorkflowTaskQueueResponse"),
            poll.encode_to_vec(),
        ),
        (
            format!("{ws}StartWorkflowExecutionRequest"),
            start.encode_to_vec(),
        ),
        (
            format!("{ws}SignalWorkflowExecutionRequest"),
            signal.encode_to_vec(),
        ),
        (
            "temporal.api.failure.v1.Failure".to_string(),
            failure.encode_to_vec(),
        ),
    ]
    .into_iter()
    .map(|(name, bytes)| {
        let mut input = vec![harness::selector(&name).unwrap()];
        input.extend(bytes);
        (name.rsplit('.').next().unwrap().to_string(), input)
    })
    .collect()
}

#[test]
fn corpus_replays_cleanly() {
    if std::env::var("SEALGATE_WRITE_CORPUS").as_deref() == Ok("1") {
        std::fs::create_dir_all(corpus_dir()).unwrap();
        for (name, input) in seeds() {
            std::fs::write(corpus_dir().join(format!("seed-{name}")), input).unwrap();
        }
    }
    let mut n = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        harness::run(&std::fs::read(&path).unwrap());
        n += 1;
    }
    assert!(n >= 3, "the committed corpus has {n} files");
    // The seeds are also run as built, so a schema change cannot orphan them.
    for (_, input) in seeds() {
        harness::run(&input);
    }
}
