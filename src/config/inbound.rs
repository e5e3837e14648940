//! `[inbound]`: TLS on the gRPC listener and the rules of who may use
//! which namespace.

use super::*;

pub(super) fn inbound_section(
    t: &mut Table<'_>,
    base: &Path,
    issues: &mut Issues,
) -> InboundConfig {
    let mut file = |key: &'static str, issues: &mut Issues| {
        t.string(key, issues).map(|f| {
            let path = base.join(f);
            issues.read_file(path.clone());
            Pem::File(path)
        })
    };
    let cert = file("tls_cert_file", issues);
    let key = file("tls_key_file", issues);
    let client_ca = file("client_ca_file", issues);
    let tls = both(t, cert, key, issues);
    if client_ca.is_some() && tls.is_none() {
        issues.push(
            &t.path("client_ca_file"),
            "client certificates need TLS: set tls_cert_file and tls_key_file too".into(),
        );
    }
    let mode = t.string("auth", issues).unwrap_or_else(|| "none".into());
    let auth = match mode.as_str() {
        "none" => AuthMode::None,
        "mtls" => {
            if client_ca.is_none() {
                issues.push(
                    &t.path("auth"),
                    "\"mtls\" needs client_ca_file (the CA that issues the workers' certificates)"
                        .into(),
                );
            }
            AuthMode::Mtls
        }
        "bearer" => AuthMode::Bearer,
        "jwt" => AuthMode::Jwt(jwt_keys(t, issues)),
        other => {
            issues.push(
                &t.path("auth"),
                format!("{other:?}: use \"none\", \"mtls\", \"bearer\" or \"jwt\""),
            );
            AuthMode::None
        }
    };
    let mut rules = Vec::new();
    for mut r in t.array_of_tables("rules", issues) {
        let san = r.string("san", issues);
        let subject = r.string("subject", issues);
        let token = r.string("token", issues);
        let claim = r.string("claim", issues);
        let namespaces = r.strings("namespaces", issues).unwrap_or_default();
        let system = r.bool("system", issues).unwrap_or(false);
        if namespaces.is_empty() && !system {
            issues.push(
                &r.path("namespaces"),
                "missing: the namespaces (exact or patterns, \"*\" for all) this caller may use, or system = true"
                    .into(),
            );
        }
        let who = match (&auth, san, subject, token, claim) {
            (AuthMode::Mtls, Some(s), None, None, None) => Some(Who::San(s)),
            (AuthMode::Mtls, None, Some(s), None, None) => {
                match crate::inbound::parse_subject(&s) {
                    Ok(attrs) => Some(Who::Subject(attrs)),
                    Err(e) => {
                        issues.push(&r.path("subject"), e);
                        None
                    }
                }
            }
            (AuthMode::Bearer, None, None, Some(t), None) => token_who(t, &r.path("token"), issues),
            (AuthMode::Jwt(_), None, None, None, Some(c)) => {
                claim_who(&c, &r.path("claim"), issues)
            }
            _ => {
                let want = match auth {
                    AuthMode::Mtls => "san or subject",
                    AuthMode::Bearer => "token",
                    AuthMode::Jwt(_) => "claim",
                    AuthMode::None => "nothing (auth is \"none\")",
                };
                issues.push(
                    &r.path(""),
                    format!("with auth = {mode:?} a rule names its caller with {want}"),
                );
                None
            }
        };
        r.finish(issues);
        if let Some(who) = who {
            rules.push(Rule {
                who,
                namespaces,
                system,
            });
        }
    }
    if !matches!(auth, AuthMode::None) && rules.is_empty() {
        issues.push(
            &t.path("rules"),
            "missing: with authentication on, [[inbound.rules]] say who may use which namespaces"
                .into(),
        );
    }
    let allow_unauthenticated = t.bool("allow_unauthenticated", issues).unwrap_or(false);
    t.finish(issues);
    InboundConfig {
        tls,
        client_ca,
        auth,
        rules,
        allow_unauthenticated,
    }
}
