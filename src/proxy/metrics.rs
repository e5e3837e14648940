//! A call's metrics and span, recorded by a guard when it drops: a call the
//! client cancels (a worker's long poll at shutdown) is counted with code
//! `cancelled`, and the in-flight gauge comes back down either way.

use std::{borrow::Cow, sync::Arc, time::Instant};

use crate::{
    telemetry::{CallLabels, Metrics},
    upstream::Upstream,
};

/// The code label of a call dropped before it answered.
pub(super) const CANCELLED: &str = "cancelled";

/// Counts one call from its start until it drops.
pub(super) struct CallGuard<'a> {
    metrics: &'a Metrics,
    span: tracing::Span,
    started: Instant,
    service: Cow<'a, str>,
    method: Cow<'a, str>,
    /// Set when the call answered; `None` at drop means cancelled.
    code: Option<&'static str>,
    upstream: Option<Arc<Upstream>>,
    default_upstream: &'a Upstream,
}

impl<'a> CallGuard<'a> {
    pub(super) fn start(
        metrics: &'a Metrics,
        span: tracing::Span,
        service: Cow<'a, str>,
        method: Cow<'a, str>,
        default_upstream: &'a Upstream,
    ) -> CallGuard<'a> {
        metrics.in_flight(&service, 1);
        CallGuard {
            metrics,
            span,
            started: Instant::now(),
            service,
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
            .name();
        let labels = CallLabels {
            service: &self.service,
            method: &self.method,
            code,
            upstream,
        };
        self.metrics
            .call(labels, self.started.elapsed().as_secs_f64());
        self.metrics.in_flight(&self.service, -1);
    }
}
