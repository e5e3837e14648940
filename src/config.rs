//! The TOML configuration: typed, validated, every problem reported at once
//! with its key path.
//!
//! Strings may use `${VAR}` to pull secrets from the environment (`$${`
//! writes a literal `${`). `SEALGATE_LISTEN`, `SEALGATE_UPSTREAM` and
//! `SEALGATE_CODEC_SERVER_LISTEN` override the addresses of any file.

mod codec;
mod codec_server;
mod inbound;
mod proxy;
mod routing;
mod storage;
mod table;
mod telemetry;
mod temporal;
#[cfg(test)]
mod tests;
mod upstream;

use std::{
    fmt,
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use zeroize::Zeroizing;

use crate::{
    auth::Who,
    inbound::{AuthMode, InboundConfig, Rule},
    keys::{
        self,
        envelope::{self},
        kms::{self, AwsSettings, ExtensionSettings, LocalKek, ProviderConfig, ProviderSettings},
        policy::{DEFAULT_POLICY, KeySpec, KeysSpec, PolicySpec, ProviderSpec},
    },
    tls::{Pem, TlsSettings},
    translate::Translation,
};
use codec::*;
use codec_server::*;
use inbound::*;
use proxy::*;
use routing::*;
use storage::storage_section;
use table::{Issues, Table};
use telemetry::*;
use temporal::TemporalClient;
pub use temporal::check_profile_text as check_temporal_profile;
pub use upstream::EffectiveUpstream;
use upstream::*;

pub use crate::{
    auth::JwtConfig,
    codec::CodecConfig,
    codec_server::{CodecRule, CodecServerAuth, CodecServerConfig},
    proxy::{
        DEFAULT_MAX_MESSAGE, DEFAULT_MEMORY_BUDGET, DEFAULT_SERVICES, ProxyConfig, Runtime,
        router::{DEFAULT_UPSTREAM, NamedUpstream, RouteConfig, RoutingConfig},
    },
    telemetry::TelemetryConfig,
    upstream::{Address as Upstream, DEFAULT_MAX_HEADER_LIST, UpstreamOptions},
};

/// Exit code for a configuration that cannot be used (EX_USAGE... sysexits' EX_USAGE is 64).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// Default for `reload_check_interval`.
pub const DEFAULT_RELOAD_CHECK: Duration = Duration::from_secs(2);

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where workers connect (h2c).
    pub listen: SocketAddr,
    /// The Temporal frontend sealgate forwards to.
    pub upstream: Upstream,
    /// How sealgate talks to the upstream (TLS, API key, pool, keepalive).
    pub upstream_options: UpstreamOptions,
    pub proxy: ProxyConfig,
    /// More upstreams by name (`[upstreams.NAME]`); the one above is
    /// `default`.
    pub upstreams: Vec<NamedUpstream>,
    /// Which upstream serves which call.
    pub routing: RoutingConfig,
    /// TLS/mTLS on the listener and who may use which namespace.
    pub inbound: InboundConfig,
    pub codec: CodecConfig,
    /// `[external_storage]`: large payloads offloaded to S3; off when absent.
    pub external_storage: Option<crate::storage::StorageConfig>,
    /// The remote-codec HTTP endpoint for the Web UI and CLI; off when absent.
    pub codec_server: Option<CodecServerConfig>,
    pub telemetry: TelemetryConfig,
    /// How often the config file and the files it names are checked for
    /// changes (a change reloads keys and TLS material); `None`: only SIGHUP.
    pub reload_check_interval: Option<Duration>,
    /// Where the default upstream's settings came from, `(setting,
    /// source)`, for `sealgate check-config`; never a secret's value.
    pub upstream_origins: Vec<(String, String)>,
    /// Things worth saying at start-up (a key file others can read, a
    /// decrypt-only posture), with their key path.
    pub warnings: Vec<String>,
    /// Files the configuration read (key material, certificates), watched
    /// for changes along with the config file itself.
    pub files: Vec<PathBuf>,
}

