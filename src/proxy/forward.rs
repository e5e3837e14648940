//! Forwarding: buffered and rewritten for unary WorkflowService calls,
//! streamed through for everything else.

use std::{sync::Arc, time::Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use opentelemetry::KeyValue;

use super::{Proxy, ProxyError};
use crate::{
    codec::{CodecError, Decoder},
    grpc::{self, GRPC_ENCODING, GRPC_STATUS, GRPC_TIMEOUT, frame},
    inbound::Peer,
    rewrite::{FailureMode, PayloadVisitor, Rewritten, rewrite, rewrite_patched},
    schema::{MessageId, Method, RPC_STATUS},
    telemetry,
    upstream::{Body, BoxError, Upstream},
};

/// The status a call ended with, as a metric label: the gRPC code, or
/// `stream` for a streamed response whose status arrives later.
pub(super) type Code = &'static str;

/// A response, its status label, and the upstream that served it (none
/// when sealgate answered itself).
pub(super) type Routed = (Response<Body>, Code, Option<Arc<Upstream>>);

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

    fn failure_mode(&self) -> FailureMode {
        self.inner.failure_mode()
    }
}

/// `grpc-status` as a bounded label value.
fn code_label(headers: Option<&HeaderMap>) -> Code {
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

fn clean_request(headers: &mut HeaderMap, forward_authorization: bool) {
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    if !forward_authorization {
        // The caller's credentials are for sealgate, not for the upstream.
        headers.remove(header::AUTHORIZATION);
    }
}

fn clean_response(headers: &mut HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Streams a call through untouched (but for hop-by-hop headers), to the
/// upstream its `temporal-namespace` header routes it to.
pub(super) async fn stream(
    p: &Proxy,
    req: Request<Incoming>,
    peer: &Peer,
) -> Result<Routed, ProxyError> {
    let namespace = req
        .headers()
        .get("temporal-namespace")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let namespace = namespace.as_str();
    p.inbound.authorize(peer, req.headers(), namespace).await?;
    let upstream = p.router.pick(namespace, req.headers())?;
    let (mut parts, body) = req.into_parts();
    if let Some(t) = upstream.translation()
        && !namespace.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&t.to_upstream(namespace))
    {
        parts.headers.insert("temporal-namespace", v);
    }
    clean_request(
        &mut parts.headers,
        p.config.forward_authorization || upstream.forwards_authorization(),
    );
    telemetry::inject_current(&mut parts.headers);
    let mut up = Request::from_parts(parts, body.map_err(BoxError::from).boxed_unsync());
    upstream.prepare(&mut up);
    let resp = upstream.send(up).await?;
    let (mut parts, body) = resp.into_parts();
    clean_response(&mut parts.headers);
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

/// Reads a whole body, at most `limit` bytes of frames.
async fn collect(
    body: Incoming,
    limit: usize,
) -> Result<http_body_util::Collected<Bytes>, CollectError> {
    // A frame header is 5 bytes; the frame checks enforce the exact limit.
    Limited::new(body, limit.saturating_add(5))
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                CollectError::TooLarge
            } else {
                CollectError::Read(crate::upstream::error_chain(&*e))
            }
        })
}

enum CollectError {
    TooLarge,
    Read(String),
}

/// A buffered body split into frames, each message decompressed.
struct Messages {
    original: Bytes,
    any_compressed: bool,
    plain: Vec<Bytes>,
}

fn unframe<E>(
    p: &Proxy,
    body: Bytes,
    encoding: Option<&str>,
    frame_err: impl Fn(frame::FrameError) -> E,
) -> Result<Messages, E> {
    let limit = p.config.max_message_bytes;
    let frames = frame::split(body.clone(), limit).map_err(&frame_err)?;
    let plain = frames
        .iter()
        .map(|f| frame::plain(f, encoding, limit))
        .collect::<Result<Vec<_>, _>>()
        .map_err(&frame_err)?;
    Ok(Messages {
        original: body,
        any_compressed: frames.iter().any(|f| f.compressed),
        plain,
    })
}

