//! `[telemetry]`: the admin listener, OTLP export and trace sampling.

use super::*;

pub(super) fn telemetry_section(
    t: &mut Table<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &mut Issues,
) -> TelemetryConfig {
    let admin_listen = address(
        t,
        "admin_listen",
        "127.0.0.1:9090",
        "SEALGATE_ADMIN_LISTEN",
        true,
        issues,
    );
    let otlp_endpoint = t
        .string("otlp_endpoint", issues)
        .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|s| !s.is_empty()));
    if let Some(e) = &otlp_endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        issues.push(
            &t.path("otlp_endpoint"),
            format!("{e:?}: write http://host:4317"),
        );
    }
    let trace_sampling = match t.float("trace_sampling", issues) {
        Some(r) if (0.0..=1.0).contains(&r) => r,
        Some(r) => {
            issues.push(
                &t.path("trace_sampling"),
                format!("{r} is not between 0 and 1"),
            );
            1.0
        }
        None => 1.0,
    };
    let service_name = t
        .string("service_name", issues)
        .unwrap_or_else(|| "sealgate".into());
    t.finish(issues);
    TelemetryConfig {
        admin_listen,
        otlp_endpoint,
        trace_sampling,
        service_name,
    }
}
