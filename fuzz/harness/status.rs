//! `grpc-status-details-bin`: base64 (padding optional) of a
//! `google.rpc.Status` whose `Any` details may carry failures with
//! payloads, decoded on the way back to the caller.
//!
//! Input: the header value as given (any bytes), and the same bytes as the
//! encoded Status. Properties: nothing panics; details written by
//! `set_status_details` read back as written; decoding a Status never fails
//! on a well-formed message and never grows a payload-free one.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use sealgate::{
    codec::{ChainOptions, Pipeline, Session},
    grpc::{self, GRPC_STATUS_DETAILS},
    keys::Key,
    rewrite::rewrite,
    schema::{RPC_STATUS, Schema},
};

struct State {
    schema: Schema,
    session: Session,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let key = Key::new("fuzz", &[3; 32]).expect("key");
        let opts = ChainOptions {
            compression: true,
            encryption: true,
            encode_failures: true,
            max_decoded: Some(1 << 20),
        };
        State {
            schema: Schema::embedded().expect("embedded schema"),
            session: Pipeline::fixed(&opts, vec![key], Some("fuzz"))
                .expect("pipeline")
                .session(""),
        }
    })
}

pub(crate) fn run(data: &[u8]) {
    let s = state();
    // As a header value from the upstream: any bytes a header may hold.
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        h.insert(GRPC_STATUS_DETAILS, v);
        let _ = grpc::status_details(&h);
    }
    // As the Status itself: written, read back, decoded.
    let mut h = HeaderMap::new();
    grpc::set_status_details(&mut h, data);
    let read = grpc::status_details(&h)
        .expect("present")
        .expect("our own base64");
    assert_eq!(read, data);
    let id = s.schema.message_id(RPC_STATUS).expect("google.rpc.Status");
    let _ = rewrite(&s.schema, id, data, &mut s.session.decoder());
}
