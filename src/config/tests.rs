use std::{collections::HashMap, path::Path};

use super::*;

const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="; // 32 × 0x01

fn parse_with(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse(text, "test.toml", Path::new("."), &|k| vars.get(k).cloned())
}

/// A scratch directory inside the repository's ignored `.work/`.
fn scratch(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".work/unit")
        .join(format!("{name}-{}", std::process::id()))
}

fn minimal(key: &str) -> String {
    format!(
        r#"
listen = "127.0.0.1:7233"
upstream = "http://127.0.0.1:7234"
[codec]
compression = true
encryption = true
active_key = "dev-key-1"
[[codec.keys]]
id = "dev-key-1"
material = "{key}"
"#
    )
}

fn paths(e: &ConfigError) -> Vec<&str> {
    e.issues.iter().map(|(p, _)| p.as_str()).collect()
}

#[test]
fn the_documented_minimal_shape_loads() {
    let c = parse_with(&minimal(KEY), &[]).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:7233");
    assert_eq!(c.upstream.to_string(), "http://127.0.0.1:7234");
    assert!(c.codec.compression && c.codec.encryption && c.codec.encode_failure_attributes);
    assert_eq!(c.codec.keys.keys.len(), 1);
    let pipeline = crate::app::pipeline(&c.codec).unwrap();
    let policy = pipeline.current().policies.default_policy().describe();
    assert_eq!(
        policy,
        "default: static with \"dev-key-1\" (decrypts with: dev-key-1)"
    );
    assert!(
        !format!("{c:?}").contains(KEY),
        "material never shows in Debug"
    );
}

#[test]
fn shipped_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let dev = Config::load(&dir.join("dev.toml")).unwrap();
    assert_eq!(
        dev.codec.keys.policies[0].active_key.as_deref(),
        Some("dev-key-1")
    );
    // The reference file documents every key; it needs its secrets supplied.
    let text = std::fs::read_to_string(dir.join("reference.toml")).unwrap();
    let text = text
        .replace("/run/secrets/sealgate/key-2026-05", "key.b64")
        .replace("/run/secrets/sealgate/client.pem", "key.b64")
        .replace("/run/secrets/sealgate/client.key", "key.b64");
    let tmp = scratch("ref");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("key.b64"), format!("{KEY}\n")).unwrap();
    let vars = |k: &str| match k {
        "SEALGATE_KEY_2026_11" | "SEALGATE_LOCAL_KEK" => Some(KEY.to_string()),
        "SEALGATE_ORDERS_TOKEN" => Some("orders-token-0123456789".to_string()),
        "TEMPORAL_CLOUD_API_KEY" => Some("api-key".to_string()),
        _ => None,
    };
    let c = Config::parse(&text, "reference.toml", &tmp, &vars).unwrap();
    std::fs::remove_dir_all(&tmp).unwrap();
    assert_eq!(c.codec.keys.keys.len(), 2);
    assert_eq!(c.codec.keys.providers.len(), 3);
    let pipeline = crate::app::pipeline(&c.codec).unwrap();
    let policies = pipeline.current();
    let formats: Vec<_> = policies
        .policies
        .all()
        .iter()
        .map(|p| (p.name().to_string(), p.format()))
        .collect();
    assert_eq!(
        formats,
        [
            ("default".to_string(), "static"),
            ("payments-prod".to_string(), "envelope")
        ]
    );
    assert!(c.upstream.tls);
    assert_eq!(c.upstream_options.api_key.as_deref(), Some("api-key"));
    assert_eq!(c.proxy.allowed_services.len(), 3);
}

