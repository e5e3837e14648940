//! The TOML configuration: typed, validated, every problem reported at once
//! with its key path.
//!
//! Strings may use `${VAR}` to pull secrets from the environment (`$${`
//! writes a literal `${`). `SEALGATE_LISTEN` and `SEALGATE_UPSTREAM` override
//! the two addresses of any file.

mod table;
#[cfg(test)]
mod tests;

use std::{fmt, net::SocketAddr, path::Path, sync::Arc};

use crate::{
    codec::{Chain, ChainOptions, CodecError},
    keys::{self, Key, Keyring},
};
use table::{Issues, Table};

/// Exit code for a configuration that cannot be used (EX_USAGE... sysexits' EX_USAGE is 64).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where workers connect (h2c).
    pub listen: SocketAddr,
    /// The Temporal frontend sealgate forwards to.
    pub upstream: Upstream,
    pub codec: CodecConfig,
}

/// An upstream address: `http://host:port`, `https://host:port` or `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub tls: bool,
    /// `host:port`.
    pub authority: String,
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority)
    }
}

impl Upstream {
    fn parse(s: &str) -> Result<Upstream, String> {
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else if s.contains("://") {
            return Err(format!("{s:?}: scheme must be http:// or https://"));
        } else {
            (false, s)
        };
        let rest = rest.trim_end_matches('/');
        let port = rest.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>()));
        match port {
            Some((host, Ok(port))) if !host.is_empty() && port != 0 && !host.contains('/') => {
                Ok(Upstream {
                    tls,
                    authority: rest.to_string(),
                })
            }
            _ => Err(format!(
                "{s:?}: expected host:port, e.g. \"http://127.0.0.1:7233\""
            )),
        }
    }
}

/// The `[codec]` section.
#[derive(Debug, Clone)]
pub struct CodecConfig {
    /// Snappy-compress payloads before encrypting (skipped when it does not shrink).
    pub compression: bool,
    /// Encrypt payloads with the active key; fail closed when that is impossible.
    pub encryption: bool,
    /// Move failure messages and stack traces into encoded attributes.
    pub encode_failure_attributes: bool,
    /// Id of the key that encrypts; required when `encryption` is on.
    pub active_key: Option<String>,
    pub keys: Vec<KeyConfig>,
}

/// One `[[codec.keys]]` entry. Material is held only as validated bytes and
/// never printed.
#[derive(Clone)]
pub struct KeyConfig {
    pub id: String,
    material: Arc<[u8]>,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("id", &self.id)
            .field("material", &"<redacted>")
            .finish()
    }
}

impl CodecConfig {
    /// The keyring these settings describe.
    pub fn keyring(&self) -> Result<Keyring, keys::KeyError> {
        let keys = self
            .keys
            .iter()
            .map(|k| Key::new(&k.id, &k.material))
            .collect::<Result<Vec<_>, _>>()?;
        Keyring::new(keys, self.active_key.as_deref())
    }

    /// The codec chain these settings describe.
    pub fn chain(&self) -> Result<Chain, ChainError> {
        let keyring = Arc::new(self.keyring()?);
        let opts = ChainOptions {
            compression: self.compression,
            encryption: self.encryption,
            encode_failures: self.encode_failure_attributes,
            max_decoded: None,
        };
        Ok(Chain::new(&opts, keyring)?)
    }
}

/// The codec chain could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error(transparent)]
    Codec(#[from] CodecError),
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

        let listen = root
            .string("listen", &mut issues)
            .unwrap_or_else(|| "127.0.0.1:7233".into());
        let listen = override_from(env, "SEALGATE_LISTEN", listen);
        let listen = listen.parse::<SocketAddr>().map_err(|e| {
            issues.push(
                "listen",
                format!("{listen:?} is not an ip:port address ({e})"),
            )
        });

        let upstream = override_from(
            env,
            "SEALGATE_UPSTREAM",
            root.string("upstream", &mut issues),
        );
        let upstream = match upstream {
            Some(u) => Upstream::parse(&u).map_err(|m| issues.push("upstream", m)),
            None => {
                let hint = "missing: the Temporal frontend to forward to, \
                            e.g. \"http://127.0.0.1:7234\"";
                issues.push("upstream", hint.into());
                Err(())
            }
        };

        let codec = match root.table("codec", &mut issues) {
            Some(mut t) => codec_section(&mut t, base, &mut issues),
            None => codec_section(&mut Table::empty("codec", env), base, &mut issues),
        };
        root.finish(&mut issues);

        match (listen, upstream, issues.into_vec()) {
            (Ok(listen), Ok(upstream), v) if v.is_empty() => Ok(Config {
                listen,
                upstream,
                codec,
            }),
            (_, _, v) => Err(fail(v)),
        }
    }
}

fn override_from<T: From<String>>(env: &dyn Fn(&str) -> Option<String>, var: &str, v: T) -> T {
    match env(var) {
        Some(s) if !s.is_empty() => T::from(s),
        _ => v,
    }
}

fn codec_section(t: &mut Table<'_>, base: &Path, issues: &mut Issues) -> CodecConfig {
    let compression = t.bool("compression", issues).unwrap_or(true);
    let encryption = t.bool("encryption", issues).unwrap_or(true);
    let encode_failure_attributes = t.bool("encode_failure_attributes", issues).unwrap_or(false);
    let active_key = t.string("active_key", issues);
    let mut keys = Vec::new();
    for mut k in t.array_of_tables("keys", issues) {
        let id = k.string("id", issues);
        let inline = k.string("material", issues);
        let file = k.string("material_file", issues);
        let text = match (inline, file) {
            (Some(m), None) => Some(m),
            (None, Some(f)) => {
                let path = base.join(&f);
                std::fs::read_to_string(&path)
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
        let material = text.and_then(|text| {
            keys::decode_material(&text)
                .map_err(|e| issues.push(&k.path("material"), e.to_string()))
                .ok()
        });
        match &id {
            None => issues.push(
                &k.path("id"),
                "missing: a name for this key, e.g. \"key-2026-11\"".into(),
            ),
            Some(id) if id.is_empty() => issues.push(&k.path("id"), "must not be empty".into()),
            Some(id) if keys.iter().any(|x: &KeyConfig| &x.id == id) => {
                issues.push(&k.path("id"), format!("{id:?} is used by another key"))
            }
            _ => {}
        }
        k.finish(issues);
        if let (Some(id), Some(material)) = (id, material) {
            keys.push(KeyConfig {
                id,
                material: material.into(),
            });
        }
    }
    match &active_key {
        None if encryption => issues.push(
            &t.path("active_key"),
            "missing: encryption is on, so name the key that encrypts \
             (or set encryption = false to only decrypt)"
                .into(),
        ),
        Some(id) if !keys.iter().any(|k| &k.id == id) && !t.has_key_issues(issues) => issues.push(
            &t.path("active_key"),
            format!("{id:?} is not the id of any [[codec.keys]] entry"),
        ),
        _ => {}
    }
    t.finish(issues);
    CodecConfig {
        compression,
        encryption,
        encode_failure_attributes,
        active_key,
        keys,
    }
}
