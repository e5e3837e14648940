//! AWS KMS: Encrypt and Decrypt with the KEK's key id (ARN, key id or
//! alias), credentials from the SDK's standard chain (environment, shared
//! config and credentials files, web identity, ECS and EC2 metadata, and
//! `credential_process`), and an optional endpoint override (a VPC endpoint,
//! or an emulator in tests). The client is built on first use.

use std::fmt;

use aws_sdk_kms::{error::ProvideErrorMetadata, primitives::Blob};
use tokio::sync::OnceCell;
use zeroize::Zeroizing;

use super::CallError;

/// The encryption context key under which a data key is bound to its
/// namespace: KMS decrypts it only when asked with the same namespace, and
/// CloudTrail records the namespace of every Decrypt.
const CONTEXT_KEY: &str = "temporal-namespace";

/// The `[codec.kms.NAME]` settings of an `awskms` provider.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AwsSettings {
    /// Region; the SDK's chain (AWS_REGION, profile) when absent.
    pub region: Option<String>,
    /// Endpoint URL override.
    pub endpoint: Option<String>,
    /// Named profile of the shared config files.
    pub profile: Option<String>,
}

impl fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKms")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .finish()
    }
}

#[derive(Debug)]
pub(super) struct AwsKms {
    settings: AwsSettings,
    client: OnceCell<aws_sdk_kms::Client>,
}

impl AwsKms {
    pub(super) fn new(settings: AwsSettings) -> AwsKms {
        AwsKms {
            settings,
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &aws_sdk_kms::Client {
        self.client
            .get_or_init(|| async {
                let s = &self.settings;
                let shared = crate::aws::sdk_config(
                    s.region.as_deref(),
                    s.profile.as_deref(),
                    s.endpoint.as_deref(),
                )
                .await;
                aws_sdk_kms::Client::new(&shared)
            })
            .await
    }

    pub(super) async fn encrypt(
        &self,
        key_id: &str,
        dek: &[u8],
        namespace: &str,
    ) -> Result<Vec<u8>, CallError> {
        let key_id = aws_key_id(key_id);
        let mut call = self
            .client()
            .await
            .encrypt()
            .key_id(key_id)
            .plaintext(Blob::new(dek));
        if !namespace.is_empty() {
            call = call.encryption_context(CONTEXT_KEY, namespace);
        }
        let out = call.send().await.map_err(describe)?;
        out.ciphertext_blob
            .map(Blob::into_inner)
            .ok_or_else(|| ("Encrypt returned no CiphertextBlob".into(), false))
    }

    pub(super) async fn decrypt(
        &self,
        key_id: &str,
        wrapped: &[u8],
        namespace: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CallError> {
        // Naming the key makes KMS refuse a blob some other key wrapped.
        let key_id = aws_key_id(key_id);
        let client = self.client().await;
        let call = |context: Option<&str>| {
            let mut c = client
                .decrypt()
                .key_id(key_id)
                .ciphertext_blob(Blob::new(wrapped));
            if let Some(ns) = context {
                c = c.encryption_context(CONTEXT_KEY, ns);
            }
            c.send()
        };
        let out = match call((!namespace.is_empty()).then_some(namespace)).await {
            Ok(out) => out,
            // Wrapped with no context (by Temporal Proxy, or by sealgate
            // before it bound keys): KMS says the ciphertext is invalid
            // under ours, and decrypts it under none. A key bound to another
            // namespace fails both ways.
            Err(e) if !namespace.is_empty() && e.code() == Some("InvalidCiphertextException") => {
                call(None).await.map_err(describe)?
            }
            Err(e) => return Err(describe(e)),
        };
        out.plaintext
            .map(|b| Zeroizing::new(b.into_inner()))
            .ok_or_else(|| ("Decrypt returned no Plaintext".into(), false))
    }
}

/// The AWS key id in a KEK id: the id itself, or the key of a gocloud URL
/// as Temporal Proxy writes them (`awskms://alias/x?region=…`,
/// `awskms:///arn:aws:kms:…`).
pub(super) fn aws_key_id(id: &str) -> &str {
    match id.strip_prefix("awskms://") {
        Some(rest) => {
            let rest = rest.split('?').next().unwrap_or(rest);
            rest.strip_prefix('/').unwrap_or(rest)
        }
        None => id,
    }
}

/// The service's error code and message, or why the call never got one.
fn describe<E, R>(e: aws_sdk_kms::error::SdkError<E, R>) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    use aws_sdk_kms::error::SdkError;
    match &e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            let code = err.code().unwrap_or("unknown error");
            let message = err.message().unwrap_or("");
            // Throttling and KMS-side outages are worth retrying.
            let unavailable = matches!(
                code,
                "ThrottlingException" | "KMSInternalException" | "DependencyTimeoutException"
            );
            (format!("{code}: {message}"), unavailable)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => (
            format!(
                "cannot reach AWS KMS ({}); check the region, endpoint and network",
                crate::errors::error_chain(&e)
            ),
            true,
        ),
        _ => (crate::errors::error_chain(&e), false),
    }
}
