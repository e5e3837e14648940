//! The admin listener: `/metrics` (Prometheus text), `/live` and `/ready`.
//!
//! Ready means the configuration and keys loaded (true once serving), the
//! gateway is not shutting down, and the upstream is reachable: a
//! connection is open or can be opened now. The admin listener serves
//! until the gRPC listener has drained, so `/ready` says 503 all along.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::{proxy::Proxy, telemetry::Telemetry, upstream::Upstream};

/// What the admin endpoints look at.
#[derive(Debug)]
pub struct Admin {
    pub telemetry: Arc<Telemetry>,
    pub upstream: Arc<Upstream>,
    /// The gRPC gateway, for whether it is shutting down.
    pub proxy: Arc<Proxy>,
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

impl Admin {
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        Ok(match req.uri().path() {
            "/metrics" => text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                self.telemetry.prometheus_text(),
            ),
            "/live" => text(StatusCode::OK, "text/plain", "live\n".into()),
            "/ready" if self.proxy.draining() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "not ready: shutting down (SIGTERM); in-flight calls are finishing\n".into(),
            ),
            "/ready" => match self.upstream.reachable(Duration::from_secs(2)).await {
                Ok(()) => text(StatusCode::OK, "text/plain", "ready\n".into()),
                Err(e) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("not ready: {e}\n"),
                ),
            },
            other => text(
                StatusCode::NOT_FOUND,
                "text/plain",
                format!("no {other}: try /metrics, /live or /ready\n"),
            ),
        })
    }
}

/// Serves the admin endpoints until `shutdown`.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>, shutdown: impl Future<Output = ()>) {
    let handler = move |req| admin.clone().handle(req);
    crate::http1::serve(
        "admin",
        listener,
        None,
        handler,
        shutdown,
        Duration::from_secs(2),
    )
    .await;
}
