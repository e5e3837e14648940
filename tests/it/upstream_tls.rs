//! The upstream over TLS as Temporal Cloud does it: mTLS with a private CA,
//! a server name that differs from the address, and an API key. The
//! certificates are generated at test time.

use crate::support;

use std::{collections::HashMap, path::PathBuf, time::Duration};

use prost::Message;
use sealgate::config::Config;
use support::{
    net::{Client, FakeUpstream, Gateway, Reply},
    pki,
};
use temporalio_protos::temporal::api::workflowservice::v1::{
    GetSystemInfoRequest, GetSystemInfoResponse,
};

const PATH: &str = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo";

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()))
}

fn reply() -> Reply {
    Reply::message(
        GetSystemInfoResponse {
            server_version: "1.32.0".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

fn config(text: &str, env: &[(&str, String)]) -> Config {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    Config::parse(text, "test.toml", std::path::Path::new("."), &|k| {
        env.get(k).cloned()
    })
    .unwrap()
}

fn codec() -> String {
    let (_, key) = sealgate::keys::generate("key").unwrap();
    let key = key.as_str();
    format!(
        "[telemetry]\nadmin_listen = \"off\"\n[codec]\nactive_key = \"k\"\n[[codec.keys]]\nid = \"k\"\nmaterial = \"{key}\"\n"
    )
}

async fn call(gw: &Gateway) -> support::net::Answer {
    let client = Client::connect(gw.addr).await;
    tokio::time::timeout(
        Duration::from_secs(20),
        client.call(
            PATH,
            &GetSystemInfoRequest::default().encode_to_vec(),
            &[],
            false,
        ),
    )
    .await
    .expect("a clear answer, not a hang")
}

/// A fake Temporal behind TLS that requires a client certificate from `pki`'s CA.
async fn tls_upstream(pki: &pki::Pki) -> FakeUpstream {
    FakeUpstream::start_tls(
        &pki.server_cert_pem,
        &pki.server_key_pem,
        &pki.ca_pem,
        |_| reply(),
    )
    .await
}

#[tokio::test]
async fn mtls_with_server_name_override_and_api_key_from_the_file() {
    let d = dir("mtls-file");
    let pki = pki::generate(&d, &["temporal.test"]);
    let up = tls_upstream(&pki).await;
    let text = format!(
        r#"
listen = "127.0.0.1:0"
upstream = "https://{}"
[upstream_options]
ca_file = "{}"
client_cert_file = "{}"
client_key_file = "{}"
server_name = "temporal.test"
api_key = "${{KEY}}"
{}"#,
        up.addr,
        pki.file("ca.pem").display(),
        pki.file("client.pem").display(),
        pki.file("client-key.pem").display(),
        codec()
    );
    let gw = Gateway::start(config(&text, &[("KEY", "secret-api-key".into())])).await;
    let a = call(&gw).await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(
        GetSystemInfoResponse::decode(a.message())
            .unwrap()
            .server_version,
        "1.32.0"
    );
    assert_eq!(up.last().headers["authorization"], "Bearer secret-api-key");
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test]
async fn temporal_environment_variables_alone_configure_the_upstream() {
    let d = dir("mtls-env");
    let pki = pki::generate(&d, &["temporal.test"]);
    let up = tls_upstream(&pki).await;
    let text = format!("listen = \"127.0.0.1:0\"\n{}", codec());
    let env = [
        ("TEMPORAL_ADDRESS", up.addr.to_string()),
        ("TEMPORAL_TLS_SERVER_CA_CERT_DATA", pki.ca_pem.clone()),
        (
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            pki.file("client.pem").display().to_string(),
        ),
        ("TEMPORAL_TLS_CLIENT_KEY_DATA", pki.client_key_pem.clone()),
        ("TEMPORAL_TLS_SERVER_NAME", "temporal.test".into()),
        ("TEMPORAL_API_KEY", "env-api-key".into()),
    ];
    let config = config(&text, &env);
    assert!(config.upstream.tls, "TLS material implies TLS");
    let gw = Gateway::start(config).await;
    let a = call(&gw).await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(up.last().headers["authorization"], "Bearer env-api-key");
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test]
async fn missing_client_certificate_and_wrong_ca_are_clear_errors() {
    let d = dir("mtls-bad");
    let pki = pki::generate(&d, &["temporal.test"]);
    let other = pki::generate(&d.join("other"), &["temporal.test"]);
    let up = tls_upstream(&pki).await;
    let base = |ca: &PathBuf, client: bool| {
        let client = if client {
            format!(
                "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
                pki.file("client.pem").display(),
                pki.file("client-key.pem").display()
            )
        } else {
            String::new()
        };
        format!(
            "listen = \"127.0.0.1:0\"\nupstream = \"https://{}\"\n[upstream_options]\nca_file = \"{}\"\nserver_name = \"temporal.test\"\n{client}{}",
            up.addr,
            ca.display(),
            codec()
        )
    };
    // No client certificate: the server refuses the handshake.
    let gw = Gateway::start(config(&base(&pki.file("ca.pem"), false), &[])).await;
    let a = call(&gw).await;
    assert_eq!(a.status(), 14, "{}", a.grpc_message());
    let msg = a.grpc_message();
    // The TLS alert, or (when the server's close wins the race with the
    // first write) the broken connection and what to check.
    assert!(
        msg.contains("CertificateRequired") || msg.contains("client certificate"),
        "says what went wrong: {msg}"
    );
    assert!(msg.contains("client_cert_file"), "says what to do: {msg}");
    // A CA that did not sign the server's certificate.
    let gw = Gateway::start(config(&base(&other.file("ca.pem"), true), &[])).await;
    let a = call(&gw).await;
    assert_eq!(a.status(), 14, "{}", a.grpc_message());
    assert!(
        a.grpc_message().contains("certificate"),
        "{}",
        a.grpc_message()
    );
    assert!(
        a.grpc_message().contains("ca_file"),
        "says what to do: {}",
        a.grpc_message()
    );
    assert!(up.requests().is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

#[tokio::test]
async fn a_reload_swaps_the_client_certificate_and_api_key_for_new_connections() {
    let d = dir("mtls-reload");
    let trusted = pki::generate(&d.join("a"), &["temporal.test"]);
    let stranger = pki::generate(&d.join("b"), &["temporal.test"]);
    let up = tls_upstream(&trusted).await;
    // The files the config names; a rotation replaces their contents.
    let live = d.join("live");
    std::fs::create_dir_all(&live).unwrap();
    let install = |from: &pki::Pki| {
        for f in ["client.pem", "client-key.pem"] {
            std::fs::copy(from.file(f), live.join(f)).unwrap();
        }
    };
    install(&stranger);
    let path = d.join("sealgate.toml");
    let write = |key: &str| {
        let text = format!(
            "listen = \"127.0.0.1:0\"\nupstream = \"https://{}\"\n[upstream_options]\nca_file = \"{}\"\n\
             client_cert_file = \"live/client.pem\"\nclient_key_file = \"live/client-key.pem\"\n\
             server_name = \"temporal.test\"\napi_key = \"{key}\"\n{}",
            up.addr,
            trusted.file("ca.pem").display(),
            codec()
        );
        std::fs::write(&path, text).unwrap();
    };
    write("old-api-key");
    let (gw, reloader) = Gateway::start_reloadable(&path).await;
    let a = call(&gw).await;
    assert_eq!(a.status(), 14, "a certificate the upstream does not trust");

    install(&trusted);
    write("new-api-key");
    assert!(reloader.files_changed());
    reloader.reload("test").unwrap();
    let a = call(&gw).await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(up.last().headers["authorization"], "Bearer new-api-key");

    // A key that does not match its certificate is refused; the working
    // credentials stay.
    std::fs::copy(stranger.file("client-key.pem"), live.join("client-key.pem")).unwrap();
    let e = reloader.reload("test").unwrap_err();
    assert!(e.contains("upstream TLS"), "{e}");
    let a = call(&gw).await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    std::fs::remove_dir_all(&d).unwrap();
}
