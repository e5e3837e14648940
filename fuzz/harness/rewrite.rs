//! The rewriter fuzz harness, shared by the cargo-fuzz target and the stable
//! test that replays the committed corpus (tests/it/fuzz_corpus.rs).
//!
//! Input: first byte picks a message type (every WorkflowService request and
//! response, plus Failure, google.rpc.Status and Payloads); the rest is the
//! message. Properties: nothing panics; when encode succeeds, decoding its
//! output gives the input back byte for byte, except that length prefixes on
//! the path to each payload come back in canonical (shortest) form, as
//! re-emitting every payload unchanged produces; decode of anything is safe;
//! the outgoing audit never panics, and its tripwire never fires on what
//! encode produced (every payload the schema can reach leaves encrypted).

use std::sync::OnceLock;

use sealgate::{
    codec::{ChainOptions, CodecError, Pipeline, Session},
    keys::Key,
    rewrite::{
        PayloadVisitor,
        audit::{Checks, audit},
        rewrite,
    },
    schema::{FAILURE, MessageId, RPC_STATUS, Schema, WORKFLOW_SERVICE},
};

struct State {
    schema: Schema,
    chain: Session,
    failures: Session,
    types: Vec<MessageId>,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let schema = Schema::embedded().expect("embedded schema");
        let mut types: Vec<MessageId> = schema
            .methods()
            .filter(|m| &*m.service == WORKFLOW_SERVICE)
            .flat_map(|m| [m.input, m.output])
            .collect();
        for extra in [FAILURE, RPC_STATUS, "temporal.api.common.v1.Payloads"] {
            types.push(schema.message_id(extra).expect("known type"));
        }
        // A stable order, so a corpus file means the same type every run.
        types.sort_by(|a, b| schema.message(*a).name().cmp(schema.message(*b).name()));
        types.dedup();
        let chain = |encode_failures| {
            let key = Key::new("fuzz", &[3; 32]).expect("key");
            let opts = ChainOptions {
                compression: true,
                encryption: true,
                encode_failures,
                max_decoded: Some(1 << 20),
            };
            Pipeline::fixed(&opts, vec![key], Some("fuzz"))
                .expect("pipeline")
                .session("")
        };
        State {
            schema,
            chain: chain(false),
            failures: chain(true),
            types,
        }
    })
}

/// Index of the message type a corpus byte selects, by full name.
#[allow(dead_code)] // used by tests/it/fuzz_corpus.rs, not by the fuzz target
pub(crate) fn selector(name: &str) -> Option<u8> {
    let s = state();
    s.types
        .iter()
        .position(|id| s.schema.message(*id).name() == name)
        .and_then(|i| u8::try_from(i).ok())
}

/// Hands every payload back as new bytes, so the rewriter re-emits each
/// field on a payload path with a canonical length prefix.
struct Touch;

impl PayloadVisitor for Touch {
    fn payload(&mut self, p: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        Ok(Some(p.to_vec()))
    }
}

pub(crate) fn run(data: &[u8]) {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let s = state();
    let id = s.types[usize::from(sel) % s.types.len()];
    let checks = Checks {
        unknown: false,
        plaintext: true,
        own: b"binary/encrypted",
        max_payload: usize::MAX,
    };
    let _ = audit(
        &s.schema,
        id,
        msg,
        Checks {
            unknown: true,
            ..checks
        },
    );
    if let Ok(enc) = rewrite(&s.schema, id, msg, &mut s.chain.encoder()) {
        if let Err(f) = audit(&s.schema, id, &enc, checks) {
            assert!(
                !matches!(f, sealgate::rewrite::audit::Finding::Plaintext { .. }),
                "the tripwire fired on encode's own output: {f}"
            );
        }
        let dec = rewrite(&s.schema, id, &enc, &mut s.chain.decoder())
            .expect("decoding our own encoding succeeds");
        let canonical = rewrite(&s.schema, id, msg, &mut Touch).expect("encode parsed it");
        assert!(dec.as_ref() == canonical.as_ref(), "decode(encode(m)) != m");
    }
    if let Ok(enc) = rewrite(&s.schema, id, msg, &mut s.failures.encoder()) {
        rewrite(&s.schema, id, &enc, &mut s.failures.decoder())
            .expect("decoding our own failure encoding succeeds");
    }
    let _ = rewrite(&s.schema, id, msg, &mut s.chain.decoder());
}
