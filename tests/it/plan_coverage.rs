//! The plan covers exactly the fields that can lead to a payload, as computed
//! independently from prost-reflect's view of the same descriptor set.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use prost_reflect::Kind;
use sealgate::schema::{ANY, Action, PAYLOAD, Schema, WORKFLOW_SERVICE};

const RAW_HISTORY_OWNER: &str =
    "temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse";

#[test]
fn plan_covers_exactly_the_paths_that_reach_a_payload() {
    let schema = Schema::embedded().unwrap();
    let pool = support::pool();
    let mut want = support::Reach::new().all_paths(&pool);
    // Beyond the types: raw history DataBlobs hold serialized Histories,
    // planned through a DataBlob(History) plan of their own.
    want.get_mut(RAW_HISTORY_OWNER).unwrap().insert(2);
    let got: BTreeMap<String, BTreeSet<u32>> = schema
        .messages()
        .filter(|(_, m)| !m.name().contains('('))
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
    // Each planned field's action agrees with its type.
    for (_, m) in schema.messages().filter(|(_, m)| !m.name().contains('(')) {
        let desc = pool.get_message_by_name(m.name()).unwrap();
        for f in m.fields() {
            if m.name() == RAW_HISTORY_OWNER && f.number == 2 {
                continue;
            }
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
    let wf: Vec<_> = schema
        .methods()
        .filter(|m| &*m.service == WORKFLOW_SERVICE)
        .collect();
    let carrying = wf
        .iter()
        .filter(|m| !schema.message(m.input).is_empty() || !schema.message(m.output).is_empty())
        .count();
    eprintln!(
        "plan: {} message types, {reaching} can lead to a payload; \
         WorkflowService: {} methods, {carrying} carry payloads",
        want.len(),
        wf.len()
    );
}
