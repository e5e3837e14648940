//! Who a caller is: one place for the bearer token, the JWT, the rule
//! subjects and the comparisons they need, shared by the gRPC listener
//! (`[inbound]`) and the Codec Server (`[codec_server.auth]`).

mod fetch;

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;
use tokio::sync::RwLock;

/// The token of an `authorization: Bearer <token>` header, for the listener
/// and the Codec Server alike. The scheme is case-insensitive (RFC 9110).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Constant-time comparison (tokens).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `*` matches any run of characters, `?` any one.
pub(crate) fn glob(pattern: &str, s: &str) -> bool {
    let (p, s) = (pattern.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Whom a rule is about.
#[derive(Clone, PartialEq, Eq)]
pub enum Who {
    /// A client certificate SAN (DNS name or URI), exact or `*`/`?` pattern.
    San(String),
    /// A client certificate's subject, written as RFC 4514 text
    /// (`CN=worker, O=Acme`) and matched attribute by attribute: every
    /// (type, value) listed must be in the certificate's subject, values
    /// exact or patterns. Never matched as a formatted string.
    Subject(Vec<(String, String)>),
    /// A static bearer token.
    Token(String),
    /// A JWT claim containing a value (`claim=value`).
    Claim(String, String),
}

impl fmt::Debug for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::San(s) => f.debug_tuple("San").field(s).finish(),
            Who::Subject(s) => f.debug_tuple("Subject").field(&subject_text(s)).finish(),
            Who::Token(_) => write!(f, "Token(<redacted>)"),
            Who::Claim(c, v) => f.debug_tuple("Claim").field(c).field(v).finish(),
        }
    }
}

impl Who {
    /// This is the bearer token `token` (compared in constant time).
    pub(crate) fn is_token(&self, token: &str) -> bool {
        matches!(self, Who::Token(t) if ct_eq(t.as_bytes(), token.as_bytes()))
    }

    /// A JWT with these verified claims is this (the claim holds the value).
    pub(crate) fn is_claimed_by(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> bool {
        matches!(self, Who::Claim(c, v) if claim_has(claims.get(c), v))
    }
}

/// A parsed subject rule as text again, for messages.
pub(crate) fn subject_text(attrs: &[(String, String)]) -> String {
    attrs
        .iter()
        .map(|(t, v)| format!("{t}={}", v.replace(',', "\\,")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// JWT validation settings.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    pub jwks_url: String,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// How often the JWKS is fetched again (also on an unknown `kid`).
    pub refresh_interval: Duration,
    /// Claim rules: `(claim, value)` a token must carry to decode / encode.
    pub decode_requires: Option<(String, String)>,
    pub encode_requires: Option<(String, String)>,
}

/// A token that does not verify, or keys that cannot be fetched.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct JwtError {
    /// The signing keys could not be fetched (try again later), as
    /// opposed to a token that is not valid.
    pub unavailable: bool,
    pub message: String,
}

impl JwtError {
    fn invalid(message: impl Into<String>) -> JwtError {
        JwtError {
            unavailable: false,
            message: message.into(),
        }
    }
}

/// JWT verification against a cached JWKS.
#[derive(Debug)]
pub(crate) struct Jwt {
    config: JwtConfig,
    cache: RwLock<Option<(Arc<JwkSet>, Instant)>>,
}

/// An unknown `kid` refetches the JWKS at most this often.
const MIN_REFETCH: Duration = Duration::from_secs(10);

impl Jwt {
    pub(crate) fn new(config: JwtConfig) -> Jwt {
        Jwt {
            config,
            cache: RwLock::new(None),
        }
    }

    pub(crate) fn config(&self) -> &JwtConfig {
        &self.config
    }

    /// The key set, fetched when absent, stale, or missing `kid`.
    pub(crate) async fn keys(&self, kid: Option<&str>) -> Result<Arc<JwkSet>, JwtError> {
        if let Some((set, at)) = self.cache.read().await.as_ref() {
            let fresh = at.elapsed() < self.config.refresh_interval;
            let has_kid = kid.is_none_or(|k| set.find(k).is_some());
            if fresh && (has_kid || at.elapsed() < MIN_REFETCH) {
                return Ok(set.clone());
            }
        }
        let mut slot = self.cache.write().await;
        match fetch::get(&self.config.jwks_url).await.and_then(|body| {
            serde_json::from_slice::<JwkSet>(&body).map_err(|e| format!("not a JWKS: {e}"))
        }) {
            Ok(set) => {
                let set = Arc::new(set);
                *slot = Some((set.clone(), Instant::now()));
                Ok(set)
            }
            Err(e) => {
                tracing::warn!(url = %self.config.jwks_url, error = %e, "cannot fetch the JWKS");
                // Keep serving with the keys we had.
                match slot.as_ref() {
                    Some((set, _)) => Ok(set.clone()),
                    None => Err(JwtError {
                        unavailable: true,
                        message: format!(
                            "cannot fetch signing keys from {}: {e}",
                            self.config.jwks_url
                        ),
                    }),
                }
            }
        }
    }

    /// The claims of a token that verifies (signature, algorithm, expiry,
    /// issuer and audience as configured).
    pub(crate) async fn claims(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, Value>, JwtError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| JwtError::invalid(format!("not a JWT: {e}")))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(JwtError::invalid(format!(
                "JWT algorithm {:?} is not accepted; use RS256 or ES256",
                header.alg
            )));
        }
        let keys = self.keys(header.kid.as_deref()).await?;
        let jwk = match &header.kid {
            Some(kid) => keys.find(kid),
            None => keys.keys.first(),
        }
        .ok_or_else(|| {
            JwtError::invalid(format!("JWT signed with unknown key id {:?}", header.kid))
        })?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| JwtError::invalid(format!("unusable key in the JWKS: {e}")))?;
        let mut validation = Validation::new(header.alg);
        // exp always; iss and aud whenever configured (a token without them
        // does not pass); nbf too; a minute of clock skew at most.
        validation.leeway = JWT_LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        match &self.config.issuer {
            Some(iss) => {
                validation.set_issuer(&[iss]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.config.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &key, &validation)
            .map_err(|e| JwtError::invalid(format!("JWT rejected: {e}")))?;
        // iat, when present, may not be in the future.
        if let Some(iat) = data.claims.get("iat") {
            let now = jsonwebtoken::get_current_timestamp();
            match iat.as_u64() {
                Some(t) if t <= now + JWT_LEEWAY_SECS => {}
                _ => {
                    return Err(JwtError::invalid(
                        "JWT rejected: iat is not a time in the past",
                    ));
                }
            }
        }
        Ok(data.claims)
    }
}

/// Clock skew allowed on exp, nbf and iat.
const JWT_LEEWAY_SECS: u64 = 60;

/// A claim holds `value`: equal, in an array, or in a space-separated list (OAuth scopes).
pub(crate) fn claim_has(claim: Option<&Value>, value: &str) -> bool {
    match claim {
        Some(Value::String(s)) => s == value || s.split_whitespace().any(|x| x == value),
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(value)),
        _ => false,
    }
}
