//! The `extension` provider: sealgate's own `KeyService`
//! (`proto/sealgate/kms/v1/kms.proto`) over gRPC, plaintext or TLS. The
//! channel connects lazily and reconnects by itself.

use std::fmt;

use tonic::{
    Code,
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint},
};
use zeroize::Zeroizing;

use super::{
    CallError,
    proto::{UnwrapRequest, WrapRequest, key_service_client::KeyServiceClient},
};

/// The `[codec.kms.NAME]` settings of an `extension` provider.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtensionSettings {
    /// `http://host:port` or `https://host:port`.
    pub endpoint: String,
    /// PEM CA bundle for `https://` (system roots when absent).
    pub ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for ExtensionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extension")
            .field("endpoint", &self.endpoint)
            .field("ca", &self.ca_pem.is_some())
            .finish()
    }
}

#[derive(Debug)]
pub(super) struct Extension {
    endpoint: Endpoint,
    /// Made on first use, inside the runtime (the channel spawns a task).
    client: tokio::sync::OnceCell<KeyServiceClient<Channel>>,
}

impl Extension {
    pub(super) fn new(s: &ExtensionSettings) -> Result<Extension, String> {
        let mut endpoint = Endpoint::from_shared(s.endpoint.clone())
            .map_err(|e| format!("endpoint {:?}: {e}", s.endpoint))?;
        if s.endpoint.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &s.ca_pem {
                Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
                None => tls.with_native_roots(),
            };
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|e| format!("endpoint {:?}: {e}", s.endpoint))?;
        }
        Ok(Extension {
            endpoint,
            client: tokio::sync::OnceCell::new(),
        })
    }

    async fn client(&self) -> KeyServiceClient<Channel> {
        self.client
            .get_or_init(|| async { KeyServiceClient::new(self.endpoint.connect_lazy()) })
            .await
            .clone()
    }

    pub(super) async fn wrap(
        &self,
        key_id: &str,
        dek: &[u8],
        namespace: &str,
    ) -> Result<Vec<u8>, CallError> {
        let req = WrapRequest {
            key_id: key_id.into(),
            plaintext: dek.to_vec(),
            namespace: namespace.into(),
        };
        let resp = self.client().await.wrap(req).await.map_err(describe);
        Ok(resp?.into_inner().ciphertext)
    }

    pub(super) async fn unwrap(
        &self,
        key_id: &str,
        wrapped: &[u8],
        namespace: &str,
    ) -> Result<Zeroizing<Vec<u8>>, CallError> {
        let req = UnwrapRequest {
            key_id: key_id.into(),
            ciphertext: wrapped.to_vec(),
            namespace: namespace.into(),
        };
        let resp = self.client().await.unwrap(req).await.map_err(describe)?;
        Ok(Zeroizing::new(resp.into_inner().plaintext))
    }
}

fn describe(s: tonic::Status) -> CallError {
    let unavailable = matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted
    );
    (
        format!("key service answered {:?}: {}", s.code(), s.message()),
        unavailable,
    )
}
