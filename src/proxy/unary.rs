//! The rewritten lane: a unary call of a service whose messages can carry
//! payloads or namespaces. The caller is already authenticated and the
//! method classified; here the call is read (bounded), authorized on every
//! namespace it names, routed, encoded, sent, decoded and answered.

use std::{sync::Arc, time::Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, header, request, response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use opentelemetry::KeyValue;

use super::{
    Proxy, ProxyError, Routed,
    body::{self, BodyError},
    budget::{Buffered, Held},
    headers,
};
use crate::{
    codec::{CodecError, Decoder, Direction, Session},
    grpc::{self, GRPC_ENCODING, GRPC_MESSAGE, GRPC_STATUS, GRPC_TIMEOUT, frame},
    inbound::Caller,
    rewrite::{FailureMode, PayloadVisitor, Rewritten, rewrite, rewrite_patched},
    schema::{MessageId, Method, RPC_STATUS},
    telemetry,
    upstream::Upstream,
};

/// A visitor that counts the payloads it changed (for the call's span).
struct Counting<V> {
    inner: V,
    changed: u64,
}

impl<V: PayloadVisitor> PayloadVisitor for Counting<V> {
    fn payload(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        let r = self.inner.payload(payload)?;
        self.changed += u64::from(r.is_some());
        Ok(r)
    }

    fn payload_into(
        &mut self,
        payload: &[u8],
        view: Option<&crate::codec::PayloadView<'_>>,
        arena: &mut crate::codec::Arena,
    ) -> Result<crate::codec::Replacement, CodecError> {
        let r = self.inner.payload_into(payload, view, arena)?;
        self.changed += u64::from(!matches!(r, crate::codec::Replacement::Kept));
        Ok(r)
    }

    fn failure_mode(&self) -> FailureMode {
        self.inner.failure_mode()
    }
}

/// A visitor over the namespace plan that collects every distinct name it
/// meets (a name that is not UTF-8 is refused: no rule could match it).
#[derive(Default)]
struct Names {
    names: std::collections::HashSet<String>,
    not_utf8: bool,
}

impl PayloadVisitor for Names {
    fn payload(&mut self, field: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        match std::str::from_utf8(field) {
            Ok(name) if !name.is_empty() && !self.names.contains(name) => {
                self.names.insert(name.to_string());
            }
            Ok(_) => {}
            Err(_) => self.not_utf8 = true,
        }
        Ok(None)
    }
}

/// `grpc-status` as a bounded label value.
pub(super) fn code_label(headers: Option<&HeaderMap>) -> &'static str {
    const CODES: [&str; 17] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
    ];
    headers
        .and_then(|h| h.get(GRPC_STATUS))
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok())
        .and_then(|i| CODES.get(i).copied())
        .unwrap_or("2") // a response without a readable status is UNKNOWN
}

/// How long sealgate reads a non-gRPC answer (an HTTP error page) to quote it.
const NOT_GRPC_BODY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A safe summary of a non-gRPC answer: its media type (letters, digits
/// and `/+.-` only, at most 64 of them) and body size.
fn not_grpc_summary(headers: &HeaderMap, size: Option<usize>) -> String {
    let media: String = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "/+.-".contains(*c))
        .take(64)
        .collect();
    let media = if media.is_empty() {
        "no content type".into()
    } else {
        media
    };
    match size {
        Some(n) => format!("{media}, {n}-byte body not shown"),
        None => format!("{media}, body not shown"),
    }
}

/// How long an answer may wait for buffer space when the budget is in use.
const ANSWER_BUDGET_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One message as read: the framed bytes as they came, and the plain
/// message (inflated when the frame was compressed).
struct Message {
    framed: Bytes,
    compressed: bool,
    plain: Bytes,
}

fn encoding(headers: &HeaderMap) -> Option<&str> {
    headers.get(GRPC_ENCODING).and_then(|v| v.to_str().ok())
}

