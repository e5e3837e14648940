//! The plan checked against an independent computation over prost-reflect's
//! view of the same descriptor set.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};

use super::*;

fn pool() -> DescriptorPool {
    DescriptorPool::decode(EMBEDDED_DESCRIPTOR_SET).unwrap()
}

/// For each message: the field numbers that lead to a payload, found by a
/// graph search from every message (not a fixpoint like the plan).
fn reference(pool: &DescriptorPool) -> BTreeMap<String, BTreeSet<u32>> {
    let leads = |f: &prost_reflect::FieldDescriptor| -> Option<MessageDescriptor> {
        let parent = f.parent_message().full_name().to_string();
        if NEVER_ENCODED.contains(&(parent.as_str(), f.number())) {
            return None;
        }
        match f.kind() {
            Kind::Message(m) => Some(m),
            _ => None,
        }
    };
    let is_leaf = |m: &MessageDescriptor| m.full_name() == PAYLOAD || m.full_name() == ANY;
    let mut memo: HashMap<String, bool> = HashMap::new();
    let mut reaches = |start: &MessageDescriptor| -> bool {
        if let Some(&r) = memo.get(start.full_name()) {
            return r;
        }
        let mut seen = BTreeSet::new();
        let mut stack = vec![start.clone()];
        let mut found = false;
        while let Some(m) = stack.pop() {
            if !seen.insert(m.full_name().to_string()) {
                continue;
            }
            for f in m.fields() {
                if let Some(t) = leads(&f) {
                    if is_leaf(&t) {
                        found = true;
                    } else {
                        stack.push(t);
                    }
                }
            }
        }
        memo.insert(start.full_name().to_string(), found);
        found
    };
    let mut out = BTreeMap::new();
    for m in pool.all_messages() {
        let mut fields = BTreeSet::new();
        for f in m.fields() {
            if leads(&f).is_some_and(|t| is_leaf(&t) || reaches(&t)) {
                fields.insert(f.number());
            }
        }
        out.insert(m.full_name().to_string(), fields);
    }
    out
}

#[test]
fn plan_covers_exactly_the_paths_that_reach_a_payload() {
    let schema = Schema::embedded().unwrap();
    let pool = pool();
    let want = reference(&pool);
    let got: BTreeMap<String, BTreeSet<u32>> = schema
        .messages()
        .map(|(_, m)| {
            (
                m.name().to_string(),
                m.fields().iter().map(|f| f.number).collect(),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len(), "same message types");
    for (name, fields) in &want {
        assert_eq!(got.get(name), Some(fields), "plan of {name}");
    }
    // The action agrees with the field's type.
    for (_, m) in schema.messages() {
        let desc = pool.get_message_by_name(m.name()).unwrap();
        for f in m.fields() {
            let Kind::Message(t) = desc.get_field(f.number).unwrap().kind() else {
                panic!("{}.{} is not a message field", m.name(), f.name);
            };
            let expect = match t.full_name() {
                PAYLOAD => Action::Payload,
                ANY => Action::Any,
                other => Action::Message(schema.message_id(other).unwrap()),
            };
            assert_eq!(f.action, expect, "{}.{}", m.name(), f.name);
        }
    }
    let reaching = want.values().filter(|f| !f.is_empty()).count();
    eprintln!(
        "plan: {} message types, {reaching} can lead to a payload",
        want.len()
    );
}

fn field(schema: &Schema, msg: &str, name: &str) -> Option<Action> {
    let plan = schema.message(schema.message_id(msg).unwrap());
    plan.fields()
        .iter()
        .find(|f| &*f.name == name)
        .map(|f| f.action)
}

#[test]
fn known_paths_are_planned() {
    let s = Schema::embedded().unwrap();
    let start = "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest";
    assert_eq!(
        field(&s, start, "input"),
        Some(Action::Message(
            s.message_id("temporal.api.common.v1.Payloads").unwrap()
        ))
    );
    assert!(field(&s, start, "memo").is_some());
    assert!(field(&s, start, "header").is_some());
    // Search attributes stay plaintext: the field is pruned at every level.
    assert_eq!(field(&s, start, "search_attributes"), None);
    assert!(
        s.message(
            s.message_id("temporal.api.common.v1.SearchAttributes")
                .unwrap()
        )
        .is_empty()
    );
    // Update requests travel as Any in protocol messages.
    assert_eq!(
        field(&s, "temporal.api.protocol.v1.Message", "body"),
        Some(Action::Any)
    );
    // Recursion: a failure's cause is a failure.
    let failure = s.message_id(FAILURE).unwrap();
    assert_eq!(field(&s, FAILURE, "cause"), Some(Action::Message(failure)));
    assert_eq!(
        field(&s, FAILURE, "encoded_attributes"),
        Some(Action::Payload)
    );
    assert_eq!(s.message(failure).kind(), MessageKind::Failure);
    // Status details in grpc-status-details-bin.
    assert_eq!(field(&s, RPC_STATUS, "details"), Some(Action::Any));
    // Maps of payloads go through their entry type.
    let memo_entry = s
        .message_id("temporal.api.common.v1.Memo.FieldsEntry")
        .unwrap();
    assert_eq!(
        field(&s, "temporal.api.common.v1.Memo", "fields"),
        Some(Action::Message(memo_entry))
    );
    assert_eq!(
        field(&s, "temporal.api.common.v1.Memo.FieldsEntry", "value"),
        Some(Action::Payload)
    );
    // Messages with nothing to encode have empty plans.
    assert!(
        s.message(
            s.message_id("temporal.api.common.v1.WorkflowExecution")
                .unwrap()
        )
        .is_empty()
    );
}

#[test]
fn workflow_service_methods_are_all_unary_and_resolved() {
    let s = Schema::embedded().unwrap();
    let wf: Vec<&Method> = s
        .methods()
        .filter(|m| &*m.service == WORKFLOW_SERVICE)
        .collect();
    assert!(wf.len() >= 100, "WorkflowService has {} methods", wf.len());
    assert!(wf.iter().all(|m| m.is_unary()));
    let with_payloads = wf
        .iter()
        .filter(|m| !s.message(m.input).is_empty() || !s.message(m.output).is_empty())
        .count();
    eprintln!(
        "WorkflowService: {} methods, {with_payloads} carry payloads in request or response",
        wf.len()
    );
    let m = s
        .method("/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution")
        .unwrap();
    assert_eq!(
        s.message(m.input).name(),
        "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest"
    );
}

#[test]
fn type_urls_resolve() {
    let s = Schema::embedded().unwrap();
    let id = s
        .resolve_type_url(b"type.googleapis.com/temporal.api.update.v1.Request")
        .unwrap();
    assert_eq!(s.message(id).name(), "temporal.api.update.v1.Request");
    assert!(
        s.resolve_type_url(b"type.googleapis.com/no.such.Type")
            .is_none()
    );
    assert!(s.resolve_type_url(b"\xff\xfe").is_none());
}

#[test]
fn bad_descriptor_sets_are_clear_errors() {
    let err = Schema::from_descriptor_set(b"\x0a\x05garbage").unwrap_err();
    assert!(err.to_string().contains("FileDescriptorSet"), "{err}");
    let empty = Schema::from_descriptor_set(b"").unwrap_err();
    assert!(empty.to_string().contains(PAYLOAD), "{empty}");
}
