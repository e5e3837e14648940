//! Hot reload, on SIGHUP or when the config file or any file it reads
//! (key material, certificates) changes.
//!
//! A reload builds a whole new generation first (`Running::prepare`): the
//! key policies, every upstream's TLS material and API key (named
//! upstreams too), the routes, the caller rules, the listener's and Codec
//! Server's certificates and the Codec Server's auth. Only when all of it
//! loads is it published, at once; otherwise the running state stays and
//! the log says why. Calls in flight keep what they started with. Settings
//! that cannot change while running (listen addresses, the upstream
//! address, pool sizes…) are named as needing a restart.
//!
//! Files are polled rather than watched with inotify: a Kubernetes secret
//! or ConfigMap is updated by swapping a symlink, which file watchers miss,
//! and hashing a few small files every couple of seconds costs nothing.
//!
//! Why: docs/design.md#generations.

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
};

use super::Running;
use crate::{
    codec_server::CodecServerConfig, config::Config, proxy::ProxyConfig,
    telemetry::TelemetryConfig, upstream::UpstreamOptions,
};

/// Reload outcomes so far.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
}

/// Everything a reload touches.
pub struct Reloader {
    path: PathBuf,
    applied: Mutex<Applied>,
    running: Running,
    stats: ReloadStats,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The configuration in force (without its secrets) and the fingerprint of
/// the files behind it.
struct Applied {
    config: Config,
    fingerprint: u64,
}

impl Reloader {
    /// A reloader for the gateway that `config` (read from `path`) built.
    pub(crate) fn new(path: &Path, config: &Config, running: Running) -> Reloader {
        let fingerprint = fingerprint(path, &config.files);
        Reloader {
            path: path.to_path_buf(),
            applied: Mutex::new(Applied {
                config: config.without_secrets(),
                fingerprint,
            }),
            running,
            stats: ReloadStats::default(),
        }
    }

    pub fn stats(&self) -> &ReloadStats {
        &self.stats
    }

    /// True when the config file or a file it reads changed since the last
    /// reload (or attempt).
    pub fn files_changed(&self) -> bool {
        let Ok(mut applied) = self.applied.lock() else {
            return false;
        };
        let now = fingerprint(&self.path, &applied.config.files);
        if now == applied.fingerprint {
            return false;
        }
        // Remember it, so a bad file is reported once, not every poll.
        applied.fingerprint = now;
        true
    }

    /// Reads, validates and applies the configuration; on any problem
    /// nothing changes and the problem is returned (and logged).
    pub fn reload(&self, why: &str) -> Result<(), String> {
        let result = self.try_reload();
        match &result {
            Ok(restart) => {
                self.stats.ok.fetch_add(1, Relaxed);
                tracing::info!(trigger = why, "configuration reloaded");
                for p in self.running.codec.current().policies.all() {
                    tracing::info!(policy = %p.describe(), "key policy");
                }
                if !restart.is_empty() {
                    tracing::warn!(
                        settings = %restart.join(", "),
                        "these settings changed but only take effect after a restart"
                    );
                }
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Relaxed);
                tracing::error!(trigger = why, error = %e, "reload failed; the previous configuration stays in force");
            }
        }
        result.map(|_| ())
    }

