//! The gRPC health answer while shutting down: `grpc.health.v1.Health`
//! calls are answered here, NOT_SERVING, so that a load balancer or client
//! that watches health moves away before the listener stops. Otherwise
//! health calls go to the upstream like any other.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::BodyExt;

use super::budget::Buffered;
use crate::{grpc::GRPC_STATUS, upstream::Body};

/// Path prefix of the health service's methods (Check, Watch, List).
pub(super) const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// `HealthCheckResponse { status: NOT_SERVING }` (field 1, enum value 2),
/// in one uncompressed gRPC frame, then `grpc-status: 0`. Watch gets the
/// same single message, and its stream ends: the server is going away.
pub(super) fn not_serving() -> Response<Body> {
    let message = [0x08, 0x02];
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let mut trailers = HeaderMap::new();
    trailers.insert(GRPC_STATUS, HeaderValue::from_static("0"));
    let body = Buffered::unbudgeted(Bytes::from(frame), trailers)
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp
}