/// Every problem found in one configuration.
#[derive(Debug)]
pub struct ConfigError {
    /// The file (or "<config>") the problems are in.
    pub origin: String,
    pub issues: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(
            f,
            "{}: {n} problem{} in the configuration:",
            self.origin,
            if n == 1 { "" } else { "s" }
        )?;
        for (path, message) in &self.issues {
            if path.is_empty() {
                writeln!(f, "  - {message}")?;
            } else {
                writeln!(f, "  - {path}: {message}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates a config file, with the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            origin: origin.clone(),
            issues: vec![(String::new(), format!("cannot read the file: {e}"))],
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &origin, base, &process_env)
    }

    /// Parses and validates config text. `env` looks up `${VAR}`s and the
    /// `SEALGATE_*` overrides; relative file paths resolve against `base`.
    pub fn parse(
        text: &str,
        origin: &str,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let fail = |issues| ConfigError {
            origin: origin.to_string(),
            issues,
        };
        let doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            fail(vec![(
                String::new(),
                format!("not valid TOML: {}", e.message()),
            )])
        })?;
        let mut issues = Issues::default();
        let mut root = Table::root(&doc, env);

        let listen = address(
            &mut root,
            "listen",
            "127.0.0.1:7233",
            "SEALGATE_LISTEN",
            false,
            &mut issues,
        )
        .ok_or(());

        // SEALGATE_UPSTREAM, then the file, then Temporal's own client
        // config: TEMPORAL_ADDRESS over a temporal.toml profile's address.
        // The profile file is read only when sealgate's settings name no
        // upstream: its credentials are for the address it names.
        let from_file = root.string("upstream", &mut issues);
        let named_here =
            from_file.is_some() || env("SEALGATE_UPSTREAM").is_some_and(|u| !u.is_empty());
        if named_here && env("TEMPORAL_CONFIG_FILE").is_some_and(|f| !f.is_empty()) {
            issues.warn(
                "TEMPORAL_CONFIG_FILE",
                "ignored: sealgate.toml (or SEALGATE_UPSTREAM) names the upstream; remove `upstream` \
                 to take it, and its credentials, from the temporal.toml profile"
                    .into(),
            );
        }
        let temporal = TemporalClient::load(env, !named_here, &mut issues);
        let mut origins = Vec::new();
        let upstream = match override_from(env, "SEALGATE_UPSTREAM", from_file.clone()) {
            Some(u) => {
                let from = if env("SEALGATE_UPSTREAM").is_some_and(|u| !u.is_empty()) {
                    "SEALGATE_UPSTREAM".to_string()
                } else {
                    format!("{origin}: upstream")
                };
                origins.push(("address".to_string(), from));
                Some(u)
            }
            None => temporal.address.clone().map(|(a, from)| {
                origins.push(("address".to_string(), from.to_string()));
                a
            }),
        };
        let explicit_plaintext = upstream
            .as_deref()
            .is_some_and(|u| u.starts_with("http://"));
        let upstream = match upstream {
            Some(u) => Upstream::parse(&u).map_err(|m| issues.push("upstream", m)),
            None => {
                let hint = "missing: the Temporal frontend to forward to, \
                            e.g. \"http://127.0.0.1:7234\"";
                issues.push("upstream", hint.into());
                Err(())
            }
        };

