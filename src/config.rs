//! The TOML configuration: typed, validated, every problem reported at once
//! with its key path.
//!
//! Strings may use `${VAR}` to pull secrets from the environment (`$${`
//! writes a literal `${`). `SEALGATE_LISTEN`, `SEALGATE_UPSTREAM` and
//! `SEALGATE_CODEC_SERVER_LISTEN` override the addresses of any file.

mod table;
#[cfg(test)]
mod tests;

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
use table::{Issues, Table};

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
    /// The remote-codec HTTP endpoint for the Web UI and CLI; off when absent.
    pub codec_server: Option<CodecServerConfig>,
    pub telemetry: TelemetryConfig,
    /// How often the config file and the files it names are checked for
    /// changes (a change reloads keys and TLS material); `None`: only SIGHUP.
    pub reload_check_interval: Option<Duration>,
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
        Config::parse(&text, &origin, base, &|k| std::env::var(k).ok())
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

        // SEALGATE_UPSTREAM, then the file, then Temporal's own TEMPORAL_ADDRESS.
        let from_file = root.string("upstream", &mut issues);
        let upstream = override_from(env, "SEALGATE_UPSTREAM", from_file)
            .or_else(|| env("TEMPORAL_ADDRESS").filter(|s| !s.is_empty()));
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
            Some(mut t) => upstream_section(&mut t, base, env, &mut issues),
            None => upstream_section(
                &mut Table::empty("upstream_options", env),
                base,
                env,
                &mut issues,
            ),
        };
        // TLS comes from https://, TEMPORAL_TLS, or TLS material / an API key
        // given through Temporal's variables or the file (as the SDKs do:
        // credentials imply TLS).
        let tls_off =
            env("TEMPORAL_TLS").is_some_and(|v| v.eq_ignore_ascii_case("false") || v == "0");
        let upstream = upstream.map(|mut u| {
            u.tls |= upstream_options.wants_tls(env);
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
                telemetry,
                reload_check_interval,
                warnings: issues.warnings,
                files: issues.files,
            }),
            (_, _, v) => Err(fail(v)),
        }
    }
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

fn telemetry_section(
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

fn codec_server_section(t: &mut Table<'_>, base: &Path, issues: &mut Issues) -> CodecServerConfig {
    let default = SocketAddr::from(([127, 0, 0, 1], 8081));
    // An unusable address is reported; the default stands in meanwhile.
    let listen = address(
        t,
        "listen",
        "127.0.0.1:8081",
        "SEALGATE_CODEC_SERVER_LISTEN",
        false,
        issues,
    )
    .unwrap_or(default);
    let cors_origins = t.strings("cors_origins", issues).unwrap_or_default();
    let cors_allow_credentials = t.bool("cors_allow_credentials", issues).unwrap_or(false);
    if cors_allow_credentials && cors_origins.iter().any(|o| o == "*") {
        issues.push(
            &t.path("cors_allow_credentials"),
            "credentials need explicit origins, not \"*\" (browsers refuse the combination)".into(),
        );
    }
    let max_body = t.integer("max_body_bytes", issues).unwrap_or(16 << 20);
    let cert = t.string("tls_cert_file", issues).map(|f| base.join(f));
    let key = t.string("tls_key_file", issues).map(|f| base.join(f));
    let tls = both(t, cert, key, issues);
    let allow_open = t
        .bool("allow_unauthenticated_remote", issues)
        .unwrap_or(false);
    let (auth, rules) = match t.table("auth", issues) {
        Some(mut a) => {
            let rules = codec_server_rules(&mut a, issues);
            let auth = codec_server_auth(&mut a, !rules.is_empty(), issues);
            a.finish(issues);
            (auth, rules)
        }
        None => (CodecServerAuth::None, Vec::new()),
    };
    if matches!(auth, CodecServerAuth::None) && !listen.ip().is_loopback() && !allow_open {
        issues.push(
            &t.path("listen"),
            format!(
                "{listen} is reachable from other hosts and [codec_server.auth] is off: anyone who \
                 reaches it can decrypt payloads. Configure auth, or set allow_unauthenticated_remote = true"
            ),
        );
    }
    t.finish(issues);
    CodecServerConfig {
        rules,
        listen,
        cors_origins,
        cors_allow_credentials,
        max_body_bytes: max_body as usize,
        tls,
        auth,
    }
}

/// A certificate and its key: both or neither.
fn both<T>(t: &Table<'_>, cert: Option<T>, key: Option<T>, issues: &mut Issues) -> Option<(T, T)> {
    match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            issues.push(
                &t.path("tls_cert_file"),
                "TLS needs both tls_cert_file and tls_key_file".into(),
            );
            None
        }
    }
}

