//! The request's head, checked before anything else happens: one strict
//! gRPC content type, no duplicated `te` or `grpc-encoding`, a
//! `/package.Service/Method` path; and the headers that never cross the hop.

use http::{HeaderMap, Method, Uri, header};

use super::ProxyError;
use crate::grpc::GRPC_ENCODING;

/// The header Temporal clients name their namespace in.
pub const NAMESPACE: http::HeaderName = http::HeaderName::from_static("temporal-namespace");

/// `grpc-accept-encoding`.
const ACCEPT_ENCODING: http::HeaderName = http::HeaderName::from_static("grpc-accept-encoding");

/// The namespace a request's `temporal-namespace` header names, when it is
/// set, not empty and text.
pub fn namespace(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(NAMESPACE)
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty())
}

/// Message encodings sealgate reads (and so may let an upstream use).
const READABLE: [&str; 2] = ["identity", "gzip"];

/// Headers that belong to one hop (RFC 9110 §7.6.1) or that sealgate sets.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// Why a request's head is refused (nothing is read or forwarded).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeadError {
    #[error(
        "content-type {0:?} is not gRPC: send application/grpc or application/grpc+proto (grpc-web and JSON are not served)"
    )]
    ContentType(String),
    #[error("no content-type: a gRPC request carries content-type: application/grpc")]
    NoContentType,
    #[error("{0} header sent {1} times: a gRPC request carries it once")]
    Duplicated(&'static str, usize),
    #[error("{0:?} is not a gRPC method path (/package.Service/Method, no query)")]
    Path(String),
    #[error("HTTP method {0} is not gRPC: gRPC calls are POST")]
    Method(String),
    #[error("temporal-namespace header is not printable ASCII")]
    Namespace,
}

impl HeadError {
    /// True for content-type refusals, which gRPC servers answer with HTTP
    /// 415 (so no plain HTTP client mistakes the answer for a success).
    pub fn is_media_type(&self) -> bool {
        matches!(
            self,
            HeadError::ContentType(_)
                | HeadError::NoContentType
                | HeadError::Duplicated("content-type", _)
        )
    }
}

/// Checks the head of a request: exactly one `content-type` that is
/// `application/grpc` or `application/grpc+proto` (ASCII parameters after
/// `;` allowed, case exact), at most one `te` and one `grpc-encoding`, POST,
/// and a path of exactly two non-empty segments.
pub fn check(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), HeadError> {
    if method != Method::POST {
        return Err(HeadError::Method(method.to_string()));
    }
    path_ok(uri)?;
    // One pass over the (few) headers: no hashing of custom names.
    let (mut ct, mut cts, mut tes, mut encodings, mut namespaces) = (None, 0, 0, 0, 0);
    for (name, value) in headers {
        if name == header::CONTENT_TYPE {
            cts += 1;
            ct.get_or_insert(value);
        } else if name == header::TE {
            tes += 1;
        } else if name == GRPC_ENCODING {
            encodings += 1;
        } else if name == NAMESPACE {
            namespaces += 1;
            if value.to_str().is_err() {
                return Err(HeadError::Namespace);
            }
        }
    }
    let Some(ct) = ct else {
        return Err(HeadError::NoContentType);
    };
    if cts > 1 {
        return Err(HeadError::Duplicated("content-type", cts));
    }
    if !content_type_ok(ct.as_bytes()) {
        return Err(HeadError::ContentType(
            String::from_utf8_lossy(ct.as_bytes()).into_owned(),
        ));
    }
    for (name, n) in [
        ("te", tes),
        ("grpc-encoding", encodings),
        ("temporal-namespace", namespaces),
    ] {
        if n > 1 {
            return Err(HeadError::Duplicated(name, n));
        }
    }
    Ok(())
}

fn content_type_ok(v: &[u8]) -> bool {
    let (media, params) = match v.iter().position(|&b| b == b';') {
        Some(i) => (&v[..i], Some(&v[i + 1..])),
        None => (v, None),
    };
    let media_ok = media == b"application/grpc" || media == b"application/grpc+proto";
    let params_ok = params.is_none_or(|p| p.iter().all(|&b| b == b' ' || b.is_ascii_graphic()));
    media_ok && params_ok
}

fn path_ok(uri: &Uri) -> Result<(), HeadError> {
    let bad = || HeadError::Path(uri.to_string());
    if uri.query().is_some() {
        return Err(bad());
    }
    let rest = uri.path().strip_prefix('/').ok_or_else(bad)?;
    let (service, method) = rest.split_once('/').ok_or_else(bad)?;
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
    };
    if name_ok(service) && name_ok(method) && !service.starts_with('.') {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Credential headers dropped by default (`proxy.credential_headers`).
pub const CREDENTIAL_HEADERS: [&str; 7] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
];

/// Drops hop-by-hop headers, and the caller's credentials (`credentials`,
/// lower-case names) unless this upstream is to see them. One pass over the
/// headers, comparing names; removals only for what is there.
pub fn clean_request(headers: &mut HeaderMap, forward_authorization: bool, credentials: &[String]) {
    // The caller's credentials are for sealgate, not for the upstream.
    remove_where(headers, |n| {
        HOP_BY_HOP.contains(&n) || (!forward_authorization && credentials.iter().any(|c| c == n))
    });
}

