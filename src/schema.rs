//! The schema plan: which fields of which message types can lead to a
//! `temporal.api.common.v1.Payload`.
//!
//! Built once at start-up from the Temporal API `FileDescriptorSet` (embedded
//! from the `temporalio-protos` crate, or a newer one given at run time). The
//! rewriter consults the plan to know where to descend; everything the plan
//! does not name is copied through byte for byte.

pub mod diff;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use thiserror::Error;

pub use plan::{Action, FieldKind, Leaves, MessageKind, MessagePlan, PlannedField};

/// The Temporal API descriptor set compiled into this binary.
pub static EMBEDDED_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/temporal.fds"));

/// The API the embedded descriptor set comes from (`temporalio-protos
/// <version>`), named in the messages about unknown methods.
pub const EMBEDDED_API: &str = env!("SEALGATE_TEMPORAL_API");

/// Where the schema in use comes from, for the start-up log,
/// `sealgate_schema_info` and the messages about unknown methods and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// `embedded`, or the descriptor set file's path.
    pub source: String,
    /// The API version: `temporalio-protos <version>` for the embedded set;
    /// for a file, `descriptor set` (a file names no version).
    pub api: String,
    /// The first 16 hex digits of the descriptor set's SHA-256.
    pub digest: String,
}

impl SchemaInfo {
    /// How messages name the schema: the version, or the file and digest.
    pub fn label(&self) -> String {
        if self.source == "embedded" {
            self.api.clone()
        } else {
            format!("{} (sha256 {})", self.source, self.digest)
        }
    }
}

/// A Temporal API `FileDescriptorSet` and where it came from: the embedded
/// one, or `[schema] descriptor_set` (a newer API loaded at run time). The
/// payload plan, the namespace plan and server reflection all come from it.
#[derive(Debug, Clone)]
pub struct Descriptors {
    bytes: std::sync::Arc<[u8]>,
    set: std::sync::Arc<prost_types::FileDescriptorSet>,
    info: std::sync::Arc<SchemaInfo>,
}

/// Files sealgate needs beside the Temporal API, which a descriptor set
/// built from temporalio/api alone lacks: `google.rpc.Status` (the errors
/// whose details carry failures to decode) and the health service (served
/// by default). Taken from the embedded set when a loaded one lacks them.
const SUPPORT_TYPES: [&str; 3] = [
    "google.rpc.Status",
    "google.protobuf.Any",
    "grpc.health.v1.Health",
];

/// The file of `set` that defines message or service `full_name`.
fn defining_file<'a>(
    set: &'a prost_types::FileDescriptorSet,
    full_name: &str,
) -> Option<&'a prost_types::FileDescriptorProto> {
    set.file.iter().find(|f| {
        full_name
            .strip_prefix(f.package())
            .and_then(|n| n.strip_prefix('.'))
            .is_some_and(|n| {
                f.message_type.iter().any(|m| m.name() == n)
                    || f.service.iter().any(|s| s.name() == n)
            })
    })
}

/// Adds the embedded set's files for the [`SUPPORT_TYPES`] `set` does not
/// define (with their imports); true when it added any.
fn add_support_files(set: &mut prost_types::FileDescriptorSet) -> Result<bool, SchemaError> {
    let embedded: prost_types::FileDescriptorSet = prost::Message::decode(EMBEDDED_DESCRIPTOR_SET)?;
    let mut added = false;
    for ty in SUPPORT_TYPES {
        if defining_file(set, ty).is_some() {
            continue;
        }
        let Some(file) = defining_file(&embedded, ty) else {
            continue;
        };
        // Its imports first (google/rpc/status.proto imports any.proto).
        for dep in &file.dependency {
            if !set.file.iter().any(|f| f.name() == dep)
                && let Some(d) = embedded.file.iter().find(|f| f.name() == dep)
            {
                set.file.push(d.clone());
            }
        }
        if !set.file.iter().any(|f| f.name() == file.name()) {
            set.file.push(file.clone());
            added = true;
        }
    }
    Ok(added)
}