/// `jwks_url`, `issuer`, `audience`, `refresh_interval` of a JWT check.
fn jwt_keys(t: &mut Table<'_>, issues: &mut Issues) -> JwtConfig {
    let jwks_url = t.string("jwks_url", issues).unwrap_or_else(|| {
        issues.push(
            &t.path("jwks_url"),
            "missing: where the signing keys (JWKS) are published".into(),
        );
        String::new()
    });
    let is_url = jwks_url.starts_with("https://") || jwks_url.starts_with("http://");
    if !jwks_url.is_empty() && !is_url {
        issues.push(
            &t.path("jwks_url"),
            format!("{jwks_url:?} must be an http(s):// URL"),
        );
    }
    // Keys fetched in clear can be swapped on the way: http:// only on loopback.
    if jwks_url.starts_with("http://") {
        let uri = jwks_url.parse::<http::Uri>().ok();
        let host = uri
            .as_ref()
            .and_then(http::Uri::host)
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            issues.push(
                &t.path("jwks_url"),
                format!(
                    "{jwks_url:?} is plaintext: anyone on the path could swap the signing keys; use https:// (http:// only on loopback)"
                ),
            );
        }
    }
    JwtConfig {
        jwks_url,
        issuer: t.string("issuer", issues),
        audience: t.string("audience", issues),
        refresh_interval: t
            .duration("refresh_interval", issues)
            .unwrap_or(Duration::from_secs(600)),
        decode_requires: None,
        encode_requires: None,
    }
}

/// A rule's static bearer token (16+ characters).
fn token_who(token: String, path: &str, issues: &mut Issues) -> Option<Who> {
    if token.len() >= 16 {
        Some(Who::Token(token))
    } else {
        issues.push(path, "use at least 16 characters".into());
        None
    }
}

/// A `claim=value` rule: the JWT claim must hold the value.
fn claim_pair(text: &str, path: &str, issues: &mut Issues) -> Option<(String, String)> {
    match text.split_once('=') {
        Some((c, v)) if !c.is_empty() => Some((c.to_string(), v.to_string())),
        _ => {
            issues.push(
                path,
                format!("{text:?}: write claim=value, e.g. \"permissions=codec:decode\""),
            );
            None
        }
    }
}

fn claim_who(text: &str, path: &str, issues: &mut Issues) -> Option<Who> {
    claim_pair(text, path, issues).map(|(c, v)| Who::Claim(c, v))
}

/// `[[codec_server.auth.rules]]`: token or claim, namespaces, operations.
fn codec_server_rules(t: &mut Table<'_>, issues: &mut Issues) -> Vec<CodecRule> {
    let mode = t.peek_string("mode").unwrap_or_default();
    let mut rules = Vec::new();
    for mut r in t.array_of_tables("rules", issues) {
        let token = r.string("token", issues);
        let claim = r.string("claim", issues);
        let namespaces = r.strings("namespaces", issues).unwrap_or_default();
        if namespaces.is_empty() {
            issues.push(
                &r.path("namespaces"),
                "missing: the namespaces (exact or patterns) this caller may decode".into(),
            );
        }
        let ops = r
            .strings("operations", issues)
            .unwrap_or_else(|| vec!["decode".into()]);
        let (mut decode, mut encode) = (false, false);
        for op in &ops {
            match op.as_str() {
                "decode" => decode = true,
                "encode" => encode = true,
                other => issues.push(
                    &r.path("operations"),
                    format!("{other:?}: use \"decode\" and/or \"encode\""),
                ),
            }
        }
        let who = match (mode.as_str(), token, claim) {
            ("bearer", Some(t), None) => token_who(t, &r.path("token"), issues),
            ("jwt", None, Some(c)) => claim_who(&c, &r.path("claim"), issues),
            _ => {
                issues.push(
                    &r.path(""),
                    "with mode \"bearer\" a rule has `token`, with \"jwt\" a `claim`".into(),
                );
                None
            }
        };
        r.finish(issues);
        if let Some(who) = who {
            rules.push(CodecRule {
                who,
                namespaces,
                decode,
                encode,
            });
        }
    }
    rules
}

