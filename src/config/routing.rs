//! `[upstreams.NAME]`, `[routing]` and `[[routes]]`: more upstreams and
//! which one serves which call.

use super::*;

pub(super) fn named_upstream(
    name: &str,
    t: &mut Table<'_>,
    base: &Path,
    issues: &mut Issues,
) -> Option<NamedUpstream> {
    if name == DEFAULT_UPSTREAM {
        issues.push(
            &t.path(""),
            "\"default\" is the upstream given by `upstream` and [upstream_options]; pick another name"
                .into(),
        );
    }
    let raw_address = t.string("address", issues);
    let explicit_plaintext = raw_address
        .as_deref()
        .is_some_and(|a| a.starts_with("http://"));
    let address = match raw_address {
        Some(a) => Upstream::parse(&a.replace("{namespace}", "namespace"))
            .map(|_| Upstream::parse_template(&a))
            .map_err(|m| issues.push(&t.path("address"), m))
            .ok(),
        None => {
            issues.push(
                &t.path("address"),
                "missing: e.g. \"https://{namespace}.a1b2c.tmprl.cloud:7233\"".into(),
            );
            None
        }
    };
    // Temporal's environment variables describe the default upstream only.
    let options = upstream_section(t, base, &TemporalClient::default(), &mut Vec::new(), issues);
    // Credentials imply TLS here too.
    let address = address.map(|mut a| {
        options.credentials_imply_tls(
            &mut a,
            explicit_plaintext,
            (&t.path("address"), &t.path("allow_plaintext_credentials")),
            issues,
        );
        a
    });
    Some(NamedUpstream {
        name: name.to_string(),
        address: address?,
        options,
    })
}

pub(super) fn routing_section(
    root: &mut Table<'_>,
    upstreams: &[NamedUpstream],
    issues: &mut Issues,
) -> RoutingConfig {
    let known = |n: &str| n == DEFAULT_UPSTREAM || upstreams.iter().any(|u| u.name == n);
    let check = |t: &Table<'_>, key: &str, name: &str, issues: &mut Issues| {
        if !known(name) {
            let names: Vec<&str> = std::iter::once(DEFAULT_UPSTREAM)
                .chain(upstreams.iter().map(|u| u.name.as_str()))
                .collect();
            issues.push(
                &t.path(key),
                format!("{name:?} is not an upstream (known: {})", names.join(", ")),
            );
        }
    };
    let mut routes = Vec::new();
    for mut r in root.array_of_tables("routes", issues) {
        let namespace = r.string("namespace", issues);
        let mut metadata = Vec::new();
        if let Some(m) = r.table("metadata", issues) {
            for (k, v) in m.entries() {
                match v {
                    toml::Value::String(v) => metadata.push((k.to_ascii_lowercase(), v.clone())),
                    _ => issues.push(&m.path(k), "expected a string".into()),
                }
            }
        }
        let upstream = r.string("upstream", issues).unwrap_or_default();
        check(&r, "upstream", &upstream, issues);
        if namespace.is_none() && metadata.is_empty() {
            issues.push(
                &r.path("namespace"),
                "a route needs a namespace pattern, metadata, or both".into(),
            );
        }
        r.finish(issues);
        routes.push(RouteConfig {
            namespace,
            metadata,
            upstream,
        });
    }
    let mut t = root
        .table("routing", issues)
        .unwrap_or_else(|| Table::empty("routing", root.env()));
    let default = t
        .string("default", issues)
        .unwrap_or_else(|| DEFAULT_UPSTREAM.into());
    check(&t, "default", &default, issues);
    let system = t
        .string("system", issues)
        .unwrap_or_else(|| default.clone());
    check(&t, "system", &system, issues);
    t.finish(issues);
    RoutingConfig {
        routes,
        default,
        system,
    }
}