/// What a descriptor set must define to be the Temporal API.
const REQUIRED: [&str; 3] = [PAYLOAD, SEARCH_ATTRIBUTES, WORKFLOW_SERVICE];

impl Descriptors {
    /// The descriptor set compiled into this binary.
    pub fn embedded() -> Result<Descriptors, SchemaError> {
        Descriptors::new(
            EMBEDDED_DESCRIPTOR_SET,
            "embedded".into(),
            EMBEDDED_API.into(),
        )
    }

    /// `[schema] descriptor_set`: a binary `FileDescriptorSet` (`buf build
    /// -o FILE`, `protoc --include_imports -o FILE`), validated: it must
    /// define Payload, SearchAttributes and WorkflowService.
    pub fn load(path: &std::path::Path) -> Result<Descriptors, SchemaError> {
        let bytes = std::fs::read(path).map_err(|e| SchemaError::Read {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        Descriptors::new(&bytes, path.display().to_string(), "descriptor set".into())
    }

    /// The embedded set, or the file when one is given.
    pub fn from_config(path: Option<&std::path::Path>) -> Result<Descriptors, SchemaError> {
        match path {
            Some(p) => Descriptors::load(p),
            None => Descriptors::embedded(),
        }
    }

    fn new(bytes: &[u8], source: String, api: String) -> Result<Descriptors, SchemaError> {
        let file = bytes;
        let mut set: prost_types::FileDescriptorSet = prost::Message::decode(bytes)?;
        let mut bytes = std::borrow::Cow::Borrowed(bytes);
        if source != "embedded" && add_support_files(&mut set)? {
            bytes = std::borrow::Cow::Owned(prost::Message::encode_to_vec(&set));
        }
        if let Some(missing) = REQUIRED
            .into_iter()
            .find(|n| defining_file(&set, n).is_none())
        {
            return Err(SchemaError::Missing(missing));
        }
        // Of the file as given, so an operator can match it with sha256sum.
        let digest = ring::digest::digest(&ring::digest::SHA256, file);
        let digest = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(Descriptors {
            bytes: (&*bytes).into(),
            set: std::sync::Arc::new(set),
            info: std::sync::Arc::new(SchemaInfo {
                source,
                api,
                digest,
            }),
        })
    }

    /// The serialized set (server reflection, `sealgate protoset`).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn set(&self) -> &prost_types::FileDescriptorSet {
        &self.set
    }

    pub fn info(&self) -> &std::sync::Arc<SchemaInfo> {
        &self.info
    }

    /// What a plan is built from: the set, its bytes and where it came from.
    fn parts(
        &self,
    ) -> (
        &prost_types::FileDescriptorSet,
        std::sync::Arc<[u8]>,
        std::sync::Arc<SchemaInfo>,
    ) {
        (&self.set, self.bytes.clone(), self.info.clone())
    }

    /// The payload plan, with `plaintext_paths` (`package.Message.field`,
    /// each a field that holds payloads) left plaintext besides search
    /// attributes.
    pub fn payloads(&self, plaintext_paths: &[String]) -> Result<Schema, SchemaError> {
        let mut exempt: Vec<(String, u32)> = vec![(ALWAYS_PLAINTEXT.0.into(), ALWAYS_PLAINTEXT.1)];
        for path in plaintext_paths {
            exempt.push(plaintext_path(&self.set, path)?);
        }
        let exempt: Vec<(&str, u32)> = exempt.iter().map(|(m, n)| (m.as_str(), *n)).collect();
        plan::build(self.parts(), Leaves::Payloads, &[], &exempt)
    }

    /// The plan of every namespace-name string field (`namespace`,
    /// `*_namespace`), for translation: the rewriter hands each such
    /// field's bytes to its visitor.
    pub fn namespaces(&self) -> Result<Schema, SchemaError> {
        plan::build(self.parts(), Leaves::Namespaces, &[], &[])
    }
}

/// Full name of the payload message every codec works on.
pub const PAYLOAD: &str = "temporal.api.common.v1.Payload";
/// The list of payloads (inputs, results, details).
pub const PAYLOADS: &str = "temporal.api.common.v1.Payloads";
/// Full name of the search attributes message (always plaintext).
pub const SEARCH_ATTRIBUTES: &str = "temporal.api.common.v1.SearchAttributes";
/// Full name of `google.protobuf.Any`, resolved by type URL at run time.
pub const ANY: &str = "google.protobuf.Any";
/// Full name of the failure message (subject to optional failure encoding).
pub const FAILURE: &str = "temporal.api.failure.v1.Failure";
/// Full name of a Nexus failure, which a legacy Nexus caller gets with a
/// whole Temporal Failure as protojson in its `details`.
pub const NEXUS_FAILURE: &str = "temporal.api.nexus.v1.Failure";
/// Full name of `google.rpc.Status`, carried in `grpc-status-details-bin`.
pub const RPC_STATUS: &str = "google.rpc.Status";
/// The gRPC service whose unary calls carry payloads.
pub const WORKFLOW_SERVICE: &str = "temporal.api.workflowservice.v1.WorkflowService";

/// Fields that lead to payloads but must stay plaintext because the server
/// itself reads them, with the default `[schema] plaintext_paths`:
/// - search attributes (always): the server indexes them for visibility
///   queries;
/// - a compute provider's and a compute scaler's `details` (default): the
///   server reads them to start and scale workers for a deployment.
pub const NEVER_ENCODED: &[(&str, u32)] = &[
    ("temporal.api.common.v1.SearchAttributes", 1),
    ("temporal.api.compute.v1.ComputeProvider", 2),
    ("temporal.api.compute.v1.ComputeScaler", 2),
];

/// Plaintext whatever the configuration says: the server indexes search
/// attributes.
const ALWAYS_PLAINTEXT: (&str, u32) = ("temporal.api.common.v1.SearchAttributes", 1);

/// `[schema] plaintext_paths` by default, `package.Message.field`.
pub const DEFAULT_PLAINTEXT_PATHS: [&str; 2] = [
    "temporal.api.compute.v1.ComputeProvider.details",
    "temporal.api.compute.v1.ComputeScaler.details",
];

/// Index of a message type in a [`Schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageId(pub(crate) u32);

/// One RPC of a service in the descriptor set.
#[derive(Debug, Clone)]
pub struct Method {
    /// gRPC path, `/package.Service/Method`.
    pub path: Box<str>,
    /// Fully-qualified service name (shared: it labels every call's
    /// metrics).
    pub service: std::sync::Arc<str>,
    /// Method name (shared, likewise).
    pub name: std::sync::Arc<str>,
    pub input: MessageId,
    pub output: MessageId,
    /// Number of the request's top-level `namespace` string field, if any.
    pub namespace_field: Option<u32>,
    /// Number of a top-level string field naming a namespace by its id
    /// (`namespace_id`, DescribeNamespace's `id`), if any.
    pub namespace_id_field: Option<u32>,
    pub client_streaming: bool,
    pub server_streaming: bool,
}

impl Method {
    /// True for plain request/response calls (every WorkflowService method).
    pub fn is_unary(&self) -> bool {
        !self.client_streaming && !self.server_streaming
    }