/// Rewrites each message as message `id` with `visitor`; returns the new
/// body and how many payloads changed, and records the codec time.
fn reframe<V: PayloadVisitor, E>(
    p: &Proxy,
    messages: &Messages,
    id: MessageId,
    visitor: V,
    direction: &'static str,
    frame_err: impl Fn(frame::FrameError) -> E,
    rewrite_err: impl Fn(crate::rewrite::RewriteError) -> E,
) -> Result<(Bytes, u64), E> {
    let limit = p.config.max_message_bytes;
    let started = Instant::now();
    let mut v = Counting {
        inner: visitor,
        changed: 0,
    };
    let mut rewritten = Vec::with_capacity(messages.plain.len());
    for message in &messages.plain {
        let new = rewrite_patched(&p.schema, id, message, &mut v).map_err(&rewrite_err)?;
        if new.len() > limit {
            return Err(frame_err(frame::FrameError::TooLarge {
                len: new.len(),
                limit,
            }));
        }
        rewritten.push(new);
    }
    let out = if !messages.any_compressed && rewritten.iter().all(|r| !r.changed()) {
        // Nothing changed and nothing was compressed: forward the very bytes.
        messages.original.clone()
    } else {
        frame_all(&rewritten)
    };
    p.metrics.codec_duration.record(
        started.elapsed().as_secs_f64(),
        &[KeyValue::new("direction", direction)],
    );
    Ok((out, v.changed))
}

/// Renames the namespaces in every frame of an uncompressed body (towards
/// the upstream when `up`, back otherwise) and in `temporal-namespace`.
fn translate(
    p: &Proxy,
    upstream: &Upstream,
    id: MessageId,
    body: Bytes,
    headers: Option<&mut HeaderMap>,
    up: bool,
) -> Result<Bytes, ProxyError> {
    let (Some(t), Some(schema)) = (upstream.translation(), &p.namespace_schema) else {
        return Ok(body);
    };
    if let Some(h) = headers
        && let Some(v) = h.get("temporal-namespace").and_then(|v| v.to_str().ok())
    {
        let new = if up { t.to_upstream(v) } else { t.to_local(v) };
        if let Ok(v) = http::HeaderValue::from_str(&new) {
            h.insert("temporal-namespace", v);
        }
    }
    let limit = p.config.max_message_bytes;
    let frames =
        frame::split(body.clone(), limit.saturating_mul(2)).map_err(|e| ProxyError::Response {
            upstream: upstream.name().to_string(),
            reason: e.to_string(),
        })?;
    let mut visitor = crate::proxy::translate::Rename {
        translation: t,
        up,
        seen: Default::default(),
    };
    let mut rewritten = Vec::with_capacity(frames.len());
    for f in &frames {
        // The codec's pass parsed this message already; a message its
        // namespace plan cannot walk is left as it is.
        let new = rewrite_patched(schema, id, &f.message, &mut visitor).ok();
        rewritten.push(new.unwrap_or_else(|| Rewritten::unchanged(&f.message)));
    }
    Ok(if rewritten.iter().any(Rewritten::changed) {
        frame_all(&rewritten)
    } else {
        body
    })
}

/// Frames rewritten messages (uncompressed) into one body, each written
/// once, straight into a buffer of the exact size.
fn frame_all(messages: &[Rewritten<'_>]) -> Bytes {
    let size = messages.iter().map(|m| frame::HEADER + m.len()).sum();
    let mut out = BytesMut::with_capacity(size);
    for m in messages {
        frame::push_header(&mut out, m.len());
        m.write_to(&mut out);
    }
    debug_assert_eq!(out.len(), size, "framed length");
    out.freeze()
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
        Ok(std::borrow::Cow::Owned(new)) => grpc::set_status_details(headers, &new),
        Ok(std::borrow::Cow::Borrowed(_)) => {}
        Err(e) if e.is_malformed() => {} // pass through what we cannot parse
        Err(e) => return Err(ProxyError::Decode(e)),
    }
    Ok(())
}

/// The namespace a call is for: its `temporal-namespace` header, else the
/// request's own `namespace` field, else none (`""`: the system upstream and
/// the default key policy). A header that contradicts the field is refused:
/// routing, keys and (later) authorization must all see the same namespace
/// the server stores the data under.
fn namespace<'a>(
    method: &Method,
    first: Option<&'a Bytes>,
    headers: &'a HeaderMap,
) -> Result<&'a str, ProxyError> {
    let body = first.and_then(|m| method.namespace_of(m));
    let header = headers
        .get("temporal-namespace")
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.is_empty());
    match (header, body) {
        (Some(h), Some(b)) if h != b => Err(ProxyError::NamespaceMismatch {
            header: h.to_string(),
            body: b.to_string(),
        }),
        (Some(h), _) => Ok(h),
        (None, Some(b)) => Ok(b),
        (None, None) => Ok(""),
    }
}