/// A unary call through every phase after classification.
pub(super) async fn call(
    p: &Proxy,
    method: &Method,
    caller: Caller<'_>,
    req: Request<Incoming>,
) -> Result<Routed, ProxyError> {
    let (mut parts, body) = req.into_parts();
    authorize_head(&caller, &parts.headers)?;
    let mut held = p.budget.hold();
    let message = read(p, body, &parts.headers, &mut held).await?;
    let namespace = authorize(p, &caller, method, &message.plain, &parts.headers)?;
    let upstream = route(p, namespace, &parts.headers)?;
    let mut session = p.codec.session(namespace);
    let (body, encoded) = encode(p, method, &mut session, &message).await?;
    // The request's buffers are not needed past here; a long poll would
    // otherwise hold them (and the receive buffer they share) for minutes.
    drop(message);
    let body = translate(
        p,
        &upstream,
        method.input,
        body,
        Some(&mut parts.headers),
        true,
    )?;
    audit(p, method, &session, &upstream, &body)?;
    // From here the request's bytes count as the one body being sent (the
    // encoded copy existed beside the input only within the encode step).
    held.set_to(body.len()).await?;
    let (mut parts, answer) = send(p, method, &upstream, parts, body, &mut held).await?;
    let (body, trailers, decoded) = decode(
        p, method, &session, &upstream, &mut parts, answer, &mut held,
    )
    .await?;
    tracing::Span::current().record("payloads", encoded + decoded);
    Ok(respond(parts, body, trailers, held, upstream))
}

/// Before any work: a caller no rule matches, or one whose header names a
/// namespace it may not use, is refused without reading the body.
fn authorize_head(caller: &Caller<'_>, headers: &HeaderMap) -> Result<(), ProxyError> {
    caller.known()?;
    if let Some(h) = headers::namespace(headers) {
        caller.may_use(h)?;
    }
    Ok(())
}

/// Read: the body, bounded by size, budget and time, as exactly one message.
async fn read(
    p: &Proxy,
    body: Incoming,
    headers: &HeaderMap,
    held: &mut Held,
) -> Result<Message, ProxyError> {
    let limit = p.config.max_message_bytes;
    let whole = body::read(body, limit, held, Some(p.config.request_body_timeout))
        .await
        .map_err(request_error)?;
    let framed = whole.bytes;
    let frame = body::one_message(framed.clone(), limit)
        .map_err(ProxyError::RequestFrame)?
        .ok_or(ProxyError::NoMessage)?;
    let compressed = frame.compressed;
    let plain = body::plain(frame, encoding(headers), limit, held)
        .await
        .map_err(request_error)?;
    Ok(Message {
        framed,
        compressed,
        plain,
    })
}

fn request_error(e: BodyError) -> ProxyError {
    match e {
        BodyError::Frame(f) => ProxyError::RequestFrame(f),
        BodyError::Budget(b) => ProxyError::Budget(b),
        BodyError::TooLarge { limit } => ProxyError::RequestTooLarge { limit },
        BodyError::Timeout(t) => ProxyError::RequestTimeout(t),
        BodyError::Read(r) => ProxyError::RequestBody(r),
    }
}

/// Authorize: the call's namespace (its header, else its own `namespace`
/// field; the two must agree) and every other namespace its body names, at
/// any depth, must be allowed to the caller. Returns the namespace routing,
/// keys and translation use.
fn authorize<'a>(
    p: &Proxy,
    caller: &Caller<'_>,
    method: &Method,
    message: &'a [u8],
    headers: &'a HeaderMap,
) -> Result<&'a str, ProxyError> {
    if !p.inbound().checks_callers() {
        return namespace(method, message, headers);
    }
    // Every name first: a caller learns nothing about a namespace it may
    // not use, not even that the header and the body disagree.
    let mut names = Names::default();
    rewrite(&p.namespace_schema, method.input, message, &mut names).map_err(|e| {
        ProxyError::MalformedRequest {
            message: p.schema.message(method.input).name().to_string(),
            source: e,
        }
    })?;
    if let Some(h) = headers::namespace(headers) {
        names.names.insert(h.to_string());
    }
    if names.not_utf8 {
        return Err(ProxyError::NamespaceNotText);
    }
    let cluster_level = if method.namespace_field.is_none() {
        // The request has no namespace of its own (ListNamespaces, cluster
        // and Nexus endpoint administration): a header cannot scope it.
        // The SDKs' handshake needs only a known caller.
        &*method.name != "GetSystemInfo"
    } else {
        // A namespace by id cannot be checked against name rules; a call
        // naming no namespace at all is not scoped to one.
        method.names_namespace_id(message) || names.names.is_empty()
    };
    // (A known caller was required before the body was read.)
    if cluster_level {
        caller.may_use("")?;
    }
    for name in &names.names {
        caller.may_use(name)?;
    }
    namespace(method, message, headers)
}

