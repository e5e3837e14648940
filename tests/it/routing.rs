//! Routing calls to named upstreams by namespace and metadata, a system
//! upstream for namespace-less calls, and address templates.

use crate::support;

use prost::Message;
use support::net::{Client, FakeUpstream, Gateway, Reply, config_text, parse_config};
use temporalio_protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;

const START: &str = "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution";
const INFO: &str = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo";
const HEALTH: &str = "/grpc.health.v1.Health/Check";

fn start(namespace: &str) -> Vec<u8> {
    support::net::start_request(namespace)
}

#[tokio::test]
async fn calls_go_where_the_rules_say() {
    let a = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let b = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let t = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let extra = format!(
        r#"
[upstreams.b]
address = "http://{}"
connections = 1

[upstreams.per-namespace]
address = "http://{{namespace}}:{}"

[[routes]]
namespace = "team-b-*"
upstream = "b"

[[routes]]
metadata = {{ "x-tenant" = "blue" }}
upstream = "b"

[[routes]]
namespace = "localhost"
upstream = "per-namespace"

[routing]
system = "b"
"#,
        b.addr,
        t.addr.port()
    );
    let gw = Gateway::start(parse_config(&config_text(a.addr, &extra))).await;
    let client = Client::connect(gw.addr).await;
    let ok = |ans: support::net::Answer| assert_eq!(ans.status(), 0, "{}", ans.grpc_message());

    // By the namespace in the request body.
    ok(client
        .call(START, &start("team-b-orders"), &[], false)
        .await);
    assert_eq!(b.requests().len(), 1);
    ok(client.call(START, &start("orders"), &[], false).await);
    assert_eq!(a.requests().len(), 1);
    // By metadata.
    ok(client
        .call(START, &start("orders"), &[("x-tenant", "blue")], false)
        .await);
    assert_eq!(b.requests().len(), 2);
    // By the temporal-namespace header when the call is streamed through.
    ok(client
        .call(HEALTH, &[], &[("temporal-namespace", "team-b-x")], false)
        .await);
    assert_eq!(b.last().path, HEALTH);
    // Namespace-less calls go to the system upstream.
    ok(client.call(INFO, &[], &[], false).await);
    assert_eq!(b.last().path, INFO);
    assert_eq!(b.requests().len(), 4);

    // A template upstream: the namespace becomes part of the address.
    ok(client.call(START, &start("localhost"), &[], false).await);
    assert_eq!(t.requests().len(), 1);
    assert_eq!(
        StartWorkflowExecutionRequest::decode(t.last().message())
            .unwrap()
            .namespace,
        "localhost"
    );
    assert_eq!(a.requests().len(), 1, "nothing else reached the default");

    // A header that contradicts the request's namespace is refused.
    let ans = client
        .call(
            START,
            &start("orders"),
            &[("temporal-namespace", "team-b-x")],
            false,
        )
        .await;
    assert_eq!(ans.status(), 3, "{}", ans.grpc_message());
    assert!(
        ans.grpc_message().contains("\"team-b-x\""),
        "{}",
        ans.grpc_message()
    );
    assert_eq!(
        a.requests().len() + b.requests().len(),
        5,
        "nothing forwarded"
    );
}

#[tokio::test]
async fn a_namespace_that_cannot_be_a_host_name_is_refused() {
    let a = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let extra = r#"
[upstreams.cloud]
address = "http://{namespace}.tmprl.test:7233"
[routing]
default = "cloud"
system = "default"
"#;
    let gw = Gateway::start(parse_config(&config_text(a.addr, extra))).await;
    let client = Client::connect(gw.addr).await;
    for bad in ["evil.example:80/x", "a@b", "..", "a b"] {
        let ans = client.call(START, &start(bad), &[], false).await;
        assert_eq!(ans.status(), 3, "{bad:?}: {}", ans.grpc_message());
        assert!(
            ans.grpc_message().contains("namespace"),
            "{}",
            ans.grpc_message()
        );
    }
    assert!(a.requests().is_empty());
}