fn codec_server_auth(t: &mut Table<'_>, has_rules: bool, issues: &mut Issues) -> CodecServerAuth {
    let mode = t.string("mode", issues).unwrap_or_else(|| "none".into());
    let rule = |t: &mut Table<'_>, key: &'static str, issues: &mut Issues| {
        let v = t.string(key, issues)?;
        claim_pair(&v, &t.path(key), issues)
    };
    match mode.as_str() {
        "none" => CodecServerAuth::None,
        "bearer" => match t.string("token", issues) {
            None if has_rules => CodecServerAuth::Bearer {
                token: String::new(),
            },
            Some(token) if token.len() >= 16 => CodecServerAuth::Bearer { token },
            Some(_) => {
                issues.push(&t.path("token"), "use at least 16 characters".into());
                CodecServerAuth::None
            }
            None => {
                issues.push(
                    &t.path("token"),
                    "missing: the bearer token callers must send (e.g. \"${CODEC_TOKEN}\")".into(),
                );
                CodecServerAuth::None
            }
        },
        "jwt" => {
            let config = JwtConfig {
                decode_requires: rule(t, "decode_requires", issues),
                encode_requires: rule(t, "encode_requires", issues),
                ..jwt_keys(t, issues)
            };
            if config.issuer.is_none()
                && config.audience.is_none()
                && config.decode_requires.is_none()
                && !has_rules
            {
                issues.push(
                    &t.path("issuer"),
                    "a JWT setup with no issuer, audience or claim rule accepts every token the \
                     JWKS signs, for anyone: set issuer and audience, or decode_requires"
                        .into(),
                );
            }
            CodecServerAuth::Jwt(config)
        }
        other => {
            issues.push(
                &t.path("mode"),
                format!("{other:?}: use \"none\", \"bearer\" or \"jwt\""),
            );
            CodecServerAuth::None
        }
    }
}

fn named_upstream(
    name: &str,
    t: &mut Table<'_>,
    base: &Path,
    issues: &mut Issues,
) -> Option<NamedUpstream> {
    if name == DEFAULT_UPSTREAM {
        issues.push(
            &t.path(""),
            "\"default\" is the upstream given by `upstream` and [upstream_options]; pick another name"
                .into(),
        );
    }
    let raw_address = t.string("address", issues);
    let explicit_plaintext = raw_address
        .as_deref()
        .is_some_and(|a| a.starts_with("http://"));
    let address = match raw_address {
        Some(a) => Upstream::parse(&a.replace("{namespace}", "namespace"))
            .map(|_| Upstream::parse_template(&a))
            .map_err(|m| issues.push(&t.path("address"), m))
            .ok(),
        None => {
            issues.push(
                &t.path("address"),
                "missing: e.g. \"https://{namespace}.a1b2c.tmprl.cloud:7233\"".into(),
            );
            None
        }
    };
    // Temporal's environment variables describe the default upstream only.
    let options = upstream_section(t, base, &|_| None, issues);
    // Credentials imply TLS here too.
    let address = address.map(|mut a| {
        options.credentials_imply_tls(
            &mut a,
            explicit_plaintext,
            (&t.path("address"), &t.path("allow_plaintext_credentials")),
            issues,
        );
        a
    });
    Some(NamedUpstream {
        name: name.to_string(),
        address: address?,
        options,
    })
}

fn routing_section(
    root: &mut Table<'_>,
    upstreams: &[NamedUpstream],
    issues: &mut Issues,
) -> RoutingConfig {
    let known = |n: &str| n == DEFAULT_UPSTREAM || upstreams.iter().any(|u| u.name == n);
    let check = |t: &Table<'_>, key: &str, name: &str, issues: &mut Issues| {
        if !known(name) {
            let names: Vec<&str> = std::iter::once(DEFAULT_UPSTREAM)
                .chain(upstreams.iter().map(|u| u.name.as_str()))
                .collect();
            issues.push(
                &t.path(key),
                format!("{name:?} is not an upstream (known: {})", names.join(", ")),
            );
        }
    };
    let mut routes = Vec::new();
    for mut r in root.array_of_tables("routes", issues) {
        let namespace = r.string("namespace", issues);
        let mut metadata = Vec::new();
        if let Some(m) = r.table("metadata", issues) {
            for (k, v) in m.entries() {
                match v {
                    toml::Value::String(v) => metadata.push((k.to_ascii_lowercase(), v.clone())),
                    _ => issues.push(&m.path(k), "expected a string".into()),
                }
            }
        }
        let upstream = r.string("upstream", issues).unwrap_or_default();
        check(&r, "upstream", &upstream, issues);
        if namespace.is_none() && metadata.is_empty() {
            issues.push(
                &r.path("namespace"),
                "a route needs a namespace pattern, metadata, or both".into(),
            );
        }
        r.finish(issues);
        routes.push(RouteConfig {
            namespace,
            metadata,
            upstream,
        });
    }
    let mut t = root
        .table("routing", issues)
        .unwrap_or_else(|| Table::empty("routing", root.env()));
    let default = t
        .string("default", issues)
        .unwrap_or_else(|| DEFAULT_UPSTREAM.into());
    check(&t, "default", &default, issues);
    let system = t
        .string("system", issues)
        .unwrap_or_else(|| default.clone());
    check(&t, "system", &system, issues);
    t.finish(issues);
    RoutingConfig {
        routes,
        default,
        system,
    }
}

