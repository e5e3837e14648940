//! `upstream` and `[upstream_options]`: the Temporal frontend and how to
//! reach it, completed from Temporal's `TEMPORAL_*` variables.

use super::*;

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

    pub(super) fn wants_tls(&self, env: &dyn Fn(&str) -> Option<String>) -> bool {
        let set = |k: &str| env(k).is_some_and(|v| !v.is_empty());
        let explicit = env("TEMPORAL_TLS").map(|v| v.eq_ignore_ascii_case("true") || v == "1");
        match explicit {
            Some(on) => on,
            None => TEMPORAL_TLS_VARS.iter().any(|k| set(k)) || set("TEMPORAL_API_KEY"),
        }
    }
}

pub(super) fn upstream_section(
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
