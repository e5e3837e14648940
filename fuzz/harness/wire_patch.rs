//! Setting one nested varint in a message at the wire level (the
//! DescribeNamespace blob limit sealgate raises for offloading namespaces).
//!
//! Input: two bytes pick the path (`[1, 8]`, `[1]` or none) and the field,
//! the rest is the message. Properties: nothing panics; the patched message
//! parses, and patching it again changes nothing (idempotent).

pub(crate) fn run(data: &[u8]) {
    let [a, b, message @ ..] = data else {
        return;
    };
    let path: &[u32] = match a % 3 {
        0 => &[1, 8],
        1 => &[1],
        _ => &[],
    };
    let field = u32::from(*b % 16) + 1;
    let value = u64::from(*a) << 20;
    if let Some(out) = sealgate::rewrite::set_varint_at(message, path, field, value) {
        let again = sealgate::rewrite::set_varint_at(&out, path, field, value);
        assert_eq!(again.as_deref(), Some(out.as_slice()), "not idempotent");
    }
}