    /// True when the request names a namespace by its id.
    pub fn names_namespace_id(&self, request: &[u8]) -> bool {
        self.namespace_id_field.is_some_and(|n| {
            crate::wire::top_level_string(request, n).is_some_and(|s| !s.is_empty())
        })
    }

    /// The namespace a request names in its own `namespace` field (the one
    /// the server stores the data under); `None` when the method has no such
    /// field, it is absent or empty, or the bytes do not parse that far.
    pub fn namespace_of<'a>(&self, request: &'a [u8]) -> Option<&'a str> {
        let number = self.namespace_field?;
        crate::wire::top_level_string(request, number).filter(|s| !s.is_empty())
    }
}

/// The descriptor set could not be turned into a plan.
#[derive(Debug, Error)]
pub enum SchemaError {
    #[error("the descriptor set is not a valid google.protobuf.FileDescriptorSet: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the descriptor set does not define {0}; is it the Temporal API?")]
    Missing(&'static str),
    #[error("[schema] descriptor_set: reading {path}: {error}")]
    Read { path: String, error: String },
    #[error("field {field} of {message} refers to unknown type {type_name}")]
    UnknownType {
        message: String,
        field: String,
        type_name: String,
    },
    #[error("method {method} refers to unknown type {type_name}")]
    UnknownMethodType { method: String, type_name: String },
    #[error(
        "[schema] plaintext_paths: {0:?} is not a field of the Temporal API that holds payloads; write package.Message.field, e.g. \"temporal.api.compute.v1.ComputeProvider.details\""
    )]
    PlaintextPath(String),
}