#[test]
fn every_problem_is_reported_at_once_with_its_path() {
    let text = r#"
listen = "nowhere"
upstream = "ftp://x"
colour = "blue"
[codec]
compression = "yes"
active_key = "missing"
surprise = 1
[[codec.keys]]
id = "a"
material = "c2hvcnQ="
extra = true
[[codec.keys]]
material = "${NOT_SET}"
"#;
    let err = parse_with(text, &[]).unwrap_err();
    let p = paths(&err);
    for want in [
        "listen",
        "upstream",
        "colour",
        "codec.compression",
        "codec.surprise",
        "codec.keys[0].material",
        "codec.keys[0].extra",
        "codec.keys[1].id",
        "codec.keys[1].material",
    ] {
        assert!(p.contains(&want), "{want} missing from {p:?}");
    }
    let shown = err.to_string();
    assert!(
        shown.contains("test.toml") && shown.contains("problems"),
        "{shown}"
    );
    assert!(shown.contains("NOT_SET"), "{shown}");
    assert!(shown.contains("32"), "names the key length: {shown}");
}

#[test]
fn encryption_needs_an_active_key_that_exists() {
    let text = minimal(KEY).replace("active_key = \"dev-key-1\"", "");
    let err = parse_with(&text, &[]).unwrap_err();
    assert_eq!(paths(&err), ["codec.active_key"]);
    assert!(err.to_string().contains("encryption = false"));
    let text = minimal(KEY).replace("active_key = \"dev-key-1\"", "active_key = \"nope\"");
    let err = parse_with(&text, &[]).unwrap_err();
    assert_eq!(paths(&err), ["codec.active_key"]);
    // Decrypt-only needs no active key.
    let text = minimal(KEY)
        .replace("active_key = \"dev-key-1\"", "")
        .replace("encryption = true", "encryption = false");
    assert!(!parse_with(&text, &[]).unwrap().codec.encryption);
}

#[test]
fn duplicate_key_ids_are_rejected() {
    let text = format!(
        "{}\n[[codec.keys]]\nid = \"dev-key-1\"\nmaterial = \"{KEY}\"\n",
        minimal(KEY)
    );
    let err = parse_with(&text, &[]).unwrap_err();
    assert_eq!(paths(&err), ["codec.keys[1].id"]);
}

#[test]
fn variables_expand_and_overrides_apply() {
    let text = minimal("${DEK}").replace("127.0.0.1:7234", "${UP_HOST}:7234");
    // On 0.0.0.0 without caller checks: refused unless stated explicitly.
    let vars = [
        ("DEK", KEY),
        ("UP_HOST", "temporal.internal"),
        ("SEALGATE_LISTEN", "0.0.0.0:9000"),
    ];
    let e = parse_with(&text, &vars).unwrap_err();
    assert!(
        paths(&e) == ["inbound.auth"] && e.to_string().contains("allow_unauthenticated"),
        "{e}"
    );
    let text = format!("{text}[inbound]\nallow_unauthenticated = true\n");
    let c = parse_with(
        &text,
        &[
            ("DEK", KEY),
            ("UP_HOST", "temporal.internal"),
            ("SEALGATE_LISTEN", "0.0.0.0:9000"),
        ],
    )
    .unwrap();
    assert_eq!(c.upstream.authority, "temporal.internal:7234");
    assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
    let c = parse_with(
        &minimal(KEY),
        &[("SEALGATE_UPSTREAM", "https://cloud.example:7233")],
    )
    .unwrap();
    assert_eq!(c.upstream.to_string(), "https://cloud.example:7233");
    // An upstream can come from the environment alone.
    let text = minimal(KEY).replace("upstream = \"http://127.0.0.1:7234\"", "");
    assert!(parse_with(&text, &[]).is_err());
    assert!(parse_with(&text, &[("SEALGATE_UPSTREAM", "127.0.0.1:1")]).is_ok());
}

#[test]
fn expansion_rules() {
    let env = |k: &str| (k == "A").then(|| "x".to_string());
    assert_eq!(table::expand("${A}-${A}", &env).unwrap(), "x-x");
    assert_eq!(table::expand("$${A} $A ${", &env).unwrap(), "${A} $A ${");
    assert_eq!(table::expand("${B}", &env).unwrap_err(), "B");
}

