//! The data plane: an HTTP/2 gRPC proxy that rewrites WorkflowService calls
//! and streams everything else through.
//!
//! Each request is routed once: a service outside the allowlist is refused;
//! a unary WorkflowService call is buffered (bounded), its payloads encoded,
//! forwarded, and the response's payloads decoded (status details included);
//! anything else (OperatorService, health, streaming) is streamed unchanged.

mod error;
mod forward;
pub mod server;

use std::{convert::Infallible, sync::Arc};

use http::{Request, Response};
use hyper::body::Incoming;

pub use error::{ProxyError, Side};

use crate::{
    codec::Chain,
    config::ProxyConfig,
    grpc,
    schema::{Schema, WORKFLOW_SERVICE},
    upstream::{Body, Upstream},
};

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    pub(crate) schema: Arc<Schema>,
    pub(crate) chain: Arc<Chain>,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) config: ProxyConfig,
}

impl Proxy {
    pub fn new(
        schema: Arc<Schema>,
        chain: Arc<Chain>,
        upstream: Arc<Upstream>,
        config: ProxyConfig,
    ) -> Self {
        Proxy {
            schema,
            chain,
            upstream,
            config,
        }
    }

    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    pub fn chain(&self) -> &Arc<Chain> {
        &self.chain
    }

    /// Serves one request; failures become gRPC statuses here and only here.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Infallible> {
        let path = req.uri().path().to_string();
        let result = self.route(&path, req).await;
        Ok(result.unwrap_or_else(|e| {
            match e.side() {
                Side::Downstream => tracing::info!(%path, error = %e, "call refused"),
                Side::Upstream => tracing::warn!(%path, upstream = %self.upstream.name(), error = %e, "call failed upstream"),
                Side::Internal => tracing::error!(%path, error = %e, "call failed in sealgate"),
            }
            e.into_response()
        }))
    }

    async fn route(
        &self,
        path: &str,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, ProxyError> {
        let service = service_of(path);
        if !self.config.allowed_services.iter().any(|s| s == service) {
            return Err(ProxyError::ServiceNotAllowed {
                service: service.to_string(),
                allowed: self.config.allowed_services.join(", "),
            });
        }
        let unary = self
            .schema
            .method(path)
            .filter(|m| &*m.service == WORKFLOW_SERVICE && m.is_unary());
        match unary {
            Some(method) if grpc::is_grpc(req.headers()) => forward::unary(self, method, req).await,
            _ => forward::stream(self, req).await,
        }
    }
}

/// `pkg.Service` of `/pkg.Service/Method`.
fn service_of(path: &str) -> &str {
    let p = path.strip_prefix('/').unwrap_or(path);
    p.split_once('/').map_or(p, |(s, _)| s)
}

#[cfg(test)]
mod tests;
