//! Who may use the codec server: nobody checked (loopback), a static bearer
//! token, or a JWT verified against a JWKS with optional claim rules.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;

use super::{CodecRule, CodecServerAuth, Op, Resp, error};
use crate::auth::{Jwt, JwtError, Who, claim_has, ct_eq, glob};

/// A refused request: 401 (who are you?) or 403 (not allowed).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    pub status: StatusCode,
    pub message: String,
}

impl From<JwtError> for AuthError {
    fn from(e: JwtError) -> AuthError {
        AuthError {
            status: if e.unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::UNAUTHORIZED
            },
            message: e.message,
        }
    }
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
            crate::auth::bearer_token(headers)
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
                let claims = jwt_check(jwt, token()?, op, !self.rules.is_empty()).await?;
                if self.rules.is_empty() {
                    return Ok(());
                }
                self.covered(|w| w.is_claimed_by(&claims), namespace, op)
            }
        }
    }
}

/// Verifies the token and its claim rule for `op`; with per-namespace
/// rules (`ruled`) those decide instead of a missing encode rule.
async fn jwt_check(
    jwt: &Jwt,
    token: &str,
    op: Op,
    ruled: bool,
) -> Result<serde_json::Map<String, Value>, AuthError> {
    let claims = jwt.claims(token).await.map_err(AuthError::from)?;
    let rule = match op {
        Op::Encode => &jwt.config().encode_requires,
        Op::Decode => &jwt.config().decode_requires,
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
