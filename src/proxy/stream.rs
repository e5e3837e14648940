//! The streamed lane, for services the schema shows carry neither payloads
//! nor namespaces (health), and for services the operator marked opaque.
//! Nothing of a rewritten service ever comes here.

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{Proxy, ProxyError, Routed, headers, unary::code_label};
use crate::{grpc::GRPC_STATUS, inbound::Caller, telemetry, upstream::BoxError};

/// Streams a call through untouched but for hop-by-hop headers and the
/// caller's credentials. A plain service needs only a known caller; an
/// opaque one is authorized on its `temporal-namespace` header (or, without
/// one, as a call that names no namespace).
pub(super) async fn call(
    p: &Proxy,
    caller: Caller<'_>,
    opaque: bool,
    req: Request<Incoming>,
) -> Result<Routed, ProxyError> {
    let namespace = headers::namespace(req.headers()).unwrap_or("").to_string();
    let namespace = namespace.as_str();
    let namespace = if opaque {
        caller.may_use(namespace)?;
        namespace
    } else {
        // Health checks name no namespace's data: they go to the system
        // upstream, whatever header they carry (it was not authorized).
        caller.known()?;
        ""
    };
    let upstream = p.router().pick(namespace, req.headers())?;
    let (mut parts, body) = req.into_parts();
    if let Some(t) = upstream.translation()
        && !namespace.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&t.to_upstream(namespace))
    {
        parts.headers.insert(headers::NAMESPACE, v);
    }
    headers::clean_request(
        &mut parts.headers,
        p.config.forward_authorization || upstream.forwards_authorization(),
        &p.config.credential_headers,
    );
    telemetry::inject_current(&mut parts.headers);
    let mut up = Request::from_parts(parts, body.map_err(BoxError::from).boxed_unsync());
    upstream.prepare(&mut up);
    let resp = upstream.send(up).await?;
    let (mut parts, body) = resp.into_parts();
    headers::clean_response(&mut parts.headers);
    let code = if parts.headers.contains_key(GRPC_STATUS) {
        code_label(Some(&parts.headers))
    } else {
        "stream"
    };
    Ok((
        Response::from_parts(parts, body.map_err(BoxError::from).boxed_unsync()),
        code,
        Some(upstream),
    ))
}
