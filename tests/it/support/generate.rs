//! Generates wire-format messages of any Temporal type from prost-reflect
//! descriptors: canary payloads on payload paths, plaintext markers in search
//! attributes, unknown fields at random depths, and filler scalars.

use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

use super::{Reach, is_leaf, message_target};

/// Marks payload data that must never reach the server in clear.
pub const CANARY: &[u8] = b"CANARY";
/// Marks search attribute values, which must stay plaintext.
pub const SEARCH_ATTR: &[u8] = b"SEARCHATTR";
/// Marks unknown fields outside payloads, which must survive.
pub const UNKNOWN: &[u8] = b"UNKNOWNFIELD";

const SEARCH_ATTRIBUTES: &str = "temporal.api.common.v1.SearchAttributes";
const FAILURE: &str = "temporal.api.failure.v1.Failure";
const NEXUS_FAILURE: &str = "temporal.api.nexus.v1.Failure";
/// The message a System Nexus envelope carries in the generated messages.
const SYSTEM_MESSAGE: &str =
    "temporal.api.workflowservice.v1.SignalWithStartWorkflowExecutionRequest";

/// How to generate.
#[derive(Clone, Copy)]
pub struct Options {
    /// Fill every member of a oneof (valid on the wire; the last one wins
    /// when parsed) so that one message covers every path.
    pub all_oneof_members: bool,
    /// How deep to follow messages (recursive types stop here).
    pub max_depth: u32,
    /// Chance in 1/256 of an unknown field before and after a message's fields.
    pub unknown_chance: u8,
    /// Put canaries in `Failure.message`/`stack_trace` and never fill
    /// `encoded_attributes` (for failure encoding).
    pub failure_canaries: bool,
    /// Stop adding optional content past this many bytes.
    pub budget: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            all_oneof_members: false,
            max_depth: 6,
            unknown_chance: 40,
            failure_canaries: false,
            budget: 1 << 20,
        }
    }
}

/// What a generated message holds.
#[derive(Debug, Default)]
pub struct Made {
    pub bytes: Vec<u8>,
    /// Payloads placed on encodable paths.
    pub canaries: usize,
    /// Payloads placed in search attributes.
    pub search_attrs: Vec<Vec<u8>>,
    /// Markers of unknown fields placed outside payloads.
    pub unknown: Vec<Vec<u8>>,
    /// Legacy Nexus failures (a Failure as protojson) placed.
    pub nexus_failures: usize,
    /// System Nexus envelopes placed.
    pub system_envelopes: usize,
}

pub struct Gen<'p> {
    pool: &'p DescriptorPool,
    reach: Reach,
    rng: u64,
    opts: Options,
    made: Made,
    any_targets: Vec<MessageDescriptor>,
    counter: usize,
    size: usize,
    /// Inside a Failure that a legacy Nexus failure carries as protojson:
    /// only what JSON keeps (one metadata entry per payload, no unknown
    /// fields, one member per oneof).
    json_safe: bool,
}

