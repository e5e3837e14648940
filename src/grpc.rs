//! gRPC on the wire: status codes, length-prefixed message framing, message
//! compression and the status-details trailer.

pub mod frame;
#[cfg(test)]
mod tests;

use std::fmt;

use base64::{Engine, engine::general_purpose};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

/// `grpc-status` codes (the ones sealgate produces or inspects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    /// The numeric code as a static string (for metric labels).
    pub fn label(self) -> &'static str {
        match self {
            Code::Ok => "0",
            Code::Cancelled => "1",
            Code::Unknown => "2",
            Code::InvalidArgument => "3",
            Code::DeadlineExceeded => "4",
            Code::PermissionDenied => "7",
            Code::ResourceExhausted => "8",
            Code::Unimplemented => "12",
            Code::Internal => "13",
            Code::Unavailable => "14",
            Code::Unauthenticated => "16",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

// Header names as `HeaderName`s: a `&str` name is parsed and checked on
// every lookup and insert.
pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
pub const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
pub const GRPC_STATUS_DETAILS: HeaderName = HeaderName::from_static("grpc-status-details-bin");

/// A trailers-only gRPC response carrying `code` and `message`.
pub fn status_response<B: Default>(code: Code, message: &str) -> Response<B> {
    let mut resp = Response::new(B::default());
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(GRPC_STATUS, HeaderValue::from(code as u16));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(message)) {
        h.insert(GRPC_MESSAGE, v);
    }
    resp
}

/// Percent-encodes a `grpc-message` as the gRPC HTTP/2 spec asks: bytes
/// outside printable ASCII, and `%` itself.
pub fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for &b in message.as_bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a `grpc-timeout` value (`<digits><unit>`, unit one of H M S m u n).
pub fn parse_timeout(value: &HeaderValue) -> Option<std::time::Duration> {
    use std::time::Duration;
    let s = value.to_str().ok()?;
    if s.len() < 2 || s.len() > 9 {
        return None;
    }
    let (digits, unit) = s.split_at(s.len() - 1);
    // TimeoutValue is 1 to 8 ASCII digits (u64's parser would take "+5").
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The decoded bytes of a `grpc-status-details-bin` header, if present.
/// Binary headers are base64, padding optional.
pub fn status_details(headers: &HeaderMap) -> Option<Result<Vec<u8>, base64::DecodeError>> {
    let v = headers.get(GRPC_STATUS_DETAILS)?;
    let s = v.as_bytes();
    let trimmed = s
        .strip_suffix(b"==")
        .or_else(|| s.strip_suffix(b"="))
        .unwrap_or(s);
    Some(general_purpose::STANDARD_NO_PAD.decode(trimmed))
}

/// Sets `grpc-status-details-bin` to `bytes` (unpadded base64).
pub fn set_status_details(headers: &mut HeaderMap, bytes: &[u8]) {
    let encoded = general_purpose::STANDARD_NO_PAD.encode(bytes);
    if let Ok(v) = HeaderValue::from_str(&encoded) {
        headers.insert(GRPC_STATUS_DETAILS, v);
    }
}

/// True when the content type is gRPC (`application/grpc`, `+proto`, …).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// A body made of whole bytes, for buffered responses.
pub type Full = http_body_util::Full<Bytes>;