/// Route: the upstream that serves the authorized namespace.
fn route(p: &Proxy, namespace: &str, headers: &HeaderMap) -> Result<Arc<Upstream>, ProxyError> {
    Ok(p.router().pick(namespace, headers)?)
}

/// The namespace a call is for: its `temporal-namespace` header, else the
/// request's own `namespace` field, else none (`""`: the system upstream and
/// the default key policy). A header that contradicts the field is refused:
/// routing, keys and authorization must all see the same namespace the
/// server stores the data under.
fn namespace<'a>(
    method: &Method,
    message: &'a [u8],
    headers: &'a HeaderMap,
) -> Result<&'a str, ProxyError> {
    let body = method.namespace_of(message);
    match (headers::namespace(headers), body) {
        (Some(h), Some(b)) if h != b => Err(ProxyError::NamespaceMismatch {
            header: h.to_string(),
            body: b.to_string(),
        }),
        (Some(h), _) => Ok(h),
        (None, Some(b)) => Ok(b),
        (None, None) => Ok(""),
    }
}

/// Encode: every payload of the request through the codec chain; the body
/// to send, framed and uncompressed, and how many payloads changed.
async fn encode(
    p: &Proxy,
    method: &Method,
    session: &mut Session,
    message: &Message,
) -> Result<(Bytes, u64), ProxyError> {
    let (body, n) = session
        .encode_with(|e| {
            rewrite_framed(p, message, method.input, e, Direction::Encode).map_err(|e| match e {
                Framing::TooLarge(len) => ProxyError::EncodedTooLarge {
                    len,
                    limit: p.config.max_message_bytes,
                },
                Framing::Rewrite(e) if e.is_malformed() => ProxyError::MalformedRequest {
                    message: p.schema.message(method.input).name().to_string(),
                    source: e,
                },
                Framing::Rewrite(e) => ProxyError::Encode(e),
            })
        })
        .await?;
    Ok((body, n))
}

enum Framing {
    TooLarge(usize),
    Rewrite(crate::rewrite::RewriteError),
}

/// Rewrites one message as message `id` with `visitor`; returns the framed
/// body and how many payloads changed, and records the codec time. Nothing
/// changed and nothing compressed: the very bytes that came in.
fn rewrite_framed<V: PayloadVisitor>(
    p: &Proxy,
    message: &Message,
    id: MessageId,
    visitor: V,
    direction: Direction,
) -> Result<(Bytes, u64), Framing> {
    let started = Instant::now();
    let mut v = Counting {
        inner: visitor,
        changed: 0,
    };
    let new = rewrite_patched(&p.schema, id, &message.plain, &mut v).map_err(Framing::Rewrite)?;
    if new.len() > p.config.max_message_bytes {
        return Err(Framing::TooLarge(new.len()));
    }
    let out = if !message.compressed && !new.changed() {
        message.framed.clone()
    } else {
        frame_one(&new)
    };
    p.metrics
        .codec_duration(direction)
        .record(started.elapsed().as_secs_f64());
    Ok((out, v.changed))
}

/// Frames a rewritten message (uncompressed), written once straight into a
/// buffer of the exact size.
fn frame_one(message: &Rewritten<'_>) -> Bytes {
    let mut out = BytesMut::with_capacity(frame::HEADER + message.len());
    frame::push_header(&mut out, message.len());
    message.write_to(&mut out);
    out.freeze()
}

/// Renames the namespaces in an uncompressed one-message body (towards the
/// upstream when `up`, back otherwise) and in `temporal-namespace`.
fn translate(
    p: &Proxy,
    upstream: &Upstream,
    id: MessageId,
    body: Bytes,
    headers: Option<&mut HeaderMap>,
    up: bool,
) -> Result<Bytes, ProxyError> {
    let Some(t) = upstream.translation() else {
        return Ok(body);
    };
    if let Some(h) = headers
        && let Some(v) = headers::namespace(h)
    {
        let new = if up { t.to_upstream(v) } else { t.to_local(v) };
        if let Ok(v) = http::HeaderValue::from_str(&new) {
            h.insert(headers::NAMESPACE, v);
        }
    }
    let limit = p.config.max_message_bytes;
    let frames =
        frame::split(body.clone(), limit.saturating_mul(2)).map_err(|e| ProxyError::Response {
            upstream: upstream.name().to_string(),
            reason: e.to_string(),
        })?;
    let Some(f) = frames.first() else {
        return Ok(body);
    };
    let mut visitor = crate::translate::Rename {
        translation: t,
        up,
        seen: Default::default(),
    };
    // The codec's pass parsed this message already; a message its
    // namespace plan cannot walk is left as it is.
    match rewrite_patched(&p.namespace_schema, id, &f.message, &mut visitor) {
        Ok(new) if new.changed() => Ok(frame_one(&new)),
        _ => Ok(body),
    }
}

