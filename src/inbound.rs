//! Inbound security: TLS or mTLS on the listener, who the caller is (client
//! certificate SANs, a static bearer token, or a JWT checked against a
//! JWKS), and which namespaces that caller may use.
//!
//! A call whose credentials are missing or wrong gets UNAUTHENTICATED; a
//! call to a namespace no matching rule allows gets PERMISSION_DENIED. The
//! caller's credentials stay here: the `authorization` header is dropped
//! before forwarding unless `proxy.forward_authorization` says otherwise,
//! and the upstream's own credentials are added by sealgate.

use std::fmt;

use http::HeaderMap;
use rustls::pki_types::CertificateDer;
use tokio_rustls::TlsAcceptor;

use crate::{
    auth::{Jwt, JwtConfig, bearer_token, glob},
    tls::{self, Pem},
};

/// How callers prove who they are.
#[derive(Clone)]
pub enum AuthMode {
    /// Anyone who can reach the listener (a private subnet).
    None,
    /// The client certificate's SANs (needs `client_ca_file`).
    Mtls,
    /// `authorization: Bearer <token>`, one of the rules' tokens.
    Bearer,
    /// `authorization: Bearer <JWT>`, verified against a JWKS.
    Jwt(JwtConfig),
}

impl fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthMode::None => write!(f, "None"),
            AuthMode::Mtls => write!(f, "Mtls"),
            AuthMode::Bearer => write!(f, "Bearer"),
            AuthMode::Jwt(j) => f.debug_tuple("Jwt").field(j).finish(),
        }
    }
}

pub use crate::auth::Who;

/// One `[[inbound.rules]]`: who, and the namespaces (exact or patterns)
/// they may use.
#[derive(Debug, Clone)]
pub struct Rule {
    pub who: Who,
    pub namespaces: Vec<String>,
    /// May make calls that name no namespace (ListNamespaces, cluster and
    /// Nexus endpoint administration). GetSystemInfo, health checks and
    /// reflection need only authentication.
    pub system: bool,
}

/// The `[inbound]` section.
#[derive(Debug, Clone)]
pub struct InboundConfig {
    /// Serve TLS with this certificate chain and key.
    pub tls: Option<(Pem, Pem)>,
    /// Require client certificates issued by these CAs.
    pub client_ca: Option<Pem>,
    pub auth: AuthMode,
    pub rules: Vec<Rule>,
    /// Serve without caller checks on a non-loopback address (a private
    /// subnet), stated explicitly.
    pub allow_unauthenticated: bool,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            tls: None,
            client_ca: None,
            auth: AuthMode::None,
            rules: Vec::new(),
            allow_unauthenticated: false,
        }
    }
}

/// What the connection's TLS handshake proved about the caller.
#[derive(Debug, Default, Clone)]
pub struct Peer {
    /// DNS and URI SANs of a verified client certificate.
    pub sans: Vec<String>,
    /// Its subject, RFC 4514 text (`CN=worker, O=Acme`), for messages.
    pub subject: Option<String>,
    /// Its subject's attributes, (short type name such as `CN`, or the
    /// dotted OID; value), as parsed from the certificate.
    pub subject_attrs: Vec<(String, String)>,
}

