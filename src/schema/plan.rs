//! Descriptor set → per-message plan, by fixpoint over "reaches a Payload".

use std::collections::HashMap;

use prost_types::{DescriptorProto, FileDescriptorSet, field_descriptor_proto::Type};

use super::{ANY, FAILURE, MessageId, Method, NEXUS_FAILURE, PAYLOAD, Schema, SchemaError};

/// What the rewriter does with one field of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The field holds a `Payload` (singular or repeated): run the codec.
    Payload,
    /// The field holds a message that can lead to payloads: descend.
    Message(MessageId),
    /// The field holds a `google.protobuf.Any`: descend into its value when
    /// the type URL names a message that can lead to payloads.
    Any,
}

/// What a field of a message holds, for the audit of outgoing requests
/// (every field, not only those on a payload path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// A scalar, string, bytes or enum: cannot hold a payload.
    Scalar,
    /// A message of this type.
    Message(MessageId),
    /// A `Payload`.
    Payload,
    /// A `google.protobuf.Any`.
    Any,
    /// A payload path that stays plaintext by design (search attributes,
    /// payloads the server reads): not audited.
    Exempt,
}

/// Messages that get special treatment beyond their fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Plain,
    /// `temporal.api.failure.v1.Failure` (optional message/stack trace encoding).
    Failure,
    /// A raw-history `DataBlob`: its `data` is a History only when its
    /// `encoding_type` is proto3; other encodings are left alone.
    HistoryBlob,
    /// `temporal.api.nexus.v1.Failure`: a legacy Nexus failure, whose
    /// `details` hold a Temporal Failure as protojson (payloads inside).
    NexusFailure,
    /// A failed query's answer (`RespondQueryTaskCompletedRequest`,
    /// `WorkflowQueryResult`): a plain `error_message` string beside an
    /// optional `failure`. With failure encoding on, the text moves into
    /// the failure's encoded attributes and the string says so.
    QueryResult {
        error_message: u32,
        failure: u32,
    },
}

/// One field of a message that can lead to a payload.
#[derive(Debug, Clone)]
pub struct PlannedField {
    pub number: u32,
    pub action: Action,
    /// The field's name, for error messages.
    pub name: Box<str>,
}

/// The fields of one message type that can lead to a payload.
#[derive(Debug)]
pub struct MessagePlan {
    name: Box<str>,
    /// Sorted by field number; empty when nothing inside can hold a payload.
    fields: Box<[PlannedField]>,
    /// `slots[n]` is 1 + the index in `fields` of field `n`, 0 when `n` is
    /// not planned; up to the largest planned number, when that is small
    /// (a number past it is not planned). `HistoryEvent` plans some fifty
    /// attribute fields and `user_metadata` (301), and the rewriter looks
    /// up every field of every event.
    slots: Box<[u8]>,
    kind: MessageKind,
}

impl MessagePlan {
    /// Full name, e.g. `temporal.api.common.v1.Payloads`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The planned fields, sorted by number.
    pub fn fields(&self) -> &[PlannedField] {
        &self.fields
    }

    /// True when no field of this message can lead to a payload.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// What to do with field `number`, if anything.
    #[inline]
    pub fn field(&self, number: u32) -> Option<&PlannedField> {
        match self.slots.get(number as usize) {
            Some(0) => None,
            Some(&slot) => self.fields.get(usize::from(slot) - 1),
            None if !self.slots.is_empty() => None,
            None => self
                .fields
                .binary_search_by_key(&number, |f| f.number)
                .ok()
                .and_then(|i| self.fields.get(i)),
        }
    }
}

/// The dense index of `fields` (sorted by number); empty when the numbers
/// are too large for one byte per field number (more than 1 KiB), or there
/// are too many fields for a byte to index.
fn slots(fields: &[PlannedField]) -> Box<[u8]> {
    const MAX_DENSE: u32 = 1023;
    let Some(last) = fields.last() else {
        return Box::default();
    };
    if last.number > MAX_DENSE || fields.len() >= usize::from(u8::MAX) {
        return Box::default();
    }
    let mut slots = vec![0u8; last.number as usize + 1];
    for (i, f) in fields.iter().enumerate() {
        slots[f.number as usize] = (i + 1) as u8;
    }
    slots.into_boxed_slice()
}

