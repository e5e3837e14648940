//! `[proxy]` and `[schema]`: limits, timeouts, services and the
//! descriptor set.

use super::*;

pub(super) fn proxy_section(t: &mut Table<'_>, issues: &mut Issues) -> ProxyConfig {
    let max = t
        .integer("max_message_bytes", issues)
        .unwrap_or(DEFAULT_MAX_MESSAGE as u64);
    if !(1024..=(u32::MAX as u64)).contains(&max) {
        issues.push(
            &t.path("max_message_bytes"),
            format!("{max} is out of range: between 1024 and 4294967295 (a gRPC frame's limit)"),
        );
    }
    let allowed_services = t
        .strings("allowed_services", issues)
        .unwrap_or_else(|| DEFAULT_SERVICES.iter().map(|s| s.to_string()).collect());
    let shutdown_grace = t
        .duration("shutdown_grace", issues)
        .unwrap_or(Duration::from_secs(30));
    let shutdown_delay = t
        .duration("shutdown_delay", issues)
        .unwrap_or(Duration::ZERO);
    let forward_authorization = t.bool("forward_authorization", issues).unwrap_or(false);
    let reflection = t.bool("reflection", issues).unwrap_or(true);
    let runtime = match t.string("runtime", issues).as_deref() {
        None | Some("per-core") => Runtime::PerCore,
        Some("work-stealing") => Runtime::WorkStealing,
        Some(other) => {
            issues.push(
                &t.path("runtime"),
                format!("{other:?} is not a runtime: \"per-core\" or \"work-stealing\""),
            );
            Runtime::PerCore
        }
    };
    let threads = match t.integer("threads", issues) {
        None | Some(0) => std::thread::available_parallelism().map_or(1, usize::from),
        Some(n) if n <= 1024 => n as usize,
        Some(n) => {
            issues.push(
                &t.path("threads"),
                format!("{n} is out of range: 0 (one per core) to 1024"),
            );
            1
        }
    };
    let opaque_services = t.strings("opaque_services", issues).unwrap_or_default();
    let duration = |t: &mut Table<'_>, key: &'static str, default: u64, issues: &mut Issues| {
        let d = t
            .duration(key, issues)
            .unwrap_or(Duration::from_secs(default));
        if d.is_zero() {
            issues.push(&t.path(key), "must be over zero".into());
        }
        d
    };
    let tls_handshake_timeout = duration(t, "tls_handshake_timeout", 10, issues);
    let first_request_timeout = duration(t, "first_request_timeout", 20, issues);
    let idle_timeout = duration(t, "idle_timeout", 300, issues);
    let max_connection_age = duration(t, "max_connection_age", 360, issues);
    let max_connection_age_grace = duration(t, "max_connection_age_grace", 120, issues);
    // Temporal's SDK maintainers ask proxies for at least 6 min before
    // GOAWAY and 8 min before a hard close: long polls must finish.
    if max_connection_age < Duration::from_secs(360)
        || max_connection_age + max_connection_age_grace < Duration::from_secs(480)
    {
        issues.warn(
            &t.path("max_connection_age"),
            format!(
                "{max_connection_age:?} (+ {max_connection_age_grace:?} grace) is under the 6 min (soft) / 8 min (hard) Temporal SDKs expect; long polls may be cut"
            ),
        );
    }
    let credential_headers: Vec<String> = t
        .strings("credential_headers", issues)
        .unwrap_or_else(|| {
            crate::proxy::headers::CREDENTIAL_HEADERS
                .iter()
                .map(|h| h.to_string())
                .collect()
        })
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for h in &credential_headers {
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            issues.push(
                &t.path("credential_headers"),
                format!("{h:?} is not a header name"),
            );
        }
    }
    let memory_budget_bytes = t
        .integer("memory_budget_bytes", issues)
        .unwrap_or(DEFAULT_MEMORY_BUDGET as u64);
    if memory_budget_bytes < 2 * max.min(u32::MAX as u64) {
        issues.push(
            &t.path("memory_budget_bytes"),
            format!(
                "{memory_budget_bytes} is less than twice max_message_bytes ({max}): one call buffers its request and its rewritten copy"
            ),
        );
    }
    let request_body_timeout = t
        .duration("request_body_timeout", issues)
        .unwrap_or(Duration::from_secs(30));
    let max_concurrent_streams = t.integer_in("max_concurrent_streams", 1000, 1..=100_000, issues);
    let max_header_list_bytes = t.integer_in(
        "max_header_list_bytes",
        DEFAULT_MAX_HEADER_LIST as u64,
        16 << 10..=16 << 20,
        issues,
    );
    t.finish(issues);
    ProxyConfig {
        max_message_bytes: max.min(u32::MAX as u64) as usize,
        allowed_services,
        shutdown_grace,
        shutdown_delay,
        forward_authorization,
        reflection,
        runtime,
        threads,
        opaque_services,
        memory_budget_bytes: memory_budget_bytes.min(usize::MAX as u64) as usize,
        request_body_timeout,
        max_concurrent_streams: max_concurrent_streams as u32,
        max_header_list_bytes: max_header_list_bytes as u32,
        forward_unknown_fields: false,
        descriptor_set: None,
        plaintext_paths: crate::schema::DEFAULT_PLAINTEXT_PATHS
            .iter()
            .map(|p| p.to_string())
            .collect(),
        credential_headers,
        tls_handshake_timeout,
        first_request_timeout,
        idle_timeout,
        max_connection_age,
        max_connection_age_grace,
    }
}

/// The `[schema]` section: whether requests with fields the schema does not
/// define are forwarded (true) or refused (false, the default), and the
/// payload paths that stay plaintext (checked against the schema at build),
/// and the descriptor set file that replaces the embedded one.
pub(super) fn schema_section(
    t: &mut Table<'_>,
    base: &Path,
    issues: &mut Issues,
) -> (bool, Option<Vec<String>>, Option<PathBuf>) {
    let forward = match t.string("unknown_request_fields", issues).as_deref() {
        None | Some("refuse") => false,
        Some("forward") => true,
        Some(other) => {
            issues.push(
                &t.path("unknown_request_fields"),
                format!("{other:?}: use \"refuse\" (default) or \"forward\""),
            );
            false
        }
    };
    let plaintext = t.strings("plaintext_paths", issues);
    let descriptors = t.string("descriptor_set", issues).map(|f| {
        let path = base.join(f);
        issues.read_file(path.clone());
        path
    });
    t.finish(issues);
    (forward, plaintext, descriptors)
}
