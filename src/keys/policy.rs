//! Key policies: per namespace, which key encrypts new payloads (a static
//! key, or a KEK for envelope encryption) and which keys may decrypt.
//!
//! The `default` policy covers every namespace without an override, including
//! ones created later, so encryption never silently stops for a new
//! namespace. A policy without an active key only decrypts.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use zeroize::Zeroizing;

use super::{
    Key, KeyError, KeyOpsRegistry,
    envelope::Rotation,
    kms::{Kek, LocalKek, Provider, ProviderConfig, ProviderSettings},
};

/// Name of the policy every namespace without an override uses.
pub const DEFAULT_POLICY: &str = "default";
/// Default DEK lifetime and renewal lead.
pub const DEFAULT_DEK_LIFETIME: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_RENEW_BEFORE: Duration = Duration::from_secs(3600);

/// A static key or local KEK as configured: an id and its material.
#[derive(Clone)]
pub struct KeySpec {
    pub id: String,
    pub material: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySpec")
            .field("id", &super::kms::redact_id(&self.id))
            .field("material", &"<redacted>")
            .finish()
    }
}

/// A configured KEK provider with the KEKs it holds. Local KEKs carry
/// material; remote ones only ids.
#[derive(Debug, Clone)]
pub struct ProviderSpec {
    pub config: ProviderConfig,
    pub local_keys: Vec<KeySpec>,
    pub remote_keys: Vec<String>,
}

/// One `[codec.policies.NAME]`.
#[derive(Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// `default`, or the namespace it applies to.
    pub name: String,
    /// A static key id (static format) or a KEK id (envelope format).
    pub active_key: Option<String>,
    /// More key or KEK ids this policy decrypts with.
    pub decrypt_keys: Vec<String>,
    /// Decrypt with every configured key (the first-cut `[codec]` keyring).
    pub decrypt_all: bool,
    pub rotation: Rotation,
    /// Encrypt with the namespace as AES-GCM associated data (a format
    /// variant marked in the payload's metadata).
    pub bind_namespace: bool,
}

impl fmt::Debug for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |id: &String| super::kms::redact_id(id).to_string();
        f.debug_struct("PolicySpec")
            .field("name", &self.name)
            .field("active_key", &self.active_key.as_ref().map(redact))
            .field(
                "decrypt_keys",
                &self.decrypt_keys.iter().map(redact).collect::<Vec<_>>(),
            )
            .field("decrypt_all", &self.decrypt_all)
            .field("rotation", &self.rotation)
            .field("bind_namespace", &self.bind_namespace)
            .finish()
    }
}

impl PolicySpec {
    /// A policy with defaults for everything but its name.
    pub fn new(name: &str) -> PolicySpec {
        PolicySpec {
            name: name.into(),
            active_key: None,
            decrypt_keys: Vec::new(),
            decrypt_all: false,
            bind_namespace: false,
            rotation: Rotation {
                lifetime: DEFAULT_DEK_LIFETIME,
                renew_before: DEFAULT_RENEW_BEFORE,
            },
        }
    }
}

/// Everything the key policies are built from.
#[derive(Debug, Clone, Default)]
pub struct KeysSpec {
    pub keys: Vec<KeySpec>,
    pub providers: Vec<ProviderSpec>,
    pub policies: Vec<PolicySpec>,
}

/// How a policy encrypts.
#[derive(Debug, Clone)]
pub enum Encrypt {
    /// The static keyring format (SDK samples).
    Static(Arc<Key>),
    /// Envelope format: per-namespace DEKs wrapped by this KEK.
    Envelope { kek: Arc<Kek>, rotation: Rotation },
}

/// One policy, ready for use.
#[derive(Debug)]
pub struct Policy {
    name: Box<str>,
    encrypt: Option<Encrypt>,
    statics: HashMap<Box<str>, Arc<Key>>,
    keks: HashMap<Box<str>, Arc<Kek>>,
    bind_namespace: bool,
}

impl Policy {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// True when new payloads carry the namespace as associated data.
    pub fn binds_namespace(&self) -> bool {
        self.bind_namespace
    }

    /// How new payloads are encrypted; `None` for decrypt-only.
    pub fn encrypt(&self) -> Option<&Encrypt> {
        self.encrypt.as_ref()
    }