impl<'p> Gen<'p> {
    pub fn new(pool: &'p DescriptorPool, seed: u64, opts: Options) -> Self {
        let mut reach = Reach::new();
        let any_targets = if opts.all_oneof_members {
            // A fixed, realistic set keeps full-coverage messages small.
            [
                "temporal.api.update.v1.Request",
                "temporal.api.update.v1.Response",
                "temporal.api.update.v1.Rejection",
                "temporal.api.update.v1.Acceptance",
                "temporal.api.errordetails.v1.QueryFailedFailure",
                "temporal.api.errordetails.v1.MultiOperationExecutionFailure",
            ]
            .iter()
            .map(|n| pool.get_message_by_name(n).unwrap())
            .collect()
        } else {
            pool.all_messages()
                .filter(|m| {
                    m.full_name().starts_with("temporal.api.")
                        && !m.is_map_entry()
                        && reach.reaches(m)
                })
                .collect()
        };
        Gen {
            pool,
            reach,
            rng: seed ^ 0x9e37_79b9_7f4a_7c15,
            opts,
            made: Made::default(),
            any_targets,
            counter: 0,
            size: 0,
            json_safe: false,
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, in_256: u8) -> bool {
        (self.next() & 0xff) < u64::from(in_256)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn unique(&mut self, prefix: &[u8]) -> Vec<u8> {
        self.counter += 1;
        let mut v = prefix.to_vec();
        v.extend(format!("-{}", self.counter).as_bytes());
        v
    }

    /// One message of type `name`.
    pub fn message(mut self, name: &str) -> Made {
        let desc = self.pool.get_message_by_name(name).unwrap();
        let mut out = Vec::new();
        self.fill(&desc, 0, false, &mut out);
        self.made.bytes = out;
        self.made
    }

    fn unknown_field(&mut self, desc: &MessageDescriptor, out: &mut Vec<u8>) {
        let mut number = 40_000 + self.below(1000) as u32;
        while desc.get_field(number).is_some() {
            number += 1;
        }
        if self.chance(128) {
            let marker = self.unique(UNKNOWN);
            len_field(number, &marker, out);
            self.made.unknown.push(marker);
        } else {
            varint(u64::from(number) << 3, out);
            varint(self.next() >> 40, out);
        }
    }

    fn fill(&mut self, desc: &MessageDescriptor, depth: u32, in_sa: bool, out: &mut Vec<u8>) {
        let chance = self.opts.unknown_chance;
        if self.chance(chance) {
            self.unknown_field(desc, out);
        }
        // Pick one member per oneof unless all are wanted.
        let chosen: Vec<Option<u32>> = desc
            .oneofs()
            .map(|o| {
                let members: Vec<u32> = o.fields().map(|f| f.number()).collect();
                (!members.is_empty()).then(|| members[self.below(members.len())])
            })
            .collect();
        for f in desc.fields() {
            if let Some(o) = f.containing_oneof() {
                let idx = desc.oneofs().position(|x| x.name() == o.name()).unwrap();
                if (!self.opts.all_oneof_members || self.json_safe)
                    && chosen[idx] != Some(f.number())
                {
                    continue;
                }
            }
            self.field(desc, &f, depth, in_sa, out);
        }
        if self.chance(chance) {
            self.unknown_field(desc, out);
        }
    }

    fn field(
        &mut self,
        desc: &MessageDescriptor,
        f: &FieldDescriptor,
        depth: u32,
        in_sa: bool,
        out: &mut Vec<u8>,
    ) {
        let over_budget = self.size + out.len() > self.opts.budget;
        let repeats = if f.is_list() || f.is_map() {
            1 + self.below(2)
        } else {
            1
        };
        let failure = desc.full_name() == FAILURE;
        if failure && (f.name() == "message" || f.name() == "stack_trace") {
            let text = if self.opts.failure_canaries {
                self.unique(CANARY)
            } else {
                self.unique(b"failure-text")
            };
            len_field(f.number(), &text, out);
            return;
        }
        if failure && self.opts.failure_canaries && f.name() == "encoded_attributes" {
            return;
        }
        // Random seconds and nanos are mostly outside protojson's range for
        // a Duration or Timestamp; JSON-bound messages leave them out.
        if self.json_safe
            && matches!(f.kind(), Kind::Message(m)
                if matches!(m.full_name(), "google.protobuf.Duration" | "google.protobuf.Timestamp"))
        {
            return;
        }
        match f.kind() {
            Kind::Message(m) if m.full_name() == NEXUS_FAILURE => {
                if depth >= self.opts.max_depth || over_budget || self.json_safe {
                    return;
                }
                let body = self.legacy_nexus_failure(depth);
                len_field(f.number(), &body, out);
            }
            Kind::Message(m) if m.full_name() == super::PAYLOAD => {
                let sa = in_sa || desc.full_name().starts_with(SEARCH_ATTRIBUTES);
                for _ in 0..repeats {
                    let system = !sa
                        && !self.json_safe
                        && depth + 1 < self.opts.max_depth
                        && !over_budget
                        && self.chance(24);
                    let p = if system {
                        self.system_envelope(depth)
                    } else {
                        self.payload(sa)
                    };
                    len_field(f.number(), &p, out);
                }
            }
            Kind::Message(m) if m.full_name() == super::ANY => {
                if depth >= self.opts.max_depth || over_budget {
                    return;
                }
                for _ in 0..repeats {
                    let any = self.any(depth);
                    len_field(f.number(), &any, out);
                }
            }
            Kind::Message(m) => {
                let sa = in_sa || m.full_name() == SEARCH_ATTRIBUTES;
                let leads = message_target(f)
                    .is_some_and(|t| is_leaf(&t) || self.reach.reaches(&t))
                    || m.full_name() == SEARCH_ATTRIBUTES
                    || (in_sa && m.full_name().starts_with(SEARCH_ATTRIBUTES));
                if leads {
                    if depth >= self.opts.max_depth || (over_budget && depth > 2) {
                        return;
                    }
                    for _ in 0..repeats {
                        let mut body = Vec::new();
                        self.fill(&m, depth + 1, sa, &mut body);
                        self.size += body.len();
                        len_field(f.number(), &body, out);
                    }
                } else if depth < self.opts.max_depth && self.chance(48) {
                    // Something that is not a payload path: filled with scalars only.
                    let mut body = Vec::new();
                    for g in m.fields() {
                        if !matches!(g.kind(), Kind::Message(_)) && self.chance(128) {
                            self.scalar(&g, &mut body);
                        }
                    }
                    len_field(f.number(), &body, out);
                }
            }
            _ => {
                if self.chance(90) {
                    self.scalar(f, out);
                }
            }
        }
    }

    /// A legacy Nexus failure as sdk-core writes it for a caller without
    /// failure support: a Failure as protojson (without `message`) in
    /// `details`, its message and stack trace in the Nexus fields.
    fn legacy_nexus_failure(&mut self, depth: u32) -> Vec<u8> {
        self.made.nexus_failures += 1;
        let desc = self.pool.get_message_by_name(FAILURE).unwrap();
        let saved = (self.json_safe, self.opts.unknown_chance);
        (self.json_safe, self.opts.unknown_chance) = (true, 0);
        let mut bytes = Vec::new();
        self.fill(&desc, depth + 1, false, &mut bytes);
        (self.json_safe, self.opts.unknown_chance) = saved;
        let mut failure = DynamicMessage::decode(desc, bytes.as_slice()).unwrap();
        let text = |m: &DynamicMessage, name: &str| match m.get_field_by_name(name).as_deref() {
            Some(prost_reflect::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let (message, stack_trace) = (text(&failure, "message"), text(&failure, "stack_trace"));
        failure.clear_field_by_name("message");
        // As sealgate writes it: keys sorted (through a serde_json Value).
        let json = serde_json::to_vec(&serde_json::to_value(&failure).unwrap()).unwrap();
        let mut out = Vec::new();
        if !message.is_empty() {
            len_field(1, message.as_bytes(), &mut out);
        }
        let mut entry = Vec::new();
        len_field(1, b"type", &mut entry);
        len_field(2, FAILURE.as_bytes(), &mut entry);
        len_field(2, &entry, &mut out);
        len_field(3, &json, &mut out);
        if !stack_trace.is_empty() {
            len_field(4, stack_trace.as_bytes(), &mut out);
        }
        out
    }

    /// A System Nexus envelope (`__temporal_system`): a readable
    /// `binary/protobuf` payload whose message holds the payloads.
    fn system_envelope(&mut self, depth: u32) -> Vec<u8> {
        self.made.system_envelopes += 1;
        let desc = self.pool.get_message_by_name(SYSTEM_MESSAGE).unwrap();
        let mut inner = Vec::new();
        self.fill(&desc, depth + 1, false, &mut inner);
        let mut p = Vec::new();
        for (k, v) in [
            (b"encoding".as_slice(), b"binary/protobuf".as_slice()),
            (b"messageType", SYSTEM_MESSAGE.as_bytes()),
            (b"__temporal_system_payload", b"true"),
        ] {
            let mut entry = Vec::new();
            len_field(1, k, &mut entry);
            len_field(2, v, &mut entry);
            len_field(1, &entry, &mut p);
        }
        len_field(2, &inner, &mut p);
        p
    }

    fn payload(&mut self, search_attr: bool) -> Vec<u8> {
        let mut p = Vec::new();
        let (data, meta) = if search_attr {
            let marker = self.unique(SEARCH_ATTR);
            self.made.search_attrs.push(marker.clone());
            (marker, b"Keyword".to_vec())
        } else {
            self.made.canaries += 1;
            let mut d = b"\"".to_vec();
            d.extend(self.unique(CANARY));
            d.extend(b" data\"");
            (d, self.unique(CANARY))
        };
        let mut entry = Vec::new();
        len_field(1, b"encoding", &mut entry);
        len_field(2, b"json/plain", &mut entry);
        len_field(1, &entry, &mut p);
        if self.json_safe {
            // One metadata entry: JSON map order is not kept.
            len_field(2, &data, &mut p);
            return p;
        }
        let mut entry = Vec::new();
        len_field(
            1,
            if search_attr {
                b"type".as_slice()
            } else {
                b"canary-meta"
            },
            &mut entry,
        );
        len_field(2, &meta, &mut entry);
        len_field(1, &entry, &mut p);
        len_field(2, &data, &mut p);
        if self.chance(30) {
            // An unknown field inside the payload: encrypted with it, restored with it.
            varint(45_000 << 3, &mut p);
            varint(7, &mut p);
        }
        p
    }

    fn any(&mut self, depth: u32) -> Vec<u8> {
        let mut any = Vec::new();
        // An Any of a type no schema knows counts as an unknown field.
        if self.opts.unknown_chance > 0 && self.chance(32) {
            len_field(1, b"type.googleapis.com/example.NotTemporal", &mut any);
            len_field(2, b"\x08\x01", &mut any);
            return any;
        }
        let pick = self.below(self.any_targets.len());
        let target = self.any_targets[pick].clone();
        let mut value = Vec::new();
        if target.full_name() == NEXUS_FAILURE {
            value = self.legacy_nexus_failure(depth);
        } else {
            self.fill(&target, depth + 1, false, &mut value);
        }
        len_field(
            1,
            format!("type.googleapis.com/{}", target.full_name()).as_bytes(),
            &mut any,
        );
        len_field(2, &value, &mut any);
        any
    }

    fn scalar(&mut self, f: &FieldDescriptor, out: &mut Vec<u8>) {
        let n = u64::from(f.number());
        match f.kind() {
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => {
                varint(n << 3 | 1, out);
                out.extend(self.next().to_le_bytes());
            }
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => {
                varint(n << 3 | 5, out);
                out.extend((self.next() as u32).to_le_bytes());
            }
            Kind::String => {
                let s = self.unique(b"str");
                len_field(f.number(), &s, out);
            }
            Kind::Bytes => {
                let b: Vec<u8> = (0..self.below(12)).map(|_| self.next() as u8).collect();
                len_field(f.number(), &b, out);
            }
            Kind::Bool => {
                varint(n << 3, out);
                varint(1, out);
            }
            Kind::Enum(_) => {
                varint(n << 3, out);
                varint(self.below(3) as u64, out);
            }
            _ => {
                varint(n << 3, out);
                varint(self.next() >> 34, out);
            }
        }
    }
}

pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn len_field(number: u32, body: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(number) << 3 | 2, out);
    varint(body.len() as u64, out);
    out.extend_from_slice(body);
}
