//! Inbound security: mTLS on the listener with client-certificate rules,
//! static bearer tokens, PERMISSION_DENIED for namespaces a caller may not
//! use, and inbound credentials that never reach the upstream.

use crate::support;

use std::{net::SocketAddr, sync::Arc};

use bytes::{Bytes, BytesMut};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use support::{
    net::{Client, FakeUpstream, Gateway, Reply, config_text, frame_into, parse_config},
    pki,
};

const START: &str = "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution";

fn start(namespace: &str) -> Vec<u8> {
    support::net::start_request(namespace)
}

/// A start call in `ns` with `token` as the bearer credential, if any:
/// `(grpc-status, grpc-message)`.
async fn call_as(client: &Client, ns: &str, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    let a = client.call(START, &start(ns), &headers, false).await;
    (a.status(), a.grpc_message())
}

/// One gRPC call over TLS (h2), presenting `client` (cert, key) if given;
/// returns the grpc-status, or None when the handshake or call failed.
async fn tls_call(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<&(String, String)>,
    namespace: &str,
) -> Option<u16> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()?;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tls))
        .await
        .ok()?;
    tokio::spawn(conn);
    let mut body = BytesMut::new();
    frame_into(&mut body, &start(namespace), false);
    let req = Request::post(format!("https://localhost{START}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.ok()?;
    let (parts, body) = resp.into_parts();
    let trailers = body.collect().await.ok()?.trailers().cloned();
    let status = trailers
        .as_ref()
        .and_then(|t| t.get("grpc-status"))
        .or_else(|| parts.headers.get("grpc-status"))?;
    status.to_str().ok()?.parse().ok()
}

#[tokio::test]
async fn mtls_client_certificates_map_to_namespaces() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("inbound-mtls-{}", std::process::id()));
    let (pki, clients) = pki::generate_with_clients(
        &dir,
        &["localhost"],
        &[
            "spiffe://acme.test/payments/worker",
            "orders-worker.acme.test",
        ],
    );
    let (_, strangers) = pki::generate_with_clients(&dir.join("other"), &["x"], &["payments.evil"]);
    let up = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let extra = format!(
        r#"
[inbound]
tls_cert_file = "{}"
tls_key_file = "{}"
client_ca_file = "{}"
auth = "mtls"

[[inbound.rules]]
san = "spiffe://acme.test/payments/*"
namespaces = ["payments-*"]

[[inbound.rules]]
san = "orders-worker.acme.test"
namespaces = ["orders"]

[[inbound.rules]]
subject = "CN=worker"
namespaces = ["legacy"]
"#,
        pki.file("server.pem").display(),
        pki.file("server-key.pem").display(),
        pki.file("ca.pem").display(),
    );
    let gw = Gateway::start(parse_config(&config_text(up.addr, &extra))).await;
    let (payments, orders) = (&clients[0], &clients[1]);

    assert_eq!(
        tls_call(gw.addr, &pki.ca_pem, Some(payments), "payments-eu").await,
        Some(0)
    );
    assert_eq!(
        tls_call(gw.addr, &pki.ca_pem, Some(orders), "orders").await,
        Some(0)
    );
    // Each certificate only reaches its own namespaces.
    assert_eq!(
        tls_call(gw.addr, &pki.ca_pem, Some(payments), "orders").await,
        Some(7)
    );
    assert_eq!(
        tls_call(gw.addr, &pki.ca_pem, Some(orders), "payments-eu").await,
        Some(7)
    );
    // A certificate without SANs, matched by its subject.
    let by_subject = (pki.client_cert_pem.clone(), pki.client_key_pem.clone());
    assert_eq!(
        tls_call(gw.addr, &pki.ca_pem, Some(&by_subject), "legacy").await,
        Some(0)
    );
    assert_eq!(
        tls_call(gw.addr, &pki.ca_pem, Some(&by_subject), "orders").await,
        Some(7)
    );
    // No certificate, or one from another CA: no TLS session at all.
    assert_eq!(tls_call(gw.addr, &pki.ca_pem, None, "orders").await, None);
    assert_eq!(
        tls_call(gw.addr, &pki.ca_pem, Some(&strangers[0]), "orders").await,
        None
    );
    assert_eq!(
        up.requests().len(),
        3,
        "only the three allowed calls went upstream"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bearer_tokens_map_to_namespaces_and_never_reach_the_upstream() {
    let up = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let checking = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let extra = format!(
        r#"
[upstreams.checks]
address = "http://{}"
forward_authorization = true

[[routes]]
namespace = "audited"
upstream = "checks"

[inbound]
auth = "bearer"

[[inbound.rules]]
token = "orders-token-0123456789"
namespaces = ["orders", "orders-*"]

[[inbound.rules]]
token = "admin-token-0123456789ab"
namespaces = ["*"]
"#,
        checking.addr
    );
    let gw = Gateway::start(parse_config(&config_text(up.addr, &extra))).await;
    let client = Client::connect(gw.addr).await;
    let call = |ns: &'static str, token: Option<&'static str>| call_as(&client, ns, token);
    assert_eq!(call("orders", Some("orders-token-0123456789")).await.0, 0);
    assert_eq!(
        call("orders-eu", Some("orders-token-0123456789")).await.0,
        0
    );
    let (code, msg) = call("payments", Some("orders-token-0123456789")).await;
    assert_eq!(code, 7, "{msg}");
    assert!(msg.contains("\"payments\""), "{msg}");
    assert!(
        !msg.contains("orders-token"),
        "the token is never echoed: {msg}"
    );
    assert_eq!(
        call("payments", Some("admin-token-0123456789ab")).await.0,
        0
    );
    assert_eq!(call("orders", None).await.0, 16);
    assert_eq!(call("orders", Some("wrong-token-0123456789")).await.0, 16);

    // An upstream whose settings say so gets the caller's header.
    assert_eq!(call("audited", Some("admin-token-0123456789ab")).await.0, 0);
    assert_eq!(
        checking.last().headers["authorization"],
        "Bearer admin-token-0123456789ab"
    );

    // Three calls went to the default upstream, and none carried the token.
    let seen = up.requests();
    assert_eq!(seen.len(), 3);
    for r in &seen {
        assert!(r.headers.get("authorization").is_none(), "{:?}", r.headers);
        let raw = format!("{:?}", r.headers);
        assert!(!raw.contains("token-0123456789"), "{raw}");
        assert!(!support::contains(&r.body, b"token-0123456789"));
    }
}

#[tokio::test]
async fn jwt_claims_map_to_namespaces() {
    use serde_json::json;
    use support::jwt::{jwks_server, now, signer, token};
    let key = signer("k1");
    let jwks = jwks_server(Arc::new(std::sync::Mutex::new(
        json!({ "keys": [key.jwk.clone()] }),
    )))
    .await;
    let up = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let extra = format!(
        r#"
[inbound]
auth = "jwt"
jwks_url = "http://{jwks}/jwks.json"
issuer = "https://idp.test/"
audience = "sealgate"

[[inbound.rules]]
claim = "groups=payments"
namespaces = ["payments-*"]
"#
    );
    let gw = Gateway::start(parse_config(&config_text(up.addr, &extra))).await;
    let client = Client::connect(gw.addr).await;
    let claims = |groups: &[&str], iss: &str| json!({ "sub": "worker-7", "groups": groups, "iss": iss, "aud": "sealgate", "exp": now() + 300 });
    let call = |jwt: Option<String>, ns: &'static str| {
        let client = client.clone();
        async move { call_as(&client, ns, jwt.as_deref()).await }
    };
    let good = token(&key, claims(&["payments"], "https://idp.test/"));
    assert_eq!(call(Some(good.clone()), "payments-eu").await.0, 0);
    let (code, msg) = call(Some(good.clone()), "orders").await;
    assert_eq!(code, 7, "{msg}");
    assert!(
        msg.contains("worker-7") && msg.contains("\"orders\""),
        "{msg}"
    );
    // A token whose claims match no rule, from the wrong issuer, or none.
    assert_eq!(
        call(
            Some(token(&key, claims(&["orders"], "https://idp.test/"))),
            "payments-eu"
        )
        .await
        .0,
        7
    );
    assert_eq!(
        call(
            Some(token(&key, claims(&["payments"], "https://evil.test/"))),
            "payments-eu"
        )
        .await
        .0,
        16
    );
    assert_eq!(call(Some("not.a.jwt".into()), "payments-eu").await.0, 16);
    assert_eq!(call(None, "payments-eu").await.0, 16);
    // One call went upstream; the JWT stayed at the gateway.
    let seen = up.requests();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].headers.get("authorization").is_none());
    assert!(!support::contains(&seen[0].body, good.as_bytes()));
}