/// Audit: the request as it will leave, walked field by field (not by the
/// plan): a field or Any type the schema lacks is refused (or, when the
/// operator chose to forward them, counted and warned about once per
/// type and field); a payload still plaintext is refused (the tripwire).
fn audit(
    p: &Proxy,
    method: &Method,
    session: &Session,
    upstream: &Upstream,
    body: &[u8],
) -> Result<(), ProxyError> {
    use crate::rewrite::audit::{Checks, Finding, audit};
    let Some(sent) = body.get(frame::HEADER..) else {
        return Ok(());
    };
    let checks = Checks {
        unknown: true,
        plaintext: session.encrypts(),
        own: crate::codec::ENCODING_ENCRYPTED,
        max_payload: upstream.options().max_payload_bytes,
    };
    // The size guard, on the message as it will be sent (payloads first,
    // in the audit: the more specific cause).
    let limit = upstream.options().max_request_bytes;
    let whole = || {
        if sent.len() > limit {
            return Err(ProxyError::OverUpstreamLimit {
                what: "the request".into(),
                size: sent.len(),
                limit,
                setting: "max_request_bytes",
                upstream: upstream.name().to_string(),
            });
        }
        Ok(())
    };
    let found = match audit(&p.schema, method.input, sent, checks) {
        Ok(()) => return whole(),
        Err(f) => f,
    };
    let (Finding::UnknownField { message, .. } | Finding::UnknownAny { message, .. }) = &found
    else {
        return Err(finding_error(p, method, upstream, found));
    };
    let forward = p.config.forward_unknown_fields;
    let action = if forward { "forwarded" } else { "refused" };
    p.metrics.unknown_fields.add(
        1,
        &[
            KeyValue::new("message", message.clone()),
            KeyValue::new("action", action),
        ],
    );
    let number = match &found {
        Finding::UnknownField { number, .. } => *number,
        _ => 0,
    };
    let first = p
        .warned
        .lock()
        .map(|mut w| w.len() < 1024 && w.insert((message.clone(), number)))
        .unwrap_or(false);
    if first {
        tracing::warn!(method = %method.path, finding = %found, action, "request carries what the schema lacks");
    }
    if !forward {
        return Err(ProxyError::Unclassified(found, p.schema.info().label()));
    }
    // Forwarded: the tripwire still looks at every payload.
    let checks = Checks {
        unknown: false,
        ..checks
    };
    audit(&p.schema, method.input, sent, checks)
        .map_err(|f| finding_error(p, method, upstream, f))?;
    whole()
}

/// What the audit found, as the call's error: a request that does not
/// parse is malformed; a plaintext payload trips the wire (and is counted).
fn finding_error(
    p: &Proxy,
    method: &Method,
    upstream: &Upstream,
    f: crate::rewrite::audit::Finding,
) -> ProxyError {
    use crate::rewrite::audit::Finding;
    match f {
        Finding::PayloadTooLarge { message, size } => ProxyError::OverUpstreamLimit {
            what: format!("payloads in {message}"),
            size,
            limit: upstream.options().max_payload_bytes,
            setting: "max_payload_bytes",
            upstream: upstream.name().to_string(),
        },
        Finding::Malformed(e) => ProxyError::MalformedRequest {
            message: p.schema.message(method.input).name().to_string(),
            source: e.into(),
        },
        Finding::Plaintext { ref message, .. } => {
            p.metrics
                .plaintext_refused
                .add(1, &[KeyValue::new("message", message.clone())]);
            ProxyError::PlaintextRefused(f)
        }
        other => ProxyError::Unclassified(other, p.schema.info().label()),
    }
}