fn encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get(GRPC_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// A unary WorkflowService call: encode, forward, decode.
pub(super) async fn unary(
    p: &Proxy,
    method: &Method,
    req: Request<Incoming>,
    peer: &Peer,
) -> Result<Routed, ProxyError> {
    let limit = p.config.max_message_bytes;
    let (mut parts, body) = req.into_parts();
    let deadline = parts
        .headers
        .get(GRPC_TIMEOUT)
        .and_then(grpc::parse_timeout);

    let body = match collect(body, limit).await {
        Ok(c) => c.to_bytes(),
        Err(CollectError::TooLarge) => return Err(ProxyError::RequestTooLarge { limit }),
        Err(CollectError::Read(e)) => return Err(ProxyError::RequestBody(e)),
    };
    let messages = unframe(
        p,
        body,
        encoding(&parts.headers).as_deref(),
        ProxyError::RequestFrame,
    )?;
    let ns = namespace(method, messages.plain.first(), &parts.headers)?;
    p.inbound.authorize(peer, &parts.headers, ns).await?;
    let upstream = p.router.pick(ns, &parts.headers)?;
    let mut session = p.codec.session(ns);
    let (body, encoded) = session
        .encode_with(|e| {
            reframe(
                p,
                &messages,
                method.input,
                e,
                "encode",
                ProxyError::RequestFrame,
                |e| {
                    if e.is_malformed() {
                        ProxyError::MalformedRequest {
                            message: p.schema.message(method.input).name().to_string(),
                            source: e,
                        }
                    } else {
                        ProxyError::Encode(e)
                    }
                },
            )
        })
        .await?;
    // The request's buffers are not needed past here; a long poll would
    // otherwise hold them (and the receive buffer they share) for minutes.
    drop(messages);
    let body = translate(
        p,
        &upstream,
        method.input,
        body,
        Some(&mut parts.headers),
        true,
    )?;

    clean_request(
        &mut parts.headers,
        p.config.forward_authorization || upstream.forwards_authorization(),
    );
    // Frames now go out uncompressed (flag 0), so no encoding is declared.
    parts.headers.remove(GRPC_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    telemetry::inject_current(&mut parts.headers);
    let mut up = Request::from_parts(parts, full(body));
    upstream.prepare(&mut up);

    let sent = Instant::now();
    let exchange = async {
        let resp = upstream.send(up).await?;
        let (parts, body) = resp.into_parts();
        if !grpc::is_grpc(&parts.headers) {
            // An HTTP answer from something in front of Temporal (a load
            // balancer, nginx refusing a certificate or an API key).
            let text = collect(body, 1024)
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(ProxyError::NotGrpc {
                upstream: upstream.name().to_string(),
                status: parts.status.as_u16(),
                body: String::from_utf8_lossy(&text[..text.len().min(200)])
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
            });
        }
        let collected = collect(body, limit)
            .await
            .map_err(|e| ProxyError::Response {
                upstream: upstream.name().to_string(),
                reason: match e {
                    CollectError::TooLarge => format!("body over the {limit}-byte limit"),
                    CollectError::Read(r) => r,
                },
            })?;
        Ok::<_, ProxyError>((parts, collected))
    };
    let (mut parts, collected) = match deadline {
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
    p.metrics.upstream_duration.record(
        sent.elapsed().as_secs_f64(),
        &[KeyValue::new("method", method.name.to_string())],
    );
    clean_response(&mut parts.headers);
    let mut trailers = collected.trailers().cloned();
    let upstream_name = upstream.name().to_string();
    let frame_err = |e: frame::FrameError| ProxyError::Response {
        upstream: upstream_name.clone(),
        reason: e.to_string(),
    };
    let messages = unframe(
        p,
        collected.to_bytes(),
        encoding(&parts.headers).as_deref(),
        frame_err,
    )?;
    let (body, decoded) = session
        .decode_with(|d| {
            // Trailers-only responses carry the status (and details) in the headers.
            decode_details(p, &mut parts.headers, d)?;
            if let Some(t) = trailers.as_mut() {
                decode_details(p, t, d)?;
            }
            reframe(
                p,
                &messages,
                method.output,
                d,
                "decode",
                frame_err,
                ProxyError::Decode,
            )
        })
        .await?;
    let body = translate(p, &upstream, method.output, body, None, false)?;
    parts.headers.remove(GRPC_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    tracing::Span::current().record("payloads", encoded + decoded);
    let code = if parts.headers.contains_key(GRPC_STATUS) {
        code_label(Some(&parts.headers))
    } else {
        code_label(trailers.as_ref())
    };
    let body = Full::new(body)
        .with_trailers(async move { trailers.map(Ok) })
        .map_err(|never| match never {})
        .boxed_unsync();
    Ok((Response::from_parts(parts, body), code, Some(upstream)))
}