        let mut proxy = match root.table("proxy", &mut issues) {
            Some(mut t) => proxy_section(&mut t, &mut issues),
            None => proxy_section(&mut Table::empty("proxy", env), &mut issues),
        };
        if let Some(mut t) = root.table("schema", &mut issues) {
            let (forward, plaintext, descriptors) = schema_section(&mut t, base, &mut issues);
            proxy.forward_unknown_fields = forward;
            proxy.descriptor_set = descriptors;
            if let Some(p) = plaintext {
                proxy.plaintext_paths = p;
            }
        }
        let upstream_options = match root.table("upstream_options", &mut issues) {
            Some(mut t) => upstream_section(&mut t, base, &temporal, &mut origins, &mut issues),
            None => upstream_section(
                &mut Table::empty("upstream_options", env),
                base,
                &temporal,
                &mut origins,
                &mut issues,
            ),
        };
        if let Some((ns, from)) = &temporal.namespace {
            origins.push((
                format!("namespace {ns:?}"),
                format!("{from} (not used: each caller names its namespace)"),
            ));
        }
        // TLS comes from https://, TEMPORAL_TLS, or TLS material / an API key
        // given through Temporal's variables or the file (as the SDKs do:
        // credentials imply TLS).
        let tls_off = temporal.tls_disabled();
        let upstream = upstream.map(|mut u| {
            u.tls |= temporal.tls_on();
            upstream_options.credentials_imply_tls(
                &mut u,
                explicit_plaintext || tls_off,
                ("upstream", "upstream_options.allow_plaintext_credentials"),
                &mut issues,
            );
            u
        });
        if let (Ok(l), Ok(u)) = (&listen, &upstream)
            && u.authority == l.to_string()
        {
            issues.push(
                "upstream",
                format!("{u} is sealgate's own listen address; point it at the Temporal frontend"),
            );
        }

        let reload_check_interval = match root.string("reload_check_interval", &mut issues) {
            Some(v) if v == "off" => None,
            Some(v) => match table::parse_duration(&v) {
                Ok(d) if !d.is_zero() => Some(d),
                Ok(_) => {
                    issues.push(
                        "reload_check_interval",
                        "must be over zero, or \"off\"".into(),
                    );
                    None
                }
                Err(e) => {
                    issues.push("reload_check_interval", e);
                    None
                }
            },
            None => Some(DEFAULT_RELOAD_CHECK),
        };
        let telemetry = match root.table("telemetry", &mut issues) {
            Some(mut t) => telemetry_section(&mut t, env, &mut issues),
            None => telemetry_section(&mut Table::empty("telemetry", env), env, &mut issues),
        };
        let codec_server = root
            .table("codec_server", &mut issues)
            .map(|mut t| codec_server_section(&mut t, base, &mut issues));
        let external_storage = root
            .table("external_storage", &mut issues)
            .map(|mut t| storage_section(&mut t, &mut issues));

        let mut upstreams = Vec::new();
        for (name, mut t) in root.named_tables("upstreams", &mut issues) {
            if let Some(u) = named_upstream(&name, &mut t, base, &mut issues) {
                upstreams.push(u);
            }
        }
        let routing = routing_section(&mut root, &upstreams, &mut issues);
        let inbound = match root.table("inbound", &mut issues) {
            Some(mut t) => inbound_section(&mut t, base, &mut issues),
            None => InboundConfig::default(),
        };
        // Two local names must never reach one upstream namespace.
        let named = upstreams.iter().filter_map(|u| {
            u.options
                .namespaces
                .as_ref()
                .map(|t| (format!("upstreams.{}.namespaces", u.name), t))
        });
        let default = upstream_options
            .namespaces
            .as_ref()
            .map(|t| ("upstream_options.namespaces".to_string(), t));
        for (path, t) in default.into_iter().chain(named) {
            for (local, other, remote) in t.collisions() {
                // Escalation: a rule lets a caller use `other` but not `local`.
                let allows = |r: &crate::inbound::Rule, ns: &str| {
                    r.namespaces.iter().any(|p| crate::auth::glob(p, ns))
                };
                let escalates = inbound
                    .rules
                    .iter()
                    .any(|r| allows(r, &other) && !allows(r, &local));
                let message = format!(
                    "{local:?} and {other:?} both reach upstream namespace {remote:?}{}. Give {local:?} an \
                     upstream name the prefix/suffix rule cannot produce, or override {other:?} too",
                    if escalates {
                        format!(
                            ": an [[inbound.rules]] entry allows {other:?} but not {local:?}, so its \
                             callers would reach {local:?}'s data"
                        )
                    } else {
                        String::new()
                    }
                );
                if escalates {
                    issues.push(&format!("{path}.overrides"), message);
                } else {
                    issues.warn(&format!("{path}.overrides"), message);
                }
            }
        }