    /// `"static"`, `"envelope"` or `"decrypt-only"`.
    pub fn format(&self) -> &'static str {
        match self.encrypt {
            Some(Encrypt::Static(_)) => "static",
            Some(Encrypt::Envelope { .. }) => "envelope",
            None => "decrypt-only",
        }
    }

    /// Id of the key (static) or KEK (envelope) that encrypts, for logs.
    pub fn active_id(&self) -> Option<&str> {
        match &self.encrypt {
            Some(Encrypt::Static(k)) => Some(k.shown_id()),
            Some(Encrypt::Envelope { kek, .. }) => Some(super::kms::redact_id(kek.id())),
            None => None,
        }
    }

    /// One line for logs: `name: format with key (decrypts: a, b)`.
    pub fn describe(&self) -> String {
        let active = self
            .active_id()
            .map(|id| format!(" with {id:?}"))
            .unwrap_or_default();
        let bound = if self.bind_namespace {
            ", bound to the namespace"
        } else {
            ""
        };
        format!(
            "{}: {}{active}{bound} (decrypts with: {})",
            self.name,
            self.format(),
            self.decrypt_ids().join(", ")
        )
    }

    /// A static key this policy decrypts with, by `encryption-key-id`.
    pub fn static_key(&self, id: &[u8]) -> Option<&Arc<Key>> {
        std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.statics.get(id))
    }

    /// A KEK this policy unwraps data keys with, by `encryption-key-id`.
    pub fn kek(&self, id: &[u8]) -> Option<&Arc<Kek>> {
        std::str::from_utf8(id)
            .ok()
            .and_then(|id| self.keks.get(id))
    }

    /// Ids of every key and KEK this policy decrypts with, sorted.
    pub fn decrypt_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self
            .statics
            .values()
            .map(|k| k.shown_id())
            .chain(self.keks.keys().map(|k| super::kms::redact_id(k)))
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// The default policy and the per-namespace overrides.
#[derive(Debug)]
pub struct Policies {
    default: Arc<Policy>,
    namespaces: HashMap<Box<str>, Arc<Policy>>,
    providers: Vec<Arc<Provider>>,
}

impl Policies {
    /// The policy for `namespace` (the default when it has no override).
    pub fn for_namespace(&self, namespace: &str) -> &Arc<Policy> {
        self.namespaces.get(namespace).unwrap_or(&self.default)
    }

    /// True when `namespace` has a policy of its own (not the default).
    pub fn has_own(&self, namespace: &str) -> bool {
        self.namespaces.contains_key(namespace)
    }

    pub fn default_policy(&self) -> &Arc<Policy> {
        &self.default
    }

    /// Every policy, the default first, then overrides by name.
    pub fn all(&self) -> Vec<&Arc<Policy>> {
        let mut v: Vec<_> = self.namespaces.values().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v.insert(0, &self.default);
        v
    }

    /// A single static policy over one keyring (tests, benchmarks, tools).
    pub fn from_static(keys: Vec<Key>, active: Option<&str>) -> Result<Policies, KeyError> {
        let keyring = super::Keyring::new(keys, active)?;
        let statics = keyring.keys().map(|k| (k.id.clone(), k.clone())).collect();
        let default = Policy {
            name: DEFAULT_POLICY.into(),
            encrypt: keyring.active().cloned().map(Encrypt::Static),
            statics,
            keks: HashMap::new(),
            bind_namespace: false,
        };
        Ok(Policies {
            default: Arc::new(default),
            namespaces: HashMap::new(),
            providers: Vec::new(),
        })
    }

