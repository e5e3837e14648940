//! Why a call failed, and the one place that turns it into a gRPC status.

use std::time::Duration;

use http::Response;
use thiserror::Error;

use crate::{
    codec::CodecError,
    grpc::{self, Code, frame::FrameError},
    rewrite::RewriteError,
    upstream::{Body, UpstreamError},
};

/// Whose fault a failure is, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The caller sent something sealgate cannot accept.
    Downstream,
    /// The upstream could not be reached or answered badly.
    Upstream,
    /// sealgate itself could not do its job (codec, keys).
    Internal,
}

#[derive(Debug, Error)]
pub enum ProxyError {
    #[error("service {service:?} is not served by this gateway (proxy.allowed_services)")]
    ServiceNotAllowed { service: String },
    #[error(
        "method {path} is not in sealgate's Temporal API schema ({schema}), so its payloads cannot be found and it is not forwarded; upgrade sealgate, or load a newer API with [schema] descriptor_set"
    )]
    UnknownMethod { path: String, schema: String },
    #[error("streaming method {method} carries payloads and sealgate rewrites only unary calls")]
    StreamingNotRewritten { method: String },
    #[error("{0}")]
    Head(super::headers::HeadError),
    #[error("{0}")]
    Budget(#[from] super::budget::Exhausted),
    #[error(
        "the request body did not arrive within {0:?} (proxy.request_body_timeout); nothing was forwarded"
    )]
    RequestTimeout(std::time::Duration),
    #[error(
        "EOF: the request carries no message, and a unary call carries exactly one; nothing was forwarded"
    )]
    NoMessage,
    #[error("a namespace field of the request is not UTF-8 text, so no rule can allow it")]
    NamespaceNotText,
    #[error(
        "{0}; nothing was forwarded. sealgate's schema is {1}: upgrade sealgate, load a newer API with [schema] descriptor_set, or (at your own risk) set [schema] unknown_request_fields = \"forward\""
    )]
    Unclassified(crate::rewrite::audit::Finding, String),
    #[error(
        "refused to forward plaintext: {0}; nothing was forwarded (a sealgate bug: please report it)"
    )]
    PlaintextRefused(crate::rewrite::audit::Finding),
    #[error("request: {0}")]
    RequestFrame(FrameError),
    #[error("request body is over the {limit}-byte limit (proxy.max_message_bytes)")]
    RequestTooLarge { limit: usize },
    #[error("reading the request body: {0}")]
    RequestBody(String),
    #[error("request is not a valid {message}: {source}")]
    MalformedRequest {
        message: String,
        #[source]
        source: RewriteError,
    },
    #[error("cannot encode the request's payloads, so nothing was sent upstream: {0}")]
    Encode(RewriteError),
    #[error(
        "encoded request is {len} bytes, over the {limit}-byte limit (proxy.max_message_bytes)"
    )]
    EncodedTooLarge { len: usize, limit: usize },
    #[error(
        "sealgate did not forward this call: {what} {size} bytes after encryption, over upstream \
         {upstream}'s limit of {limit} bytes ({setting} in [upstream_options] or [upstreams.NAME]; \
         Temporal Cloud refuses payloads over 2 MiB and requests over 4 MiB). Nothing was sent, so \
         the workflow is not failed by the server: make the payload smaller, turn on \
         [external_storage] to offload large payloads, or raise {setting} if the server accepts more, \
         then retry"
    )]
    OverUpstreamLimit {
        what: String,
        size: usize,
        limit: usize,
        setting: &'static str,
        upstream: String,
    },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("deadline of {deadline:?} (grpc-timeout) passed waiting for upstream {upstream}")]
    Deadline {
        deadline: Duration,
        upstream: String,
    },
    #[error("response from upstream {upstream}: {reason}")]
    Response { upstream: String, reason: String },
    #[error("cannot decode the response's payloads: {0}")]
    Decode(RewriteError),
    #[error("keys: {0}")]
    Keys(Box<CodecError>),
    #[error(
        "the temporal-namespace header says {header:?} but the request is for namespace {body:?}"
    )]
    NamespaceMismatch { header: String, body: String },
    #[error(transparent)]
    Denied(#[from] crate::inbound::Denied),
    #[error("routing: {0}")]
    Route(#[from] super::router::RouteError),
    #[error("upstream {upstream} answered HTTP {status}, not gRPC ({summary}){}", http_advice(*status))]
    NotGrpc {
        upstream: String,
        status: u16,
        summary: String,
    },
}

impl From<CodecError> for ProxyError {
    fn from(e: CodecError) -> Self {
        ProxyError::Keys(Box::new(e))
    }
}

fn is_kms_unavailable(e: &CodecError) -> bool {
    matches!(e, CodecError::Kms(k) if k.is_unavailable()) || matches!(e, CodecError::Storage(_))
}

fn http_advice(status: u16) -> &'static str {
    match status {
        400 | 495 | 496 => {
            " (a TLS proxy in front of Temporal may want a client certificate: check the TEMPORAL_TLS_CLIENT_* settings)"
        }
        401 | 403 => " (check the API key: upstream_options.api_key or TEMPORAL_API_KEY)",
        404 => " (is the upstream a Temporal frontend?)",
        _ => "",
    }
}

