//! Keys through the running proxy: rotation under load with hot reload,
//! envelope encryption with a local KEK, and the extension key service
//! (the example server, as a separate process).

use crate::support;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use prost::Message;
use sealgate::{config::Config, keys::generate, reload::Reloader};
use support::net::{Client, FakeUpstream, Gateway, Reply};
use temporalio_protos::temporal::api::{
    common::v1::{Payload, Payloads},
    query::v1::WorkflowQuery,
    workflowservice::v1::{QueryWorkflowRequest, QueryWorkflowResponse},
};

const QUERY: &str = "/temporal.api.workflowservice.v1.WorkflowService/QueryWorkflow";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sealgate-keys-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn json(data: &str) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn query(namespace: &str, query_type: &str, arg: &str) -> Vec<u8> {
    QueryWorkflowRequest {
        namespace: namespace.into(),
        query: Some(WorkflowQuery {
            query_type: query_type.into(),
            query_args: Some(Payloads {
                payloads: vec![json(arg)],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// The single query argument as the upstream received it.
fn received_arg(message: &[u8]) -> Payload {
    let q = QueryWorkflowRequest::decode(message).unwrap();
    q.query.unwrap().query_args.unwrap().payloads[0].clone()
}

fn meta(p: &Payload, key: &str) -> String {
    String::from_utf8(p.metadata.get(key).cloned().unwrap_or_default()).unwrap()
}

/// The query's answer as the worker sees it.
fn answer_arg(bytes: &[u8]) -> Payload {
    QueryWorkflowResponse::decode(bytes)
        .unwrap()
        .query_result
        .unwrap()
        .payloads[0]
        .clone()
}

/// Echoes each query's arguments back as its result, except that
/// `replay` answers with the payload stored in `kept`.
fn echo(kept: Arc<Mutex<Option<Payload>>>) -> impl Fn(&support::net::Recorded) -> Reply {
    move |rec| {
        if rec.path != QUERY {
            return Reply::message(Vec::new()); // an empty response of any type
        }
        let q = QueryWorkflowRequest::decode(rec.message()).unwrap();
        let query = q.query.unwrap();
        let result = if query.query_type == "replay" {
            Payloads {
                payloads: vec![kept.lock().unwrap().clone().unwrap()],
            }
        } else {
            query.query_args.unwrap()
        };
        Reply::message(
            QueryWorkflowResponse {
                query_result: Some(result),
                ..Default::default()
            }
            .encode_to_vec(),
        )
    }
}

fn write_static_config(
    dir: &Path,
    upstream: std::net::SocketAddr,
    keys: &[(&str, &str)],
    active: &str,
) -> PathBuf {
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nupstream = \"http://{upstream}\"\nreload_check_interval = \"100ms\"\n\
         [telemetry]\nadmin_listen = \"off\"\n[codec]\nactive_key = \"{active}\"\n"
    );
    for (id, material) in keys {
        let f = dir.join(format!("{id}.b64"));
        std::fs::write(&f, material).unwrap();
        text.push_str(&format!(
            "[[codec.keys]]\nid = \"{id}\"\nmaterial_file = \"{id}.b64\"\n"
        ));
    }
    let path = dir.join("sealgate.toml");
    // Write-then-rename, as config management tools do: never half a file.
    let tmp = dir.join("sealgate.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// Starts the gateway from a config file, with its reload watcher running.
async fn gateway_with_reload(path: &Path) -> (Gateway, Arc<Reloader>) {
    let interval = Config::load(path).unwrap().reload_check_interval;
    let (gateway, reloader) = Gateway::start_reloadable(path).await;
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    tokio::spawn(
        reloader
            .clone()
            .watch(hangup, interval, std::future::pending()),
    );
    (gateway, reloader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_active_key_under_load_fails_no_call() {
    let dir = scratch("rotate");
    let (_, m1) = generate("key").unwrap();
    let (_, m2) = generate("key").unwrap();
    let kept = Arc::new(Mutex::new(None));
    let upstream = FakeUpstream::start(echo(kept.clone())).await;
    let path = write_static_config(&dir, upstream.addr, &[("k1", &m1)], "k1");
    let (gateway, reloader) = gateway_with_reload(&path).await;

    // Four workers call as fast as they can: bounded by count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
        let addr = gateway.addr;
        workers.push(tokio::spawn(async move {
            let client = Client::connect(addr).await;
            for i in 0..2000 {
                if stop.load(Relaxed) {
                    break;
                }
                let arg = format!("\"worker {w} call {i}\"");
                let a = client
                    .call(QUERY, &query("orders", "echo", &arg), &[], false)
                    .await;
                if a.status() != 0 {
                    failures.lock().unwrap().push(a.grpc_message());
                } else if answer_arg(&a.message()) != json(&arg) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("wrong answer for {arg}"));
                }
                done.fetch_add(1, Relaxed);
            }
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.load(Relaxed) < 100 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Keep one payload sealed with the old key.
    let old = received_arg(&upstream.last().message());
    assert_eq!(meta(&old, "encryption-key-id"), "k1");
    *kept.lock().unwrap() = Some(old);

    // Rotate: k2 encrypts from now on, k1 stays to decrypt.
    write_static_config(&dir, upstream.addr, &[("k1", &m1), ("k2", &m2)], "k2");
    while reloader.stats().ok.load(Relaxed) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        reloader.stats().ok.load(Relaxed),
        1,
        "the file change was picked up"
    );
    let rotated_at = done.load(Relaxed);
    while done.load(Relaxed) < rotated_at + 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed calls: {failures:?}");
    let ids: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| meta(&received_arg(&r.message()), "encryption-key-id"))
        .collect();
    assert!(ids.len() >= 300, "{} calls", ids.len());
    assert_eq!(ids[0], "k1");
    // Calls started after the reload all carry the new key.
    let tail = &ids[ids.len() - 100..];
    assert!(
        tail.iter().all(|id| id == "k2"),
        "{} of the last 100 calls used k1",
        tail.iter().filter(|id| *id == "k1").count()
    );

    // A payload sealed with the retired key still decodes.
    let client = Client::connect(gateway.addr).await;
    let a = client
        .call(QUERY, &query("orders", "replay", "\"x\""), &[], false)
        .await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    let back = answer_arg(&a.message());
    assert_eq!(meta(&back, "encoding"), "json/plain");
    assert!(String::from_utf8_lossy(&back.data).starts_with("\"worker "));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn envelope_config(upstream: std::net::SocketAddr, kms: &str, active: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nupstream = \"http://{upstream}\"\nreload_check_interval = \"off\"\n\
         [telemetry]\nadmin_listen = \"off\"\n{kms}\n\
         [codec.policies.default]\nactive_key = \"{active}\"\ndek_lifetime = \"1h\"\nrenew_before = \"5m\"\n"
    )
}

#[tokio::test]
async fn envelope_encryption_with_a_local_kek() {
    let (_, kek) = generate("kek").unwrap();
    let kept = Arc::new(Mutex::new(None));
    let upstream = FakeUpstream::start(echo(kept.clone())).await;
    let kms = format!(
        "[codec.kms.local]\nprovider = \"local\"\n[[codec.kms.local.keys]]\nid = \"kek-a\"\nmaterial = \"{}\"\n",
        kek.as_str()
    );
    let text = envelope_config(upstream.addr, &kms, "kek-a");
    let gateway = Gateway::start(support::net::parse_config(&text)).await;
    let client = Client::connect(gateway.addr).await;

    let mut deks = HashMap::new();
    for ns in ["orders", "orders", "billing"] {
        let a = client
            .call(QUERY, &query(ns, "echo", "\"secret\""), &[], false)
            .await;
        assert_eq!(a.status(), 0, "{}", a.grpc_message());
        assert_eq!(answer_arg(&a.message()), json("\"secret\""));
        let sent = received_arg(&upstream.last().message());
        assert_eq!(meta(&sent, "encoding"), "binary/encrypted");
        assert_eq!(meta(&sent, "encryption-key-id"), "kek-a");
        assert!(!String::from_utf8_lossy(&sent.data).contains("secret"));
        let dek = meta(&sent, "encryption-dek");
        // nonce(24) ‖ tag(16) ‖ DEK(32), base64
        assert_eq!(STANDARD.decode(&dek).unwrap().len(), 72);
        deks.entry(ns).or_insert_with(Vec::new).push(dek);
    }
    assert_eq!(
        deks["orders"][0], deks["orders"][1],
        "one DEK per namespace"
    );
    assert_ne!(deks["orders"][0], deks["billing"][0]);

    // Another gateway with the same KEK has never seen that DEK: it
    // unwraps it (one KMS call) and decodes.
    *kept.lock().unwrap() = Some(received_arg(&upstream.last().message()));
    let other = Gateway::start(support::net::parse_config(&text)).await;
    let c2 = Client::connect(other.addr).await;
    let a = c2
        .call(QUERY, &query("billing", "replay", "\"x\""), &[], false)
        .await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(answer_arg(&a.message()), json("\"secret\""));
    let unwraps = other.app.codec().deks().stats().unwraps.load(Relaxed);
    assert_eq!(unwraps, 1);

    // A namespace whose policy does not hold that KEK leaves it encoded.
    let kms_b = format!(
        "[codec.kms.local]\nprovider = \"local\"\n[[codec.kms.local.keys]]\nid = \"kek-b\"\nmaterial = \"{}\"\n",
        generate("kek").unwrap().1.as_str()
    );
    let third = Gateway::start(support::net::parse_config(&envelope_config(
        upstream.addr,
        &kms_b,
        "kek-b",
    )))
    .await;
    let c3 = Client::connect(third.addr).await;
    let a = c3
        .call(QUERY, &query("billing", "replay", "\"x\""), &[], false)
        .await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(
        meta(&answer_arg(&a.message()), "encryption-key-id"),
        "kek-a"
    );
}

/// The example key service, run as its own process.
struct KeyService {
    child: Child,
    addr: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for KeyService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl KeyService {
    fn start(key_id: &str, material: &str) -> KeyService {
        // target/debug/deps/it-… → target/debug/examples/kms_extension
        let exe = std::env::current_exe().unwrap();
        let bin = exe
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("examples/kms_extension");
        if !bin.exists() {
            // scripts/test builds it first; a bare `cargo test` may not have.
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "--example", "kms_extension"])
                .status()
                .unwrap();
            assert!(status.success(), "building the kms_extension example");
        }
        let mut child = Command::new(bin)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--key",
                &format!("{key_id}={material}"),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        KeyService { child, addr, lines }
    }

    fn count(&self, prefix: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }
}

#[tokio::test]
async fn the_extension_key_service_wraps_and_unwraps() {
    let (_, material) = generate("key").unwrap();
    let service = KeyService::start("hsm-key-1", material.as_str());
    let kept = Arc::new(Mutex::new(None));
    let upstream = FakeUpstream::start(echo(kept.clone())).await;
    let kms = format!(
        "[codec.kms.hsm]\nprovider = \"extension\"\nendpoint = \"http://{}\"\nkeys = [\"hsm-key-1\"]\n",
        service.addr
    );
    let text = envelope_config(upstream.addr, &kms, "hsm-key-1");
    let gateway = Gateway::start(support::net::parse_config(&text)).await;
    let client = Client::connect(gateway.addr).await;
    for _ in 0..3 {
        let a = client
            .call(QUERY, &query("orders", "echo", "\"card 4111\""), &[], false)
            .await;
        assert_eq!(a.status(), 0, "{}", a.grpc_message());
        assert_eq!(answer_arg(&a.message()), json("\"card 4111\""));
    }
    let sent = received_arg(&upstream.last().message());
    assert_eq!(meta(&sent, "encryption-key-id"), "hsm-key-1");
    assert!(!meta(&sent, "encryption-dek").is_empty());
    wait_for(|| service.count("wrap key_id=hsm-key-1 namespace=orders") == 1).await;
    assert_eq!(service.count("unwrap"), 0, "our own DEK is cached");

    // A fresh gateway decodes through one Unwrap.
    *kept.lock().unwrap() = Some(sent);
    let other = Gateway::start(support::net::parse_config(&text)).await;
    let c2 = Client::connect(other.addr).await;
    for _ in 0..2 {
        let a = c2
            .call(QUERY, &query("orders", "replay", "\"x\""), &[], false)
            .await;
        assert_eq!(a.status(), 0, "{}", a.grpc_message());
        assert_eq!(answer_arg(&a.message()), json("\"card 4111\""));
    }
    wait_for(|| service.count("unwrap key_id=hsm-key-1 namespace=orders") == 1).await;

    // The same payload replayed into another namespace's answer does not
    // decrypt: the key service bound the data key to "orders", and the
    // gateway's cache of unwrapped keys is per namespace too.
    let a = c2
        .call(QUERY, &query("payments", "replay", "\"x\""), &[], false)
        .await;
    assert_ne!(a.status(), 0, "decrypted in another namespace");
    assert!(
        a.grpc_message().contains("hsm") && a.grpc_message().contains("another namespace"),
        "{}",
        a.grpc_message()
    );
    assert_eq!(
        service.count("unwrap key_id=hsm-key-1 namespace=payments"),
        0
    );

    // With the key service gone, calls that carry no payload still work...
    drop(service);
    let info = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo";
    let a = client.call(info, &[], &[], false).await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    // ...and encoding for a namespace without a DEK yet fails closed with
    // UNAVAILABLE, naming the provider; nothing goes up.
    let before = upstream.requests().len();
    let a = client
        .call(QUERY, &query("payments", "echo", "\"x\""), &[], false)
        .await;
    assert_eq!(a.status(), 14, "{}", a.grpc_message());
    assert!(a.grpc_message().contains("hsm"), "{}", a.grpc_message());
    assert_eq!(upstream.requests().len(), before);
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cond(), "condition not met within 2 s");
}
