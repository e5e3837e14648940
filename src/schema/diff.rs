//! `sealgate schema diff FILE`: what a descriptor set adds, removes or
//! retypes against another, in the terms that matter to sealgate — the RPCs
//! of the services it serves and the payload paths (fields that can lead to
//! a Payload) reachable from their requests and responses.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::{Action, Descriptors, PAYLOAD, Schema, SchemaError, SchemaInfo};

/// The differences, each list sorted.
#[derive(Debug, Serialize)]
pub struct Diff {
    pub embedded: Side,
    pub file: Side,
    /// RPCs the file defines and the base does not.
    pub added_rpcs: Vec<String>,
    pub removed_rpcs: Vec<String>,
    /// Payload paths reachable from a request in the file but not in the
    /// base: payloads sealgate would refuse (or, forwarded, miss).
    pub request_gaps: Vec<String>,
    /// The same for responses: payloads that would reach workers encoded.
    pub response_gaps: Vec<String>,
    /// Payload paths of the base that the file lacks.
    pub removed_paths: Vec<String>,
    /// Payload paths on both sides whose field type differs (`path: a -> b`).
    pub retyped: Vec<String>,
    /// Length-delimited fields (messages, strings, bytes) the file adds to
    /// messages a request can reach, that hold no payload: under the strict
    /// default (`unknown_request_fields = "refuse"`) a client that sends one
    /// is refused until sealgate loads this API (`path (number)`).
    pub refused_fields: Vec<String>,
}

/// One descriptor set's origin.
#[derive(Debug, Serialize)]
pub struct Side {
    pub source: String,
    pub api: String,
    pub digest: String,
}

impl From<&SchemaInfo> for Side {
    fn from(i: &SchemaInfo) -> Side {
        Side {
            source: i.source.clone(),
            api: i.api.clone(),
            digest: i.digest.clone(),
        }
    }
}

impl Diff {
    /// True when the file has something on the request side that the base
    /// lacks: an RPC of a service the base serves, or a payload path.
    pub fn has_request_gaps(&self) -> bool {
        !self.request_gaps.is_empty() || !self.added_rpcs.is_empty()
    }

    /// The human-readable form.
    pub fn render(&self) -> String {
        let mut out = format!(
            "base: {} {} (sha256 {})\nfile: {} (sha256 {})\n",
            self.embedded.source,
            self.embedded.api,
            self.embedded.digest,
            self.file.source,
            self.file.digest
        );
        let sections: [(&str, &[String]); 7] = [
            ("+ rpc", &self.added_rpcs),
            ("- rpc", &self.removed_rpcs),
            ("+ request payload path", &self.request_gaps),
            ("+ response payload path", &self.response_gaps),
            ("- payload path", &self.removed_paths),
            ("~ retyped payload path", &self.retyped),
            ("! request field refused by default", &self.refused_fields),
        ];
        let mut any = false;
        for (label, items) in sections {
            for item in items {
                out.push_str(&format!("{label} {item}\n"));
                any = true;
            }
        }
        if !any {
            out.push_str("no differences in RPCs or payload paths\n");
        }
        out
    }
}

/// The RPCs and payload paths of one schema, limited to `services`.
struct Surface {
    rpcs: BTreeSet<String>,
    /// `package.Message.field` → the field's type, per side.
    request: BTreeMap<String, String>,
    response: BTreeMap<String, String>,
}

impl Surface {
    fn of(schema: &Schema, services: &BTreeSet<String>) -> Surface {
        let methods: Vec<_> = schema
            .methods()
            .filter(|m| services.contains(&*m.service))
            .collect();
        let rpcs = methods
            .iter()
            .map(|m| format!("{}/{}", m.service, m.name))
            .collect();
        let walk = |roots: Vec<super::MessageId>| {
            let mut paths = BTreeMap::new();
            let mut seen = BTreeSet::new();
            let mut todo = roots;
            while let Some(id) = todo.pop() {
                if !seen.insert(id.0) {
                    continue;
                }
                let plan = schema.message(id);
                for f in plan.fields() {
                    let ty = match f.action {
                        Action::Payload => PAYLOAD.to_string(),
                        Action::Any => super::ANY.to_string(),
                        Action::Message(child) => {
                            todo.push(child);
                            schema.message(child).name().to_string()
                        }
                    };
                    paths.insert(format!("{}.{}", plan.name(), f.name), ty);
                }
            }
            paths
        };
        Surface {
            rpcs,
            request: walk(methods.iter().map(|m| m.input).collect()),
            response: walk(methods.iter().map(|m| m.output).collect()),
        }
    }
}

