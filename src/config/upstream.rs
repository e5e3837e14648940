//! `upstream` and `[upstream_options]`: the Temporal frontend and how to
//! reach it, completed from Temporal's `TEMPORAL_*` variables.

use std::collections::BTreeMap;

use super::{temporal::TemporalClient, *};

/// Temporal Cloud's (and the server's default) limit on a payload list:
/// `limit.blobSize.error`, 2 MiB.
pub(super) const DEFAULT_MAX_PAYLOAD: usize = 2 << 20;
/// Temporal Cloud's limit on one gRPC request, 4 MiB.
pub(super) const DEFAULT_MAX_REQUEST: usize = 4 << 20;

/// Names of Temporal's client environment variables for upstream settings.
pub(super) const TEMPORAL_TLS_VARS: [&str; 7] = [
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_DATA",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
    "TEMPORAL_TLS_SERVER_NAME",
];

/// One upstream as the configuration resolved it, for `sealgate
/// check-config`: no secret, only whether one is set.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EffectiveUpstream {
    pub name: String,
    pub address: String,
    /// "plaintext (h2c)", "TLS", or "mTLS".
    pub tls: String,
    pub server_name: Option<String>,
    /// A file path, or "inline PEM".
    pub server_ca: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub api_key_set: bool,
    /// Names of the metadata added to every call (values may be secrets).
    pub grpc_meta: Vec<String>,
    /// `(setting, where it came from)`.
    pub origins: Vec<(String, String)>,
}

fn shown(p: &Option<Pem>) -> Option<String> {
    p.as_ref().map(|p| match p {
        Pem::File(f) => f.display().to_string(),
        Pem::Inline(_) => "inline PEM".to_string(),
    })
}

fn effective(
    name: &str,
    address: &Upstream,
    o: &UpstreamOptions,
    origins: Vec<(String, String)>,
) -> EffectiveUpstream {
    let tls = if !address.tls {
        "plaintext (h2c)"
    } else if o.tls.client_cert.is_some() {
        "mTLS"
    } else {
        "TLS"
    };
    EffectiveUpstream {
        name: name.to_string(),
        address: address.to_string(),
        tls: tls.to_string(),
        server_name: o.tls.server_name.clone(),
        server_ca: shown(&o.tls.ca),
        client_cert: shown(&o.tls.client_cert),
        client_key: shown(&o.tls.client_key),
        api_key_set: o.api_key.is_some(),
        grpc_meta: o.grpc_meta.iter().map(|(n, _)| n.clone()).collect(),
        origins,
    }
}

