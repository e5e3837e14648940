//! Hot reload of keys and TLS material, on SIGHUP or when the config file or
//! any file it reads (key material, certificates) changes.
//!
//! A reload builds a whole new generation first: the key policies, every
//! upstream's TLS material and API key (named upstreams too), the routes,
//! the caller rules and the listener's and Codec Server's certificates.
//! Only when all of it loads is it published, at once; otherwise the
//! running state stays and the log says why. Calls in flight
//! keep the keys they started with. Settings that cannot change while
//! running (listen addresses, the upstream address, pool sizes…) are
//! reported as needing a restart.
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
use crate::config::Config;

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

/// The configuration in force and the fingerprint of the files behind it.
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
                config: config.clone(),
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
    fn try_reload(&self) -> Result<Vec<&'static str>, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("{}: cannot read the file: {e}", self.path.display()))?;
        let base = self.path.parent().unwrap_or(Path::new("."));
        let origin = self.path.display().to_string();
        let config = Config::parse(&text, &origin, base, &|k| std::env::var(k).ok())
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
        applied.config = config;
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
/// gateway cannot take over.
fn needs_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, a: String, b: String| {
        if a != b {
            out.push(name);
        }
    };
    check("listen", old.listen.to_string(), new.listen.to_string());
    check(
        "upstream",
        old.upstream.to_string(),
        new.upstream.to_string(),
    );
    let pool = |c: &Config| {
        let o = &c.upstream_options;
        format!(
            "{} {:?} {:?} {:?}",
            o.connections, o.connect_timeout, o.keepalive_interval, o.keepalive_timeout
        )
    };
    check("upstream_options (pool)", pool(old), pool(new));
    check(
        "[proxy]",
        format!("{:?}", old.proxy),
        format!("{:?}", new.proxy),
    );
    check(
        "[telemetry]",
        format!("{:?}", old.telemetry),
        format!("{:?}", new.telemetry),
    );
    let cs = |c: &Config| {
        c.codec_server.as_ref().map(|s| {
            format!(
                "{} {:?} {:?} {} {}",
                s.listen, s.auth, s.cors_origins, s.cors_allow_credentials, s.max_body_bytes
            )
        })
    };
    check(
        "[codec_server] (other than its certificate)",
        format!("{:?}", cs(old)),
        format!("{:?}", cs(new)),
    );
    check(
        "codec.dek_cache_size",
        old.codec.dek_cache_size.to_string(),
        new.codec.dek_cache_size.to_string(),
    );
    check(
        "reload_check_interval",
        format!("{:?}", old.reload_check_interval),
        format!("{:?}", new.reload_check_interval),
    );
    out
}

#[cfg(test)]
mod tests;
