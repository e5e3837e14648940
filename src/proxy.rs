//! The data plane: an HTTP/2 gRPC proxy that rewrites WorkflowService calls
//! and streams everything else through.
//!
//! Each request is routed once: a service outside the allowlist is refused;
//! a unary WorkflowService call is buffered (bounded), its payloads encoded,
//! forwarded, and the response's payloads decoded (status details included);
//! anything else (OperatorService, health, streaming) is streamed unchanged.

mod error;
mod forward;
pub mod reflection;
pub mod router;
pub mod server;
pub mod shards;
pub mod translate;

use std::{convert::Infallible, sync::Arc, time::Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use opentelemetry::KeyValue;
use tracing::Instrument;

pub use error::{ProxyError, Side};

use crate::{
    codec::Pipeline,
    config::ProxyConfig,
    grpc,
    schema::{Schema, WORKFLOW_SERVICE},
    telemetry::{self, Metrics},
    upstream::{Body, Upstream},
};

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    pub(crate) schema: Arc<Schema>,
    /// Namespace fields, for translation (built only when some upstream
    /// translates namespaces).
    pub(crate) namespace_schema: Option<Schema>,
    pub(crate) codec: Arc<Pipeline>,
    /// The default upstream (`upstream` + `[upstream_options]`).
    pub(crate) upstream: Arc<Upstream>,
    /// Which upstream serves each call.
    pub(crate) router: router::Router,
    /// Who may call, for which namespaces.
    pub(crate) inbound: crate::inbound::Inbound,
    /// The listener's TLS acceptor, swapped on reload; new connections
    /// take the current one.
    pub(crate) inbound_tls: crate::inbound::ListenerTls,
    pub(crate) config: ProxyConfig,
    pub(crate) metrics: Metrics,
    /// Server reflection, answered here and built on first use (it decodes
    /// the whole descriptor set twice, which most gateways never need);
    /// `None` when turned off.
    pub(crate) reflection: Option<std::sync::OnceLock<Option<reflection::Reflection>>>,
    /// Build a span per call (only when traces are exported: a span that
    /// goes nowhere still costs the log layer a formatting pass).
    pub(crate) trace_calls: bool,
}

impl Proxy {
    pub fn new(
        schema: Arc<Schema>,
        codec: Arc<Pipeline>,
        routing: (router::Router, crate::inbound::Inbound),
        config: ProxyConfig,
        metrics: Metrics,
        trace_calls: bool,
    ) -> Self {
        let reflection = config.reflection.then(std::sync::OnceLock::new);
        let namespace_schema = routing
            .0
            .translates()
            .then(Schema::embedded_namespaces)
            .and_then(Result::ok);
        let inbound_tls =
            tokio::sync::watch::Sender::new(routing.1.acceptor().unwrap_or_else(|e| {
                tracing::error!(error = %e, "inbound TLS");
                None
            }));
        Proxy {
            inbound_tls: crate::inbound::ListenerTls(inbound_tls),
            namespace_schema,
            reflection,
            schema,
            codec,
            upstream: routing.0.default_upstream().clone(),
            router: routing.0,
            inbound: routing.1,
            config,
            metrics,
            trace_calls,
        }
    }

    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// Builds the listener's TLS acceptor from `config` (certificate, key,
    /// client CA) and uses it for new connections; nothing changes when it
    /// does not load. Callers' rules need a restart.
    pub fn reload_inbound_tls(&self, config: &crate::inbound::InboundConfig) -> Result<(), String> {
        let acceptor = crate::inbound::Inbound::new(config.clone()).acceptor()?;
        if acceptor.is_some() != self.inbound_tls.0.borrow().is_some() {
            return Err("turning listener TLS on or off needs a restart".into());
        }
        self.inbound_tls.0.send_replace(acceptor);
        Ok(())
    }

    /// The codec pipeline (swapped on reload).
    pub fn codec(&self) -> &Arc<Pipeline> {
        &self.codec
    }

