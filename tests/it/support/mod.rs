//! Shared helpers for integration tests: an independent view of the Temporal
//! schema (prost-reflect, not sealgate's plan) and a message generator that
//! puts a canary payload on every path it can reach.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod generate;
pub mod jwt;
pub mod net;
pub mod pki;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use sealgate::schema::{ANY, EMBEDDED_DESCRIPTOR_SET, NEVER_ENCODED, PAYLOAD};

/// Held by tests that measure the machine (memory peaks) and by the tests
/// that load it most (the property tests): in one test binary they would
/// otherwise run at once, and a CPU-starved gateway holds more in flight
/// than the budget the memory test checks accounts for.
static MEASURED: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the rest of the calling (synchronous) test apart from the others
/// that take it.
pub fn measured() -> tokio::sync::MutexGuard<'static, ()> {
    MEASURED.blocking_lock()
}

/// [`measured`], for an async test.
pub async fn measured_async() -> tokio::sync::MutexGuard<'static, ()> {
    MEASURED.lock().await
}

pub fn pool() -> DescriptorPool {
    DescriptorPool::decode(EMBEDDED_DESCRIPTOR_SET).unwrap()
}

/// The message a field holds, unless it is a field sealgate must never encode.
pub fn message_target(f: &FieldDescriptor) -> Option<MessageDescriptor> {
    let parent = f.parent_message().full_name().to_string();
    if NEVER_ENCODED.contains(&(parent.as_str(), f.number())) {
        return None;
    }
    match f.kind() {
        Kind::Message(m) => Some(m),
        _ => None,
    }
}

/// A message that holds payloads itself: a Payload, an Any (which may hold
/// one), or a Nexus failure (a legacy one holds a Failure as protojson).
pub fn is_leaf(m: &MessageDescriptor) -> bool {
    m.full_name() == PAYLOAD
        || m.full_name() == ANY
        || m.full_name() == sealgate::schema::NEXUS_FAILURE
}

/// Which messages can lead to a payload: a graph search from every message
/// (sealgate's plan uses a fixpoint; the two must agree).
pub struct Reach {
    memo: HashMap<String, bool>,
}

impl Reach {
    pub fn new() -> Self {
        Reach {
            memo: HashMap::new(),
        }
    }

    pub fn reaches(&mut self, start: &MessageDescriptor) -> bool {
        if let Some(&r) = self.memo.get(start.full_name()) {
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
                if let Some(t) = message_target(&f) {
                    if is_leaf(&t) {
                        found = true;
                    } else {
                        stack.push(t);
                    }
                }
            }
        }
        self.memo.insert(start.full_name().to_string(), found);
        found
    }

    /// For each message: the field numbers that lead to a payload.
    pub fn all_paths(&mut self, pool: &DescriptorPool) -> BTreeMap<String, BTreeSet<u32>> {
        let mut out = BTreeMap::new();
        for m in pool.all_messages() {
            let mut fields = BTreeSet::new();
            for f in m.fields() {
                if message_target(&f).is_some_and(|t| is_leaf(&t) || self.reaches(&t)) {
                    fields.insert(f.number());
                }
            }
            out.insert(m.full_name().to_string(), fields);
        }
        out
    }
}

/// Where `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Runs `cmd` with `stdin` written to its standard input; stdout and stderr
/// are captured.
pub fn run_with_stdin(cmd: &mut std::process::Command, stdin: &[u8]) -> std::process::Output {
    use std::{io::Write, process::Stdio};
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}