impl ProxyError {
    /// The gRPC status the caller sees.
    pub fn code(&self) -> Code {
        match self {
            ProxyError::ServiceNotAllowed { .. }
            | ProxyError::UnknownMethod { .. }
            | ProxyError::StreamingNotRewritten { .. } => Code::Unimplemented,
            ProxyError::Head(_) | ProxyError::NamespaceNotText => Code::InvalidArgument,
            ProxyError::Unclassified(..) => Code::Unimplemented,
            ProxyError::PlaintextRefused(_) => Code::Internal,
            ProxyError::Budget(_) => Code::ResourceExhausted,
            ProxyError::RequestTimeout(_) => Code::DeadlineExceeded,
            // What a Temporal frontend (grpc-go) answers a unary call
            // without a message: UNKNOWN "EOF".
            ProxyError::NoMessage => Code::Unknown,
            ProxyError::RequestFrame(FrameError::TooLarge { .. })
            | ProxyError::RequestTooLarge { .. }
            | ProxyError::EncodedTooLarge { .. }
            | ProxyError::OverUpstreamLimit { .. } => Code::ResourceExhausted,
            ProxyError::RequestFrame(_)
            | ProxyError::MalformedRequest { .. }
            | ProxyError::NamespaceMismatch { .. } => Code::InvalidArgument,
            ProxyError::RequestBody(_) => Code::Cancelled,
            ProxyError::Encode(_) | ProxyError::Decode(_) => Code::Internal,
            // A KMS that cannot be reached: the SDK retries.
            ProxyError::Keys(e) if is_kms_unavailable(e) => Code::Unavailable,
            ProxyError::Keys(_) => Code::Internal,
            ProxyError::Route(super::router::RouteError::BadNamespace(_)) => Code::InvalidArgument,
            ProxyError::Denied(crate::inbound::Denied::Unauthenticated(_)) => Code::Unauthenticated,
            ProxyError::Denied(_) => Code::PermissionDenied,
            ProxyError::Route(_) => Code::Unavailable,
            ProxyError::Upstream(_) => Code::Unavailable,
            ProxyError::Deadline { .. } => Code::DeadlineExceeded,
            ProxyError::Response { .. } => Code::Internal,
            // The gRPC spec's mapping of HTTP statuses.
            ProxyError::NotGrpc { status, .. } => match status {
                401 => Code::Unauthenticated,
                403 => Code::PermissionDenied,
                404 => Code::Unimplemented,
                429 | 502 | 503 | 504 => Code::Unavailable,
                _ => Code::Internal,
            },
        }
    }

    pub fn side(&self) -> Side {
        match self {
            ProxyError::ServiceNotAllowed { .. }
            | ProxyError::UnknownMethod { .. }
            | ProxyError::StreamingNotRewritten { .. }
            | ProxyError::Head(_)
            | ProxyError::RequestTimeout(_)
            | ProxyError::NoMessage
            | ProxyError::NamespaceNotText
            | ProxyError::Unclassified(..)
            | ProxyError::RequestFrame(_)
            | ProxyError::RequestTooLarge { .. }
            | ProxyError::RequestBody(_)
            | ProxyError::MalformedRequest { .. }
            | ProxyError::EncodedTooLarge { .. }
            | ProxyError::OverUpstreamLimit { .. }
            | ProxyError::NamespaceMismatch { .. }
            | ProxyError::Deadline { .. } => Side::Downstream,
            ProxyError::Upstream(_) | ProxyError::Response { .. } | ProxyError::NotGrpc { .. } => {
                Side::Upstream
            }
            ProxyError::Keys(e) if is_kms_unavailable(e) => Side::Upstream,
            ProxyError::Route(super::router::RouteError::BadNamespace(_))
            | ProxyError::Denied(_) => Side::Downstream,
            ProxyError::Route(_) => Side::Upstream,
            ProxyError::Encode(_)
            | ProxyError::PlaintextRefused(_)
            | ProxyError::Decode(_)
            | ProxyError::Keys(_)
            | ProxyError::Budget(_) => Side::Internal,
        }
    }

    /// A trailers-only response with the status and a message saying what
    /// went wrong, prefixed so operators know the gateway said it.
    pub fn into_response(self) -> Response<Body> {
        let mut resp = grpc::status_response(self.code(), &format!("sealgate: {self}"));
        if let ProxyError::Head(h) = &self
            && h.is_media_type()
        {
            // As grpc-go does: 415, so no plain HTTP client takes it for a success.
            *resp.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
        }
        resp
    }
}