    /// Builds policies from their spec. `encryption` false leaves every
    /// policy decrypt-only. Providers whose settings did not change are
    /// taken over from `previous` (keeping their connections).
    pub fn build(
        spec: &KeysSpec,
        encryption: bool,
        ops: &KeyOpsRegistry,
        previous: Option<&Policies>,
    ) -> Result<Policies, PolicyError> {
        let mut statics: HashMap<Box<str>, Arc<Key>> = HashMap::new();
        for k in &spec.keys {
            let key = Key::new(&k.id, &k.material)
                .map_err(|e| PolicyError::Key(k.id.clone(), e))?
                .with_ops(ops.for_id(if k.material.as_slice() == k.id.as_bytes() {
                    super::SELF_KEYED
                } else {
                    &k.id
                }));
            if statics
                .insert(k.id.as_str().into(), Arc::new(key))
                .is_some()
            {
                return Err(PolicyError::Duplicate(k.id.clone()));
            }
        }
        let mut keks: HashMap<Box<str>, Arc<Kek>> = HashMap::new();
        let mut providers = Vec::new();
        for p in &spec.providers {
            let reused = previous.and_then(|prev| {
                prev.providers
                    .iter()
                    .find(|old| old.config() == &p.config)
                    .cloned()
            });
            let provider = match reused {
                Some(old) => old,
                None => Arc::new(
                    Provider::new(p.config.clone())
                        .map_err(|e| PolicyError::Provider(p.config.name.clone(), e))?,
                ),
            };
            let mut add = |id: &str, kek: Kek| {
                if statics.contains_key(id) || keks.insert(id.into(), Arc::new(kek)).is_some() {
                    return Err(PolicyError::Duplicate(super::kms::redact_id(id).into()));
                }
                Ok(())
            };
            for k in &p.local_keys {
                if p.config.settings != ProviderSettings::Local {
                    return Err(PolicyError::Provider(
                        p.config.name.clone(),
                        "only a local provider holds key material".into(),
                    ));
                }
                let local = LocalKek::new(&k.material)
                    .map_err(|e| PolicyError::Key(super::kms::redact_id(&k.id).into(), e))?;
                add(&k.id, Kek::local(&k.id, provider.clone(), local))?;
            }
            for id in &p.remote_keys {
                add(id, Kek::remote(id, provider.clone()))?;
            }
            providers.push(provider);
        }

        let build_one = |ps: &PolicySpec| -> Result<Policy, PolicyError> {
            let unknown = |id: &str| PolicyError::UnknownKey {
                policy: ps.name.clone(),
                key: super::kms::redact_id(id).into(),
            };
            let encrypt = match (&ps.active_key, encryption) {
                (Some(id), true) => Some(if let Some(k) = statics.get(id.as_str()) {
                    Encrypt::Static(k.clone())
                } else if let Some(k) = keks.get(id.as_str()) {
                    Encrypt::Envelope {
                        kek: k.clone(),
                        rotation: ps.rotation,
                    }
                } else {
                    return Err(unknown(id));
                }),
                (None, true) => return Err(PolicyError::NoActiveKey(ps.name.clone())),
                (_, false) => None,
            };
            let mut p = Policy {
                name: ps.name.as_str().into(),
                encrypt,
                statics: HashMap::new(),
                keks: HashMap::new(),
                bind_namespace: ps.bind_namespace,
            };
            let ids = ps.active_key.iter().chain(&ps.decrypt_keys);
            if ps.decrypt_all {
                p.statics = statics.clone();
                p.keks = keks.clone();
            }
            for id in ids {
                if let Some(k) = statics.get(id.as_str()) {
                    p.statics.insert(id.as_str().into(), k.clone());
                } else if let Some(k) = keks.get(id.as_str()) {
                    p.keks.insert(id.as_str().into(), k.clone());
                } else {
                    return Err(unknown(id));
                }
            }
            Ok(p)
        };

        let mut default = None;
        let mut namespaces = HashMap::new();
        for ps in &spec.policies {
            let p = Arc::new(build_one(ps)?);
            if ps.name == DEFAULT_POLICY {
                default = Some(p);
            } else if namespaces.insert(ps.name.as_str().into(), p).is_some() {
                return Err(PolicyError::Duplicate(ps.name.clone()));
            }
        }
        let default = match default {
            Some(d) => d,
            // Decrypt-only posture: every key decrypts for every namespace.
            None if !encryption => Arc::new(build_one(&PolicySpec {
                decrypt_all: true,
                ..PolicySpec::new(DEFAULT_POLICY)
            })?),
            None => return Err(PolicyError::NoDefault),
        };
        Ok(Policies {
            default,
            namespaces,
            providers,
        })
    }
}

/// Policies could not be built. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "encryption is on but there is no default key policy: add [codec.policies.default] with an active_key (it covers every namespace without its own policy)"
    )]
    NoDefault,
    #[error("policy {0:?} has no active_key, and encryption is on")]
    NoActiveKey(String),
    #[error(
        "policy {policy:?} names key {key:?}, which is neither a [[codec.keys]] id nor a KEK of a [codec.kms] provider"
    )]
    UnknownKey { policy: String, key: String },
    #[error("{0:?} is defined more than once (key, KEK and policy names must be unique)")]
    Duplicate(String),
    #[error("key {0:?}: {1}")]
    Key(String, KeyError),
    #[error("KMS provider {0:?}: {1}")]
    Provider(String, String),
}

#[cfg(test)]
mod tests;
