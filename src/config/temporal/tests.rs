use std::collections::HashMap;

use super::*;
use crate::config::Config;

const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// sealgate.toml without an upstream of its own (unless `upstream` is given).
fn sealgate_toml(upstream: Option<&str>) -> String {
    let upstream = upstream.map_or(String::new(), |u| format!("upstream = \"{u}\"\n"));
    format!(
        "listen = \"127.0.0.1:7233\"\n{upstream}[upstream_options]\nallow_plaintext_credentials = true\n\
         [codec]\nactive_key = \"k\"\n[[codec.keys]]\nid = \"k\"\nmaterial = \"{KEY}\"\n"
    )
}

fn dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".work/unit")
        .join(format!("temporal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

const PROFILES: &str = r#"
[profile.default]
address = "127.0.0.1:7234"

[profile.prod]
address = "prod.a1b2c.tmprl.cloud:7233"
namespace = "prod.a1b2c"
api_key = "profile-key"
[profile.prod.tls]
server_name = "prod.example"
[profile.prod.grpc_meta]
X_Team = "payments"
x-remove-me = "x"

[profile.plain]
address = "127.0.0.1:7299"
api_key = "plain-key"
[profile.plain.tls]
disabled = true
"#;

fn parse(
    file: &Path,
    upstream: Option<&str>,
    vars: &[(&str, &str)],
) -> Result<Config, crate::config::ConfigError> {
    let mut env: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.insert("TEMPORAL_CONFIG_FILE".into(), file.display().to_string());
    let names: Vec<String> = env.keys().cloned().collect();
    env.insert(ENV_LIST.into(), names.join("\n"));
    Config::parse(
        &sealgate_toml(upstream),
        "sealgate.toml",
        Path::new("."),
        &|k| env.get(k).cloned(),
    )
}

fn write(name: &str) -> PathBuf {
    let f = dir(name).join("temporal.toml");
    std::fs::write(&f, PROFILES).unwrap();
    f
}

#[test]
fn the_default_profile_names_the_upstream_when_sealgate_does_not() {
    let f = write("default");
    let c = parse(&f, None, &[]).unwrap();
    assert_eq!(c.upstream.to_string(), "http://127.0.0.1:7234");
    let origins = &c.effective_upstreams()[0].origins;
    assert!(origins[0].1.contains("profile \"default\""), "{origins:?}");
}

#[test]
fn a_profile_gives_address_key_tls_and_metadata_and_variables_win() {
    let f = write("prod");
    let c = parse(
        &f,
        None,
        &[
            ("TEMPORAL_PROFILE", "prod"),
            ("TEMPORAL_API_KEY", "env-key"),
            ("TEMPORAL_GRPC_META_X_REGION", "eu"),
            ("TEMPORAL_GRPC_META_X_REMOVE_ME", ""),
        ],
    )
    .unwrap();
    assert_eq!(
        c.upstream.to_string(),
        "https://prod.a1b2c.tmprl.cloud:7233"
    );
    let o = &c.upstream_options;
    assert_eq!(o.api_key.as_deref(), Some("env-key"), "the variable wins");
    assert_eq!(o.tls.server_name.as_deref(), Some("prod.example"));
    assert_eq!(
        o.grpc_meta,
        [
            ("x-region".to_string(), "eu".to_string()),
            ("x-team".to_string(), "payments".to_string())
        ],
        "names lower case with '-', an empty variable removes one"
    );
    let e = &c.effective_upstreams()[0];
    assert!(
        e.origins
            .iter()
            .any(|(s, f)| s == "api key (set)" && f == "TEMPORAL_API_KEY")
    );
    // Never the key itself, anywhere in what check-config prints.
    let shown = serde_json::to_string(&c.effective_upstreams()).unwrap();
    assert!(
        !shown.contains("env-key") && !shown.contains("profile-key"),
        "{shown}"
    );
}

#[test]
fn tls_follows_the_sdks_rules() {
    let f = write("tls");
    // A tls table with disabled = true: plaintext even with an API key.
    let c = parse(&f, None, &[("TEMPORAL_PROFILE", "plain")]).unwrap();
    assert!(!c.upstream.tls);
    // TEMPORAL_TLS=true over it.
    let c = parse(
        &f,
        None,
        &[("TEMPORAL_PROFILE", "plain"), ("TEMPORAL_TLS", "true")],
    )
    .unwrap();
    assert!(c.upstream.tls);
    // No tls table, no key: plaintext; a key alone turns TLS on.
    let c = parse(&f, None, &[]).unwrap();
    assert!(!c.upstream.tls);
    let c = parse(&f, None, &[("TEMPORAL_API_KEY", "k")]).unwrap();
    assert!(c.upstream.tls);
    // Any TEMPORAL_TLS* variable makes a tls table: TLS on.
    let c = parse(&f, None, &[("TEMPORAL_TLS_SERVER_NAME", "x.example")]).unwrap();
    assert!(c.upstream.tls);
}

#[test]
fn a_named_profile_that_is_missing_is_an_error_the_default_is_not() {
    let f = write("missing");
    let e = parse(&f, None, &[("TEMPORAL_PROFILE", "staging")]).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("TEMPORAL_PROFILE") && text.contains("staging"),
        "{text}"
    );
    let gone = f.with_file_name("nothing.toml");
    // No file and no profile asked for: no upstream from it, so the usual error.
    let e = parse(&gone, None, &[]).unwrap_err();
    assert!(e.to_string().contains("upstream"), "{e}");
}

#[test]
fn sealgate_toml_naming_the_upstream_leaves_the_profile_file_alone() {
    let f = write("ignored");
    let c = parse(
        &f,
        Some("http://127.0.0.1:9999"),
        &[("TEMPORAL_PROFILE", "prod")],
    )
    .unwrap();
    assert_eq!(c.upstream.to_string(), "http://127.0.0.1:9999");
    assert!(
        c.upstream_options.api_key.is_none(),
        "the profile's key is not sent elsewhere"
    );
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("TEMPORAL_CONFIG_FILE")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn what_the_gateway_cannot_honour_is_refused() {
    let d = dir("refused");
    let f = d.join("temporal.toml");
    std::fs::write(
        &f,
        "[profile.default]\naddress = \"a:1\"\n[profile.default.tls]\n\
         disable_host_verification = true\nclient_cert_path = \"c.pem\"\nclient_cert_data = \"x\"\n\
         [profile.default.grpc_meta]\ngrpc-timeout = \"1S\"\n",
    )
    .unwrap();
    let e = parse(&f, None, &[]).unwrap_err().to_string();
    assert!(e.contains("disable_host_verification"), "{e}");
    assert!(e.contains("client_cert_path or client_cert_data"), "{e}");
    assert!(e.contains("grpc-timeout"), "{e}");
}