#[test]
fn routes_must_name_known_upstreams() {
    let text = config_text(
        "127.0.0.1:1".parse().unwrap(),
        "[[routes]]\nnamespace = \"x\"\nupstream = \"nope\"\n[routing]\nsystem = \"gone\"\n",
    );
    let err =
        sealgate::config::Config::parse(&text, "t.toml", std::path::Path::new("."), &|_| None)
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("routes[0].upstream: \"nope\" is not an upstream (known: default)"),
        "{err}"
    );
    assert!(err.contains("routing.system"), "{err}");
}

#[tokio::test]
async fn namespaces_are_translated_both_ways_at_every_depth() {
    use temporalio_protos::temporal::api::{
        history::v1::{
            History, HistoryEvent, WorkflowExecutionStartedEventAttributes,
            history_event::Attributes,
        },
        workflowservice::v1::{PollWorkflowTaskQueueRequest, PollWorkflowTaskQueueResponse},
    };
    const POLL: &str = "/temporal.api.workflowservice.v1.WorkflowService/PollWorkflowTaskQueue";
    let up = FakeUpstream::start(|rec| {
        if rec.path != POLL {
            return Reply::message(Vec::new());
        }
        let event = HistoryEvent {
            event_id: 1,
            attributes: Some(Attributes::WorkflowExecutionStartedEventAttributes(
                WorkflowExecutionStartedEventAttributes {
                    parent_workflow_namespace: "acme-billing.a1b2c".into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        Reply::message(
            PollWorkflowTaskQueueResponse {
                history: Some(History {
                    events: vec![event],
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        )
    })
    .await;
    let extra = r#"
[upstream_options.namespaces]
prefix = "acme-"
suffix = ".a1b2c"
overrides = { "legacy" = "old-legacy-ns.a1b2c" }
"#;
    let gw = Gateway::start(parse_config(&config_text(up.addr, extra))).await;
    let client = Client::connect(gw.addr).await;

    // Request: the body's namespace and the header.
    let a = client
        .call(
            START,
            &start("orders"),
            &[("temporal-namespace", "orders")],
            false,
        )
        .await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    let seen = up.last();
    assert_eq!(seen.headers["temporal-namespace"], "acme-orders.a1b2c");
    assert_eq!(
        StartWorkflowExecutionRequest::decode(seen.message())
            .unwrap()
            .namespace,
        "acme-orders.a1b2c"
    );
    client.call(START, &start("legacy"), &[], false).await;
    assert_eq!(
        StartWorkflowExecutionRequest::decode(up.last().message())
            .unwrap()
            .namespace,
        "old-legacy-ns.a1b2c"
    );

    // Response: a namespace deep in a history event comes back local.
    let poll = PollWorkflowTaskQueueRequest {
        namespace: "orders".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let a = client.call(POLL, &poll, &[], false).await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(
        PollWorkflowTaskQueueRequest::decode(up.last().message())
            .unwrap()
            .namespace,
        "acme-orders.a1b2c"
    );
    let resp = PollWorkflowTaskQueueResponse::decode(a.message()).unwrap();
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(attrs)) =
        resp.history.unwrap().events[0].attributes.clone()
    else {
        panic!("no started event")
    };
    assert_eq!(attrs.parent_workflow_namespace, "billing");
}

/// A config file whose routes, named upstream key and caller token a test
/// rewrites between reloads.
fn reloadable_config(
    default: std::net::SocketAddr,
    named: std::net::SocketAddr,
    route: &str,
    key: &str,
    token: &str,
) -> String {
    let (_, material) = sealgate::keys::generate("key").unwrap();
    format!(
        r#"listen = "127.0.0.1:0"
upstream = "http://{default}"
reload_check_interval = "off"

[upstreams.b]
address = "http://{named}"
api_key = "{key}"
allow_plaintext_credentials = true

[[routes]]
namespace = "{route}"
upstream = "b"

[inbound]
auth = "bearer"

[[inbound.rules]]
token = "{token}"
namespaces = ["*"]
system = true

[codec]
active_key = "k1"
[[codec.keys]]
id = "k1"
material = "{}"
[telemetry]
admin_listen = "off"
"#,
        material.as_str()
    )
}

#[tokio::test]
async fn routes_upstream_keys_and_caller_rules_reload_with_no_failed_call() {
    let a = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let b = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("reload-routes-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("sealgate.toml");
    let (old_token, new_token) = ("caller-token-old-0123456789", "caller-token-new-0123456789");
    std::fs::write(
        &path,
        reloadable_config(a.addr, b.addr, "blue-*", "key-one", old_token),
    )
    .unwrap();
    let (gw, reloader) = Gateway::start_reloadable(&path).await;
    let client = Client::connect(gw.addr).await;
    let auth = |t: &'static str| vec![("authorization", format!("Bearer {t}"))];
    let headers = |h: &[(&'static str, String)]| -> Vec<(&'static str, String)> { h.to_vec() };

    // A bounded load loop runs through the reload: 400 calls, none may fail.
    let loop_client = Client::connect(gw.addr).await;
    let load = tokio::spawn(async move {
        let mut failed = Vec::new();
        for i in 0..400 {
            // Either token: the loop spans the moment the rules change.
            let t = if i % 2 == 0 {
                "caller-token-old-0123456789"
            } else {
                "caller-token-new-0123456789"
            };
            let h = [("authorization", format!("Bearer {t}"))];
            let hr: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let ans = loop_client
                .call(START, &start("green-orders"), &hr, false)
                .await;
            // 16 (unauthenticated) is expected for the token not in force.
            if ans.status() != 0 && ans.status() != 16 {
                failed.push((i, ans.status(), ans.grpc_message()));
            }
        }
        failed
    });

    let call = |ns: &'static str, t: &'static str| {
        let client = &client;
        let h = headers(&auth(t));
        async move {
            let hr: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            client.call(START, &start(ns), &hr, false).await
        }
    };
    let ans = call("blue-orders", old_token).await;
    assert_eq!(ans.status(), 0, "{}", ans.grpc_message());
    assert_eq!(b.last().headers["authorization"], "Bearer key-one");

    // New route, new key for the named upstream, new caller token.
    std::fs::write(
        &path,
        reloadable_config(a.addr, b.addr, "green-*", "key-two", new_token),
    )
    .unwrap();
    reloader.reload("test").unwrap();
    let blue_at_b = || {
        b.requests()
            .iter()
            .filter(|r| {
                StartWorkflowExecutionRequest::decode(r.message())
                    .is_ok_and(|m| m.namespace == "blue-orders")
            })
            .count()
    };
    let before = blue_at_b();
    let ans = call("blue-orders", new_token).await;
    assert_eq!(ans.status(), 0, "{}", ans.grpc_message());
    assert_eq!(blue_at_b(), before, "blue-* no longer routes to b");
    let ans = call("green-orders", new_token).await;
    assert_eq!(ans.status(), 0, "{}", ans.grpc_message());
    let failed = load.await.unwrap();
    assert!(
        failed.is_empty(),
        "calls failed across the reload: {failed:?}"
    );
    assert_eq!(b.last().headers["authorization"], "Bearer key-two");
    let ans = call("green-orders", old_token).await;
    assert_eq!(
        ans.status(),
        16,
        "the old token is gone: {}",
        ans.grpc_message()
    );

    // A reload that fails changes nothing: a route to an unknown upstream.
    let bad = reloadable_config(a.addr, b.addr, "green-*", "key-three", new_token)
        .replace("upstream = \"b\"", "upstream = \"nowhere\"");
    std::fs::write(&path, bad).unwrap();
    assert!(reloader.reload("test").is_err());
    let ans = call("green-orders", new_token).await;
    assert_eq!(ans.status(), 0, "{}", ans.grpc_message());
    assert_eq!(b.last().headers["authorization"], "Bearer key-two");
    std::fs::remove_dir_all(&d).unwrap();
}
