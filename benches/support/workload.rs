//! Workload messages shared by the criterion benches and the load
//! harness's fake upstream, so both measure the same shapes.
#![allow(dead_code)]

use prost::Message;
use temporalio_protos::temporal::api::{
    common::v1::{ActivityType, Payload, Payloads, WorkflowExecution, WorkflowType},
    enums::v1::EventType,
    history::v1::{
        ActivityTaskCompletedEventAttributes, ActivityTaskScheduledEventAttributes, History,
        HistoryEvent, WorkflowExecutionStartedEventAttributes,
        WorkflowTaskCompletedEventAttributes, WorkflowTaskScheduledEventAttributes,
        history_event::Attributes,
    },
    workflowservice::v1::PollWorkflowTaskQueueResponse,
};

/// JSON of about `size` bytes that looks like business data (compressible
/// the way real payloads are, not a run of one byte).
pub(crate) fn json_of(size: usize) -> Vec<u8> {
    let mut s = String::from("{\"items\":[");
    let mut i = 0u64;
    while s.len() < size {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
        s.push_str(&format!(
            "{{\"sku\":\"SKU-{x:07}\",\"qty\":{},\"price\":{}.{:02},\"note\":\"order {i} for customer c-{}\"}},",
            x % 9 + 1,
            x % 500,
            x % 100,
            x % 10_000
        ));
        i += 1;
    }
    s.truncate(size - 2);
    s.push_str("]}");
    s.into_bytes()
}

pub(crate) fn payloads(size: usize) -> Option<Payloads> {
    Some(Payloads {
        payloads: vec![Payload {
            metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
            data: json_of(size),
            ..Default::default()
        }],
    })
}

/// A workflow task poll response carrying an `n`-event history: a start
/// with a 1 KiB input, then rounds of workflow task / activity scheduled
/// (512 B input) / activity completed (512 B result).
pub(crate) fn poll_response(n: usize) -> Vec<u8> {
    let mut events = Vec::new();
    fn push(events: &mut Vec<HistoryEvent>, event_type: EventType, attributes: Attributes) {
        let id = events.len() as i64 + 1;
        events.push(HistoryEvent {
            event_id: id,
            event_type: event_type as i32,
            task_id: 1_048_576 + id,
            attributes: Some(attributes),
            ..Default::default()
        });
    }
    push(
        &mut events,
        EventType::WorkflowExecutionStarted,
        Attributes::WorkflowExecutionStartedEventAttributes(
            WorkflowExecutionStartedEventAttributes {
                workflow_type: Some(WorkflowType {
                    name: "ProcessOrder".into(),
                }),
                input: payloads(1024),
                ..Default::default()
            },
        ),
    );
    while events.len() < n {
        push(
            &mut events,
            EventType::WorkflowTaskScheduled,
            Attributes::WorkflowTaskScheduledEventAttributes(
                WorkflowTaskScheduledEventAttributes {
                    attempt: 1,
                    ..Default::default()
                },
            ),
        );
        push(
            &mut events,
            EventType::WorkflowTaskCompleted,
            Attributes::WorkflowTaskCompletedEventAttributes(
                WorkflowTaskCompletedEventAttributes {
                    identity: "worker-1@host".into(),
                    ..Default::default()
                },
            ),
        );
        push(
            &mut events,
            EventType::ActivityTaskScheduled,
            Attributes::ActivityTaskScheduledEventAttributes(
                ActivityTaskScheduledEventAttributes {
                    activity_id: "1".into(),
                    activity_type: Some(ActivityType {
                        name: "Charge".into(),
                    }),
                    input: payloads(512),
                    ..Default::default()
                },
            ),
        );
        push(
            &mut events,
            EventType::ActivityTaskCompleted,
            Attributes::ActivityTaskCompletedEventAttributes(
                ActivityTaskCompletedEventAttributes {
                    result: payloads(512),
                    identity: "worker-1@host".into(),
                    ..Default::default()
                },
            ),
        );
    }
    events.truncate(n);
    PollWorkflowTaskQueueResponse {
        task_token: vec![7; 120],
        workflow_execution: Some(WorkflowExecution {
            workflow_id: "order-12345".into(),
            run_id: "0d7f3c2a-1b00-4c1e-9b9e-6f1c0a8e7d0b".into(),
        }),
        history: Some(History { events }),
        ..Default::default()
    }
    .encode_to_vec()
}