impl Peer {
    /// The SANs of a client certificate chain's leaf (already verified by
    /// the handshake).
    pub fn from_certs(certs: Option<&[CertificateDer<'_>]>) -> Peer {
        let Some(leaf) = certs.and_then(|c| c.first()) else {
            return Peer::default();
        };
        let sans = match webpki::EndEntityCert::try_from(leaf) {
            Ok(cert) => cert
                .valid_dns_names()
                .chain(cert.valid_uri_names())
                .map(str::to_string)
                .collect(),
            Err(_) => Vec::new(),
        };
        // The handshake verified the chain; this only reads the name.
        let parsed = x509_parser::parse_x509_certificate(leaf).ok();
        let subject = parsed
            .as_ref()
            .map(|(_, cert)| cert.subject().to_string())
            .filter(|s| !s.is_empty());
        let subject_attrs = parsed
            .map(|(_, cert)| {
                let registry = x509_parser::objects::oid_registry();
                cert.subject()
                    .iter_attributes()
                    .filter_map(|a| {
                        let value = a.as_str().ok()?.to_string();
                        let oid = a.attr_type();
                        let name = x509_parser::objects::oid2abbrev(oid, registry)
                            .map(str::to_string)
                            .unwrap_or_else(|_| oid.to_id_string());
                        Some((name.to_ascii_uppercase(), value))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Peer {
            sans,
            subject,
            subject_attrs,
        }
    }

    /// True when every attribute of `rule` is in this peer's subject.
    fn subject_matches(&self, rule: &[(String, String)]) -> bool {
        !rule.is_empty()
            && rule.iter().all(|(t, pattern)| {
                self.subject_attrs
                    .iter()
                    .any(|(pt, v)| pt == t && glob(pattern, v))
            })
    }
}

/// Parses a subject rule written as RFC 4514 text (`CN=worker, O=Acme`;
/// `\,` escapes a comma in a value) into (upper-case type, value) pairs.
pub fn parse_subject(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err(format!("{text:?} ends with a lone backslash")),
            },
            ',' | '+' => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| {
            let (t, v) = p
                .split_once('=')
                .ok_or_else(|| format!("{p:?} in {text:?} is not TYPE=value"))?;
            let (t, v) = (t.trim(), v.trim());
            if t.is_empty()
                || v.is_empty()
                || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '.')
            {
                return Err(format!("{p:?} in {text:?} is not TYPE=value"));
            }
            Ok((t.to_ascii_uppercase(), v.to_string()))
        })
        .collect()
}

/// Why a call may not go on.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{who} may not use namespace {namespace:?}")]
    PermissionDenied { who: String, namespace: String },
    #[error(
        "{who} may not make calls that name no namespace (cluster-level calls): that needs an [[inbound.rules]] entry with system = true"
    )]
    NoNamespace { who: String },
    #[error("no [[inbound.rules]] entry matches {who}")]
    NoRule { who: String },
}

/// The listener's TLS and the caller checks.
pub struct Inbound {
    config: InboundConfig,
    jwt: Option<Jwt>,
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("auth", &self.config.auth)
            .field("rules", &self.config.rules.len())
            .finish()
    }
}

impl Inbound {
    pub fn new(config: InboundConfig) -> Inbound {
        let jwt = match &config.auth {
            AuthMode::Jwt(j) => Some(Jwt::new(j.clone())),
            _ => None,
        };
        Inbound { config, jwt }
    }

    /// The TLS acceptor for the listener (HTTP/2), when TLS is configured.
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>, String> {
        let Some((cert, key)) = &self.config.tls else {
            return Ok(None);
        };
        tls::acceptor(
            (cert, key),
            self.config.client_ca.as_ref(),
            &[b"h2"],
            [
                "inbound.tls_cert_file",
                "inbound.tls_key_file",
                "inbound.client_ca_file",
            ],
        )
        .map(Some)
        .map_err(|e| e.to_string())
    }

