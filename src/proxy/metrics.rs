//! A call's metrics and span, recorded by a guard when it drops: a call the
//! client cancels (a worker's long poll at shutdown) is counted with code
//! `cancelled`, and the in-flight gauge comes back down either way.

use std::{sync::Arc, time::Instant};

use opentelemetry::{KeyValue, StringValue, metrics::BoundUpDownCounter};

use crate::{telemetry::Metrics, upstream::Upstream};

/// The code label of a call dropped before it answered.
pub(super) const CANCELLED: &str = "cancelled";

/// Counts one call from its start until it drops.
pub(super) struct CallGuard<'a> {
    metrics: &'a Metrics,
    span: tracing::Span,
    started: Instant,
    service: StringValue,
    in_flight: BoundUpDownCounter<i64>,
    method: StringValue,
    /// Set when the call answered; `None` at drop means cancelled.
    code: Option<&'static str>,
    upstream: Option<Arc<Upstream>>,
    default_upstream: &'a Upstream,
}

impl<'a> CallGuard<'a> {
    pub(super) fn start(
        metrics: &'a Metrics,
        span: tracing::Span,
        service: StringValue,
        method: StringValue,
        default_upstream: &'a Upstream,
    ) -> CallGuard<'a> {
        let in_flight = metrics.in_flight(&service);
        in_flight.add(1);
        CallGuard {
            metrics,
            span,
            started: Instant::now(),
            service,
            in_flight,
            method,
            code: None,
            upstream: None,
            default_upstream,
        }
    }

    /// The call answered with `code` (a gRPC status label, or `stream`),
    /// served by `upstream` (none: sealgate answered itself).
    pub(super) fn answered(&mut self, code: &'static str, upstream: Option<Arc<Upstream>>) {
        self.code = Some(code);
        self.upstream = upstream;
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        let code = self.code.unwrap_or(CANCELLED);
        self.span.record("rpc.grpc.status_code", code);
        let upstream = self
            .upstream
            .as_deref()
            .unwrap_or(self.default_upstream)
            .label();
        let labels = [
            KeyValue::new("service", self.service.clone()),
            KeyValue::new("method", self.method.clone()),
            KeyValue::new("code", code),
            KeyValue::new("upstream", upstream),
        ];
        self.metrics.calls.add(1, &labels);
        self.metrics
            .call_duration
            .record(self.started.elapsed().as_secs_f64(), &labels[..3]);
        self.in_flight.add(-1);
    }
}
