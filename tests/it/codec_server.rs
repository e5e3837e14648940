//! The built-in Codec Server over HTTP: routes, namespaces, CORS, limits,
//! bearer and JWT auth (keys generated here, JWKS served by the test).

use crate::support;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use support::{
    jwt::{jwks_server, now, signer, token},
    net::{FakeUpstream, Gateway, Reply, config_text, parse_config},
};

const PLAIN: &str =
    r#"{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"InNlY3JldCI="}]}"#;

async fn gateway(codec_server: &str) -> Gateway {
    let up = FakeUpstream::start(|_| Reply::default()).await;
    let text = config_text(
        up.addr,
        &format!("[codec_server]\nlisten = \"127.0.0.1:0\"\n{codec_server}\n"),
    );
    let g = Gateway::start(parse_config(&text)).await;
    std::mem::forget(up); // keep the fake upstream for the test's life
    g
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    // As a browser or the CLI addresses it: by its address, JSON bodies.
    let mut req = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr.to_string());
    }
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Full::new(Bytes::from(body.to_string()))).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    request(addr, "POST", path, headers, body).await
}

#[tokio::test]
async fn encode_and_decode_under_every_route() {
    let g = gateway("cors_origins = [\"http://localhost:8233\"]").await;
    let addr = g.codec_addr.unwrap();
    let enc = post(
        addr,
        "/encode",
        &[("content-type", "application/json")],
        PLAIN,
    )
    .await;
    assert_eq!(enc.status, StatusCode::OK);
    let p = &enc.body["payloads"][0];
    assert_eq!(p["metadata"]["encoding"], "YmluYXJ5L2VuY3J5cHRlZA==");
    let encoded = enc.body.to_string();
    for path in ["/decode", "/default/decode", "/my-namespace/decode/"] {
        let dec = post(addr, path, &[("x-namespace", "default")], &encoded).await;
        assert_eq!(dec.status, StatusCode::OK, "{path}");
        assert_eq!(
            dec.body,
            serde_json::from_str::<Value>(PLAIN).unwrap(),
            "{path}"
        );
    }
    // Not ours, or broken: back unchanged.
    let foreign = r#"{"payloads":[{"metadata":{"encoding":"YmluYXJ5L2VuY3J5cHRlZA==","encryption-key-id":"b3RoZXI="},"data":"AAAA"}]}"#;
    let dec = post(addr, "/decode", &[], foreign).await;
    assert_eq!(dec.body, serde_json::from_str::<Value>(foreign).unwrap());
    let mut tampered: Value = enc.body.clone();
    tampered["payloads"][0]["data"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let dec = post(addr, "/decode", &[], &tampered.to_string()).await;
    assert_eq!(dec.status, StatusCode::OK);
    assert_eq!(dec.body, tampered);
}

#[tokio::test]
async fn bad_requests_say_what_is_wrong() {
    let g = gateway("max_body_bytes = 2000").await;
    let addr = g.codec_addr.unwrap();
    let a = post(addr, "/decode", &[], r#"{"payloads":[{"data":"!!"}]}"#).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains("payloads[0].data"),
        "{}",
        a.body
    );
    let a = post(addr, "/decode", &[], "not json").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = post(
        addr,
        "/decode",
        &[],
        &format!("{{\"payloads\":[{{\"data\":\"{}\"}}]}}", "A".repeat(4000)),
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(a.body["error"].as_str().unwrap().contains("max_body_bytes"));
    let a = post(addr, "/decrypt", &[], PLAIN).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = request(addr, "GET", "/decode", &[], "").await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn cors_for_configured_origins_only() {
    let g = gateway("cors_origins = [\"http://localhost:8233\", \"https://cloud.temporal.io\"]\ncors_allow_credentials = true").await;
    let addr = g.codec_addr.unwrap();
    let pre = request(
        addr,
        "OPTIONS",
        "/decode",
        &[
            ("origin", "https://cloud.temporal.io"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-namespace,authorization",
            ),
        ],
        "",
    )
    .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    let h = &pre.headers;
    assert_eq!(
        h["access-control-allow-origin"],
        "https://cloud.temporal.io"
    );
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for need in ["content-type", "x-namespace", "authorization"] {
        assert!(allowed.contains(need), "{allowed}");
    }
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let post_resp = post(
        addr,
        "/decode",
        &[("origin", "http://localhost:8233")],
        PLAIN,
    )
    .await;
    assert_eq!(
        post_resp.headers["access-control-allow-origin"],
        "http://localhost:8233"
    );
    let evil = request(
        addr,
        "OPTIONS",
        "/decode",
        &[("origin", "https://evil.example")],
        "",
    )
    .await;
    assert_eq!(evil.status, StatusCode::FORBIDDEN);
    assert!(evil.headers.get("access-control-allow-origin").is_none());

    // "*" allows any origin, never with credentials.
    let g = gateway("cors_origins = [\"*\"]").await;
    let a = post(
        g.codec_addr.unwrap(),
        "/decode",
        &[("origin", "https://anywhere.example")],
        PLAIN,
    )
    .await;
    assert_eq!(a.headers["access-control-allow-origin"], "*");
    assert!(a.headers.get("access-control-allow-credentials").is_none());
}

#[tokio::test]
async fn bearer_token_auth() {
    let g =
        gateway("[codec_server.auth]\nmode = \"bearer\"\ntoken = \"0123456789abcdef-token\"").await;
    let addr = g.codec_addr.unwrap();
    let a = post(addr, "/decode", &[], PLAIN).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers["www-authenticate"], "Bearer");
    assert!(a.body["error"].as_str().unwrap().contains("Authorization"));
    let a = post(addr, "/decode", &[("authorization", "Bearer wrong")], PLAIN).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = post(
        addr,
        "/decode",
        &[("authorization", "Bearer 0123456789abcdef-token")],
        PLAIN,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn jwt_auth_with_jwks_claim_rules_and_key_refresh() {
    let first = signer("key-1");
    let keys = Arc::new(Mutex::new(json!({ "keys": [first.jwk.clone()] })));
    let jwks = jwks_server(keys.clone()).await;
    let g = gateway(&format!(
        "[codec_server.auth]\nmode = \"jwt\"\njwks_url = \"http://{jwks}/.well-known/jwks.json\"\n\
         issuer = \"https://idp.test\"\naudience = \"sealgate\"\nrefresh_interval = \"1s\"\n\
         decode_requires = \"permissions=codec:decode\"\nencode_requires = \"permissions=codec:encode\"\n"
    ))
    .await;
    let addr = g.codec_addr.unwrap();
    let claims = |perms: Value, exp: u64| json!({"iss": "https://idp.test", "aud": "sealgate", "sub": "ui-user", "exp": exp, "permissions": perms});
    let bearer = |t: &str| format!("Bearer {t}");
    let reader = token(&first, claims(json!(["codec:decode"]), now() + 300));
    let h = bearer(&reader);
    let a = post(addr, "/decode", &[("authorization", &h)], PLAIN).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    // Allowed to decode, not to encode.
    let a = post(addr, "/encode", &[("authorization", &h)], PLAIN).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        a.body["error"].as_str().unwrap().contains("codec:encode"),
        "{}",
        a.body
    );
    // Expired, wrong issuer, wrong audience, no token, not a JWT.
    for (t, why) in [
        (
            token(&first, claims(json!(["codec:decode"]), now() - 600)),
            "expired",
        ),
        (
            token(
                &first,
                json!({"iss": "https://other", "aud": "sealgate", "exp": now() + 300, "permissions": ["codec:decode"]}),
            ),
            "issuer",
        ),
        (
            token(
                &first,
                json!({"iss": "https://idp.test", "aud": "other", "exp": now() + 300, "permissions": ["codec:decode"]}),
            ),
            "audience",
        ),
        ("garbage".to_string(), "not a JWT"),
        // With an issuer and audience configured, a token must carry them.
        (
            token(
                &first,
                json!({"aud": "sealgate", "exp": now() + 300, "permissions": ["codec:decode"]}),
            ),
            "no iss",
        ),
        (
            token(
                &first,
                json!({"iss": "https://idp.test", "exp": now() + 300, "permissions": ["codec:decode"]}),
            ),
            "no aud",
        ),
        // Not valid yet, or issued in the future (beyond a minute of skew).
        (
            token(
                &first,
                json!({"iss": "https://idp.test", "aud": "sealgate", "exp": now() + 900, "nbf": now() + 600, "permissions": ["codec:decode"]}),
            ),
            "nbf",
        ),
        (
            token(
                &first,
                json!({"iss": "https://idp.test", "aud": "sealgate", "exp": now() + 900, "iat": now() + 600, "permissions": ["codec:decode"]}),
            ),
            "iat",
        ),
    ] {
        let a = post(addr, "/decode", &[("authorization", &bearer(&t))], PLAIN).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{why}: {}", a.body);
    }
    // A symmetric token is refused whatever its signature.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!(["codec:decode"]), now() + 300),
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let a = post(addr, "/decode", &[("authorization", &bearer(&hs))], PLAIN).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body["error"].as_str().unwrap().contains("RS256 or ES256"));

    // Key rotation: the IdP publishes a new key; after the refresh interval
    // tokens signed with it are accepted.
    let second = signer("key-2");
    *keys.lock().unwrap() = json!({ "keys": [first.jwk.clone(), second.jwk.clone()] });
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = token(
        &second,
        claims(json!("codec:decode codec:encode"), now() + 300),
    );
    let a = post(
        addr,
        "/encode",
        &[("authorization", &bearer(&rotated))],
        PLAIN,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

#[tokio::test]
async fn a_jwt_setup_without_an_encode_rule_never_encodes() {
    let key = signer("key-1");
    let keys = Arc::new(Mutex::new(json!({ "keys": [key.jwk.clone()] })));
    let jwks = jwks_server(keys).await;
    let g = gateway(&format!(
        "[codec_server.auth]\nmode = \"jwt\"\njwks_url = \"http://{jwks}/.well-known/jwks.json\"\n\
         issuer = \"https://idp.test\"\naudience = \"sealgate\"\n\
         decode_requires = \"permissions=codec:decode\"\n"
    ))
    .await;
    let addr = g.codec_addr.unwrap();
    // Even a token that claims every permission: decoding is allowed,
    // minting ciphertext is not, since no rule grants it.
    let t = token(
        &key,
        json!({"iss": "https://idp.test", "aud": "sealgate", "sub": "ui-user", "exp": now() + 300,
               "permissions": ["codec:decode", "codec:encode"]}),
    );
    let h = format!("Bearer {t}");
    let a = post(addr, "/decode", &[("authorization", &h)], PLAIN).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = post(addr, "/encode", &[("authorization", &h)], PLAIN).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(
        a.body["error"]
            .as_str()
            .unwrap()
            .contains("encode_requires"),
        "{}",
        a.body
    );
}

/// An HTTP/1.1 connection over TLS to `addr`, trusting only `ca_pem`.
async fn https(
    addr: SocketAddr,
    ca_pem: &str,
) -> std::io::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    Ok(sender)
}

#[tokio::test]
async fn without_auth_only_json_addressed_to_this_host_is_served() {
    let g = gateway("cors_origins = [\"http://localhost:8233\"]").await;
    let addr = g.codec_addr.unwrap();
    // DNS rebinding: a page on attacker.example resolving to 127.0.0.1.
    let a = post(addr, "/decode", &[("host", "attacker.example:8081")], PLAIN).await;
    assert_eq!(a.status, StatusCode::MISDIRECTED_REQUEST, "{}", a.body);
    // A "simple" cross-origin POST (text/plain) needs no preflight: refused.
    let a = post(addr, "/decode", &[("content-type", "text/plain")], PLAIN).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", a.body);
    for host in ["localhost:1", "127.0.0.1", "[::1]:8081"] {
        let a = post(addr, "/decode", &[("host", host)], PLAIN).await;
        assert_eq!(a.status, StatusCode::OK, "{host}: {}", a.body);
    }
    // The Web UI's ID token header may cross origins.
    let a = request(
        addr,
        "OPTIONS",
        "/decode",
        &[
            ("origin", "http://localhost:8233"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    let allowed = a.headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allowed.contains("Authorization-Extras"), "{allowed}");
}

#[tokio::test]
async fn serves_https_when_given_a_certificate() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("codec-tls-{}", std::process::id()));
    let pki = support::pki::generate(&dir, &["localhost"]);
    let g = gateway(&format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
        pki.file("server.pem").display(),
        pki.file("server-key.pem").display()
    ))
    .await;
    let addr = g.codec_addr.unwrap();
    // A client that trusts the test CA.
    let mut sender = https(addr, &pki.ca_pem).await.unwrap();
    let req = Request::post("/encode")
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(PLAIN)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body["payloads"][0]["metadata"]["encoding"],
        "YmluYXJ5L2VuY3J5cHRlZA=="
    );
    // Plain HTTP to the TLS port gets nowhere.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut plain, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/encode")
        .body(Full::new(Bytes::from(PLAIN)))
        .unwrap();
    assert!(plain.send_request(req).await.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_to_new_connections() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("codec-tls-reload-{}", std::process::id()));
    let old = support::pki::generate(&dir.join("old"), &["localhost"]);
    let new = support::pki::generate(&dir.join("new"), &["localhost"]);
    let up = FakeUpstream::start(|_| Reply::default()).await;
    let (cert, key) = (dir.join("tls.pem"), dir.join("tls-key.pem"));
    std::fs::copy(old.file("server.pem"), &cert).unwrap();
    std::fs::copy(old.file("server-key.pem"), &key).unwrap();
    let path = dir.join("sealgate.toml");
    let text = config_text(
        up.addr,
        "[codec_server]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"tls.pem\"\ntls_key_file = \"tls-key.pem\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let (g, reloader) = Gateway::start_reloadable(&path).await;
    let addr = g.codec_addr.unwrap();
    assert!(https(addr, &old.ca_pem).await.is_ok());
    assert!(https(addr, &new.ca_pem).await.is_err());

    std::fs::copy(new.file("server.pem"), &cert).unwrap();
    std::fs::copy(new.file("server-key.pem"), &key).unwrap();
    assert!(reloader.files_changed(), "certificate files are watched");
    reloader.reload("test").unwrap();
    assert!(https(addr, &new.ca_pem).await.is_ok());
    assert!(https(addr, &old.ca_pem).await.is_err());

    // A reload that fails after the Codec Server's certificate has loaded
    // (turning the listener's TLS on needs a restart) swaps nothing, that
    // certificate included.
    std::fs::copy(old.file("server.pem"), &cert).unwrap();
    std::fs::copy(old.file("server-key.pem"), &key).unwrap();
    let broken = config_text(
        up.addr,
        "[codec_server]\nlisten = \"127.0.0.1:0\"\ntls_cert_file = \"tls.pem\"\ntls_key_file = \"tls-key.pem\"\n\
         [inbound]\ntls_cert_file = \"tls.pem\"\ntls_key_file = \"tls-key.pem\"\n",
    );
    std::fs::write(&path, broken).unwrap();
    let e = reloader.reload("test").unwrap_err();
    assert!(e.contains("restart"), "{e}");
    assert!(
        https(addr, &new.ca_pem).await.is_ok(),
        "the failed reload swapped the certificate"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_upstream_namespace_name_maps_back_to_its_local_policy() {
    let (_, k1) = sealgate::keys::generate("k1").unwrap();
    let (_, k2) = sealgate::keys::generate("k2").unwrap();
    let text = format!(
        r#"listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:1"
[upstream_options.namespaces]
suffix = ".a1b2c"
[codec_server]
listen = "127.0.0.1:0"
[[codec.keys]]
id = "k1"
material = "{}"
[[codec.keys]]
id = "k2"
material = "{}"
[codec.policies.default]
active_key = "k1"
[codec.policies.orders]
active_key = "k2"
[telemetry]
admin_listen = "off"
"#,
        k1.as_str(),
        k2.as_str()
    );
    let g = Gateway::start(parse_config(&text)).await;
    let addr = g.codec_addr.unwrap();
    // The Web UI of Temporal Cloud names the namespace as Cloud knows it.
    let key_id = |a: &Answer| a.body["payloads"][0]["metadata"]["encryption-key-id"].clone();
    let local = post(addr, "/orders/encode", &[], PLAIN).await;
    let cloud = post(addr, "/encode", &[("x-namespace", "orders.a1b2c")], PLAIN).await;
    assert_eq!(key_id(&local), json!("azI=")); // base64("k2")
    assert_eq!(key_id(&cloud), key_id(&local));
    let sealed = cloud.body.to_string();
    let back = post(addr, "/orders.a1b2c/decode", &[], &sealed).await;
    assert_eq!(back.body, serde_json::from_str::<Value>(PLAIN).unwrap());
}

#[tokio::test]
async fn per_namespace_rules_decide_who_decodes_and_encodes_what() {
    let g = gateway(
        "[codec_server.auth]\nmode = \"bearer\"\n\
         [[codec_server.auth.rules]]\ntoken = \"payments-ui-token-0123\"\nnamespaces = [\"payments-*\"]\n\
         [[codec_server.auth.rules]]\ntoken = \"platform-token-012345\"\nnamespaces = [\"*\"]\noperations = [\"decode\", \"encode\"]\n",
    )
    .await;
    let addr = g.codec_addr.unwrap();
    let payments = [("authorization", "Bearer payments-ui-token-0123")];
    let platform = [("authorization", "Bearer platform-token-012345")];
    let sealed = post(addr, "/payments-eu/encode", &platform, PLAIN).await;
    assert_eq!(sealed.status, StatusCode::OK, "{}", sealed.body);
    let sealed = sealed.body.to_string();
    // The payments token decodes its namespaces only, and never encodes.
    let a = post(addr, "/payments-eu/decode", &payments, &sealed).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = post(addr, "/orders/decode", &payments, &sealed).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert!(
        a.body["error"].as_str().unwrap().contains("\"orders\""),
        "{}",
        a.body
    );
    let a = post(addr, "/payments-eu/encode", &payments, PLAIN).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    // An unknown token is not authenticated at all.
    let a = post(
        addr,
        "/payments-eu/decode",
        &[("authorization", "Bearer nope-nope-nope-nope")],
        &sealed,
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);
}
