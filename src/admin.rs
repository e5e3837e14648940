//! The admin listener: `/metrics` (Prometheus text), `/live` and `/ready`.
//!
//! Ready means the configuration and keys loaded (true once serving) and
//! the upstream is reachable: a connection is open or can be opened now.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::net::TcpListener;

use crate::{telemetry::Telemetry, upstream::Upstream};

/// What the admin endpoints look at.
#[derive(Debug)]
pub struct Admin {
    pub telemetry: Arc<Telemetry>,
    pub upstream: Arc<Upstream>,
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
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let a = admin.clone();
                let service = service_fn(move |req| a.clone().handle(req));
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.timer(TokioTimer::new());
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move { let _ = conn.await; });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(2), graceful.shutdown()).await;
}
