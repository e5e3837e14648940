//! `[codec_server]`: the Codec Server's listener, CORS, TLS, and who may
//! decode or encode (bearer tokens, JWT, per-namespace rules).

use super::*;

pub(super) fn codec_server_section(
    t: &mut Table<'_>,
    base: &Path,
    issues: &mut Issues,
) -> CodecServerConfig {
    let default = SocketAddr::from(([127, 0, 0, 1], 8081));
    // An unusable address is reported; the default stands in meanwhile.
    let listen = address(
        t,
        "listen",
        "127.0.0.1:8081",
        "SEALGATE_CODEC_SERVER_LISTEN",
        false,
        issues,
    )
    .unwrap_or(default);
    let cors_origins = t.strings("cors_origins", issues).unwrap_or_default();
    let cors_allow_credentials = t.bool("cors_allow_credentials", issues).unwrap_or(false);
    if cors_allow_credentials && cors_origins.iter().any(|o| o == "*") {
        issues.push(
            &t.path("cors_allow_credentials"),
            "credentials need explicit origins, not \"*\" (browsers refuse the combination)".into(),
        );
    }
    let max_body = t.integer("max_body_bytes", issues).unwrap_or(16 << 20);
    let cert = t.string("tls_cert_file", issues).map(|f| base.join(f));
    let key = t.string("tls_key_file", issues).map(|f| base.join(f));
    let tls = both(t, cert, key, issues);
    let allow_open = t
        .bool("allow_unauthenticated_remote", issues)
        .unwrap_or(false);
    let (auth, rules) = match t.table("auth", issues) {
        Some(mut a) => {
            let rules = codec_server_rules(&mut a, issues);
            let auth = codec_server_auth(&mut a, !rules.is_empty(), issues);
            a.finish(issues);
            (auth, rules)
        }
        None => (CodecServerAuth::None, Vec::new()),
    };
    if matches!(auth, CodecServerAuth::None) && !listen.ip().is_loopback() && !allow_open {
        issues.push(
            &t.path("listen"),
            format!(
                "{listen} is reachable from other hosts and [codec_server.auth] is off: anyone who \
                 reaches it can decrypt payloads. Configure auth, or set allow_unauthenticated_remote = true"
            ),
        );
    }
    t.finish(issues);
    CodecServerConfig {
        rules,
        listen,
        cors_origins,
        cors_allow_credentials,
        max_body_bytes: max_body as usize,
        tls,
        auth,
    }
}

/// A certificate and its key: both or neither.
pub(super) fn both<T>(
    t: &Table<'_>,
    cert: Option<T>,
    key: Option<T>,
    issues: &mut Issues,
) -> Option<(T, T)> {
    match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            issues.push(
                &t.path("tls_cert_file"),
                "TLS needs both tls_cert_file and tls_key_file".into(),
            );
            None
        }
    }
}

/// `jwks_url`, `issuer`, `audience`, `refresh_interval` of a JWT check.
pub(super) fn jwt_keys(t: &mut Table<'_>, issues: &mut Issues) -> JwtConfig {
    let jwks_url = t.string("jwks_url", issues).unwrap_or_else(|| {
        issues.push(
            &t.path("jwks_url"),
            "missing: where the signing keys (JWKS) are published".into(),
        );
        String::new()
    });
    let is_url = jwks_url.starts_with("https://") || jwks_url.starts_with("http://");
    if !jwks_url.is_empty() && !is_url {
        issues.push(
            &t.path("jwks_url"),
            format!("{jwks_url:?} must be an http(s):// URL"),
        );
    }
    // Keys fetched in clear can be swapped on the way: http:// only on loopback.
    if jwks_url.starts_with("http://") {
        let uri = jwks_url.parse::<http::Uri>().ok();
        let host = uri
            .as_ref()
            .and_then(http::Uri::host)
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            issues.push(
                &t.path("jwks_url"),
                format!(
                    "{jwks_url:?} is plaintext: anyone on the path could swap the signing keys; use https:// (http:// only on loopback)"
                ),
            );
        }
    }
    JwtConfig {
        jwks_url,
        issuer: t.string("issuer", issues),
        audience: t.string("audience", issues),
        refresh_interval: t
            .duration("refresh_interval", issues)
            .unwrap_or(Duration::from_secs(600)),
        decode_requires: None,
        encode_requires: None,
    }
}