#[tokio::test]
async fn a_reload_swaps_the_listener_certificate() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("inbound-reload-{}", std::process::id()));
    let old = pki::generate(&dir.join("old"), &["localhost"]);
    let new = pki::generate(&dir.join("new"), &["localhost"]);
    let install = |from: &pki::Pki| {
        std::fs::copy(from.file("server.pem"), dir.join("tls.pem")).unwrap();
        std::fs::copy(from.file("server-key.pem"), dir.join("tls-key.pem")).unwrap();
    };
    install(&old);
    let up = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let path = dir.join("sealgate.toml");
    std::fs::write(
        &path,
        config_text(
            up.addr,
            "[inbound]\ntls_cert_file = \"tls.pem\"\ntls_key_file = \"tls-key.pem\"\n",
        ),
    )
    .unwrap();
    let (gw, reloader) = Gateway::start_reloadable(&path).await;
    assert_eq!(
        tls_call(gw.addr, &old.ca_pem, None, "orders").await,
        Some(0)
    );
    assert_eq!(tls_call(gw.addr, &new.ca_pem, None, "orders").await, None);

    install(&new);
    assert!(reloader.files_changed());
    reloader.reload("test").unwrap();
    assert_eq!(
        tls_call(gw.addr, &new.ca_pem, None, "orders").await,
        Some(0)
    );
    assert_eq!(tls_call(gw.addr, &old.ca_pem, None, "orders").await, None);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A listener whose TLS material does not load is not served at all:
/// building the gateway fails, rather than falling back to plaintext h2c.
#[test]
fn a_listener_tls_that_does_not_load_never_serves_plaintext() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("inbound-bad-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("tls.pem"), dir.join("tls-key.pem"));
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let extra = format!(
        "[inbound]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let text = config_text("127.0.0.1:1".parse().unwrap(), &extra);
    let err = sealgate::App::build(parse_config(&text)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("inbound"), "{msg}");
    assert!(
        msg.contains("inbound.tls_cert_file"),
        "names the setting: {msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