fn inbound_section(t: &mut Table<'_>, base: &Path, issues: &mut Issues) -> InboundConfig {
    let mut file = |key: &'static str, issues: &mut Issues| {
        t.string(key, issues).map(|f| {
            let path = base.join(f);
            issues.read_file(path.clone());
            Pem::File(path)
        })
    };
    let cert = file("tls_cert_file", issues);
    let key = file("tls_key_file", issues);
    let client_ca = file("client_ca_file", issues);
    let tls = both(t, cert, key, issues);
    if client_ca.is_some() && tls.is_none() {
        issues.push(
            &t.path("client_ca_file"),
            "client certificates need TLS: set tls_cert_file and tls_key_file too".into(),
        );
    }
    let mode = t.string("auth", issues).unwrap_or_else(|| "none".into());
    let auth = match mode.as_str() {
        "none" => AuthMode::None,
        "mtls" => {
            if client_ca.is_none() {
                issues.push(
                    &t.path("auth"),
                    "\"mtls\" needs client_ca_file (the CA that issues the workers' certificates)"
                        .into(),
                );
            }
            AuthMode::Mtls
        }
        "bearer" => AuthMode::Bearer,
        "jwt" => AuthMode::Jwt(jwt_keys(t, issues)),
        other => {
            issues.push(
                &t.path("auth"),
                format!("{other:?}: use \"none\", \"mtls\", \"bearer\" or \"jwt\""),
            );
            AuthMode::None
        }
    };
    let mut rules = Vec::new();
    for mut r in t.array_of_tables("rules", issues) {
        let san = r.string("san", issues);
        let subject = r.string("subject", issues);
        let token = r.string("token", issues);
        let claim = r.string("claim", issues);
        let namespaces = r.strings("namespaces", issues).unwrap_or_default();
        let system = r.bool("system", issues).unwrap_or(false);
        if namespaces.is_empty() && !system {
            issues.push(
                &r.path("namespaces"),
                "missing: the namespaces (exact or patterns, \"*\" for all) this caller may use, or system = true"
                    .into(),
            );
        }
        let who = match (&auth, san, subject, token, claim) {
            (AuthMode::Mtls, Some(s), None, None, None) => Some(Who::San(s)),
            (AuthMode::Mtls, None, Some(s), None, None) => {
                match crate::inbound::parse_subject(&s) {
                    Ok(attrs) => Some(Who::Subject(attrs)),
                    Err(e) => {
                        issues.push(&r.path("subject"), e);
                        None
                    }
                }
            }
            (AuthMode::Bearer, None, None, Some(t), None) => token_who(t, &r.path("token"), issues),
            (AuthMode::Jwt(_), None, None, None, Some(c)) => {
                claim_who(&c, &r.path("claim"), issues)
            }
            _ => {
                let want = match auth {
                    AuthMode::Mtls => "san or subject",
                    AuthMode::Bearer => "token",
                    AuthMode::Jwt(_) => "claim",
                    AuthMode::None => "nothing (auth is \"none\")",
                };
                issues.push(
                    &r.path(""),
                    format!("with auth = {mode:?} a rule names its caller with {want}"),
                );
                None
            }
        };
        r.finish(issues);
        if let Some(who) = who {
            rules.push(Rule {
                who,
                namespaces,
                system,
            });
        }
    }
    if !matches!(auth, AuthMode::None) && rules.is_empty() {
        issues.push(
            &t.path("rules"),
            "missing: with authentication on, [[inbound.rules]] say who may use which namespaces"
                .into(),
        );
    }
    let allow_unauthenticated = t.bool("allow_unauthenticated", issues).unwrap_or(false);
    t.finish(issues);
    InboundConfig {
        tls,
        client_ca,
        auth,
        rules,
        allow_unauthenticated,
    }
}