/// Keeps in `grpc-accept-encoding` only the encodings sealgate can read, so
/// an upstream never answers in one it cannot decode (after it acted).
pub fn accept_readable(headers: &mut HeaderMap) {
    let Some(v) = headers.get(ACCEPT_ENCODING) else {
        return;
    };
    let kept: Vec<&str> = v
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|e| READABLE.contains(e))
        .collect();
    match http::HeaderValue::from_str(&kept.join(",")) {
        Ok(v) if !kept.is_empty() => {
            headers.insert(ACCEPT_ENCODING, v);
        }
        _ => {
            headers.remove(ACCEPT_ENCODING);
        }
    }
}

/// Drops hop-by-hop headers from an upstream answer.
pub fn clean_response(headers: &mut HeaderMap) {
    remove_where(headers, |n| HOP_BY_HOP.contains(&n));
}

/// Removes every header whose name `doomed` picks, in one pass over the
/// names (no hashing unless something is there to remove).
fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|n| doomed(n.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

impl From<HeadError> for ProxyError {
    fn from(e: HeadError) -> Self {
        ProxyError::Head(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn run(pairs: &[(&str, &[u8])]) -> Result<(), HeadError> {
        let uri: Uri = "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution"
            .parse()
            .unwrap();
        check(&Method::POST, &uri, &head(pairs))
    }

    #[test]
    fn grpc_content_types_pass() {
        for ct in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"application/grpc; charset=utf-8",
        ] {
            assert_eq!(run(&[("content-type", ct), ("te", b"trailers")]), Ok(()));
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for ct in [
            &b"application/json"[..],
            b"Application/grpc",
            b"application/grpc-web",
            b"application/grpc+json",
            b"application/grpc;\xff",
            b"application/grpcx",
            b"text/plain",
        ] {
            let e = run(&[("content-type", ct)]).unwrap_err();
            assert!(e.is_media_type(), "{ct:?}: {e}");
        }
        assert_eq!(run(&[]), Err(HeadError::NoContentType));
        assert_eq!(
            run(&[
                ("content-type", b"text/plain"),
                ("content-type", b"application/grpc")
            ]),
            Err(HeadError::Duplicated("content-type", 2))
        );
        assert_eq!(
            run(&[
                ("content-type", b"application/grpc"),
                ("grpc-encoding", b"identity"),
                ("grpc-encoding", b"gzip")
            ]),
            Err(HeadError::Duplicated("grpc-encoding", 2))
        );
        assert_eq!(
            run(&[
                ("content-type", b"application/grpc"),
                ("te", b"trailers"),
                ("te", b"trailers")
            ]),
            Err(HeadError::Duplicated("te", 2))
        );
        assert_eq!(
            run(&[
                ("content-type", b"application/grpc"),
                ("temporal-namespace", b"a"),
                ("temporal-namespace", b"b")
            ]),
            Err(HeadError::Duplicated("temporal-namespace", 2))
        );
        assert_eq!(
            run(&[
                ("content-type", b"application/grpc"),
                ("temporal-namespace", b"prod-\xff")
            ]),
            Err(HeadError::Namespace)
        );
    }

    #[test]
    fn credentials_stay_here_unless_forwarded() {
        let list: Vec<String> = CREDENTIAL_HEADERS.iter().map(|h| h.to_string()).collect();
        let mut h = head(&[
            ("authorization", b"Bearer t"),
            ("cookie", b"s=1"),
            ("x-api-key", b"k"),
            ("temporal-namespace", b"default"),
            ("connection", b"close"),
        ]);
        clean_request(&mut h, false, &list);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["temporal-namespace"], "default");
        let mut h = head(&[("authorization", b"Bearer t"), ("cookie", b"s=1")]);
        clean_request(&mut h, true, &list);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn only_readable_encodings_are_offered_upstream() {
        let mut h = head(&[("grpc-accept-encoding", b"identity, deflate, gzip")]);
        accept_readable(&mut h);
        assert_eq!(h["grpc-accept-encoding"], "identity,gzip");
        let mut h = head(&[("grpc-accept-encoding", b"zstd")]);
        accept_readable(&mut h);
        assert!(h.get("grpc-accept-encoding").is_none());
    }

    #[test]
    fn odd_paths_and_methods_are_refused() {
        let h = head(&[("content-type", b"application/grpc")]);
        for p in [
            "/",
            "/a.B",
            "/a.B/",
            "//M",
            "/a.B/M/x",
            "/a.B/M?x=1",
            "/a.B/M%2F",
            "/../a.B/M",
        ] {
            let uri: Uri = p.parse().unwrap();
            assert!(check(&Method::POST, &uri, &h).is_err(), "{p}");
        }
        let uri: Uri = "/a.B/M".parse().unwrap();
        assert_eq!(check(&Method::POST, &uri, &h), Ok(()));
        assert!(matches!(
            check(&Method::GET, &uri, &h),
            Err(HeadError::Method(_))
        ));
    }
}