/// A rule's static bearer token (16+ characters).
pub(super) fn token_who(token: String, path: &str, issues: &mut Issues) -> Option<Who> {
    if token.len() >= 16 {
        Some(Who::Token(token))
    } else {
        issues.push(path, "use at least 16 characters".into());
        None
    }
}

/// A `claim=value` rule: the JWT claim must hold the value.
pub(super) fn claim_pair(text: &str, path: &str, issues: &mut Issues) -> Option<(String, String)> {
    match text.split_once('=') {
        Some((c, v)) if !c.is_empty() => Some((c.to_string(), v.to_string())),
        _ => {
            issues.push(
                path,
                format!("{text:?}: write claim=value, e.g. \"permissions=codec:decode\""),
            );
            None
        }
    }
}

pub(super) fn claim_who(text: &str, path: &str, issues: &mut Issues) -> Option<Who> {
    claim_pair(text, path, issues).map(|(c, v)| Who::Claim(c, v))
}

/// `[[codec_server.auth.rules]]`: token or claim, namespaces, operations.
pub(super) fn codec_server_rules(t: &mut Table<'_>, issues: &mut Issues) -> Vec<CodecRule> {
    let mode = t.peek_string("mode").unwrap_or_default();
    let mut rules = Vec::new();
    for mut r in t.array_of_tables("rules", issues) {
        let token = r.string("token", issues);
        let claim = r.string("claim", issues);
        let namespaces = r.strings("namespaces", issues).unwrap_or_default();
        if namespaces.is_empty() {
            issues.push(
                &r.path("namespaces"),
                "missing: the namespaces (exact or patterns) this caller may decode".into(),
            );
        }
        let ops = r
            .strings("operations", issues)
            .unwrap_or_else(|| vec!["decode".into()]);
        let (mut decode, mut encode) = (false, false);
        for op in &ops {
            match op.as_str() {
                "decode" => decode = true,
                "encode" => encode = true,
                other => issues.push(
                    &r.path("operations"),
                    format!("{other:?}: use \"decode\" and/or \"encode\""),
                ),
            }
        }
        let who = match (mode.as_str(), token, claim) {
            ("bearer", Some(t), None) => token_who(t, &r.path("token"), issues),
            ("jwt", None, Some(c)) => claim_who(&c, &r.path("claim"), issues),
            _ => {
                issues.push(
                    &r.path(""),
                    "with mode \"bearer\" a rule has `token`, with \"jwt\" a `claim`".into(),
                );
                None
            }
        };
        r.finish(issues);
        if let Some(who) = who {
            rules.push(CodecRule {
                who,
                namespaces,
                decode,
                encode,
            });
        }
    }
    rules
}

pub(super) fn codec_server_auth(
    t: &mut Table<'_>,
    has_rules: bool,
    issues: &mut Issues,
) -> CodecServerAuth {
    let mode = t.string("mode", issues).unwrap_or_else(|| "none".into());
    let rule = |t: &mut Table<'_>, key: &'static str, issues: &mut Issues| {
        let v = t.string(key, issues)?;
        claim_pair(&v, &t.path(key), issues)
    };
    match mode.as_str() {
        "none" => CodecServerAuth::None,
        "bearer" => match t.string("token", issues) {
            None if has_rules => CodecServerAuth::Bearer {
                token: String::new(),
            },
            Some(token) if token.len() >= 16 => CodecServerAuth::Bearer { token },
            Some(_) => {
                issues.push(&t.path("token"), "use at least 16 characters".into());
                CodecServerAuth::None
            }
            None => {
                issues.push(
                    &t.path("token"),
                    "missing: the bearer token callers must send (e.g. \"${CODEC_TOKEN}\")".into(),
                );
                CodecServerAuth::None
            }
        },
        "jwt" => {
            let config = JwtConfig {
                decode_requires: rule(t, "decode_requires", issues),
                encode_requires: rule(t, "encode_requires", issues),
                ..jwt_keys(t, issues)
            };
            if config.issuer.is_none()
                && config.audience.is_none()
                && config.decode_requires.is_none()
                && !has_rules
            {
                issues.push(
                    &t.path("issuer"),
                    "a JWT setup with no issuer, audience or claim rule accepts every token the \
                     JWKS signs, for anyone: set issuer and audience, or decode_requires"
                        .into(),
                );
            }
            CodecServerAuth::Jwt(config)
        }
        other => {
            issues.push(
                &t.path("mode"),
                format!("{other:?}: use \"none\", \"bearer\" or \"jwt\""),
            );
            CodecServerAuth::None
        }
    }
}