/// Compares `file` against `base` over the services `base` defines (those
/// sealgate could serve; others are refused whatever a file says).
pub fn diff(base: &Descriptors, file: &Descriptors) -> Result<Diff, SchemaError> {
    let (a, b) = (base.payloads(&[])?, file.payloads(&[])?);
    let services: BTreeSet<String> = a.methods().map(|m| m.service.to_string()).collect();
    let (a, b) = (Surface::of(&a, &services), Surface::of(&b, &services));
    let minus = |x: &BTreeSet<String>, y: &BTreeSet<String>| -> Vec<String> {
        x.difference(y).cloned().collect()
    };
    let gaps = |x: &BTreeMap<String, String>, y: &BTreeMap<String, String>| -> Vec<String> {
        x.keys().filter(|k| !y.contains_key(*k)).cloned().collect()
    };
    let all = |s: &Surface| -> BTreeMap<String, String> {
        let mut m = s.request.clone();
        m.extend(s.response.clone());
        m
    };
    let (all_a, all_b) = (all(&a), all(&b));
    let retyped = all_a
        .iter()
        .filter_map(|(k, ta)| {
            let tb = all_b.get(k)?;
            (ta != tb).then(|| format!("{k}: {ta} -> {tb}"))
        })
        .collect();
    let refused_fields = new_request_fields(base.set(), file.set(), &services)
        .into_iter()
        .filter(|f| {
            !b.request
                .contains_key(f.split(' ').next().unwrap_or_default())
        })
        .collect();
    Ok(Diff {
        embedded: base.info().as_ref().into(),
        file: file.info().as_ref().into(),
        added_rpcs: minus(&b.rpcs, &a.rpcs),
        removed_rpcs: minus(&a.rpcs, &b.rpcs),
        request_gaps: gaps(&b.request, &a.request),
        response_gaps: gaps(&b.response, &a.response),
        removed_paths: gaps(&all_a, &all_b),
        retyped,
        refused_fields,
    })
}

/// Length-delimited fields of messages reachable from the requests of
/// `services` in `new` that `old` defines the message of but not the
/// field: `package.Message.field (number)`.
fn new_request_fields(
    old: &prost_types::FileDescriptorSet,
    new: &prost_types::FileDescriptorSet,
    services: &BTreeSet<String>,
) -> Vec<String> {
    use prost_types::{DescriptorProto, field_descriptor_proto::Type};
    fn index(set: &prost_types::FileDescriptorSet) -> BTreeMap<String, &DescriptorProto> {
        fn add<'a>(
            scope: &str,
            m: &'a DescriptorProto,
            out: &mut BTreeMap<String, &'a DescriptorProto>,
        ) {
            let name = format!("{scope}.{}", m.name());
            for n in &m.nested_type {
                add(&name, n, out);
            }
            out.insert(name, m);
        }
        let mut out = BTreeMap::new();
        for f in &set.file {
            for m in &f.message_type {
                add(f.package(), m, &mut out);
            }
        }
        out
    }
    let (old_idx, new_idx) = (index(old), index(new));
    let mut todo: Vec<String> = new
        .file
        .iter()
        .flat_map(|f| {
            f.service.iter().flat_map(move |s| {
                let svc = format!("{}.{}", f.package(), s.name());
                s.method
                    .iter()
                    .filter(move |_| services.contains(&svc))
                    .map(|m| m.input_type().trim_start_matches('.').to_string())
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(m) = new_idx.get(&name) else {
            continue;
        };
        let before = old_idx.get(&name);
        for f in &m.field {
            let len = matches!(
                f.r#type(),
                Type::Message | Type::String | Type::Bytes | Type::Group
            );
            if f.r#type() == Type::Message {
                todo.push(f.type_name().trim_start_matches('.').to_string());
            }
            if len
                && let Some(b) = before
                && !b.field.iter().any(|g| g.number() == f.number())
            {
                out.insert(format!("{name}.{} ({})", f.name(), f.number()));
            }
        }
    }
    out.into_iter().collect()
}
