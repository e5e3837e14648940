//! Every rustls configuration sealgate builds: the upstream client (CA
//! bundle or system roots, optional client certificate for mTLS, SNI /
//! verification name override) and the server side of each listener (the
//! gRPC listener, optionally verifying client certificates, and the Codec
//! Server). One crypto provider (ring), safe default protocol versions.

use std::{fmt, path::PathBuf, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client::TlsStream};

/// PEM from a file or given inline (Temporal's `_PATH` / `_DATA` settings).
#[derive(Clone)]
pub enum Pem {
    File(PathBuf),
    Inline(String),
}

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pem::File(p) => write!(f, "File({})", p.display()),
            Pem::Inline(_) => write!(f, "Inline(<redacted>)"),
        }
    }
}

/// Upstream TLS settings.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Trusted CAs; system roots when absent.
    pub ca: Option<Pem>,
    /// Client certificate chain and key, for mTLS.
    pub client_cert: Option<Pem>,
    pub client_key: Option<Pem>,
    /// Name to send as SNI and to verify; the upstream host when absent.
    pub server_name: Option<String>,
}

/// TLS material could not be loaded.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("{what}: {reason}")]
    Load { what: String, reason: String },
    #[error("{0}")]
    Config(String),
}

/// Certificates from PEM; `what` names them in errors.
pub(crate) fn certs(pem: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |reason: String| TlsError::Load {
        what: what.to_string(),
        reason,
    };
    let certs: Result<Vec<_>, _> = match pem {
        Pem::File(p) => CertificateDer::pem_file_iter(p)
            .map_err(|e| fail(format!("{}: {e}", p.display())))?
            .collect(),
        Pem::Inline(s) => CertificateDer::pem_slice_iter(s.as_bytes()).collect(),
    };
    let certs = certs.map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// A private key from PEM; `what` names it in errors.
pub(crate) fn key(pem: &Pem, what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    match pem {
        Pem::File(p) => PrivateKeyDer::from_pem_file(p).map_err(|e| TlsError::Load {
            what: what.into(),
            reason: format!("{}: {e}", p.display()),
        }),
        Pem::Inline(s) => PrivateKeyDer::from_pem_slice(s.as_bytes()).map_err(|e| TlsError::Load {
            what: what.into(),
            reason: e.to_string(),
        }),
    }
}

/// A ready TLS connector for one upstream.
pub(crate) struct Connector {
    inner: TlsConnector,
    name: ServerName<'static>,
}

impl Connector {
    /// A connector offering `alpn` (e.g. `h2`, `http/1.1`).
    pub(crate) fn new(
        s: &TlsSettings,
        authority: &str,
        alpn: &[&[u8]],
    ) -> Result<Connector, TlsError> {
        let mut roots = RootCertStore::empty();
        match &s.ca {
            Some(ca) => {
                for c in certs(ca, "server CA")? {
                    roots.add(c).map_err(|e| TlsError::Load {
                        what: "server CA".into(),
                        reason: e.to_string(),
                    })?;
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for c in native.certs {
                    let _ = roots.add(c);
                }
                if roots.is_empty() {
                    return Err(TlsError::Config(
                        "no system CA certificates found; set a CA bundle for the upstream".into(),
                    ));
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&s.client_cert, &s.client_key) {
            (Some(c), Some(k)) => builder
                .with_client_auth_cert(certs(c, "client certificate")?, key(k, "client key")?)
                .map_err(|e| TlsError::Config(format!("client certificate and key: {e}")))?,
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(TlsError::Config(
                    "a client certificate needs its key and a key needs its certificate".into(),
                ));
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let host = match &s.server_name {
            Some(n) => n.clone(),
            None => host_of(authority).to_string(),
        };
        let name = ServerName::try_from(host.clone())
            .map_err(|_| TlsError::Config(format!("{host:?} is not a valid TLS server name")))?;
        Ok(Connector {
            inner: TlsConnector::from(Arc::new(config)),
            name,
        })
    }

    pub(crate) async fn connect(&self, tcp: TcpStream) -> std::io::Result<TlsStream<TcpStream>> {
        self.inner.connect(self.name.clone(), tcp).await
    }
}

/// A server-side TLS acceptor offering `alpn`: the certificate chain and
/// key at `cert` and `key`, and, with `client_ca`, client certificates
/// verified against it (required). `names` are the settings' names for
/// errors: certificate, key, client CA.
pub(crate) fn acceptor(
    (cert, key_pem): (&Pem, &Pem),
    client_ca: Option<&Pem>,
    alpn: &[&[u8]],
    names: [&str; 3],
) -> Result<TlsAcceptor, TlsError> {
    let [cert_name, key_name, ca_name] = names;
    let config_error = |what: &str, e: &dyn fmt::Display| TlsError::Config(format!("{what}: {e}"));
    let chain = certs(cert, cert_name)?;
    let private = key(key_pem, key_name)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs(ca, ca_name)? {
                roots.add(c).map_err(|e| config_error(ca_name, &e))?;
            }
            let verifier: Arc<dyn rustls::server::danger::ClientCertVerifier> =
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(|e| config_error(ca_name, &e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, private)
        .map_err(|e| config_error(&format!("{cert_name} and {key_name}"), &e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// `host` of `host:port` (brackets of an IPv6 literal removed).
fn host_of(authority: &str) -> &str {
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}
