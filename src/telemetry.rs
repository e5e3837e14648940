//! Metrics and traces: an OpenTelemetry meter exported as Prometheus text
//! (the admin listener's `/metrics`) and over OTLP when configured, and the
//! OTLP trace pipeline behind `tracing` spans. Nothing here is global: the
//! registry and instruments are built once and passed in.

mod propagation;
mod series;

use std::{sync::Arc, time::Duration};

use opentelemetry::{
    KeyValue,
    metrics::{BoundHistogram, Counter, Meter, MeterProvider as _},
};
use opentelemetry_sdk::{
    Resource,
    metrics::SdkMeterProvider,
    trace::{Sampler, SdkTracerProvider},
};
use thiserror::Error;

pub use propagation::{extract_parent, inject_current};
pub use series::CallLabels;

use crate::{
    codec::{Direction, Pipeline},
    keys::kms::redact_id,
    upstream::Upstream,
};

/// The `[telemetry]` section.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `/metrics`, `/live`, `/ready`; `None` turns the admin listener off.
    pub admin_listen: Option<std::net::SocketAddr>,
    /// OTLP/gRPC collector for traces and metrics; off when absent.
    pub otlp_endpoint: Option<String>,
    /// Share of new traces sampled (a caller's sampled flag is followed).
    pub trace_sampling: f64,
    /// `service.name` of exported telemetry.
    pub service_name: String,
}

#[derive(Debug, Error)]
pub enum TelemetryError {
    #[error("metrics: {0}")]
    Metrics(String),
    #[error("OTLP exporter for {endpoint}: {reason}")]
    Otlp { endpoint: String, reason: String },
}

/// The instruments the data plane records into directly.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Calls by service, method, gRPC status and upstream; whole-call
    /// latency (seconds) by service, method, status; the upstream part of
    /// a call (seconds) by method; calls being served now, by service.
    /// Bound per label set, per serving thread (`telemetry/series.rs`).
    series: Arc<series::Series>,
    /// Codec part of a call (seconds), bound to each direction: the
    /// attribute lookup a measurement otherwise makes is done once here.
    codec_duration: [BoundHistogram<f64>; 2],
    /// Requests carrying fields or Any types the schema lacks, by message
    /// type and action (`refused`/`forwarded`).
    pub unknown_fields: Counter<u64>,
    /// Requests the tripwire refused: a payload still plaintext after
    /// encoding, by message type.
    pub plaintext_refused: Counter<u64>,
}

impl Metrics {
    /// One call answered (or cancelled) after `seconds`.
    pub fn call(&self, labels: CallLabels<'_>, seconds: f64) {
        self.series.call(labels, seconds);
    }

    /// The upstream part of a call to `method` took `seconds`.
    pub fn upstream_duration(&self, method: &str, seconds: f64) {
        self.series.upstream(method, seconds);
    }

    /// The codec-duration histogram of `direction` (`encode` or `decode`).
    pub fn codec_duration(&self, direction: Direction) -> &BoundHistogram<f64> {
        &self.codec_duration[direction as usize]
    }

    /// `delta` calls of `service` started (1) or ended (-1).
    pub fn in_flight(&self, service: &str, delta: i64) {
        self.series.in_flight(service, delta);
    }
}

/// Latency buckets in seconds: sub-millisecond codec work up to 75 s long polls.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
    30.0, 80.0,
];

/// The meter provider, its Prometheus registry, and the instruments.
pub struct Telemetry {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    meter: Meter,
    pub metrics: Metrics,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").finish_non_exhaustive()
    }
}

