//! gRPC framing and gzip inflation, as a request body is read: the body is
//! split into frames (exactly one for a unary call), and a compressed frame
//! is inflated within the size limit and the memory budget.
//!
//! Input: first byte selects the limit (1 KiB << (b % 8)); the rest is the
//! body. Properties: nothing panics; a frame never claims more bytes than
//! the body holds; inflated output never exceeds the limit, and the budget
//! gets back every byte it lent.

use bytes::Bytes;
use sealgate::{
    grpc::frame,
    proxy::{body, budget::Budget},
};

pub(crate) fn run(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let limit = 1024usize << (sel % 8);
    let input = Bytes::copy_from_slice(rest);
    if let Ok(frames) = frame::split(input.clone(), limit) {
        let total: usize = frames.iter().map(|f| frame::HEADER + f.message.len()).sum();
        assert_eq!(total, rest.len(), "frames cover the body exactly");
    }
    let Ok(Some(f)) = body::one_message(input, limit) else {
        return;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let budget = Budget::new(limit * 2);
    rt.block_on(async {
        let mut held = budget.hold();
        if let Ok(plain) = body::plain(f, Some("gzip"), limit, &mut held).await {
            assert!(plain.len() <= limit, "inflated past the limit");
        }
        drop(held);
    });
    assert_eq!(budget.in_use(), 0, "the budget got every byte back");
}
