//! Key-encryption keys (KEKs): where data keys are wrapped and unwrapped.
//!
//! Three providers: `local` (a 32-byte key from the config, for development
//! and for reading Temporal Proxy's `base64key://` keys), `awskms` (AWS KMS
//! Encrypt/Decrypt) and `extension` (sealgate's own gRPC `KeyService`, for an
//! HSM or an internal key service). Every call is bounded by the provider's
//! timeout; errors name the provider and the KEK, never key material.

mod aws;
mod extension;
mod local;

use std::{fmt, sync::Arc, time::Duration};

use thiserror::Error;
use zeroize::Zeroizing;

pub use aws::AwsSettings;
pub use extension::ExtensionSettings;
pub use local::{LocalKek, TEMPORAL_PROXY_SCHEME};

use super::KEY_LEN;

/// Generated client and server of `proto/sealgate/kms/v1/kms.proto`.
pub mod proto {
    #![allow(unreachable_pub, clippy::all, clippy::unwrap_used, clippy::expect_used)]
    tonic::include_proto!("sealgate.kms.v1");
}

/// Default bound on one KMS call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A KMS call failed. Never carries key material.
#[derive(Debug, Error, Clone)]
pub enum KmsError {
    #[error("KMS {provider:?} could not {op} a data key with KEK {kek:?}: {reason}")]
    Call {
        provider: String,
        kek: String,
        op: &'static str,
        reason: String,
        /// True when the KMS could not be reached or timed out (retrying
        /// later may work); false when it refused.
        unavailable: bool,
    },
    #[error("KEK {kek:?} returned a {len}-byte data key; expected {KEY_LEN}")]
    BadDek { kek: String, len: usize },
    #[error("the encryption-dek metadata of a payload under KEK {kek:?} is not valid base64")]
    NotBase64 { kek: String },
}

impl KmsError {
    /// True when the KMS could not be reached (as opposed to refusing).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            KmsError::Call {
                unavailable: true,
                ..
            }
        )
    }
}

/// How one provider reaches its keys.
#[derive(Clone, PartialEq, Eq)]
pub enum ProviderSettings {
    Local,
    Aws(AwsSettings),
    Extension(ExtensionSettings),
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProviderSettings::Local => write!(f, "Local"),
            ProviderSettings::Aws(a) => a.fmt(f),
            ProviderSettings::Extension(e) => e.fmt(f),
        }
    }
}

/// One configured provider: a name, its settings and its call timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub name: String,
    pub settings: ProviderSettings,
    pub timeout: Duration,
}

/// A provider ready for calls (clients are created on first use).
#[derive(Debug)]
pub struct Provider {
    config: ProviderConfig,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Local,
    Aws(aws::AwsKms),
    Extension(Box<extension::Extension>),
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Result<Provider, String> {
        let backend = match &config.settings {
            ProviderSettings::Local => Backend::Local,
            ProviderSettings::Aws(s) => Backend::Aws(aws::AwsKms::new(s.clone())),
            ProviderSettings::Extension(s) => {
                Backend::Extension(Box::new(extension::Extension::new(s)?))
            }
        };
        Ok(Provider { config, backend })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }
}

/// One key-encryption key: an id (written as `encryption-key-id`) at a
/// provider. Local KEKs hold their material here.
pub struct Kek {
    id: Box<str>,
    provider: Arc<Provider>,
    local: Option<LocalKek>,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek")
            .field("id", &redact_id(&self.id))
            .field("provider", &self.provider.name())
            .finish()
    }
}

/// A KEK id fit for logs: Temporal Proxy's local ids embed the key itself.
pub fn redact_id(id: &str) -> &str {
    if id.starts_with(TEMPORAL_PROXY_SCHEME) {
        "base64key://<redacted>"
    } else {
        id
    }
}

impl Kek {
    /// A KEK at a remote provider (AWS KMS or an extension).
    pub fn remote(id: &str, provider: Arc<Provider>) -> Kek {
        Kek {
            id: id.into(),
            provider,
            local: None,
        }
    }

    /// A local KEK with its material.
    pub fn local(id: &str, provider: Arc<Provider>, key: LocalKek) -> Kek {
        Kek {
            id: id.into(),
            provider,
            local: Some(key),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn provider(&self) -> &Arc<Provider> {
        &self.provider
    }

    fn error(&self, op: &'static str, reason: String, unavailable: bool) -> KmsError {
        KmsError::Call {
            provider: self.provider.name().to_string(),
            kek: redact_id(&self.id).to_string(),
            op,
            reason,
            unavailable,
        }
    }

    /// Encrypts a data key; the result goes into `encryption-dek` (base64).
    pub async fn wrap(&self, dek: &[u8], namespace: &str) -> Result<Vec<u8>, KmsError> {
        let timeout = self.provider.config.timeout;
        let call = async {
            match (&self.provider.backend, &self.local) {
                (Backend::Local, Some(k)) => k.wrap(dek).map_err(|r| (r, false)),
                (Backend::Local, None) => Err(("local KEK without material".into(), false)),
                (Backend::Aws(a), _) => a.encrypt(&self.id, dek, namespace).await,
                (Backend::Extension(e), _) => e.wrap(&self.id, dek, namespace).await,
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(r) => r.map_err(|(reason, unavailable)| self.error("wrap", reason, unavailable)),
            Err(_) => Err(self.error("wrap", format!("no answer within {timeout:?}"), true)),
        }
    }

    /// Decrypts a data key wrapped for `namespace` and checks its length.
    pub async fn unwrap(
        &self,
        wrapped: &[u8],
        namespace: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let timeout = self.provider.config.timeout;
        let call = async {
            match (&self.provider.backend, &self.local) {
                (Backend::Local, Some(k)) => k.unwrap(wrapped).map_err(|r| (r, false)),
                (Backend::Local, None) => Err(("local KEK without material".into(), false)),
                (Backend::Aws(a), _) => a.decrypt(&self.id, wrapped, namespace).await,
                (Backend::Extension(e), _) => e.unwrap(&self.id, wrapped, namespace).await,
            }
        };
        let dek = match tokio::time::timeout(timeout, call).await {
            Ok(r) => {
                r.map_err(|(reason, unavailable)| self.error("unwrap", reason, unavailable))?
            }
            Err(_) => {
                return Err(self.error("unwrap", format!("no answer within {timeout:?}"), true));
            }
        };
        if dek.len() != KEY_LEN {
            return Err(KmsError::BadDek {
                kek: redact_id(&self.id).to_string(),
                len: dek.len(),
            });
        }
        Ok(dek)
    }
}

/// `(reason, unavailable)` from a provider call.
type CallError = (String, bool);

#[cfg(test)]
mod tests;
