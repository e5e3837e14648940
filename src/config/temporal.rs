//! Temporal's own client configuration, read as the SDKs and the CLI read
//! it: a profile of a `temporal.toml` file (`TEMPORAL_CONFIG_FILE`, else
//! `$XDG_CONFIG_HOME/temporalio/temporal.toml` or
//! `~/.config/temporalio/temporal.toml`; the profile `TEMPORAL_PROFILE`,
//! else `default`), with the `TEMPORAL_*` variables over it.
//!
//! Precedence is the SDKs': a variable that is set replaces the file's
//! value (an empty one clears it), and `TEMPORAL_GRPC_META_<NAME>` adds or
//! (empty) removes the header `<name>` (lower case, `_` as `-`). TLS is on
//! when a `tls` table exists (in the file, or made by any `TEMPORAL_TLS*`
//! variable) unless it says `disabled`, and otherwise when an API key is
//! set. sealgate.toml's own settings come before all of this: the profile
//! file is read only when sealgate.toml names no upstream.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;

/// Where a setting came from, for `sealgate check-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Source {
    /// `profile` of the temporal.toml at the path.
    Profile { profile: String, file: PathBuf },
    /// An environment variable.
    Env(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Profile { profile, file } => {
                write!(f, "profile {profile:?} of {}", file.display())
            }
            Source::Env(var) => write!(f, "{var}"),
        }
    }
}

/// A value and where it came from.
pub(super) type Sourced<T> = (T, Source);

/// The `tls` table of a profile, with the variables over it.
#[derive(Debug, Clone, Default)]
pub(super) struct TemporalTls {
    pub disabled: Option<Sourced<bool>>,
    pub ca: Option<Sourced<Pem>>,
    pub client_cert: Option<Sourced<Pem>>,
    pub client_key: Option<Sourced<Pem>>,
    pub server_name: Option<Sourced<String>>,
}

/// The connection settings of Temporal's client configuration.
#[derive(Debug, Clone, Default)]
pub(super) struct TemporalClient {
    pub address: Option<Sourced<String>>,
    pub namespace: Option<Sourced<String>>,
    pub api_key: Option<Sourced<String>>,
    /// Present when the profile has a `tls` table or any `TEMPORAL_TLS*`
    /// variable is set.
    pub tls: Option<TemporalTls>,
    /// Header name (lower case) → value.
    pub grpc_meta: BTreeMap<String, Sourced<String>>,
    /// The profile read, if a file was.
    pub profile: Option<(String, PathBuf)>,
}

#[derive(Debug, Default, Deserialize)]
struct FileToml {
    #[serde(default)]
    profile: BTreeMap<String, ProfileToml>,
}

#[derive(Debug, Default, Deserialize)]
struct ProfileToml {
    address: Option<String>,
    namespace: Option<String>,
    api_key: Option<String>,
    tls: Option<TlsToml>,
    #[serde(default)]
    grpc_meta: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct TlsToml {
    disabled: Option<bool>,
    client_cert_path: Option<String>,
    client_cert_data: Option<String>,
    client_key_path: Option<String>,
    client_key_data: Option<String>,
    server_ca_cert_path: Option<String>,
    server_ca_cert_data: Option<String>,
    server_name: Option<String>,
    disable_host_verification: Option<bool>,
}

/// The lower-case header name of a `grpc_meta` key or a
/// `TEMPORAL_GRPC_META_<NAME>` suffix.
pub(super) fn meta_name(key: &str) -> String {
    key.to_ascii_lowercase().replace('_', "-")
}

/// `temporal.toml`'s path: `TEMPORAL_CONFIG_FILE`, else the SDKs' default.
fn config_file(env: &dyn Fn(&str) -> Option<String>) -> Option<(PathBuf, bool)> {
    if let Some(f) = env("TEMPORAL_CONFIG_FILE").filter(|f| !f.is_empty()) {
        return Some((PathBuf::from(f), true));
    }
    let base = env("XDG_CONFIG_HOME")
        .filter(|d| Path::new(d).is_absolute())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| Path::new(&h).join(".config"))
        })?;
    Some((base.join("temporalio").join("temporal.toml"), false))
}

impl TemporalClient {
    /// Temporal's client configuration: the profile file (when `use_file`)
    /// with the variables of `env` over it. Problems are reported under
    /// the file's or the variable's name.
    pub(super) fn load(
        env: &dyn Fn(&str) -> Option<String>,
        use_file: bool,
        issues: &mut Issues,
    ) -> TemporalClient {
        let mut c = TemporalClient::default();
        let chosen = env("TEMPORAL_PROFILE").filter(|p| !p.is_empty());
        if use_file {
            c.read_profile(env, chosen.as_deref(), issues);
        }
        c.apply_env(env, issues);
        c
    }