fn proxy_section(t: &mut Table<'_>, issues: &mut Issues) -> ProxyConfig {
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
    let max_concurrent_streams = t.integer("max_concurrent_streams", issues).unwrap_or(1000);
    if !(1..=100_000).contains(&max_concurrent_streams) {
        issues.push(
            &t.path("max_concurrent_streams"),
            format!("{max_concurrent_streams} is out of range: 1 to 100000"),
        );
    }
    let max_header_list_bytes = t
        .integer("max_header_list_bytes", issues)
        .unwrap_or(DEFAULT_MAX_HEADER_LIST as u64);
    if !(16 << 10..=16 << 20).contains(&max_header_list_bytes) {
        issues.push(
            &t.path("max_header_list_bytes"),
            format!("{max_header_list_bytes} is out of range: 16384 to 16777216"),
        );
    }
    t.finish(issues);
    ProxyConfig {
        max_message_bytes: max.min(u32::MAX as u64) as usize,
        allowed_services,
        shutdown_grace,
        forward_authorization,
        reflection,
        runtime,
        threads,
        opaque_services,
        memory_budget_bytes: memory_budget_bytes.min(usize::MAX as u64) as usize,
        request_body_timeout,
        max_concurrent_streams: max_concurrent_streams.clamp(1, 100_000) as u32,
        max_header_list_bytes: max_header_list_bytes.clamp(16 << 10, 16 << 20) as u32,
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
fn schema_section(
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

/// Names of Temporal's client environment variables for upstream settings.
const TEMPORAL_TLS_VARS: [&str; 7] = [
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
    "TEMPORAL_TLS_SERVER_NAME",
];

impl Config {
    /// Every upstream's namespace translation (default upstream first).
    pub fn translations(&self) -> Vec<Translation> {
        self.upstream_options
            .namespaces
            .iter()
            .chain(
                self.upstreams
                    .iter()
                    .filter_map(|u| u.options.namespaces.as_ref()),
            )
            .cloned()
            .collect()
    }
}

impl UpstreamOptions {
    /// As the SDKs do, an API key, a client certificate or any TLS setting
    /// turns TLS on for `upstream`, unless its scheme (or TEMPORAL_TLS) says
    /// plaintext (`plaintext`); then credentials would cross in clear, which
    /// is refused unless allowed for a local test upstream (and warned
    /// about). `paths`: the address's key and the allow setting's key.
    fn credentials_imply_tls(
        &self,
        upstream: &mut Upstream,
        plaintext: bool,
        paths: (&str, &str),
        issues: &mut Issues,
    ) {
        let credentials = self.api_key.is_some() || self.tls.client_cert.is_some();
        let material = credentials || self.tls.ca.is_some() || self.tls.server_name.is_some();
        upstream.tls |= material && !plaintext;
        if upstream.tls || !credentials {
            return;
        }
        let (address, allow) = paths;
        if self.allow_plaintext_credentials {
            issues.warn(
                allow,
                format!(
                    "the upstream's credentials go to {upstream} in PLAINTEXT; only for a local test upstream"
                ),
            );
        } else {
            issues.push(
                address,
                format!(
                    "{upstream} is plaintext but an API key or client certificate is set: credentials \
                     would cross the network in clear. Use https:// (or drop the http:// scheme: \
                     credentials turn TLS on), or, for a local test upstream only, set {allow} = true"
                ),
            );
        }
    }

    fn wants_tls(&self, env: &dyn Fn(&str) -> Option<String>) -> bool {
        let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
        let explicit = env("TEMPORAL_TLS").map(|v| v.eq_ignore_ascii_case("true") || v == "1");
        match explicit {
            Some(on) => on,
            None => TEMPORAL_TLS_VARS.iter().any(|k| set(k)) || set("TEMPORAL_API_KEY"),
        }
    }
}

fn upstream_section(
    t: &mut Table<'_>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    issues: &mut Issues,
) -> UpstreamOptions {
    let nonempty = |k: &str| env(k).filter(|v| !v.is_empty());
    let connections = t.integer("connections", issues).unwrap_or(4);
    if !(1..=64).contains(&connections) {
        issues.push(
            &t.path("connections"),
            format!("{connections} is out of range: 1 to 64"),
        );
    }
    let connect_timeout = t
        .duration("connect_timeout", issues)
        .unwrap_or(Duration::from_secs(10));
    let keepalive_interval = t
        .duration("keepalive_interval", issues)
        .unwrap_or(Duration::from_secs(30));
    if keepalive_interval < Duration::from_secs(10) {
        issues.push(
            &t.path("keepalive_interval"),
            "must be at least 10s: Temporal's server closes connections that ping more often"
                .into(),
        );
    }
    let keepalive_timeout = t
        .duration("keepalive_timeout", issues)
        .unwrap_or(Duration::from_secs(20));
    let api_key = t
        .string("api_key", issues)
        .or_else(|| nonempty("TEMPORAL_API_KEY"));
    // Each PEM: file key, inline key, then Temporal's _PATH / _DATA variables.
    let mut pem = |file_key: &'static str, pem_key: &'static str, var: &str| -> Option<Pem> {
        let file = t.string(file_key, issues).map(|f| base.join(f));
        let inline = t.string(pem_key, issues);
        match (file, inline) {
            (Some(_), Some(_)) => {
                issues.push(
                    &t.path(pem_key),
                    format!("set {file_key} or {pem_key}, not both"),
                );
                None
            }
            (Some(f), None) => Some(Pem::File(f)),
            (None, Some(p)) => Some(Pem::Inline(p)),
            (None, None) => nonempty(&format!("{var}_PATH"))
                .map(|p| Pem::File(PathBuf::from(p)))
                .or_else(|| nonempty(&format!("{var}_DATA")).map(Pem::Inline)),
        }
    };
    let ca = pem("ca_file", "ca_pem", "TEMPORAL_TLS_SERVER_CA_CERT");
    let client_cert = pem(
        "client_cert_file",
        "client_cert_pem",
        "TEMPORAL_TLS_CLIENT_CERT",
    );
    let client_key = pem(
        "client_key_file",
        "client_key_pem",
        "TEMPORAL_TLS_CLIENT_KEY",
    );
    let server_name = t
        .string("server_name", issues)
        .or_else(|| nonempty("TEMPORAL_TLS_SERVER_NAME"));
    if client_cert.is_some() != client_key.is_some() {
        issues.push(
            &t.path("client_cert_file"),
            "mTLS needs both a client certificate and its key".into(),
        );
    }
    for (what, p) in [
        ("ca_file", &ca),
        ("client_cert_file", &client_cert),
        ("client_key_file", &client_key),
    ] {
        if let Some(Pem::File(f)) = p
            && !f.is_file()
        {
            issues.push(&t.path(what), format!("cannot read {}", f.display()));
        }
    }
    let namespaces = t.table("namespaces", issues).map(|mut n| {
        let prefix = n.string("prefix", issues).unwrap_or_default();
        let suffix = n.string("suffix", issues).unwrap_or_default();
        let mut overrides = Vec::new();
        if let Some(o) = n.table("overrides", issues) {
            for (k, v) in o.entries() {
                match v {
                    toml::Value::String(v) if !v.is_empty() => {
                        overrides.push((k.to_string(), v.clone()))
                    }
                    _ => issues.push(&o.path(k), "expected the upstream's namespace name".into()),
                }
            }
        }
        n.finish(issues);
        Translation {
            prefix,
            suffix,
            overrides,
        }
    });
    let forward_authorization = t.bool("forward_authorization", issues).unwrap_or(false);
    let allow_plaintext_credentials = t
        .bool("allow_plaintext_credentials", issues)
        .unwrap_or(false);
    t.finish(issues);
    UpstreamOptions {
        allow_plaintext_credentials,
        forward_authorization,
        namespaces,
        connections: connections.clamp(1, 64) as usize,
        connect_timeout,
        keepalive_interval,
        keepalive_timeout,
        api_key,
        tls: TlsSettings {
            ca,
            client_cert,
            client_key,
            server_name,
        },
    }
}

/// Key material: `material` (base64, `${VAR}` allowed) or `material_file`
/// (a file holding the base64). Warns when the file is readable by others.
fn key_material(
    k: &mut Table<'_>,
    base: &Path,
    issues: &mut Issues,
    required: bool,
) -> Option<Zeroizing<Vec<u8>>> {
    let inline = k.string("material", issues).map(Zeroizing::new);
    let file = k.string("material_file", issues);
    let text = match (inline, file) {
        (Some(m), None) => Some(m),
        (None, Some(f)) => {
            let path = base.join(&f);
            issues.read_file(path.clone());
            warn_if_readable(&path, &k.path("material_file"), issues);
            std::fs::read_to_string(&path)
                .map(Zeroizing::new)
                .map_err(|e| {
                    issues.push(
                        &k.path("material_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })
                .ok()
        }
        (Some(_), Some(_)) => {
            issues.push(
                &k.path("material"),
                "set material or material_file, not both".into(),
            );
            None
        }
        (None, None) if k.contains("material") || k.contains("material_file") => None,
        (None, None) if !required => None,
        (None, None) => {
            issues.push(
                &k.path("material"),
                "missing: base64 of 32 random bytes (`sealgate keygen` makes one), \
                 or material_file"
                    .into(),
            );
            None
        }
    };
    text.and_then(|text| {
        keys::decode_material(&text)
            .map_err(|e| issues.push(&k.path("material"), e.to_string()))
            .ok()
    })
}

/// Key files should be readable by their owner only (mode 0600 or tighter).
fn warn_if_readable(path: &Path, key: &str, issues: &mut Issues) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                issues.warn(
                    key,
                    format!(
                        "{} has mode {mode:04o}: others can read this key; run chmod 600 on it",
                        path.display()
                    ),
                );
            }
        }
    }
}

/// An id: present, not empty, not used before.
fn key_id(k: &mut Table<'_>, taken: &[&str], issues: &mut Issues) -> Option<String> {
    let id = k.string("id", issues);
    match &id {
        None => issues.push(
            &k.path("id"),
            "missing: a name for this key, e.g. \"key-2026-11\"".into(),
        ),
        Some(id) if id.is_empty() => issues.push(&k.path("id"), "must not be empty".into()),
        Some(id) if taken.contains(&id.as_str()) => issues.push(
            &k.path("id"),
            format!("{:?} is used by another key", kms::redact_id(id)),
        ),
        _ => return id,
    }
    None
}

fn kms_section(
    name: &str,
    t: &mut Table<'_>,
    base: &Path,
    taken: &mut Vec<String>,
    issues: &mut Issues,
) -> Option<ProviderSpec> {
    let provider = t.string("provider", issues);
    let timeout = t
        .duration("timeout", issues)
        .unwrap_or(kms::DEFAULT_TIMEOUT);
    let mut local_keys = Vec::new();
    let mut remote_keys = Vec::new();
    let settings = match provider.as_deref() {
        Some("local") => {
            for mut k in t.array_of_tables("keys", issues) {
                let ids: Vec<&str> = taken.iter().map(String::as_str).collect();
                let id = key_id(&mut k, &ids, issues);
                // Temporal Proxy's ids carry the key: base64key://<base64>.
                let from_uri = id.as_deref().and_then(LocalKek::material_from_uri);
                let material = key_material(&mut k, base, issues, from_uri.is_none());
                let material = match (material, from_uri) {
                    (Some(m), _) => Some(m),
                    (None, Some(Ok(m))) => Some(m),
                    (None, Some(Err(e))) => {
                        issues.push(&k.path("id"), format!("base64key:// id: {e}"));
                        None
                    }
                    (None, None) => None,
                };
                k.finish(issues);
                if let Some(id) = id {
                    taken.push(id.clone());
                    if let Some(material) = material {
                        local_keys.push(KeySpec { id, material });
                    }
                }
            }
            ProviderSettings::Local
        }
        Some(kind @ ("awskms" | "extension")) => {
            let ids = t.strings("keys", issues).unwrap_or_default();
            if ids.is_empty() {
                issues.push(
                    &t.path("keys"),
                    "missing: the ids of the KEKs this provider holds (for AWS: key ARNs or aliases)"
                        .into(),
                );
            }
            for (i, id) in ids.into_iter().enumerate() {
                if id.is_empty() || taken.contains(&id) {
                    issues.push(
                        &format!("{}[{i}]", t.path("keys")),
                        format!("{id:?} is empty or used by another key"),
                    );
                } else {
                    taken.push(id.clone());
                    remote_keys.push(id);
                }
            }
            if kind == "awskms" {
                ProviderSettings::Aws(AwsSettings {
                    region: t.string("region", issues),
                    endpoint: t.string("endpoint", issues),
                    profile: t.string("profile", issues),
                })
            } else {
                let endpoint = t.string("endpoint", issues).unwrap_or_default();
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    issues.push(
                        &t.path("endpoint"),
                        format!(
                            "{endpoint:?}: the key service's address, e.g. \"http://127.0.0.1:50051\""
                        ),
                    );
                }
                let ca_pem = t.string("ca_file", issues).and_then(|f| {
                    let path = base.join(f);
                    issues.read_file(path.clone());
                    std::fs::read(&path)
                        .map_err(|e| {
                            issues.push(
                                &t.path("ca_file"),
                                format!("cannot read {}: {e}", path.display()),
                            )
                        })
                        .ok()
                });
                ProviderSettings::Extension(ExtensionSettings { endpoint, ca_pem })
            }
        }
        other => {
            issues.push(
                &t.path("provider"),
                format!("{other:?}: expected \"local\", \"awskms\" or \"extension\""),
            );
            return None;
        }
    };
    t.finish(issues);
    Some(ProviderSpec {
        config: ProviderConfig {
            name: name.to_string(),
            settings,
            timeout,
        },
        local_keys,
        remote_keys,
    })
}

fn policy_section(
    name: &str,
    t: &mut Table<'_>,
    known: &[String],
    issues: &mut Issues,
) -> PolicySpec {
    let mut p = PolicySpec::new(name);
    p.active_key = t.string("active_key", issues);
    p.bind_namespace = t.bool("bind_namespace", issues).unwrap_or(false);
    p.decrypt_keys = t.strings("decrypt_keys", issues).unwrap_or_default();
    if let Some(d) = t.duration("dek_lifetime", issues) {
        p.rotation.lifetime = d;
    }
    if let Some(d) = t.duration("renew_before", issues) {
        p.rotation.renew_before = d;
    }
    if p.rotation.renew_before >= p.rotation.lifetime {
        issues.push(
            &t.path("renew_before"),
            format!(
                "{:?} is not shorter than dek_lifetime ({:?}): a new data key would be made on every call",
                p.rotation.renew_before, p.rotation.lifetime
            ),
        );
    }
    if let Some(id) = &p.active_key {
        refuse_secret_id(id, &t.path("active_key"), issues);
    }
    if let Some(id) = &p.active_key
        && !known.contains(id)
    {
        issues.push(
            &t.path("active_key"),
            format!(
                "{:?} is neither a [[codec.keys]] id nor a KEK of a [codec.kms] provider",
                kms::redact_id(id)
            ),
        );
    }
    for (i, id) in p.decrypt_keys.iter().enumerate() {
        if !known.contains(id) {
            issues.push(
                &format!("{}[{i}]", t.path("decrypt_keys")),
                format!("{:?} is not a configured key or KEK", kms::redact_id(id)),
            );
        }
    }
    t.finish(issues);
    p
}

/// A key id is written into every payload it encrypts: an id that carries
/// the key itself (Temporal Proxy's `base64key://<key>`) may decrypt old
/// data but never encrypt.
fn refuse_secret_id(id: &str, path: &str, issues: &mut Issues) {
    if id.starts_with(kms::TEMPORAL_PROXY_SCHEME) {
        issues.push(
            path,
            format!(
                "{:?} carries the key itself, and an encrypting key's id is written into every payload Temporal stores: give the key an id of its own ([[codec.kms.local.keys]] id = \"...\" with material) and keep the base64key:// entry only to decrypt older data",
                kms::redact_id(id)
            ),
        );
    }
}

/// A static key whose id is its own material (the SDK samples' test key,
/// `test-key-test-key-test-key-test!`, is both): the id is written into
/// every payload and logged, so it must never encrypt. Reading old data
/// with it stays possible, with a warning. The id is never shown.
fn refuse_self_keyed(spec: &KeysSpec, path: &str, issues: &mut Issues) {
    for (i, k) in spec.keys.iter().enumerate() {
        if k.material.as_slice() != k.id.as_bytes() {
            continue;
        }
        let encrypts = spec
            .policies
            .iter()
            .any(|p| p.active_key.as_deref() == Some(k.id.as_str()));
        let what = format!(
            "entry {} (id not shown) uses its own id as key material, as the SDK samples' test key does",
            i + 1
        );
        if encrypts {
            issues.push(
                path,
                format!(
                    "{what}: an encrypting key's id is written into every payload, so the key would be \
                     too. Give sealgate a fresh key (`sealgate keygen`) as active_key, and keep this \
                     one in decrypt_keys to read data the samples wrote"
                ),
            );
        } else {
            issues.warn(
                path,
                format!("{what}: it only decrypts here; anyone who can read a payload has it"),
            );
        }
    }
}

fn codec_section(t: &mut Table<'_>, base: &Path, issues: &mut Issues) -> CodecConfig {
    let compression = t.bool("compression", issues).unwrap_or(true);
    let encryption = t.bool("encryption", issues).unwrap_or(true);
    let encode_failure_attributes = t.bool("encode_failure_attributes", issues).unwrap_or(true);
    let dek_cache_size = t
        .integer("dek_cache_size", issues)
        .map_or(envelope::DEFAULT_CACHE_SIZE, |n| n as usize);
    let active_key = t.string("active_key", issues);
    let mut spec = KeysSpec::default();
    let mut taken: Vec<String> = Vec::new();
    for mut k in t.array_of_tables("keys", issues) {
        let ids: Vec<&str> = taken.iter().map(String::as_str).collect();
        let id = key_id(&mut k, &ids, issues);
        let material = key_material(&mut k, base, issues, true);
        k.finish(issues);
        if let Some(id) = id {
            taken.push(id.clone());
            if let Some(material) = material {
                spec.keys.push(KeySpec { id, material });
            }
        }
    }
    for (name, mut p) in t.named_tables("kms", issues) {
        if let Some(p) = kms_section(&name, &mut p, base, &mut taken, issues) {
            spec.providers.push(p);
        }
    }
    let policies = t.named_tables("policies", issues);
    let explicit = !policies.is_empty();
    for (name, mut p) in policies {
        spec.policies
            .push(policy_section(&name, &mut p, &taken, issues));
    }
    if explicit {
        if active_key.is_some() {
            issues.push(
                &t.path("active_key"),
                "set active_key in [codec.policies.default] when [codec.policies] is used".into(),
            );
        }
        if !spec.policies.iter().any(|p| p.name == DEFAULT_POLICY) && encryption {
            issues.push(
                &t.path("policies.default"),
                "missing: encryption is on, so a default policy must cover every namespace \
                 without its own (including ones created later)"
                    .into(),
            );
        }
    } else {
        // The first-cut shape: one keyring, `active_key` encrypts, every key decrypts.
        if let Some(id) = &active_key {
            refuse_secret_id(id, &t.path("active_key"), issues);
        }
        match &active_key {
            None if encryption => issues.push(
                &t.path("active_key"),
                "missing: encryption is on, so name the key that encrypts \
                 (or set encryption = false to only decrypt)"
                    .into(),
            ),
            Some(id) if !taken.contains(id) && !t.has_key_issues(issues) => issues.push(
                &t.path("active_key"),
                format!("{id:?} is not the id of any [[codec.keys]] entry"),
            ),
            _ => {}
        }
        spec.policies.push(PolicySpec {
            active_key,
            decrypt_all: true,
            ..PolicySpec::new(DEFAULT_POLICY)
        });
    }
    refuse_self_keyed(&spec, &t.path("keys"), issues);
    if !encryption {
        issues.warn(
            &t.path("encryption"),
            "off: decrypt-only posture. Payloads go upstream as they are (plaintext), \
             and payloads encrypted earlier are still decrypted"
                .into(),
        );
    }
    t.finish(issues);
    CodecConfig {
        compression,
        encryption,
        encode_failure_attributes,
        keys: spec,
        dek_cache_size,
    }
}