/// Resolves `package.Message.field` to (message, field number), when the
/// field holds a message (a payload path).
fn plaintext_path(
    set: &prost_types::FileDescriptorSet,
    path: &str,
) -> Result<(String, u32), SchemaError> {
    let bad = || SchemaError::PlaintextPath(path.to_string());
    let (message, field) = path.rsplit_once('.').ok_or_else(bad)?;
    for file in &set.file {
        let package = file.package();
        let Some(local) = message
            .strip_prefix(package)
            .and_then(|m| m.strip_prefix('.'))
        else {
            continue;
        };
        let mut scope: &[prost_types::DescriptorProto] = &file.message_type;
        let mut found = None;
        for part in local.split('.') {
            found = scope.iter().find(|d| d.name() == part);
            match found {
                Some(d) => scope = &d.nested_type,
                None => break,
            }
        }
        if let Some(f) = found.and_then(|d| d.field.iter().find(|f| f.name() == field))
            && f.r#type() == prost_types::field_descriptor_proto::Type::Message
        {
            return Ok((message.to_string(), f.number() as u32));
        }
    }
    Err(bad())
}

/// Message plans plus the services' methods, looked up by name.
#[derive(Debug)]
pub struct Schema {
    messages: Vec<MessagePlan>,
    by_name: HashMap<Box<str>, MessageId>,
    methods: HashMap<Box<str>, Method>,
    /// `Payload` itself, in the codec's plan (an `Any` holding one is a
    /// payload); `None` in the namespace plan.
    payload_leaf: Option<MessageId>,
    /// `temporal.api.common.v1.Payloads`, the list a server's blob size
    /// limit applies to as one.
    payload_list: Option<MessageId>,
    /// Every field of every message, sorted by number (codec's plan only).
    kinds: Vec<Box<[(u32, FieldKind)]>>,
    /// `google.protobuf.Any`, when the set defines it.
    any: Option<MessageId>,
    /// Where the descriptor set came from.
    info: std::sync::Arc<SchemaInfo>,
    /// The serialized set, for [`Schema::pool`].
    bytes: std::sync::Arc<[u8]>,
    /// Reflection over the set, built on first use (legacy Nexus failures
    /// carry a Failure as protojson, which needs it).
    pool: std::sync::OnceLock<Option<prost_reflect::DescriptorPool>>,
}

/// The origin of a plan built straight from bytes (tests and tools), not
/// through [`Descriptors`]: named as the embedded API, with no digest.
fn unnamed() -> std::sync::Arc<SchemaInfo> {
    std::sync::Arc::new(SchemaInfo {
        source: "embedded".into(),
        api: EMBEDDED_API.into(),
        digest: String::new(),
    })
}

impl Schema {
    /// The plan for the descriptor set embedded in the binary.
    pub fn embedded() -> Result<Schema, SchemaError> {
        Schema::from_descriptor_set(EMBEDDED_DESCRIPTOR_SET)
    }

    /// Decodes a serialized `FileDescriptorSet` and computes its plan.
    pub fn from_descriptor_set(bytes: &[u8]) -> Result<Schema, SchemaError> {
        let set: prost_types::FileDescriptorSet = prost::Message::decode(bytes)?;
        plan::build(
            (&set, bytes.into(), unnamed()),
            Leaves::Payloads,
            &[],
            NEVER_ENCODED,
        )
    }

    /// The embedded plan with `paths` left plaintext besides search
    /// attributes (see [`Descriptors::payloads`]).
    pub fn embedded_with_plaintext(paths: &[String]) -> Result<Schema, SchemaError> {
        Descriptors::embedded()?.payloads(paths)
    }