    fn read_profile(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
        chosen: Option<&str>,
        issues: &mut Issues,
    ) {
        let name = chosen.unwrap_or("default").to_string();
        let Some((file, explicit)) = config_file(env) else {
            return;
        };
        let path = file.display().to_string();
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            // A missing file is an empty configuration, as in the SDKs.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if explicit {
                    issues.warn(
                        "TEMPORAL_CONFIG_FILE",
                        format!("{path} does not exist; no profile is read"),
                    );
                }
                if chosen.is_some() {
                    issues.push(
                        "TEMPORAL_PROFILE",
                        format!("profile {name:?} not found: there is no {path}"),
                    );
                }
                return;
            }
            Err(e) => {
                issues.push(&path, format!("cannot read it: {e}"));
                return;
            }
        };
        issues.read_file(file.clone());
        self.apply_profile(&text, &name, chosen.is_some(), &file, issues);
    }

    /// The profile `name` of temporal.toml text read from `file`; a
    /// missing profile is an error only when it was asked for (`chosen`).
    fn apply_profile(
        &mut self,
        text: &str,
        name: &str,
        chosen: bool,
        file: &Path,
        issues: &mut Issues,
    ) {
        let path = file.display().to_string();
        let name = name.to_string();
        let file = file.to_path_buf();
        let parsed: FileToml = match toml::from_str(text) {
            Ok(p) => p,
            Err(e) => {
                issues.push(
                    &path,
                    format!("not a Temporal client config: {}", e.message()),
                );
                return;
            }
        };
        let Some(p) = parsed.profile.get(&name) else {
            if chosen {
                let known: Vec<&String> = parsed.profile.keys().collect();
                issues.push(
                    "TEMPORAL_PROFILE",
                    format!("profile {name:?} not found in {path} (it has {known:?})"),
                );
            }
            return;
        };
        let base = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let from = || Source::Profile {
            profile: name.clone(),
            file: file.clone(),
        };
        let at = |key: &str| format!("{path}: profile.{name}.{key}");
        let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty()).map(|s| (s, from()));
        self.address = set(&p.address);
        self.namespace = set(&p.namespace);
        self.api_key = p.api_key.clone().map(|s| (s, from()));
        for (k, v) in &p.grpc_meta {
            self.grpc_meta.insert(meta_name(k), (v.clone(), from()));
        }
        if let Some(t) = &p.tls {
            if t.disable_host_verification == Some(true) {
                issues.push(
                    &at("tls.disable_host_verification"),
                    "sealgate always verifies the upstream's certificate: set server_name or \
                     server_ca_cert_path instead"
                        .into(),
                );
            }
            let mut pem = |key: &str, path: &Option<String>, data: &Option<String>| {
                let data = data.clone().filter(|d| !d.is_empty());
                match (path, data) {
                    (Some(_), Some(_)) => {
                        issues.push(
                            &at(&format!("tls.{key}_path")),
                            format!("set {key}_path or {key}_data, not both"),
                        );
                        None
                    }
                    (Some(p), None) => Some((Pem::File(base.join(p)), from())),
                    (None, Some(d)) => Some((Pem::Inline(d), from())),
                    (None, None) => None,
                }
            };
            let tls = TemporalTls {
                ca: pem(
                    "server_ca_cert",
                    &t.server_ca_cert_path,
                    &t.server_ca_cert_data,
                ),
                client_cert: pem("client_cert", &t.client_cert_path, &t.client_cert_data),
                client_key: pem("client_key", &t.client_key_path, &t.client_key_data),
                disabled: t.disabled.map(|d| (d, from())),
                server_name: set(&t.server_name),
            };
            self.tls = Some(tls);
        }
        self.profile = Some((name, file));
    }

    fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>, issues: &mut Issues) {
        let var = |k: &str| env(k).map(|v| (v, Source::Env(k.to_string())));
        // A variable that is set replaces the file's value; empty clears it.
        let replace = |slot: &mut Option<Sourced<String>>, k: &str| {
            if let Some((v, s)) = var(k) {
                *slot = (!v.is_empty()).then_some((v, s));
            }
        };
        replace(&mut self.address, "TEMPORAL_ADDRESS");
        replace(&mut self.namespace, "TEMPORAL_NAMESPACE");
        replace(&mut self.api_key, "TEMPORAL_API_KEY");
        let tls_vars = ["TEMPORAL_TLS", "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION"]
            .into_iter()
            .chain(TEMPORAL_TLS_VARS);
        if tls_vars.clone().any(|k| env(k).is_some()) {
            let tls = self.tls.get_or_insert_with(TemporalTls::default);
            let boolean = |k: &str| {
                env(k).and_then(|v| match v.to_ascii_lowercase().as_str() {
                    "true" | "1" => Some(true),
                    "false" | "0" => Some(false),
                    _ => None,
                })
            };
            if let Some(on) = boolean("TEMPORAL_TLS") {
                tls.disabled = Some((!on, Source::Env("TEMPORAL_TLS".into())));
            }
            if boolean("TEMPORAL_TLS_DISABLE_HOST_VERIFICATION") == Some(true) {
                issues.push(
                    "TEMPORAL_TLS_DISABLE_HOST_VERIFICATION",
                    "sealgate always verifies the upstream's certificate: set \
                     TEMPORAL_TLS_SERVER_NAME or TEMPORAL_TLS_SERVER_CA_CERT_PATH instead"
                        .into(),
                );
            }
            for (slot, stem) in [
                (&mut tls.ca, "TEMPORAL_TLS_SERVER_CA_CERT"),
                (&mut tls.client_cert, "TEMPORAL_TLS_CLIENT_CERT"),
                (&mut tls.client_key, "TEMPORAL_TLS_CLIENT_KEY"),
            ] {
                let (path_var, data_var) = (format!("{stem}_PATH"), format!("{stem}_DATA"));
                match (env(&path_var), env(&data_var)) {
                    (Some(_), Some(_)) => {
                        issues.push(&path_var, format!("set {path_var} or {data_var}, not both"))
                    }
                    (Some(p), None) => {
                        if matches!(slot, Some((Pem::Inline(_), _))) {
                            issues.push(
                                &path_var,
                                "the profile gives this as data already; set one of the two".into(),
                            );
                        }
                        *slot = (!p.is_empty())
                            .then(|| (Pem::File(PathBuf::from(p)), Source::Env(path_var.clone())));
                    }
                    (None, Some(d)) => {
                        if matches!(slot, Some((Pem::File(_), _))) {
                            issues.push(
                                &data_var,
                                "the profile gives this as a path already; set one of the two"
                                    .into(),
                            );
                        }
                        *slot = (!d.is_empty()).then_some((Pem::Inline(d), Source::Env(data_var)));
                    }
                    (None, None) => {}
                }
            }
            replace(&mut tls.server_name, "TEMPORAL_TLS_SERVER_NAME");
        }
        let mut meta_vars: Vec<String> = Vec::new();
        if let Some(list) = env(ENV_LIST) {
            meta_vars = list.split('\n').map(str::to_string).collect();
        }
        for k in meta_vars {
            let Some(suffix) = k.strip_prefix("TEMPORAL_GRPC_META_") else {
                continue;
            };
            let Some(v) = env(&k) else { continue };
            let name = meta_name(suffix);
            if v.is_empty() {
                self.grpc_meta.remove(&name);
            } else {
                self.grpc_meta.insert(name, (v, Source::Env(k.clone())));
            }
        }
    }

    /// TLS by the SDKs' rule: a `tls` table turns it on unless it is
    /// disabled; without one, an API key does.
    pub(super) fn tls_on(&self) -> bool {
        match &self.tls {
            Some(t) => !t.disabled.as_ref().is_some_and(|(d, _)| *d),
            None => self.api_key.is_some(),
        }
    }

    /// TLS was turned off explicitly (`tls.disabled`, `TEMPORAL_TLS=false`).
    pub(super) fn tls_disabled(&self) -> bool {
        self.tls
            .as_ref()
            .and_then(|t| t.disabled.as_ref())
            .is_some_and(|(d, _)| *d)
    }
}

/// Parses temporal.toml `text` and reads profile `profile` as sealgate
/// would (no variables): the problems found, as `(where, what)`. For the
/// fuzz target and `check-config`-like tools.
pub fn check_profile_text(text: &str, profile: &str) -> Vec<(String, String)> {
    let mut issues = Issues::default();
    let mut c = TemporalClient::default();
    c.apply_profile(text, profile, true, Path::new("temporal.toml"), &mut issues);
    issues.take_problems()
}

/// The name under which `env` lists the variables it has, newline-joined
/// (an environment cannot be listed through a lookup function otherwise):
/// `Config::load` answers it from the process environment.
pub(super) const ENV_LIST: &str = "\0sealgate-env-names";

#[cfg(test)]
mod tests;
