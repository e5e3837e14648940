//! Forwarding: buffered and rewritten for unary WorkflowService calls,
//! streamed through for everything else.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, Response, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::{Proxy, ProxyError};
use crate::{
    grpc::{self, GRPC_ENCODING, GRPC_TIMEOUT, frame},
    rewrite::rewrite,
    schema::{MessageId, Method, RPC_STATUS},
    upstream::Body,
};

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
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// Streams a call through untouched (but for hop-by-hop headers).
pub(super) async fn stream(
    p: &Proxy,
    req: Request<Incoming>,
) -> Result<Response<Body>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    clean_request(&mut parts.headers, p.config.forward_authorization);
    let mut up = Request::from_parts(parts, body.boxed());
    p.upstream.prepare(&mut up);
    let resp = p.upstream.send(up).await?;
    let (mut parts, body) = resp.into_parts();
    clean_response(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
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

/// Rewrites each frame of a buffered body as message `id`.
fn rewrite_frames<E>(
    p: &Proxy,
    body: Bytes,
    encoding: Option<&str>,
    id: MessageId,
    encode: bool,
    frame_err: impl Fn(frame::FrameError) -> E,
    rewrite_err: impl Fn(crate::rewrite::RewriteError) -> E,
) -> Result<Bytes, E> {
    let limit = p.config.max_message_bytes;
    let frames = frame::split(body, limit).map_err(&frame_err)?;
    let mut out = BytesMut::new();
    for f in &frames {
        let message = frame::plain(f, encoding, limit).map_err(&frame_err)?;
        let new = if encode {
            rewrite(&p.schema, id, &message, &mut p.chain.encoder())
        } else {
            rewrite(&p.schema, id, &message, &mut p.chain.decoder())
        }
        .map_err(&rewrite_err)?;
        if new.len() > limit {
            return Err(frame_err(frame::FrameError::TooLarge {
                len: new.len(),
                limit,
            }));
        }
        frame::push(&mut out, &new);
    }
    Ok(out.freeze())
}

/// Decodes payloads inside `grpc-status-details-bin` (a google.rpc.Status
/// whose Any details, e.g. QueryFailedFailure, may carry failures).
fn decode_details(p: &Proxy, headers: &mut HeaderMap) -> Result<(), ProxyError> {
    let Some(Ok(bytes)) = grpc::status_details(headers) else {
        return Ok(()); // absent, or not base64: not ours to judge
    };
    let Some(status) = p.schema.message_id(RPC_STATUS) else {
        return Ok(());
    };
    match rewrite(&p.schema, status, &bytes, &mut p.chain.decoder()) {
        Ok(std::borrow::Cow::Owned(new)) => grpc::set_status_details(headers, &new),
        Ok(std::borrow::Cow::Borrowed(_)) => {}
        Err(e) if e.is_malformed() => {} // pass through what we cannot parse
        Err(e) => return Err(ProxyError::Decode(e)),
    }
    Ok(())
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
) -> Result<Response<Body>, ProxyError> {
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
    let input = p.schema.message(method.input).name().to_string();
    let body = rewrite_frames(
        p,
        body,
        encoding(&parts.headers).as_deref(),
        method.input,
        true,
        ProxyError::RequestFrame,
        |e| {
            if e.is_malformed() {
                ProxyError::MalformedRequest {
                    message: input.clone(),
                    source: e,
                }
            } else {
                ProxyError::Encode(e)
            }
        },
    )?;

    clean_request(&mut parts.headers, p.config.forward_authorization);
    // Frames now go out uncompressed (flag 0), so no encoding is declared.
    parts.headers.remove(GRPC_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut up = Request::from_parts(parts, full(body));
    p.upstream.prepare(&mut up);

    let exchange = async {
        let resp = p.upstream.send(up).await?;
        let (parts, body) = resp.into_parts();
        if !grpc::is_grpc(&parts.headers) {
            // An HTTP answer from something in front of Temporal (a load
            // balancer, nginx refusing a certificate or an API key).
            let text = collect(body, 1024)
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            return Err(ProxyError::NotGrpc {
                upstream: p.upstream.name().to_string(),
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
                upstream: p.upstream.name().to_string(),
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
                    upstream: p.upstream.name().to_string(),
                })??
        }
        None => exchange.await?,
    };
    clean_response(&mut parts.headers);
    // Trailers-only responses carry the status (and details) in the headers.
    decode_details(p, &mut parts.headers)?;
    let mut trailers = collected.trailers().cloned();
    if let Some(t) = trailers.as_mut() {
        decode_details(p, t)?;
    }
    let upstream = p.upstream.name().to_string();
    let body = rewrite_frames(
        p,
        collected.to_bytes(),
        encoding(&parts.headers).as_deref(),
        method.output,
        false,
        |e| ProxyError::Response {
            upstream: upstream.clone(),
            reason: e.to_string(),
        },
        ProxyError::Decode,
    )?;
    parts.headers.remove(GRPC_ENCODING);
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = Full::new(body)
        .with_trailers(async move { trailers.map(Ok) })
        .map_err(|never| match never {})
        .boxed();
    Ok(Response::from_parts(parts, body))
}