    /// Who is calling, from the request's headers and the connection alone
    /// (nothing of the body has been read): UNAUTHENTICATED when the
    /// credentials are missing or wrong.
    pub async fn authenticate(
        &self,
        peer: &Peer,
        headers: &HeaderMap,
    ) -> Result<Caller<'_>, Denied> {
        let (who, rules): (String, Vec<&Rule>) = match &self.config.auth {
            AuthMode::None => return Ok(Caller::anyone()),
            AuthMode::Mtls => {
                if peer.sans.is_empty() && peer.subject.is_none() {
                    return Err(Denied::Unauthenticated(
                        "a client certificate is required".into(),
                    ));
                }
                let rules = self
                    .config
                    .rules
                    .iter()
                    .filter(|r| match &r.who {
                        Who::San(p) => peer.sans.iter().any(|s| glob(p, s)),
                        Who::Subject(rule) => peer.subject_matches(rule),
                        _ => false,
                    })
                    .collect();
                let mut names = peer.sans.clone();
                names.extend(peer.subject.iter().cloned());
                (format!("client {}", names.join(", ")), rules)
            }
            AuthMode::Bearer => {
                let token = bearer(headers)?;
                let rules: Vec<&Rule> = self
                    .config
                    .rules
                    .iter()
                    .filter(|r| r.who.is_token(token))
                    .collect();
                if rules.is_empty() {
                    return Err(Denied::Unauthenticated("unknown bearer token".into()));
                }
                ("this token".to_string(), rules)
            }
            AuthMode::Jwt(_) => {
                let token = bearer(headers)?;
                let Some(jwt) = &self.jwt else {
                    return Err(Denied::Unauthenticated("JWT checks are not set up".into()));
                };
                // Boxed: a JWKS fetch is rare; inline, its future would
                // weigh on every call for as long as the call lasts. (The
                // box is made in a statement of its own: see
                // `Session::encode_with`.)
                let claims = Box::pin(jwt.claims(token));
                let claims = claims
                    .await
                    .map_err(|e| Denied::Unauthenticated(e.message))?;
                let rules = self
                    .config
                    .rules
                    .iter()
                    .filter(|r| r.who.is_claimed_by(&claims))
                    .collect();
                let sub = claims
                    .get("sub")
                    .and_then(|s| s.as_str())
                    .unwrap_or("this token");
                (format!("subject {sub:?}"), rules)
            }
        };
        Ok(Caller {
            who,
            rules: Some(rules),
        })
    }

    /// True when callers are checked at all (`auth` is not "none").
    pub fn checks_callers(&self) -> bool {
        !matches!(self.config.auth, AuthMode::None)
    }
}

/// An authenticated caller and the rules that match it.
#[derive(Debug)]
pub struct Caller<'a> {
    who: String,
    /// `None`: no checks configured, anyone may do anything.
    rules: Option<Vec<&'a Rule>>,
}

impl Caller<'_> {
    /// The caller when `auth = "none"`.
    pub fn anyone() -> Caller<'static> {
        Caller {
            who: "anyone".into(),
            rules: None,
        }
    }

    /// Some rule matches this caller (or nothing is checked): enough for
    /// calls that touch no namespace's data (reflection, health checks,
    /// GetSystemInfo, the SDKs' handshake).
    pub fn known(&self) -> Result<(), Denied> {
        if self.rules.as_ref().is_none_or(|r| !r.is_empty()) {
            Ok(())
        } else {
            Err(Denied::NoRule {
                who: self.who.clone(),
            })
        }
    }

    /// May this caller use `namespace`? `""` is a call that names no
    /// namespace: it needs a rule with `system = true`.
    pub fn may_use(&self, namespace: &str) -> Result<(), Denied> {
        let Some(rules) = &self.rules else {
            return Ok(());
        };
        let allowed = if namespace.is_empty() {
            rules.iter().any(|r| r.system)
        } else {
            rules
                .iter()
                .any(|r| r.namespaces.iter().any(|p| glob(p, namespace)))
        };
        if allowed {
            Ok(())
        } else if namespace.is_empty() {
            Err(Denied::NoNamespace {
                who: self.who.clone(),
            })
        } else {
            Err(Denied::PermissionDenied {
                who: self.who.clone(),
                namespace: namespace.to_string(),
            })
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, Denied> {
    bearer_token(headers)
        .ok_or_else(|| Denied::Unauthenticated("authorization: Bearer <token> is required".into()))
}

/// The listener's current TLS acceptor (none: plaintext h2c), swapped on
/// reload.
pub struct ListenerTls(pub tokio::sync::watch::Sender<Option<TlsAcceptor>>);

impl fmt::Debug for ListenerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ListenerTls(tls: {})", self.0.borrow().is_some())
    }
}

#[cfg(test)]
mod tests;