/// A message-typed field as found in the descriptor set.
struct RawField {
    number: u32,
    target: usize,
    name: String,
}

struct RawMessage {
    name: String,
    fields: Vec<RawField>,
}

/// What a plan leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaves {
    /// `temporal.api.common.v1.Payload` messages (the codec's plan).
    Payloads,
    /// String fields holding a namespace name (`namespace`,
    /// `*_namespace`), for namespace translation.
    Namespaces,
}

/// The response that can carry raw history, its field, and what the
/// DataBlobs in it hold.
const RAW_HISTORY_OWNER: &str =
    "temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse";
const RAW_HISTORY_FIELD: u32 = 2;
const HISTORY: &str = "temporal.api.history.v1.History";
/// Failed query answers: (message, `error_message` number, `failure` number).
const QUERY_RESULTS: [(&str, u32, u32); 2] = [
    (
        "temporal.api.workflowservice.v1.RespondQueryTaskCompletedRequest",
        4,
        7,
    ),
    ("temporal.api.query.v1.WorkflowQueryResult", 3, 4),
];

/// Sentinel target of a string leaf field.
const STRING_LEAF: usize = usize::MAX;

/// Fields that name a namespace without saying so in their own name.
const NAMESPACE_NAME_FIELDS: &[(&str, &str)] =
    &[("temporal.api.namespace.v1.NamespaceInfo", "name")];

fn is_namespace_field(message: &str, f: &prost_types::FieldDescriptorProto) -> bool {
    f.r#type() == Type::String
        && (f.name() == "namespace"
            || f.name().ends_with("_namespace")
            || NAMESPACE_NAME_FIELDS.contains(&(message, f.name())))
}