fn resource(config: &TelemetryConfig) -> Resource {
    Resource::builder_empty()
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Telemetry {
    /// Metrics for Prometheus, and for OTLP when `otlp_endpoint` is set
    /// (the OTLP exporter needs a Tokio runtime).
    pub fn new(config: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .map_err(|e| TelemetryError::Metrics(e.to_string()))?;
        let mut builder = SdkMeterProvider::builder()
            .with_reader(exporter)
            .with_resource(resource(config));
        if let Some(endpoint) = &config.otlp_endpoint {
            use opentelemetry_otlp::WithExportConfig;
            let otlp = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()
                .map_err(|e| TelemetryError::Otlp {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                })?;
            // The tonic exporter needs Tokio: read and export on the runtime,
            // not on the SDK's own thread.
            let reader = opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
                otlp,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let meter = provider.meter("sealgate");
        let metrics = Metrics {
            series: Arc::new(series::Series::new(
                meter
                    .u64_counter("sealgate.calls")
                    .with_description("gRPC calls served, by service, method, status and upstream")
                    .build(),
                meter
                    .f64_histogram("sealgate.call.duration")
                    .with_unit("s")
                    .with_description("Whole-call latency as the caller sees it")
                    .with_boundaries(BUCKETS.to_vec())
                    .build(),
                meter
                    .f64_histogram("sealgate.upstream.duration")
                    .with_unit("s")
                    .with_description(
                        "Time waiting for the upstream (request sent to response read)",
                    )
                    .with_boundaries(BUCKETS.to_vec())
                    .build(),
                meter
                    .i64_up_down_counter("sealgate.calls.in_flight")
                    .with_description("Calls being served now")
                    .build(),
            )),
            codec_duration: {
                let h = meter
                    .f64_histogram("sealgate.codec.duration")
                    .with_unit("s")
                    .with_description("Time spent rewriting payloads in one message")
                    .with_boundaries(BUCKETS.to_vec())
                    .build();
                ["encode", "decode"].map(|d| h.bind(&[KeyValue::new("direction", d)]))
            },
            unknown_fields: meter
                .u64_counter("sealgate.unknown_fields")
                .with_description(
                    "Requests with a field or Any type the schema lacks, by message and action",
                )
                .build(),
            plaintext_refused: meter
                .u64_counter("sealgate.plaintext_refused")
                .with_description(
                    "Requests refused because a payload was still plaintext after encoding",
                )
                .build(),
        };
        Ok(Telemetry {
            registry,
            provider,
            meter,
            metrics,
        })
    }

    /// Exposes the codec chain's counters.
    pub fn observe_codec(&self, pipeline: &Arc<Pipeline>) {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = pipeline.stats();
        let s = stats.clone();
        self.meter
            .u64_observable_counter("sealgate.payloads")
            .with_description("Payloads by direction and outcome")
            .with_callback(move |o| {
                for (dir, result, v) in [
                    ("encode", "encoded", &s.encoded),
                    ("encode", "passed_through", &s.encode_passed_through),
                    ("decode", "decoded", &s.decoded),
                    ("decode", "passed_through", &s.decode_passed_through),
                    ("decode", "unknown_key", &s.unknown_key),
                    ("decode", "bad_unauthenticated", &s.bad_unauthenticated),
                    ("any", "failed", &s.failed),
                ] {
                    o.observe(
                        v.load(Relaxed),
                        &[
                            KeyValue::new("direction", dir),
                            KeyValue::new("result", result),
                        ],
                    );
                }
            })
            .build();
        let s = stats;
        self.meter
            .u64_observable_counter("sealgate.payload")
            .with_unit("By")
            .with_description("Payload bytes before and after the codec, by direction")
            .with_callback(move |o| {
                for (dir, stage, v) in [
                    ("encode", "before", &s.encode_bytes_in),
                    ("encode", "after", &s.encode_bytes_out),
                    ("decode", "before", &s.decode_bytes_in),
                    ("decode", "after", &s.decode_bytes_out),
                ] {
                    o.observe(
                        v.load(Relaxed),
                        &[
                            KeyValue::new("direction", dir),
                            KeyValue::new("stage", stage),
                        ],
                    );
                }
            })
            .build();
        let ops = pipeline.ops().clone();
        self.meter
            .u64_observable_counter("sealgate.key.operations")
            .with_description("Encryptions and decryptions by key id (the KEK's id for data keys)")
            .with_callback(move |o| {
                for (id, (enc, dec)) in ops.snapshot() {
                    let id = KeyValue::new("key_id", redact_id(&id).to_string());
                    o.observe(enc, &[id.clone(), KeyValue::new("operation", "encrypt")]);
                    o.observe(dec, &[id, KeyValue::new("operation", "decrypt")]);
                }
            })
            .build();
        let deks = pipeline.deks().clone();
        self.meter
            .u64_observable_counter("sealgate.kms.calls")
            .with_description("KMS calls (wrap a new data key, unwrap a cached one) by outcome")
            .with_callback(move |o| {
                let s = deks.stats();
                for (op, result, v) in [
                    ("wrap", "ok", &s.wraps),
                    ("unwrap", "ok", &s.unwraps),
                    ("any", "failed", &s.kms_failures),
                ] {
                    o.observe(
                        v.load(Relaxed),
                        &[
                            KeyValue::new("operation", op),
                            KeyValue::new("result", result),
                        ],
                    );
                }
            })
            .build();
        let deks = pipeline.deks().clone();
        self.meter
            .u64_observable_counter("sealgate.dek.cache")
            .with_description("Lookups of unwrapped data keys by result")
            .with_callback(move |o| {
                let s = deks.stats();
                o.observe(
                    s.cache_hits.load(Relaxed),
                    &[KeyValue::new("result", "hit")],
                );
                o.observe(
                    s.cache_misses.load(Relaxed),
                    &[KeyValue::new("result", "miss")],
                );
            })
            .build();
        let deks = pipeline.deks().clone();
        self.meter
            .u64_observable_counter("sealgate.dek.created")
            .with_description("Data keys created (first use of a namespace, or rotation)")
            .with_callback(move |o| o.observe(deks.stats().rotations.load(Relaxed), &[]))
            .build();
        let deks = pipeline.deks().clone();
        self.meter
            .u64_observable_counter("sealgate.dek.refused")
            .with_description(
                "Data keys refused without a KMS call: first keys over the per-minute limit for namespaces without a policy (reason=rate_limited), wrapped keys the KMS refused recently (reason=known_bad)",
            )
            .with_callback(move |o| {
                let s = deks.stats();
                o.observe(
                    s.rate_limited.load(Relaxed),
                    &[KeyValue::new("reason", "rate_limited")],
                );
                o.observe(
                    s.known_bad.load(Relaxed),
                    &[KeyValue::new("reason", "known_bad")],
                );
            })
            .build();
    }

    /// Exposes reload outcomes.
    /// `read` returns the reloads so far: (succeeded, failed).
    pub fn observe_reloads(&self, read: impl Fn() -> (u64, u64) + Send + Sync + 'static) {
        self.meter
            .u64_observable_counter("sealgate.reloads")
            .with_description("Configuration reloads (SIGHUP or file change) by result")
            .with_callback(move |o| {
                let (ok, failed) = read();
                o.observe(ok, &[KeyValue::new("result", "ok")]);
                o.observe(failed, &[KeyValue::new("result", "failed")]);
            })
            .build();
    }

    /// Exposes the upstream pool's counters.
    pub fn observe_upstream(&self, upstream: Arc<Upstream>) {
        use std::sync::atomic::Ordering::Relaxed;
        let u = upstream.clone();
        self.meter
            .u64_observable_counter("sealgate.upstream.connects")
            .with_description("Upstream connection attempts by result")
            .with_callback(move |o| {
                let name = KeyValue::new("upstream", u.name().to_string());
                o.observe(
                    u.stats().connects.load(Relaxed),
                    &[name.clone(), KeyValue::new("result", "ok")],
                );
                o.observe(
                    u.stats().connect_failures.load(Relaxed),
                    &[name, KeyValue::new("result", "failed")],
                );
            })
            .build();
        let u = upstream.clone();
        self.meter
            .u64_observable_counter("sealgate.upstream.retries")
            .with_description(
                "Unary calls sent again on a fresh connection because the upstream had not taken them",
            )
            .with_callback(move |o| {
                o.observe(
                    u.stats().retries.load(Relaxed),
                    &[KeyValue::new("upstream", u.name().to_string())],
                );
            })
            .build();
        self.meter
            .i64_observable_gauge("sealgate.upstream.connections")
            .with_description("Open upstream HTTP/2 connections")
            .with_callback(move |o| {
                o.observe(
                    upstream.open_connections() as i64,
                    &[KeyValue::new("upstream", upstream.name().to_string())],
                );
            })
            .build();
    }

    /// Exports `sealgate_schema_info{source, api, digest} 1`: which Temporal
    /// API schema this process classifies and rewrites with.
    pub fn observe_schema(&self, source: &str, api: &str, digest: &str) {
        let labels = [
            KeyValue::new("source", source.to_string()),
            KeyValue::new("api", api.to_string()),
            KeyValue::new("digest", digest.to_string()),
        ];
        self.meter
            .u64_observable_gauge("sealgate.schema.info")
            .with_description("The Temporal API schema in use (always 1)")
            .with_callback(move |o| o.observe(1, &labels))
            .build();
    }

    /// Exports the memory budget: bytes buffered by calls now, and the
    /// budget (`read` gives both).
    pub fn observe_buffered(&self, read: impl Fn() -> (usize, usize) + Send + Sync + 'static) {
        self.meter
            .i64_observable_gauge("sealgate.buffered")
            .with_unit("By")
            .with_description(
                "Bytes buffered by calls (kind=in_use) and the budget (kind=budget, proxy.memory_budget_bytes)",
            )
            .with_callback(move |o| {
                let (used, total) = read();
                o.observe(used as i64, &[KeyValue::new("kind", "in_use")]);
                o.observe(total as i64, &[KeyValue::new("kind", "budget")]);
            })
            .build();
    }

    /// The Prometheus text exposition of every metric.
    pub fn prometheus_text(&self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Flushes and stops the exporters.
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown();
    }
}

/// The OTLP trace pipeline, when `otlp_endpoint` is set. Call inside a Tokio
/// runtime; pass the provider to `tracing_opentelemetry::layer()`.
pub fn tracer_provider(
    config: &TelemetryConfig,
) -> Result<Option<SdkTracerProvider>, TelemetryError> {
    let Some(endpoint) = &config.otlp_endpoint else {
        return Ok(None);
    };
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| TelemetryError::Otlp {
            endpoint: endpoint.clone(),
            reason: e.to_string(),
        })?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.trace_sampling)));
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource(config))
            .build(),
    ))
}