#[test]
fn material_files_are_read_relative_to_the_config() {
    let dir = scratch("cfg");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("k.b64"), format!("{KEY}\n")).unwrap();
    let text = minimal(KEY).replace(
        &format!("material = \"{KEY}\""),
        "material_file = \"k.b64\"",
    );
    std::fs::write(dir.join("c.toml"), &text).unwrap();
    let c = Config::load(&dir.join("c.toml")).unwrap();
    assert_eq!(c.codec.keys.keys.len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn toml_syntax_errors_are_reported() {
    let err = parse_with("listen = ", &[]).unwrap_err();
    assert!(err.to_string().contains("not valid TOML"), "{err}");
}

#[test]
fn upstream_forms() {
    assert_eq!(
        Upstream::parse("127.0.0.1:7233").unwrap().to_string(),
        "http://127.0.0.1:7233"
    );
    assert!(
        Upstream::parse("https://ns.acct.tmprl.cloud:7233")
            .unwrap()
            .tls
    );
    assert!(Upstream::parse("[::1]:7233").is_ok());
    for bad in [
        "localhost",
        "http://:7233",
        "grpc://x:1",
        "http://x:0",
        "http://x:y",
    ] {
        assert!(Upstream::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn proxy_and_upstream_sections_have_defaults_and_limits() {
    let c = parse_with(&minimal(KEY), &[]).unwrap();
    assert_eq!(c.proxy.max_message_bytes, 128 << 20);
    assert_eq!(c.proxy.allowed_services.len(), 3);
    assert_eq!(c.proxy.shutdown_grace, std::time::Duration::from_secs(30));
    assert!(!c.proxy.forward_authorization);
    assert_eq!(c.proxy.runtime, crate::config::Runtime::PerCore);
    assert_eq!(
        c.proxy.threads,
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    assert_eq!(c.upstream_options.connections, 4);
    assert_eq!(
        c.upstream_options.keepalive_interval,
        std::time::Duration::from_secs(30)
    );
    assert!(!c.upstream.tls);
    // Connection lifetimes never cut a long poll (~70 s; calls of 80 s and
    // more): the first-call and idle bounds apply only to a connection with
    // no call, and the age bound is the SDK maintainers' 6 min + 2 min.
    use std::time::Duration;
    assert_eq!(c.proxy.tls_handshake_timeout, Duration::from_secs(10));
    assert_eq!(c.proxy.first_request_timeout, Duration::from_secs(20));
    assert_eq!(c.proxy.idle_timeout, Duration::from_secs(300));
    assert_eq!(c.proxy.max_connection_age, Duration::from_secs(360));
    assert_eq!(c.proxy.max_connection_age_grace, Duration::from_secs(120));
    // bind_namespace is read per policy.
    let text = format!(
        "upstream = \"http://127.0.0.1:1\"\n\
         [[codec.keys]]\nid = \"k1\"\nmaterial = \"{KEY}\"\n\
         [codec.policies.default]\nactive_key = \"k1\"\nbind_namespace = true\n"
    );
    let c = parse_with(&text, &[]).unwrap();
    assert!(c.codec.keys.policies.iter().any(|p| p.bind_namespace));

    let text = format!(
        "{}\n[proxy]\nruntime = \"work-stealing\"\nthreads = 3\n",
        minimal(KEY)
    );
    let c = parse_with(&text, &[]).unwrap();
    assert_eq!(c.proxy.runtime, crate::config::Runtime::WorkStealing);
    assert_eq!(c.proxy.threads, 3);

    let text = format!(
        "{}\n[proxy]\nmax_message_bytes = 10\nshutdown_grace = \"soon\"\nruntime = \"green\"\nthreads = 5000\n[upstream_options]\nconnections = 0\nkeepalive_interval = \"5s\"\nclient_cert_pem = \"x\"\n",
        minimal(KEY)
    );
    let err = parse_with(&text, &[]).unwrap_err();
    let p = paths(&err);
    for want in [
        "proxy.max_message_bytes",
        "proxy.shutdown_grace",
        "proxy.runtime",
        "proxy.threads",
        "upstream_options.connections",
        "upstream_options.keepalive_interval",
        "upstream_options.client_cert_file",
    ] {
        assert!(p.contains(&want), "{want} missing from {p:?}");
    }
    assert!(
        err.to_string().contains("10s"),
        "explains the ping floor: {err}"
    );
}

#[test]
fn temporal_client_variables_fill_what_the_file_leaves_out() {
    let text = minimal(KEY).replace("upstream = \"http://127.0.0.1:7234\"", "");
    let c = parse_with(
        &text,
        &[
            ("TEMPORAL_ADDRESS", "ns.acct.tmprl.cloud:7233"),
            ("TEMPORAL_API_KEY", "k"),
            ("TEMPORAL_TLS_SERVER_NAME", "ns.acct.tmprl.cloud"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.upstream.to_string(),
        "https://ns.acct.tmprl.cloud:7233",
        "an API key implies TLS"
    );
    assert_eq!(c.upstream_options.api_key.as_deref(), Some("k"));
    assert!(
        !format!("{c:?}").contains("\"k\""),
        "the API key never shows in Debug"
    );
    assert_eq!(
        c.upstream_options.tls.server_name.as_deref(),
        Some("ns.acct.tmprl.cloud")
    );
    // TEMPORAL_TLS=false wins over the implication, and then the API key
    // would go in clear: refused unless allowed for a local test upstream.
    let vars = [
        ("TEMPORAL_ADDRESS", "h:1"),
        ("TEMPORAL_API_KEY", "k"),
        ("TEMPORAL_TLS", "false"),
    ];
    let e = parse_with(&text, &vars).unwrap_err();
    assert!(e.to_string().contains("allow_plaintext_credentials"), "{e}");
    let allowed = format!("{text}\n[upstream_options]\nallow_plaintext_credentials = true\n");
    let c = parse_with(&allowed, &vars).unwrap();
    assert!(!c.upstream.tls);
    // The file's upstream wins over TEMPORAL_ADDRESS (a worker's own setting
    // must not make the gateway point at itself).
    let c = parse_with(&minimal(KEY), &[("TEMPORAL_ADDRESS", "elsewhere:7233")]).unwrap();
    assert_eq!(c.upstream.authority, "127.0.0.1:7234");
    // ...and pointing at itself is refused.
    let err = parse_with(&minimal(KEY), &[("SEALGATE_UPSTREAM", "127.0.0.1:7233")]).unwrap_err();
    assert_eq!(paths(&err), ["upstream"]);
}

#[test]
fn durations() {
    use std::time::Duration;
    assert_eq!(
        table::parse_duration("500ms"),
        Ok(Duration::from_millis(500))
    );
    assert_eq!(table::parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(table::parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(table::parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert!(table::parse_duration("1d").is_err());
    assert!(table::parse_duration("s").is_err());
}

#[test]
fn codec_server_section() {
    let c = parse_with(&minimal(KEY), &[]).unwrap();
    assert!(c.codec_server.is_none(), "off unless configured");
    let text = format!(
        "{}\n[codec_server]\ncors_origins = [\"http://localhost:8233\"]\n",
        minimal(KEY)
    );
    let cs = parse_with(&text, &[]).unwrap().codec_server.unwrap();
    assert_eq!(cs.listen.to_string(), "127.0.0.1:8081");
    assert!(matches!(cs.auth, CodecServerAuth::None));
    // Open to the network without auth: refused unless explicitly allowed.
    let open = format!(
        "{}\n[codec_server]\nlisten = \"0.0.0.0:8081\"\n",
        minimal(KEY)
    );
    assert_eq!(
        paths(&parse_with(&open, &[]).unwrap_err()),
        ["codec_server.listen"]
    );
    let allowed = format!("{open}allow_unauthenticated_remote = true\n");
    assert!(parse_with(&allowed, &[]).is_ok());
    // Bad auth settings are each named.
    let bad = format!(
        "{}\n[codec_server]\ncors_origins = [\"*\"]\ncors_allow_credentials = true\n[codec_server.auth]\nmode = \"jwt\"\ndecode_requires = \"nope\"\n",
        minimal(KEY)
    );
    let err = parse_with(&bad, &[]).unwrap_err();
    let p = paths(&err);
    for want in [
        "codec_server.cors_allow_credentials",
        "codec_server.auth.jwks_url",
        "codec_server.auth.decode_requires",
    ] {
        assert!(p.contains(&want), "{want} missing from {p:?}");
    }
    let bearer = format!(
        "{}\n[codec_server.auth]\nmode = \"bearer\"\ntoken = \"${{T}}\"\n",
        minimal(KEY)
    )
    .replace("[codec_server.auth]", "[codec_server]\n[codec_server.auth]");
    let c = parse_with(&bearer, &[("T", "a-long-enough-token")]).unwrap();
    assert!(
        !format!("{c:?}").contains("a-long-enough-token"),
        "tokens never show in Debug"
    );
}

#[test]
fn credentials_imply_tls_and_plaintext_credentials_are_refused() {
    let with = |upstream: &str, extra: &str| {
        let text = minimal(KEY).replace(
            "upstream = \"http://127.0.0.1:7234\"",
            &format!("upstream = \"{upstream}\""),
        ) + &format!("[upstream_options]\napi_key = \"k-0123456789\"\n{extra}");
        parse_with(&text, &[])
    };
    // No scheme: the API key turns TLS on, as the SDKs do.
    let c = with("ns.acct.tmprl.cloud:7233", "").unwrap();
    assert!(c.upstream.tls, "{}", c.upstream);
    // An explicit http:// with credentials is refused, naming the way out.
    let e = with("http://127.0.0.1:7234", "").unwrap_err();
    let text = e.to_string();
    assert!(
        paths(&e).contains(&"upstream") && text.contains("allow_plaintext_credentials"),
        "{text}"
    );
    assert!(
        !text.contains("k-0123456789"),
        "the key never shows: {text}"
    );
    // ...unless allowed for a local test upstream, which is warned about.
    let c = with(
        "http://127.0.0.1:7234",
        "allow_plaintext_credentials = true\n",
    )
    .unwrap();
    assert!(!c.upstream.tls);
    assert!(
        c.warnings.iter().any(|w| w.contains("PLAINTEXT")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn a_key_id_that_carries_the_key_never_encrypts() {
    use base64::Engine;
    let uri = format!(
        "base64key://{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let text = format!(
        "upstream = \"http://127.0.0.1:1\"\n\
         [codec.kms.tp]\nprovider = \"local\"\n\
         [[codec.kms.tp.keys]]\nid = \"{uri}\"\n\
         [codec.policies.default]\nactive_key = \"{uri}\"\n"
    );
    let e = parse_with(&text, &[]).unwrap_err();
    let msg = e.to_string();
    assert!(
        paths(&e).contains(&"codec.policies.default.active_key") && msg.contains("carries the key"),
        "{msg}"
    );
    assert!(!msg.contains(&uri[12..]), "the key never shows: {msg}");
}

#[test]
fn jwt_setups_must_pin_something_and_fetch_keys_safely() {
    let codec = |auth: &str| {
        let text = minimal(KEY)
            + &format!(
                "[codec_server]\nlisten = \"127.0.0.1:0\"\n[codec_server.auth]\nmode = \"jwt\"\n{auth}"
            );
        parse_with(&text, &[])
    };
    // No issuer, audience or claim rule: any token the JWKS signs would do.
    let e = codec("jwks_url = \"https://idp.example/jwks.json\"\n").unwrap_err();
    assert!(
        e.to_string().contains("no issuer, audience or claim rule"),
        "{e}"
    );
    // Plaintext JWKS beyond loopback: refused; on loopback: fine.
    let pinned = "issuer = \"https://idp.example\"\naudience = \"sealgate\"\n";
    let e = codec(&format!(
        "jwks_url = \"http://idp.example/jwks.json\"\n{pinned}"
    ))
    .unwrap_err();
    assert!(e.to_string().contains("plaintext"), "{e}");
    for ok in [
        "http://127.0.0.1:8080/jwks.json",
        "http://[::1]:8080/jwks.json",
        "http://localhost/jwks.json",
        "https://idp.example/jwks.json",
    ] {
        codec(&format!("jwks_url = \"{ok}\"\n{pinned}")).unwrap();
    }
}

#[test]
fn a_rule_that_would_reach_another_namespace_through_translation_is_refused() {
    let text = |pattern: &str| {
        minimal(KEY)
            + &format!(
                "[upstream_options.namespaces]\nsuffix = \".a1b2c\"\n\
                 overrides = {{ \"payments\" = \"payments-prod.a1b2c\" }}\n\
                 [inbound]\nauth = \"bearer\"\n[[inbound.rules]]\n\
                 token = \"team-token-0123456789\"\nnamespaces = [\"{pattern}\"]\n"
            )
    };
    let e = parse_with(&text("payments-*"), &[]).unwrap_err();
    assert!(
        paths(&e) == ["upstream_options.namespaces.overrides"]
            && e.to_string().contains("would reach \"payments\"'s data"),
        "{e}"
    );
    // A rule allowing both names escalates nothing: a warning.
    let c = parse_with(&text("payments*"), &[]).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("both reach")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn named_upstreams_follow_credentials_imply_tls_too() {
    let with = |address: &str, extra: &str| {
        parse_with(
            &(minimal(KEY)
                + &format!(
                    "[upstreams.cloud]\naddress = \"{address}\"\napi_key = \"k-0123456789\"\n{extra}"
                )),
            &[],
        )
    };
    let c = with("{namespace}.acct.tmprl.cloud:7233", "").unwrap();
    assert!(c.upstreams[0].address.tls);
    let e = with("http://127.0.0.1:7235", "").unwrap_err();
    assert!(
        paths(&e) == ["upstreams.cloud.address"]
            && e.to_string().contains("allow_plaintext_credentials"),
        "{e}"
    );
    let c = with(
        "http://127.0.0.1:7235",
        "allow_plaintext_credentials = true\n",
    )
    .unwrap();
    assert!(!c.upstreams[0].address.tls);
    assert!(c.warnings.iter().any(|w| w.contains("PLAINTEXT")));
}

#[test]
fn a_key_whose_id_is_its_material_never_encrypts_and_is_never_shown() {
    use base64::Engine;
    let id = "test-key-test-key-test-key-test!";
    let material = base64::engine::general_purpose::STANDARD.encode(id);
    let keys = format!("[[codec.keys]]\nid = \"{id}\"\nmaterial = \"{material}\"\n");
    // As the active key: refused, without showing it.
    let text = format!("upstream = \"http://127.0.0.1:1\"\n[codec]\nactive_key = \"{id}\"\n{keys}");
    let e = parse_with(&text, &[]).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("own id as key material"), "{msg}");
    assert!(!msg.contains(id), "the key shows: {msg}");
    // To read old data only: allowed, with a warning; logs never show it.
    let text = format!(
        "upstream = \"http://127.0.0.1:1\"\n\
         [[codec.keys]]\nid = \"fresh\"\nmaterial = \"{KEY}\"\n{keys}\
         [codec.policies.default]\nactive_key = \"fresh\"\ndecrypt_keys = [\"{id}\"]\n"
    );
    let c = parse_with(&text, &[]).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.contains("only decrypts")),
        "{:?}",
        c.warnings
    );
    let pipeline = crate::app::pipeline(&c.codec).unwrap();
    for p in pipeline.current().policies.all() {
        assert!(!p.describe().contains(id), "{}", p.describe());
    }
}

#[test]
fn an_api_key_file_is_read_and_watched_for_rotation() {
    let dir = scratch("api-key-file");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("api-key"), "key-from-a-secret\n").unwrap();
    let text = format!(
        "{}\n[upstream_options]\napi_key_file = \"api-key\"\n",
        minimal(KEY).replace("http://127.0.0.1:7234", "https://127.0.0.1:7234")
    );
    let c = Config::parse(&text, "t.toml", &dir, &|_| None).unwrap();
    assert_eq!(
        c.upstream_options.api_key.as_deref(),
        Some("key-from-a-secret")
    );
    assert!(c.files.contains(&dir.join("api-key")), "{:?}", c.files);
    let both = text.replace(
        "api_key_file = \"api-key\"",
        "api_key_file = \"api-key\"\napi_key = \"inline\"",
    );
    let e = Config::parse(&both, "t.toml", &dir, &|_| None).unwrap_err();
    assert!(e.to_string().contains("not both"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