/// Builds the plan; `skip` names payload paths left out of the plan (but
/// not of the audit's field kinds): tests use it to break the plan on
/// purpose and prove the audit notices.
///
/// `exempt` names the payload paths that stay plaintext (search attributes,
/// payloads the server reads): left out of the plan and not audited.
pub(super) fn build(
    (set, bytes, info): (
        &FileDescriptorSet,
        std::sync::Arc<[u8]>,
        std::sync::Arc<super::SchemaInfo>,
    ),
    leaves: Leaves,
    skip: &[(&str, u32)],
    exempt: &[(&str, u32)],
) -> Result<Schema, SchemaError> {
    // 1. Name every message type, nested ones included.
    let mut names: Vec<(String, &DescriptorProto)> = Vec::new();
    for file in &set.file {
        let package = file.package();
        for msg in &file.message_type {
            collect(package, msg, &mut names);
        }
    }
    let by_name: HashMap<Box<str>, MessageId> = names
        .iter()
        .enumerate()
        .map(|(i, (n, _))| (n.clone().into_boxed_str(), MessageId(i as u32)))
        .collect();
    let lookup = |type_name: &str| by_name.get(type_name.trim_start_matches('.')).copied();
    let payload = lookup(PAYLOAD).ok_or(SchemaError::Missing(PAYLOAD))?;
    let any = lookup(ANY);

    // 2. Keep only message-typed fields, resolved to indices; for the
    //    codec's plan, also every field's kind, for the audit.
    let mut raw = Vec::with_capacity(names.len());
    let mut kinds: Vec<Box<[(u32, FieldKind)]>> = Vec::new();
    for (name, desc) in &names {
        if leaves == Leaves::Payloads {
            let mut all: Vec<(u32, FieldKind)> = desc
                .field
                .iter()
                .map(|f| {
                    let number = f.number() as u32;
                    let kind = if f.r#type() != Type::Message {
                        FieldKind::Scalar
                    } else if exempt.contains(&(name.as_str(), number)) {
                        FieldKind::Exempt
                    } else {
                        match lookup(f.type_name()) {
                            Some(t) if t == payload => FieldKind::Payload,
                            Some(t) if Some(t) == any => FieldKind::Any,
                            Some(t) => FieldKind::Message(t),
                            None => FieldKind::Scalar,
                        }
                    };
                    (number, kind)
                })
                .collect();
            all.sort_by_key(|(n, _)| *n);
            kinds.push(all.into_boxed_slice());
        }
        let mut fields = Vec::new();
        for f in &desc.field {
            if leaves == Leaves::Namespaces && is_namespace_field(name, f) {
                fields.push(RawField {
                    number: f.number() as u32,
                    target: STRING_LEAF,
                    name: f.name().to_string(),
                });
                continue;
            }
            if f.r#type() != Type::Message {
                continue;
            }
            let target = lookup(f.type_name()).ok_or_else(|| SchemaError::UnknownType {
                message: name.clone(),
                field: f.name().to_string(),
                type_name: f.type_name().to_string(),
            })?;
            if leaves == Leaves::Payloads
                && (exempt.contains(&(name.as_str(), f.number() as u32))
                    || skip.contains(&(name.as_str(), f.number() as u32)))
            {
                continue;
            }
            fields.push(RawField {
                number: f.number() as u32,
                target: target.0 as usize,
                name: f.name().to_string(),
            });
        }
        raw.push(RawMessage {
            name: name.clone(),
            fields,
        });
    }

    // 3. Fixpoint: a message reaches a payload when one of its fields is a
    //    Payload, an Any, or a message that reaches one. Recursive types
    //    (Failure.cause) converge because the set only grows.
    // A Payload is a leaf of the codec's plan only; an Any may hold
    // anything, so it is followed in both.
    let leaf_target = match leaves {
        Leaves::Payloads => payload.0 as usize,
        Leaves::Namespaces => STRING_LEAF,
    };
    let is_leaf = |t: usize| t == leaf_target || Some(t) == any.map(|a| a.0 as usize);
    let mut reaches = vec![false; raw.len()];
    // A Nexus failure's details may hold payloads (as protojson).
    let nexus_failure = (leaves == Leaves::Payloads)
        .then(|| lookup(NEXUS_FAILURE))
        .flatten();
    if let Some(n) = nexus_failure {
        reaches[n.0 as usize] = true;
    }
    loop {
        let mut changed = false;
        for (i, m) in raw.iter().enumerate() {
            if !reaches[i]
                && m.fields
                    .iter()
                    .any(|f| is_leaf(f.target) || reaches[f.target])
            {
                reaches[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // 4. The plan keeps only fields that lead somewhere.
    let mut messages: Vec<MessagePlan> = raw
        .into_iter()
        .map(|m| {
            let mut fields: Vec<PlannedField> = m
                .fields
                .iter()
                .filter_map(|f| {
                    let action = if f.target == leaf_target {
                        Action::Payload
                    } else if Some(f.target) == any.map(|a| a.0 as usize) {
                        Action::Any
                    } else if f.target != STRING_LEAF && reaches[f.target] {
                        Action::Message(MessageId(f.target as u32))
                    } else {
                        return None;
                    };
                    Some(PlannedField {
                        number: f.number,
                        action,
                        name: f.name.as_str().into(),
                    })
                })
                .collect();
            fields.sort_by_key(|f| f.number);
            let kind = if m.name == FAILURE && leaves == Leaves::Payloads {
                MessageKind::Failure
            } else if m.name == NEXUS_FAILURE && leaves == Leaves::Payloads {
                MessageKind::NexusFailure
            } else if let Some((_, error_message, failure)) = QUERY_RESULTS
                .iter()
                .find(|(n, _, _)| *n == m.name)
                .filter(|_| leaves == Leaves::Payloads)
            {
                MessageKind::QueryResult {
                    error_message: *error_message,
                    failure: *failure,
                }
            } else {
                MessageKind::Plain
            };
            MessagePlan {
                name: m.name.into_boxed_str(),
                slots: slots(&fields),
                fields: fields.into_boxed_slice(),
                kind,
            }
        })
        .collect();

    // 4b. Raw history: GetWorkflowExecutionHistoryResponse.raw_history holds
    //     DataBlobs whose `data` is a serialized History (proto3 encoding),
    //     which a frontend sends when raw history is on. A plan of its own
    //     reads that `data` as a History; DataBlobs elsewhere stay opaque.
    if let (Some(response), Some(history)) = (lookup(RAW_HISTORY_OWNER), lookup(HISTORY))
        && !messages[history.0 as usize].fields.is_empty()
    {
        let blob = MessageId(messages.len() as u32);
        let data = [PlannedField {
            number: 2,
            action: Action::Message(history),
            name: "data".into(),
        }];
        messages.push(MessagePlan {
            name: "temporal.api.common.v1.DataBlob(History)".into(),
            slots: slots(&data),
            fields: Box::new(data),
            kind: MessageKind::HistoryBlob,
        });
        let owner = &mut messages[response.0 as usize];
        let mut fields = owner.fields.to_vec();
        fields.retain(|f| f.number != RAW_HISTORY_FIELD);
        fields.push(PlannedField {
            number: RAW_HISTORY_FIELD,
            action: Action::Message(blob),
            name: "raw_history".into(),
        });
        fields.sort_by_key(|f| f.number);
        owner.slots = slots(&fields);
        owner.fields = fields.into_boxed_slice();
        if leaves == Leaves::Payloads {
            kinds.push(Box::new([]));
        }
    }

    // 5. Methods of every service, by gRPC path.
    let mut methods = HashMap::new();
    for file in &set.file {
        for svc in &file.service {
            let service = if file.package().is_empty() {
                svc.name().to_string()
            } else {
                format!("{}.{}", file.package(), svc.name())
            };
            for m in &svc.method {
                let path = format!("/{service}/{}", m.name());
                let resolve = |t: &str| {
                    lookup(t).ok_or_else(|| SchemaError::UnknownMethodType {
                        method: path.clone(),
                        type_name: t.to_string(),
                    })
                };
                let input = resolve(m.input_type())?;
                let namespace_field = names[input.0 as usize]
                    .1
                    .field
                    .iter()
                    .find(|f| f.name() == "namespace" && f.r#type() == Type::String)
                    .map(|f| f.number() as u32);
                // A namespace named by its id (DeleteNamespace's namespace_id,
                // DescribeNamespace's id): authorization cannot map an id to
                // a name, so such calls are cluster-level.
                let namespace_id_field = names[input.0 as usize]
                    .1
                    .field
                    .iter()
                    .find(|f| {
                        f.r#type() == Type::String
                            && (f.name() == "namespace_id"
                                || (f.name() == "id"
                                    && names[input.0 as usize].0
                                        == "temporal.api.workflowservice.v1.DescribeNamespaceRequest"))
                    })
                    .map(|f| f.number() as u32);
                let method = Method {
                    input,
                    namespace_field,
                    namespace_id_field,
                    output: resolve(m.output_type())?,
                    path: path.clone().into_boxed_str(),
                    service: service.as_str().into(),
                    name: m.name().into(),
                    client_streaming: m.client_streaming(),
                    server_streaming: m.server_streaming(),
                };
                methods.insert(path.into_boxed_str(), method);
            }
        }
    }

    let payload_list = by_name.get(super::PAYLOADS).copied();
    Ok(Schema {
        messages,
        payload_list,
        by_name,
        methods,
        payload_leaf: (leaves == Leaves::Payloads).then_some(payload),
        kinds,
        any,
        info,
        bytes,
        pool: std::sync::OnceLock::new(),
    })
}

fn collect<'a>(
    scope: &str,
    msg: &'a DescriptorProto,
    out: &mut Vec<(String, &'a DescriptorProto)>,
) {
    let name = if scope.is_empty() {
        msg.name().to_string()
    } else {
        format!("{scope}.{}", msg.name())
    };
    for nested in &msg.nested_type {
        collect(&name, nested, out);
    }
    out.push((name, msg));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(numbers: &[u32]) -> MessagePlan {
        let fields: Vec<_> = numbers
            .iter()
            .map(|&number| PlannedField {
                number,
                action: Action::Payload,
                name: format!("f{number}").into(),
            })
            .collect();
        MessagePlan {
            name: "test.Message".into(),
            slots: slots(&fields),
            fields: fields.into_boxed_slice(),
            kind: MessageKind::Plain,
        }
    }

    #[test]
    fn dense_and_sparse_plans_find_the_same_fields() {
        // 301 (a HistoryEvent's user_metadata) is indexed densely; 5000 is
        // past the dense bound and found by search.
        for numbers in [&[1, 7, 301][..], &[2, 5000], &[]] {
            let p = plan(numbers);
            assert_eq!(p.slots.is_empty(), numbers.last().is_none_or(|&n| n > 1023));
            for n in 0..6000 {
                assert_eq!(
                    p.field(n).map(|f| f.number),
                    numbers.contains(&n).then_some(n),
                    "{numbers:?} field {n}"
                );
            }
        }
    }
}