    /// Returns the settings that changed but need a restart.
    fn try_reload(&self) -> Result<Vec<String>, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("{}: cannot read the file: {e}", self.path.display()))?;
        let base = self.path.parent().unwrap_or(Path::new("."));
        let origin = self.path.display().to_string();
        let config = Config::parse(&text, &origin, base, &crate::config::process_env)
            .map_err(|e| e.to_string().trim_end().replace('\n', " "))?;

        let mut applied = self.applied.lock().map_err(|_| "reload state poisoned")?;
        // Build the whole generation; any failure leaves everything as it is.
        let next = self.running.prepare(&config)?;
        self.running.publish(next);
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        let restart = needs_restart(&applied.config, &config);
        applied.fingerprint = fingerprint(&self.path, &config.files);
        applied.config = config.without_secrets();
        Ok(restart)
    }

    /// Reloads on SIGHUP and, every `interval`, when files changed; until
    /// `shutdown`.
    pub async fn watch(
        self: Arc<Self>,
        mut hangup: tokio::signal::unix::Signal,
        interval: Option<std::time::Duration>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut tick = interval.map(|i| {
            let mut t = tokio::time::interval(i);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            let poll = async {
                match tick.as_mut() {
                    Some(t) => {
                        t.tick().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = hangup.recv() => {
                    let _ = self.reload("SIGHUP");
                }
                () = poll => {
                    if self.files_changed() {
                        let _ = self.reload("file change");
                    }
                }
                () = &mut shutdown => break,
            }
        }
    }
}

/// A hash of the config file and every file it reads (a missing file
/// hashes as missing, so its return is a change too).
fn fingerprint(path: &Path, files: &[PathBuf]) -> u64 {
    let mut h = DefaultHasher::new();
    for f in std::iter::once(path).chain(files.iter().map(PathBuf::as_path)) {
        f.hash(&mut h);
        match std::fs::read(f) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.kind().to_string().hash(&mut h),
        }
    }
    h.finish()
}

/// The settings that differ between `old` and `new` and that a running
/// gateway cannot take over, by name. Everything else (keys and policies,
/// every upstream's credentials, named upstreams, routes, caller rules,
/// the listeners' certificates, the Codec Server's auth) is part of the
/// generation a reload builds.
///
/// The comparison is typed: each section is destructured in full, so a
/// new setting does not compile until it is listed here as reloadable or
/// restart-only, and a secret (which `Debug` redacts) is compared as
/// itself, never as text.
fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, changed: bool| {
        if changed {
            out.push(name.to_string());
        }
    };
    check("listen", old.listen != new.listen);
    check("upstream", old.upstream != new.upstream);
    check(
        "reload_check_interval",
        old.reload_check_interval != new.reload_check_interval,
    );

    // The default upstream's pool: its credentials reload (tls, api_key).
    let UpstreamOptions {
        connections,
        connect_timeout,
        keepalive_interval,
        keepalive_timeout,
        api_key: _,
        grpc_meta: _,
        max_payload_bytes,
        max_request_bytes,
        tls: _,
        allow_plaintext_credentials,
        namespaces,
        forward_authorization,
    } = &new.upstream_options;
    let o = &old.upstream_options;
    check(
        "upstream_options.connections",
        o.connections != *connections,
    );
    check(
        "upstream_options.connect_timeout",
        o.connect_timeout != *connect_timeout,
    );
    check(
        "upstream_options.keepalive_interval",
        o.keepalive_interval != *keepalive_interval,
    );
    check(
        "upstream_options.keepalive_timeout",
        o.keepalive_timeout != *keepalive_timeout,
    );
    check(
        "upstream_options.allow_plaintext_credentials",
        o.allow_plaintext_credentials != *allow_plaintext_credentials,
    );
    check("upstream_options.namespaces", o.namespaces != *namespaces);
    check(
        "upstream_options.max_payload_bytes",
        o.max_payload_bytes != *max_payload_bytes,
    );
    check(
        "upstream_options.max_request_bytes",
        o.max_request_bytes != *max_request_bytes,
    );
    check(
        "upstream_options.forward_authorization",
        o.forward_authorization != *forward_authorization,
    );

    let ProxyConfig {
        max_message_bytes,
        allowed_services,
        shutdown_grace,
        shutdown_delay,
        forward_authorization,
        reflection,
        runtime,
        threads,
        opaque_services,
        memory_budget_bytes,
        request_body_timeout,
        max_concurrent_streams,
        max_header_list_bytes,
        forward_unknown_fields,
        plaintext_paths,
        descriptor_set,
        tls_handshake_timeout,
        first_request_timeout,
        idle_timeout,
        max_connection_age,
        max_connection_age_grace,
        credential_headers,
    } = &new.proxy;
    let p = &old.proxy;
    check(
        "proxy.max_message_bytes",
        p.max_message_bytes != *max_message_bytes,
    );
    check(
        "proxy.allowed_services",
        p.allowed_services != *allowed_services,
    );
    check("proxy.shutdown_grace", p.shutdown_grace != *shutdown_grace);
    check("proxy.shutdown_delay", p.shutdown_delay != *shutdown_delay);
    check(
        "proxy.forward_authorization",
        p.forward_authorization != *forward_authorization,
    );
    check("proxy.reflection", p.reflection != *reflection);
    check("proxy.runtime", p.runtime != *runtime);
    check("proxy.threads", p.threads != *threads);
    check(
        "proxy.opaque_services",
        p.opaque_services != *opaque_services,
    );
    check(
        "proxy.memory_budget_bytes",
        p.memory_budget_bytes != *memory_budget_bytes,
    );
    check(
        "proxy.request_body_timeout",
        p.request_body_timeout != *request_body_timeout,
    );
    check(
        "proxy.max_concurrent_streams",
        p.max_concurrent_streams != *max_concurrent_streams,
    );
    check(
        "proxy.max_header_list_bytes",
        p.max_header_list_bytes != *max_header_list_bytes,
    );
    check(
        "schema.unknown_request_fields",
        p.forward_unknown_fields != *forward_unknown_fields,
    );
    check(
        "schema.plaintext_paths",
        p.plaintext_paths != *plaintext_paths,
    );
    check("schema.descriptor_set", p.descriptor_set != *descriptor_set);
    check(
        "proxy.tls_handshake_timeout",
        p.tls_handshake_timeout != *tls_handshake_timeout,
    );
    check(
        "proxy.first_request_timeout",
        p.first_request_timeout != *first_request_timeout,
    );
    check("proxy.idle_timeout", p.idle_timeout != *idle_timeout);
    check(
        "proxy.max_connection_age",
        p.max_connection_age != *max_connection_age,
    );
    check(
        "proxy.max_connection_age_grace",
        p.max_connection_age_grace != *max_connection_age_grace,
    );
    check(
        "proxy.credential_headers",
        p.credential_headers != *credential_headers,
    );

    let TelemetryConfig {
        admin_listen,
        otlp_endpoint,
        trace_sampling,
        service_name,
    } = &new.telemetry;
    let t = &old.telemetry;
    check("telemetry.admin_listen", t.admin_listen != *admin_listen);
    check("telemetry.otlp_endpoint", t.otlp_endpoint != *otlp_endpoint);
    check(
        "telemetry.trace_sampling",
        t.trace_sampling != *trace_sampling,
    );
    check("telemetry.service_name", t.service_name != *service_name);

    match (&old.codec_server, &new.codec_server) {
        (Some(o), Some(n)) => {
            // tls (the certificate) and auth reload; turning either on or
            // off is refused by the Codec Server's own prepare.
            let CodecServerConfig {
                listen,
                cors_origins,
                cors_allow_credentials,
                max_body_bytes,
                tls: _,
                auth: _,
                rules: _,
            } = n;
            check("codec_server.listen", o.listen != *listen);
            check("codec_server.cors_origins", o.cors_origins != *cors_origins);
            check(
                "codec_server.cors_allow_credentials",
                o.cors_allow_credentials != *cors_allow_credentials,
            );
            check(
                "codec_server.max_body_bytes",
                o.max_body_bytes != *max_body_bytes,
            );
        }
        (None, None) => {}
        _ => check("[codec_server] (on or off)", true),
    }
    check(
        "[external_storage]",
        old.external_storage != new.external_storage,
    );
    check(
        "codec.dek_cache_size",
        old.codec.dek_cache_size != new.codec.dek_cache_size,
    );
    out
}

#[cfg(test)]
mod tests;