    /// Serves one request in its own span, records its metrics, and turns
    /// failures into gRPC statuses here and only here.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Arc<crate::inbound::Peer>,
    ) -> Result<Response<Body>, Infallible> {
        let path = req.uri().path().to_string();
        let service = service_of(&path).to_string();
        // Bounded labels: method names come from the schema, others are "other".
        let method = self
            .schema
            .method(&path)
            .map_or_else(|| "other".to_string(), |m| m.name.to_string());
        let span = if !self.trace_calls {
            tracing::Span::none()
        } else {
            let namespace = req
                .headers()
                .get("temporal-namespace")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let span = tracing::info_span!(
            "grpc.call",
            otel.name = %path,
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            namespace = %namespace,
            upstream = %self.upstream.name(),
            rpc.grpc.status_code = tracing::field::Empty,
            payloads = tracing::field::Empty,
            );
            telemetry::extract_parent(&span, req.headers());
            span
        };
        let started = Instant::now();
        let service_kv = KeyValue::new("service", service.clone());
        self.metrics
            .in_flight
            .add(1, std::slice::from_ref(&service_kv));
        // Boxed: the call future is ~10 KB, and an unboxed one is copied each
        // time hyper and tokio move the stream task (memmove was the top
        // symbol in the profile).
        let call = Box::pin(self.route(&path, req, &peer).instrument(span.clone()));
        let result = call.await;
        let (resp, code, routed) = match result {
            Ok(ok) => ok,
            Err(e) => {
                let _enter = span.enter();
                match e.side() {
                    Side::Downstream => tracing::info!(%path, error = %e, "call refused"),
                    Side::Upstream => {
                        tracing::warn!(%path, upstream = %self.upstream.name(), error = %e, "call failed upstream")
                    }
                    Side::Internal => tracing::error!(%path, error = %e, "call failed in sealgate"),
                }
                let code = e.code().label();
                (e.into_response(), code, None)
            }
        };
        span.record("rpc.grpc.status_code", code);
        let labels = [
            service_kv.clone(),
            KeyValue::new("method", method),
            KeyValue::new("code", code),
            KeyValue::new(
                "upstream",
                routed.as_ref().unwrap_or(&self.upstream).name().to_string(),
            ),
        ];
        self.metrics.calls.add(1, &labels);
        self.metrics
            .call_duration
            .record(started.elapsed().as_secs_f64(), &labels[..3]);
        self.metrics.in_flight.add(-1, &[service_kv]);
        Ok(resp)
    }

    /// The reflection service, built on first use; `None` when off or when
    /// it cannot be built (then reflection calls get UNIMPLEMENTED).
    fn reflection(&self) -> Option<&reflection::Reflection> {
        self.reflection
            .as_ref()?
            .get_or_init(|| {
                reflection::Reflection::new(&self.schema, &self.config.allowed_services)
                    .inspect_err(|e| tracing::warn!(error = %e, "server reflection is off"))
                    .ok()
            })
            .as_ref()
    }

    async fn route(
        &self,
        path: &str,
        req: Request<Incoming>,
        peer: &crate::inbound::Peer,
    ) -> Result<forward::Routed, ProxyError> {
        let service = service_of(path);
        if (service == reflection::V1 || service == reflection::V1ALPHA)
            && let Some(r) = self.reflection()
        {
            self.inbound.authorize(peer, req.headers(), "").await?;
            let serve = Box::pin(r.serve(service, req));
            return Ok((serve.await, "stream", None));
        }
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
            Some(method) if grpc::is_grpc(req.headers()) => {
                forward::unary(self, method, req, peer).await
            }
            // Boxed, like the rare paths inside `unary`: the route future is
            // as large as its largest branch, and long polls hold it. (The box
            // is made in a statement of its own: see `Session::encode_with`.)
            _ => {
                let stream = Box::pin(forward::stream(self, req, peer));
                stream.await
            }
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