/// Send: the request upstream, and its answer read whole (bounded by size
/// and budget), within the call's `grpc-timeout`.
async fn send(
    p: &Proxy,
    method: &Method,
    upstream: &Arc<Upstream>,
    mut parts: request::Parts,
    body: Bytes,
    held: &mut Held,
) -> Result<(response::Parts, body::Whole), ProxyError> {
    let deadline = parts
        .headers
        .get(GRPC_TIMEOUT)
        .and_then(grpc::parse_timeout);
    headers::clean_request(
        &mut parts.headers,
        p.config.forward_authorization || upstream.forwards_authorization(),
        &p.config.credential_headers,
    );
    // The frame now goes out uncompressed (flag 0), so no encoding is declared.
    parts.headers.remove(GRPC_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    telemetry::inject_current(&mut parts.headers);
    // Made again for a transparent retry (the upstream had not taken it):
    // the body is one buffered message, so a copy costs a reference count.
    let make = || {
        let mut up = Request::new(body.clone());
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = parts.uri.clone();
        *up.version_mut() = parts.version;
        *up.headers_mut() = parts.headers.clone();
        upstream.prepare(&mut up);
        up
    };
    let limit = p.config.max_message_bytes;
    // The upstream has acted on the call by now: its answer waits a while
    // for buffer space rather than being dropped.
    held.wait_up_to(ANSWER_BUDGET_WAIT);
    let sent = Instant::now();
    let exchange = async {
        let resp = upstream.send_unary(body.len(), make).await?;
        let (parts, body) = resp.into_parts();
        if !grpc::is_grpc(&parts.headers) {
            // An HTTP answer from something in front of Temporal (a load
            // balancer, nginx refusing a certificate or an API key). Its
            // body is never quoted: a hop that echoes request headers would
            // hand the upstream's credentials to the caller and the logs.
            // Only its media type (a short token) and size are said.
            let mut scratch = p.budget.hold();
            // Boxed: rare, and the timed read would size the future every
            // call holds while it waits for its answer.
            let reading = Box::pin(body::read(
                body,
                64 << 10,
                &mut scratch,
                Some(NOT_GRPC_BODY_WAIT),
            ));
            let size = reading.await.map(|w| w.bytes.len()).ok();
            return Err(ProxyError::NotGrpc {
                upstream: upstream.name().to_string(),
                status: parts.status.as_u16(),
                summary: not_grpc_summary(&parts.headers, size),
            });
        }
        // The request is sent: its bytes go back before the answer's come.
        held.release();
        let whole = body::read_all(body, limit, held)
            .await
            .map_err(|e| response_error(upstream, e))?;
        Ok::<_, ProxyError>((parts, whole))
    };
    let answer = match deadline {
        Some(d) => {
            tokio::time::timeout(d, exchange)
                .await
                .map_err(|_| ProxyError::Deadline {
                    deadline: d,
                    upstream: upstream.name().to_string(),
                })??
        }
        None => exchange.await?,
    };
    p.metrics
        .upstream_duration(&method.name, sent.elapsed().as_secs_f64());
    Ok(answer)
}

fn response_error(upstream: &Upstream, e: BodyError) -> ProxyError {
    match e {
        BodyError::Budget(b) => ProxyError::Budget(b),
        other => ProxyError::Response {
            upstream: upstream.name().to_string(),
            reason: other.to_string(),
        },
    }
}

/// Decode: the answer's payloads, those in `grpc-status-details-bin` too
/// (headers of a trailers-only answer, or trailers); returns the body, the
/// trailers and how many payloads changed.
async fn decode(
    p: &Proxy,
    method: &Method,
    session: &Session,
    upstream: &Upstream,
    parts: &mut response::Parts,
    answer: body::Whole,
    held: &mut Held,
) -> Result<(Bytes, Option<HeaderMap>, u64), ProxyError> {
    headers::clean_response(&mut parts.headers);
    let limit = p.config.max_message_bytes;
    let mut trailers = answer.trailers;
    let frame = body::one_message(answer.bytes.clone(), limit)
        .map_err(|e| response_error(upstream, e.into()))?;
    let message = match frame {
        Some(f) => {
            let compressed = f.compressed;
            let plain = body::plain(f, encoding(&parts.headers), limit, held)
                .await
                .map_err(|e| response_error(upstream, e))?;
            Some(Message {
                framed: answer.bytes,
                compressed,
                plain,
            })
        }
        None => None,
    };
    let (body, decoded) = session
        .decode_with(|d| {
            decode_details(p, &mut parts.headers, d)?;
            if let Some(t) = trailers.as_mut() {
                decode_details(p, t, d)?;
            }
            let Some(m) = &message else {
                return Ok((Bytes::new(), 0));
            };
            rewrite_framed(p, m, method.output, d, Direction::Decode).map_err(|e| match e {
                Framing::TooLarge(len) => ProxyError::Response {
                    upstream: upstream.name().to_string(),
                    reason: format!("decoded message of {len} bytes is over the limit"),
                },
                Framing::Rewrite(e) => ProxyError::Decode(e),
            })
        })
        .await?;
    if let Some(m) = &message {
        count_unknown(p, method, &m.plain);
    }
    drop(message);
    let body = translate(p, upstream, method.output, body, None, false)?;
    let body = raise_blob_limit(p, method, session, body);
    // The decoded answer (snappy may have grown it) is what stays buffered.
    held.set_to(body.len()).await?;
    parts.headers.remove(GRPC_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok((body, trailers, decoded))
}

/// A namespace whose large payloads sealgate offloads accepts payloads
/// far larger than the server's own limit (the server sees references):
/// DescribeNamespace says so, in `namespace_info.limits
/// .blob_size_limit_error`, which the SDKs enforce on what workers send.
/// The limit becomes the largest object sealgate stores, within the
/// largest message it buffers. Every other byte stays as the server sent it.
fn raise_blob_limit(p: &Proxy, method: &Method, session: &Session, body: Bytes) -> Bytes {
    if &*method.name != "DescribeNamespace" || !session.offloads() || body.first() != Some(&0) {
        return body;
    }
    let Some(message) = body.get(frame::HEADER..) else {
        return body;
    };
    let limit = crate::storage::MAX_OBJECT.min(p.config.max_message_bytes) as u64;
    // namespace_info (1) . limits (8) . blob_size_limit_error (1)
    match crate::wire::set_varint_at(message, &[1, 8], 1, limit) {
        Some(patched) => {
            let mut framed = Vec::with_capacity(frame::HEADER + patched.len());
            framed.push(0);
            framed.extend_from_slice(&(patched.len() as u32).to_be_bytes());
            framed.extend_from_slice(&patched);
            Bytes::from(framed)
        }
        None => body,
    }
}

/// One response in this many is audited for fields the schema lacks.
const RESPONSE_AUDIT_EVERY: u64 = 256;

/// Counts what a response carries that the schema lacks (a newer server's
/// fields: they pass to the caller as they are). A full walk of every
/// response would cost as much as decoding it, so the first response and
/// then one in [`RESPONSE_AUDIT_EVERY`] are walked; drift shows within a
/// few hundred calls of the method that carries it.
fn count_unknown(p: &Proxy, method: &Method, response: &[u8]) {
    use crate::rewrite::audit::{Checks, Finding, audit};
    let n = p
        .response_audits
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if !n.is_multiple_of(RESPONSE_AUDIT_EVERY) {
        return;
    }
    let checks = Checks {
        unknown: true,
        plaintext: false,
        own: crate::codec::ENCODING_ENCRYPTED,
        max_payload: usize::MAX,
    };
    let Err(found) = audit(&p.schema, method.output, response, checks) else {
        return;
    };
    let (message, number) = match &found {
        Finding::UnknownField { message, number } => (message.clone(), *number),
        Finding::UnknownAny { message, .. } => (message.clone(), 0),
        _ => return, // malformed: decoding already judged it
    };
    p.metrics.unknown_fields.add(
        1,
        &[
            KeyValue::new("message", message.clone()),
            KeyValue::new("action", "passed"),
        ],
    );
    let first = p
        .warned
        .lock()
        .map(|mut w| w.len() < 1024 && w.insert((message, number)))
        .unwrap_or(false);
    if first {
        tracing::warn!(method = %method.path, finding = %found, "response carries what the schema lacks; it reaches the caller as it is, and payloads in it are not decoded");
    }
}

/// Decodes payloads inside `grpc-status-details-bin` (a google.rpc.Status
/// whose Any details, e.g. QueryFailedFailure, may carry failures).
fn decode_details(
    p: &Proxy,
    headers: &mut HeaderMap,
    decoder: &mut Decoder<'_>,
) -> Result<(), ProxyError> {
    let Some(Ok(bytes)) = grpc::status_details(headers) else {
        return Ok(()); // absent, or not base64: not ours to judge
    };
    let Some(status) = p.schema.message_id(RPC_STATUS) else {
        return Ok(());
    };
    match rewrite(&p.schema, status, &bytes, decoder) {
        Ok(std::borrow::Cow::Owned(new)) => {
            let new = restore_query_message(headers, new);
            grpc::set_status_details(headers, &new);
        }
        Ok(std::borrow::Cow::Borrowed(_)) => {}
        Err(e) if e.is_malformed() => {} // pass through what we cannot parse
        Err(e) => return Err(ProxyError::Decode(e)),
    }
    Ok(())
}

/// A failed query's message is the failure's `error_message`, which
/// sealgate encoded as `Encoded failure`; the decoded `QueryFailedFailure`
/// in the details has the text. It goes back where callers read it: the
/// `grpc-message` header (grpc-java) and the details' own `message`
/// (grpc-go takes the status from the details when they are present). A
/// failure sealgate made from a bare `error_message` (`source:
/// "sealgate"`) is dropped again, so the caller sees what its SDK sent.
/// Returns the details to send.
fn restore_query_message(headers: &mut HeaderMap, status: Vec<u8>) -> Vec<u8> {
    use crate::rewrite::{last_len_field, query::MADE_BY, top_level_string, wire};
    const QUERY_FAILED: &[u8] = b"temporal.api.errordetails.v1.QueryFailedFailure";
    const ENCODED: &str = "Encoded failure";
    // (the failure's message, whether sealgate made it)
    let query_failure = |any: &[u8]| -> Option<(String, bool)> {
        let (url, value) = wire::len_pair(any, 8).ok()?;
        if !url.ends_with(QUERY_FAILED) {
            return None;
        }
        let failure = last_len_field(value, 1)?;
        let text = top_level_string(failure, 1).filter(|t| !t.is_empty() && *t != ENCODED)?;
        Some((
            text.to_string(),
            top_level_string(failure, 2) == Some(MADE_BY),
        ))
    };
    let found = wire::Fields::new(&status, 8)
        .filter_map(Result::ok)
        .filter(|(tag, _)| tag.field == 3 && tag.wire_type == wire::LEN)
        .find_map(|(_, any)| query_failure(any));
    let Some((text, made)) = found else {
        return status;
    };
    if headers.get(GRPC_MESSAGE).map(|v| v.as_bytes()) == Some(ENCODED.as_bytes())
        && let Ok(v) = http::HeaderValue::from_str(&grpc::percent_encode(&text))
    {
        headers.insert(GRPC_MESSAGE, v);
    }
    let message = top_level_string(&status, 2) == Some(ENCODED);
    if !message && !made {
        return status;
    }
    // google.rpc.Status { message = 2, details = 3 } rewritten; the rest kept.
    let mut out = Vec::with_capacity(status.len() + text.len());
    for f in wire::RawFields::new(&status, 8) {
        let Ok((tag, any, raw)) = f else {
            return status;
        };
        if tag.field == 2 && tag.wire_type == wire::LEN && message {
            wire::write_len_field(2, text.as_bytes(), &mut out);
            continue;
        }
        if tag.field == 3
            && tag.wire_type == wire::LEN
            && made
            && query_failure(any).is_some_and(|(_, m)| m)
            && let Ok((url, _)) = wire::len_pair(any, 8)
        {
            // The Any again, its QueryFailedFailure empty, as the SDK sent it.
            let mut empty = Vec::with_capacity(url.len() + 4);
            wire::write_len_field(1, url, &mut empty);
            wire::write_len_field(3, &empty, &mut out);
            continue;
        }
        out.extend_from_slice(raw);
    }
    out
}

/// Respond: the answer as the upstream shaped it. A trailers-only answer
/// (the status in the headers, no body) goes back trailers-only: one
/// HEADERS frame with END_STREAM, which is what grpc-go, grpc-js and
/// grpc-core need to see the status. The body keeps its budget bytes
/// until it has been sent.
fn respond(
    parts: response::Parts,
    body: Bytes,
    trailers: Option<HeaderMap>,
    mut held: Held,
    upstream: Arc<Upstream>,
) -> Routed {
    let code = if parts.headers.contains_key(GRPC_STATUS) {
        code_label(Some(&parts.headers))
    } else {
        code_label(trailers.as_ref())
    };
    let trailers_only = parts.headers.contains_key(GRPC_STATUS) && body.is_empty();
    let body = if trailers_only {
        Buffered::empty()
    } else {
        // What stays buffered: the answer on its way to the caller.
        held.shrink_to(body.len());
        Buffered::new(body, trailers, held)
    };
    let body = body.map_err(|never| match never {}).boxed_unsync();
    (Response::from_parts(parts, body), code, Some(upstream))
}