    /// The embedded plan with `skip` left out of it, as a bug would leave
    /// it: for tests that prove the outgoing audit catches what the plan
    /// misses.
    #[doc(hidden)]
    pub fn embedded_without(skip: &[(&str, u32)]) -> Result<Schema, SchemaError> {
        let set: prost_types::FileDescriptorSet = prost::Message::decode(EMBEDDED_DESCRIPTOR_SET)?;
        let parts = (&set, EMBEDDED_DESCRIPTOR_SET.into(), unnamed());
        plan::build(parts, Leaves::Payloads, skip, NEVER_ENCODED)
    }

    /// The embedded namespace plan (see [`Descriptors::namespaces`]).
    pub fn embedded_namespaces() -> Result<Schema, SchemaError> {
        Descriptors::embedded()?.namespaces()
    }

    /// Where this schema's descriptor set came from.
    pub fn info(&self) -> &SchemaInfo {
        &self.info
    }

    /// Reflection over the descriptor set (message descriptors for
    /// protojson), built on first use; `None` when the set does not build
    /// into a pool (logged once).
    pub fn pool(&self) -> Option<&prost_reflect::DescriptorPool> {
        self.pool
            .get_or_init(|| {
                prost_reflect::DescriptorPool::decode(&*self.bytes)
                    .inspect_err(|e| tracing::warn!(error = %e, "descriptor pool"))
                    .ok()
            })
            .as_ref()
    }

    /// Looks a message type up by its full name (no leading dot).
    pub fn message_id(&self, full_name: &str) -> Option<MessageId> {
        self.by_name.get(full_name).copied()
    }

    /// The plan of one message type.
    pub fn message(&self, id: MessageId) -> &MessagePlan {
        &self.messages[id.0 as usize]
    }

    /// All message plans, in id order.
    pub fn messages(&self) -> impl Iterator<Item = (MessageId, &MessagePlan)> {
        self.messages
            .iter()
            .enumerate()
            .map(|(i, m)| (MessageId(i as u32), m))
    }

    /// Looks a method up by its gRPC path, `/package.Service/Method`.
    pub fn method(&self, path: &str) -> Option<&Method> {
        self.methods.get(path)
    }

    /// All methods of all services in the descriptor set.
    pub fn methods(&self) -> impl Iterator<Item = &Method> {
        self.methods.values()
    }

    /// What field `number` of message `id` holds; `None` for a field the
    /// schema does not define (or in the namespace plan).
    pub fn field_kind(&self, id: MessageId, number: u32) -> Option<FieldKind> {
        let fields = self.kinds.get(id.0 as usize)?;
        fields
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .map(|i| fields[i].1)
    }

    /// True when `id` is `google.protobuf.Any`.
    pub fn is_any(&self, id: MessageId) -> bool {
        Some(id) == self.any
    }

    /// The `Payload` message, when this plan's leaves are payloads.
    pub fn payload_leaf(&self) -> Option<MessageId> {
        self.payload_leaf
    }

    /// `temporal.api.common.v1.Payloads`, when the set defines it.
    pub fn payload_list(&self) -> Option<MessageId> {
        self.payload_list
    }

    /// True when `service` is defined in this descriptor set.
    pub fn defines_service(&self, service: &str) -> bool {
        self.methods.values().any(|m| &*m.service == service)
    }

    /// True when some request or response of `service` can lead to one of
    /// this plan's leaves (a payload, or a namespace name).
    pub fn service_reaches(&self, service: &str) -> bool {
        self.methods.values().any(|m| {
            &*m.service == service
                && (m.namespace_field.is_some()
                    || !self.message(m.input).is_empty()
                    || !self.message(m.output).is_empty())
        })
    }

    /// Resolves a `google.protobuf.Any` type URL (`…/full.Name`) to a message.
    pub fn resolve_type_url(&self, type_url: &[u8]) -> Option<MessageId> {
        let name = match type_url.iter().rposition(|&b| b == b'/') {
            Some(i) => &type_url[i + 1..],
            None => type_url,
        };
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| self.message_id(n))
    }
}