impl Config {
    /// Every upstream as resolved (the default one first), with where the
    /// default upstream's settings came from.
    pub fn effective_upstreams(&self) -> Vec<EffectiveUpstream> {
        let mut out = vec![effective(
            DEFAULT_UPSTREAM,
            &self.upstream,
            &self.upstream_options,
            self.upstream_origins.clone(),
        )];
        for u in &self.upstreams {
            let from = format!("sealgate.toml: [upstreams.{}]", u.name);
            out.push(effective(
                &u.name,
                &u.address,
                &u.options,
                vec![("every setting".into(), from)],
            ));
        }
        out
    }

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
    pub(super) fn credentials_imply_tls(
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
}

/// `[upstream_options]` (or `[upstreams.NAME]`), completed from Temporal's
/// client configuration `temporal` where the table is silent; where each
/// setting came from goes to `origins`.
pub(super) fn upstream_section(
    t: &mut Table<'_>,
    base: &Path,
    temporal: &TemporalClient,
    origins: &mut Vec<(String, String)>,
    issues: &mut Issues,
) -> UpstreamOptions {
    let here = |t: &Table<'_>, key: &str| format!("sealgate.toml: {}", t.path(key));
    let connections = t.integer_in("connections", 4, 1..=64, issues);
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
    let from_file = t.string("api_key_file", issues).and_then(|f| {
        let path = base.join(f);
        match std::fs::read_to_string(&path) {
            Ok(k) if !k.trim().is_empty() => {
                issues.read_file(path.clone());
                Some((k.trim().to_string(), path))
            }
            Ok(_) => {
                issues.push(
                    &t.path("api_key_file"),
                    format!("{} is empty", path.display()),
                );
                None
            }
            Err(e) => {
                issues.push(
                    &t.path("api_key_file"),
                    format!("cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    });
    let inline = t.string("api_key", issues);
    if inline.is_some() && from_file.is_some() {
        issues.push(
            &t.path("api_key_file"),
            "set api_key or api_key_file, not both".into(),
        );
    }
    let api_key = match (inline, from_file) {
        (_, Some((k, path))) => {
            // A file is watched: a rotated key reloads without a restart.
            origins.push(("api key (set)".into(), format!("file {}", path.display())));
            Some(k)
        }
        (Some(k), None) => {
            origins.push(("api key (set)".into(), here(t, "api_key")));
            Some(k)
        }
        (None, None) => temporal.api_key.clone().map(|(k, from)| {
            origins.push(("api key (set)".into(), from.to_string()));
            k
        }),
    };
    let tls_profile = temporal.tls.clone().unwrap_or_default();
    // Each PEM: file key, inline key, then Temporal's (profile, variables).
    let mut pem = |file_key: &'static str,
                   pem_key: &'static str,
                   theirs: &Option<(Pem, temporal::Source)>,
                   what: &str|
     -> Option<Pem> {
        let file = t.string(file_key, issues).map(|f| base.join(f));
        let inline = t.string(pem_key, issues);
        let (pem, from) = match (file, inline) {
            (Some(_), Some(_)) => {
                issues.push(
                    &t.path(pem_key),
                    format!("set {file_key} or {pem_key}, not both"),
                );
                return None;
            }
            (Some(f), None) => (Pem::File(f), here(t, file_key)),
            (None, Some(p)) => (Pem::Inline(p), here(t, pem_key)),
            (None, None) => {
                let (p, from) = theirs.clone()?;
                (p, from.to_string())
            }
        };
        let shown = match &pem {
            Pem::File(f) => format!("{what} {}", f.display()),
            Pem::Inline(_) => format!("{what} (inline PEM)"),
        };
        origins.push((shown, from));
        Some(pem)
    };
    let ca = pem("ca_file", "ca_pem", &tls_profile.ca, "server CA");
    let client_cert = pem(
        "client_cert_file",
        "client_cert_pem",
        &tls_profile.client_cert,
        "client certificate",
    );
    let client_key = pem(
        "client_key_file",
        "client_key_pem",
        &tls_profile.client_key,
        "client key",
    );
    let server_name = match t.string("server_name", issues) {
        Some(n) => {
            origins.push((format!("server name {n:?}"), here(t, "server_name")));
            Some(n)
        }
        None => tls_profile.server_name.clone().map(|(n, from)| {
            origins.push((format!("server name {n:?}"), from.to_string()));
            n
        }),
    };
    // gRPC metadata: the table's own entries, then Temporal's grpc_meta.
    let mut grpc_meta: BTreeMap<String, String> = BTreeMap::new();
    if let Some(m) = t.table("grpc_meta", issues) {
        for (k, v) in m.entries() {
            match v {
                toml::Value::String(v) => {
                    let name = temporal::meta_name(k);
                    origins.push((format!("metadata {name}"), here(&m, k)));
                    grpc_meta.insert(name, v.clone());
                }
                _ => issues.push(&m.path(k), "expected a string".into()),
            }
        }
    }
    for (name, (v, from)) in &temporal.grpc_meta {
        if !grpc_meta.contains_key(name) {
            origins.push((format!("metadata {name}"), from.to_string()));
            grpc_meta.insert(name.clone(), v.clone());
        }
    }
    for (name, value) in &grpc_meta {
        if let Err(e) = check_meta(name, value, api_key.is_some()) {
            issues.push(&format!("{} {name}", t.path("grpc_meta")), e);
        }
    }
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
    let max_payload_bytes = t
        .integer("max_payload_bytes", issues)
        .map_or(DEFAULT_MAX_PAYLOAD, |n| n as usize);
    let max_request_bytes = t
        .integer("max_request_bytes", issues)
        .map_or(DEFAULT_MAX_REQUEST, |n| n as usize);
    if max_payload_bytes > max_request_bytes {
        issues.push(
            &t.path("max_payload_bytes"),
            format!("{max_payload_bytes} is over max_request_bytes ({max_request_bytes})"),
        );
    }
    let forward_authorization = t.bool("forward_authorization", issues).unwrap_or(false);
    let allow_plaintext_credentials = t
        .bool("allow_plaintext_credentials", issues)
        .unwrap_or(false);
    t.finish(issues);
    UpstreamOptions {
        allow_plaintext_credentials,
        forward_authorization,
        namespaces,
        connections: connections as usize,
        connect_timeout,
        keepalive_interval,
        keepalive_timeout,
        api_key,
        max_payload_bytes,
        max_request_bytes,
        grpc_meta: grpc_meta.into_iter().collect(),
        tls: TlsSettings {
            ca,
            client_cert,
            client_key,
            server_name,
        },
    }
}

/// A metadata entry sealgate can add to every upstream call: a valid
/// header, not one the gRPC protocol or sealgate itself sets.
fn check_meta(name: &str, value: &str, api_key: bool) -> Result<(), String> {
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a header name"));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err("the value has characters a header cannot carry".into());
    }
    let reserved = name.starts_with("grpc-")
        || matches!(
            name,
            "content-type" | "te" | "host" | "user-agent" | "connection"
        );
    if reserved {
        return Err(format!(
            "{name} is set by the gRPC protocol, not by metadata"
        ));
    }
    if name == "authorization" && api_key {
        return Err("the API key already sets authorization; set one of the two".into());
    }
    Ok(())
}
