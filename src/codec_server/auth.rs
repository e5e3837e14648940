//! Who may use the codec server: nobody checked (loopback), a static bearer
//! token, or a JWT verified against a JWKS with optional claim rules.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use http::{HeaderMap, HeaderValue, StatusCode, header};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;
use tokio::sync::RwLock;

use super::{Op, Resp, error, fetch};
use crate::{
    config::{CodecRule, CodecServerAuth, JwtConfig},
    inbound::{Who, ct_eq},
    proxy::router::glob,
};

/// A refused request: 401 (who are you?) or 403 (not allowed).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    pub status: StatusCode,
    pub message: String,
}

impl AuthError {
    fn unauthenticated(message: impl Into<String>) -> Self {
        AuthError {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
        }
    }

    fn forbidden(message: impl Into<String>) -> Self {
        AuthError {
            status: StatusCode::FORBIDDEN,
            message: message.into(),
        }
    }

    pub fn response(&self) -> Resp {
        let mut r = error(self.status, self.message.clone());
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

#[derive(Debug)]
pub struct Auth {
    mode: Mode,
    /// Per-namespace rules; none: an authenticated caller may use every
    /// namespace.
    rules: Vec<CodecRule>,
}

#[derive(Debug)]
enum Mode {
    None,
    /// The one token with access to everything; empty when only rules
    /// name tokens.
    Bearer(Box<[u8]>),
    Jwt(Arc<Jwt>),
}

impl Auth {
    pub fn new(config: &CodecServerAuth, rules: &[CodecRule]) -> Auth {
        let mode = match config {
            CodecServerAuth::None => Mode::None,
            CodecServerAuth::Bearer { token } => Mode::Bearer(token.as_bytes().into()),
            CodecServerAuth::Jwt(j) => Mode::Jwt(Arc::new(Jwt::new(j.clone()))),
        };
        Auth {
            mode,
            rules: rules.to_vec(),
        }
    }

    /// Some rule matching this caller covers `namespace` for `op`.
    fn covered(
        &self,
        matches: impl Fn(&Who) -> bool,
        namespace: &str,
        op: Op,
    ) -> Result<(), AuthError> {
        let mine: Vec<&CodecRule> = self.rules.iter().filter(|r| matches(&r.who)).collect();
        if mine.is_empty() {
            return Err(AuthError::forbidden(
                "no [[codec_server.auth.rules]] entry matches this caller",
            ));
        }
        let allowed = mine.iter().any(|r| {
            (match op {
                Op::Decode => r.decode,
                Op::Encode => r.encode,
            }) && r.namespaces.iter().any(|p| glob(p, namespace))
        });
        if allowed {
            Ok(())
        } else {
            Err(AuthError::forbidden(format!(
                "this caller may not {} payloads of namespace {namespace:?}",
                match op {
                    Op::Encode => "encode",
                    Op::Decode => "decode",
                }
            )))
        }
    }

    /// Fetches the JWKS in the background so the first call does not wait.
    pub fn warm_up(&self) {
        if let Mode::Jwt(j) = &self.mode {
            let j = j.clone();
            tokio::spawn(async move {
                let _ = j.keys(None).await;
            });
        }
    }

    /// Checks the caller for `op` on `namespace` (its local name).
    pub async fn check(
        &self,
        headers: &HeaderMap,
        op: Op,
        namespace: &str,
    ) -> Result<(), AuthError> {
        let token = || {
            crate::inbound::bearer_token(headers)
                .ok_or_else(|| AuthError::unauthenticated("missing Authorization: Bearer <token>"))
        };
        match &self.mode {
            Mode::None => Ok(()),
            Mode::Bearer(want) => {
                let got = token()?;
                if !want.is_empty() && ct_eq(got.as_bytes(), want) {
                    return Ok(());
                }
                let known = |w: &Who| w.is_token(got);
                if !self.rules.iter().any(|r| known(&r.who)) {
                    return Err(AuthError::unauthenticated("the bearer token is not valid"));
                }
                self.covered(known, namespace, op)
            }
            Mode::Jwt(jwt) => {
                let claims = jwt.check(token()?, op, !self.rules.is_empty()).await?;
                if self.rules.is_empty() {
                    return Ok(());
                }
                self.covered(|w| w.is_claimed_by(&claims), namespace, op)
            }
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

    /// The key set, fetched when absent, stale, or missing `kid`.
    async fn keys(&self, kid: Option<&str>) -> Result<Arc<JwkSet>, AuthError> {
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
                    None => Err(AuthError {
                        status: StatusCode::SERVICE_UNAVAILABLE,
                        message: format!(
                            "cannot fetch signing keys from {}: {e}",
                            self.config.jwks_url
                        ),
                    }),
                }
            }
        }
    }

    /// Verifies the token and its claim rule for `op`; with per-namespace
    /// rules (`ruled`) those decide instead of a missing encode rule.
    async fn check(
        &self,
        token: &str,
        op: Op,
        ruled: bool,
    ) -> Result<serde_json::Map<String, Value>, AuthError> {
        let claims = self.claims(token).await?;
        let rule = match op {
            Op::Encode => &self.config.encode_requires,
            Op::Decode => &self.config.decode_requires,
        };
        if op == Op::Encode && rule.is_none() && !ruled {
            // Minting ciphertext needs a rule of its own: a decode-only
            // caller must not be able to encode.
            return Err(AuthError::forbidden(
                "encoding needs its own rule (codec_server.auth.encode_requires); none is set",
            ));
        }
        if let Some((claim, value)) = rule
            && !claim_has(claims.get(claim), value)
        {
            return Err(AuthError::forbidden(format!(
                "this token may not {}: it needs claim {claim} containing {value:?}",
                match op {
                    Op::Encode => "encode",
                    Op::Decode => "decode",
                }
            )));
        }
        Ok(claims)
    }

    /// The claims of a token that verifies (signature, algorithm, expiry,
    /// issuer and audience as configured).
    pub(crate) async fn claims(
        &self,
        token: &str,
    ) -> Result<serde_json::Map<String, Value>, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::unauthenticated(format!("not a JWT: {e}")))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(AuthError::unauthenticated(format!(
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
            AuthError::unauthenticated(format!("JWT signed with unknown key id {:?}", header.kid))
        })?;
        let key = DecodingKey::from_jwk(jwk)
            .map_err(|e| AuthError::unauthenticated(format!("unusable key in the JWKS: {e}")))?;
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
            .map_err(|e| AuthError::unauthenticated(format!("JWT rejected: {e}")))?;
        // iat, when present, may not be in the future.
        if let Some(iat) = data.claims.get("iat") {
            let now = jsonwebtoken::get_current_timestamp();
            match iat.as_u64() {
                Some(t) if t <= now + JWT_LEEWAY_SECS => {}
                _ => {
                    return Err(AuthError::unauthenticated(
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
