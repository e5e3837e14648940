//! `grpc-timeout`: 1 to 8 ASCII digits and a unit (H, M, S, m, u, n).
//!
//! Properties: nothing panics; a value that parses is well formed by the
//! spec, and its duration is the digits times the unit.

use std::time::Duration;

use http::HeaderValue;
use sealgate::grpc::parse_timeout;

pub(crate) fn run(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let Some(d) = parse_timeout(&value) else {
        return;
    };
    let (digits, unit) = data.split_at(data.len() - 1);
    assert!((1..=8).contains(&digits.len()), "{data:?}");
    assert!(digits.iter().all(u8::is_ascii_digit), "{data:?}");
    let n: u64 = std::str::from_utf8(digits).unwrap().parse().unwrap();
    let want = match unit {
        b"H" => Duration::from_secs(n * 3600),
        b"M" => Duration::from_secs(n * 60),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => panic!("unit {unit:?} accepted"),
    };
    assert_eq!(d, want);
}