        // The listener decrypts: on a non-loopback address it needs callers
        // checked, or an explicit statement that the network is private.
        if let Ok(l) = &listen
            && !l.ip().is_loopback()
            && matches!(inbound.auth, AuthMode::None)
        {
            if inbound.allow_unauthenticated {
                issues.warn(
                    "inbound.allow_unauthenticated",
                    format!(
                        "anyone who can reach {l} may use every namespace and read decrypted payloads; \
                         keep it on a private network"
                    ),
                );
            } else {
                issues.push(
                    "inbound.auth",
                    format!(
                        "listen is {l}, reachable beyond this host, and callers are not checked: anyone \
                         who reaches it reads decrypted payloads. Set [inbound] auth (\"mtls\", \"bearer\" \
                         or \"jwt\" with rules), or, for a private subnet, inbound.allow_unauthenticated = true"
                    ),
                );
            }
        }

        let codec = match root.table("codec", &mut issues) {
            Some(mut t) => codec_section(&mut t, base, &mut issues),
            None => codec_section(&mut Table::empty("codec", env), base, &mut issues),
        };
        root.finish(&mut issues);

        for pem in [
            &upstream_options.tls.ca,
            &upstream_options.tls.client_cert,
            &upstream_options.tls.client_key,
        ]
        .into_iter()
        .flatten()
        {
            if let Pem::File(f) = pem {
                issues.read_file(f.clone());
            }
        }
        if let Some((cert, key)) = codec_server.as_ref().and_then(|c| c.tls.as_ref()) {
            issues.read_file(cert.clone());
            issues.read_file(key.clone());
        }
        match (listen, upstream, issues.take_problems()) {
            (Ok(listen), Ok(upstream), v) if v.is_empty() => Ok(Config {
                listen,
                upstream,
                upstream_options,
                proxy,
                upstreams,
                routing,
                inbound,
                codec,
                codec_server,
                external_storage,
                telemetry,
                reload_check_interval,
                upstream_origins: origins,
                warnings: issues.warnings,
                files: issues.files,
            }),
            (_, _, v) => Err(fail(v)),
        }
    }
}

impl Config {
    /// This configuration without key material or upstream API keys: what
    /// the gateway keeps after building from it (to bind, to name what a
    /// reload cannot change). The keys live only in the built key objects,
    /// and the material dropped here is zeroized with its `KeySpec`.
    pub fn without_secrets(&self) -> Config {
        let mut c = self.clone();
        c.codec.keys.keys.clear();
        c.upstream_options.api_key = None;
        for u in &mut c.upstreams {
            u.options.api_key = None;
        }
        c
    }
}

/// The process environment as `Config::parse` reads it. It also answers
/// `temporal::ENV_LIST` with the names of the `TEMPORAL_GRPC_META_*`
/// variables (a lookup function cannot list them otherwise).
pub fn process_env(key: &str) -> Option<String> {
    if key == temporal::ENV_LIST {
        let names: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with("TEMPORAL_GRPC_META_"))
            .collect();
        return Some(names.join("\n"));
    }
    std::env::var(key).ok()
}

/// The `ip:port` at `key` (or `default`), which environment variable `var`
/// overrides. `None` when it is `"off"` (and `off` is allowed) or unusable
/// (then reported).
fn address(
    t: &mut Table<'_>,
    key: &'static str,
    default: &str,
    var: &str,
    off: bool,
    issues: &mut Issues,
) -> Option<SocketAddr> {
    let text = t.string(key, issues).unwrap_or_else(|| default.into());
    let text = override_from(t.env(), var, text);
    if off && text == "off" {
        return None;
    }
    let or_off = if off { " or \"off\"" } else { "" };
    text.parse::<SocketAddr>()
        .map_err(|e| {
            issues.push(
                &t.path(key),
                format!("{text:?} is not an ip:port address{or_off} ({e})"),
            )
        })
        .ok()
}

fn override_from<T: From<String>>(env: &dyn Fn(&str) -> Option<String>, var: &str, v: T) -> T {
    match env(var) {
        Some(s) if !s.is_empty() => T::from(s),
        _ => v,
    }
}
