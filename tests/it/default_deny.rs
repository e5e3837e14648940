//! Default deny, one case per class of call: what the recording upstream
//! received (exact bytes, or nothing at all for a refusal) and what the
//! caller was told.

use crate::support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use prost::Message;
use support::{
    contains,
    net::{
        FakeUpstream, Gateway, RawAnswer, RawClient, Recorded, Reply, config_text, frame_into,
        parse_config, raw_channel, raw_full, raw_request,
    },
};
use temporalio_protos::temporal::api::{
    common::v1::{Payload, Payloads},
    nexus::v1::{EndpointSpec, EndpointTarget, endpoint_target},
    operatorservice::v1::{
        AddSearchAttributesRequest, CreateNexusEndpointRequest, DeleteNamespaceRequest,
    },
    workflowservice::v1::{
        DescribeNamespaceRequest, GetSystemInfoRequest, ListNamespacesRequest,
        StartWorkflowExecutionRequest,
    },
};

const WS: &str = "/temporal.api.workflowservice.v1.WorkflowService/";
const OS: &str = "/temporal.api.operatorservice.v1.OperatorService/";
const SECRET: &[u8] = b"\"card 4111-1111-1111-1111\"";
const GRPC: &[(&str, &[u8])] = &[("content-type", b"application/grpc"), ("te", b"trailers")];

const TEAM1: &str = "team1-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";
const AUTH: &str = r#"
[inbound]
auth = "bearer"
[[inbound.rules]]
token = "team1-token-0123456789"
namespaces = ["team1"]
[[inbound.rules]]
token = "admin-token-0123456789"
namespaces = ["*"]
system = true
"#;

fn start(namespace: &str) -> Vec<u8> {
    StartWorkflowExecutionRequest {
        namespace: namespace.into(),
        workflow_id: "wf-1".into(),
        input: Some(Payloads {
            payloads: vec![Payload {
                metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
                data: SECRET.to_vec(),
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn framed(messages: &[&[u8]], gzip: bool) -> Bytes {
    let mut out = BytesMut::new();
    for m in messages {
        frame_into(&mut out, m, gzip);
    }
    out.freeze()
}

struct Rig {
    upstream: FakeUpstream,
    gateway: Gateway,
    client: RawClient,
}

async fn rig_with(
    extra: &str,
    handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
) -> Rig {
    let upstream = FakeUpstream::start(handler).await;
    let gateway = Gateway::start(parse_config(&config_text(upstream.addr, extra))).await;
    let client = RawClient::connect(gateway.addr).await;
    Rig {
        upstream,
        gateway,
        client,
    }
}

async fn rig(extra: &str) -> Rig {
    rig_with(extra, |_| Reply::message(Bytes::new())).await
}

impl Rig {
    async fn call(&self, path: &str, headers: &[(&str, &[u8])], body: Bytes) -> RawAnswer {
        self.client
            .send(raw_request(path, headers, raw_full(body)))
            .await
    }

    async fn grpc(&self, path: &str, extra: &[(&str, &[u8])], message: &[u8]) -> RawAnswer {
        let mut h = GRPC.to_vec();
        h.extend_from_slice(extra);
        self.call(path, &h, framed(&[message], false)).await
    }

    /// A call that must go through (status 0).
    async fn ok(&self, path: &str, extra: &[(&str, &[u8])], message: &[u8]) -> RawAnswer {
        let a = self.grpc(path, extra, message).await;
        assert_eq!(a.grpc_status().as_deref(), Some("0"), "{path}: {a:?}");
        a
    }

    fn nothing_forwarded(&self) {
        let seen = self.upstream.requests();
        assert!(
            seen.is_empty(),
            "the upstream saw {:?}",
            seen.iter().map(|r| &r.path).collect::<Vec<_>>()
        );
    }
}

fn refused(a: &RawAnswer, code: &str, needle: &str) {
    assert_eq!(a.grpc_status().as_deref(), Some(code), "{a:?}");
    let m = a.grpc_message();
    assert!(m.starts_with("sealgate: ") && m.contains(needle), "{m}");
    assert!(a.body.is_empty(), "a refusal has no body");
}

#[tokio::test]
async fn rewritten_services_are_encoded_and_operator_service_is_one_of_them() {
    let r = rig("").await;
    r.ok(
        &format!("{WS}StartWorkflowExecution"),
        &[],
        &start("default"),
    )
    .await;
    let sent = r.upstream.last();
    assert!(
        !contains(&sent.body, SECRET),
        "the input went upstream in clear"
    );
    assert!(contains(&sent.body, b"binary/encrypted"));

    // A Nexus endpoint's description is a Payload: OperatorService is rewritten.
    let create = CreateNexusEndpointRequest {
        spec: Some(EndpointSpec {
            name: "payments".into(),
            description: Some(Payload {
                metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
                data: SECRET.to_vec(),
                ..Default::default()
            }),
            target: Some(EndpointTarget {
                variant: Some(endpoint_target::Variant::Worker(endpoint_target::Worker {
                    namespace: "default".into(),
                    task_queue: "q".into(),
                })),
            }),
        }),
    }
    .encode_to_vec();
    r.ok(&format!("{OS}CreateNexusEndpoint"), &[], &create)
        .await;
    let sent = r.upstream.last();
    assert_eq!(sent.path, format!("{OS}CreateNexusEndpoint"));
    assert!(
        !contains(&sent.body, SECRET),
        "the description went upstream in clear"
    );
    assert!(contains(&sent.body, b"binary/encrypted"));
}

#[tokio::test]
async fn health_streams_and_reflection_is_answered_here() {
    let r = rig("").await;
    let check = [0x0a, 0x01, b'x'];
    r.ok("/grpc.health.v1.Health/Check", &[], &check).await;
    let sent = r.upstream.last();
    assert_eq!(
        sent.body,
        framed(&[&check], false),
        "streamed byte for byte"
    );

    let before = r.upstream.requests().len();
    let list = [0x3a, 0x01, b'*']; // ServerReflectionRequest.list_services
    let a = r
        .ok(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            &[],
            &list,
        )
        .await;
    assert!(contains(
        &a.body,
        b"temporal.api.workflowservice.v1.WorkflowService"
    ));
    assert_eq!(r.upstream.requests().len(), before, "reflection stays here");
}

#[tokio::test]
async fn unknown_methods_and_services_are_refused() {
    let r = rig("").await;
    let a = r
        .grpc(&format!("{WS}StartSomethingNew"), &[], &start("default"))
        .await;
    refused(&a, "12", "StartSomethingNew");
    let m = a.grpc_message();
    assert!(
        m.contains("temporalio-protos") && m.contains("upgrade"),
        "{m}"
    );
    let a = r.grpc(&format!("{OS}SomethingNew"), &[], b"").await;
    refused(&a, "12", "SomethingNew");
    let a = r.grpc("/acme.Billing/Charge", &[], &start("default")).await;
    refused(&a, "12", "acme.Billing");
    // A field the schema lacks (a newer API's), even deep inside a payload
    // path's neighbour, and an Any of an unknown type: refused.
    let mut newer = start("default");
    newer.extend_from_slice(b"\xc2\x3e\x03new"); // field 1000
    let a = r
        .grpc(&format!("{WS}StartWorkflowExecution"), &[], &newer)
        .await;
    refused(
        &a,
        "12",
        "field 1000 of temporal.api.workflowservice.v1.StartWorkflowExecutionRequest",
    );
    r.nothing_forwarded();
}

#[tokio::test]
async fn only_one_strict_grpc_content_type_is_accepted() {
    let r = rig("").await;
    let path = format!("{WS}StartWorkflowExecution");
    let body = framed(&[&start("default")], false);
    let cases: &[&[(&str, &[u8])]] = &[
        &[
            ("content-type", b"text/plain"),
            ("content-type", b"application/grpc"),
        ],
        &[("content-type", b"application/grpc;\xff")],
        &[("content-type", b"application/json")],
        &[("content-type", b"Application/grpc")],
        &[("content-type", b"application/grpc-web")],
        &[],
    ];
    for headers in cases {
        let a = r.call(&path, headers, body.clone()).await;
        assert_eq!(a.status, 415, "{headers:?}: {a:?}");
        refused(&a, "3", "content-type");
    }
    let dup_encoding: &[(&str, &[u8])] = &[
        ("content-type", b"application/grpc"),
        ("grpc-encoding", b"identity"),
        ("grpc-encoding", b"gzip"),
    ];
    refused(
        &r.call(&path, dup_encoding, body.clone()).await,
        "3",
        "grpc-encoding",
    );
    let dup_te: &[(&str, &[u8])] = &[
        ("content-type", b"application/grpc"),
        ("te", b"trailers"),
        ("te", b"trailers"),
    ];
    refused(&r.call(&path, dup_te, body.clone()).await, "3", "te header");
    let dup_namespace: &[(&str, &[u8])] = &[
        ("content-type", b"application/grpc"),
        ("temporal-namespace", b"default"),
        ("temporal-namespace", b"other"),
    ];
    refused(
        &r.call(&path, dup_namespace, body.clone()).await,
        "3",
        "temporal-namespace header sent 2 times",
    );
    let odd = format!("{path}?x=1");
    refused(&r.call(&odd, GRPC, body.clone()).await, "3", "method path");
    r.nothing_forwarded();
}

#[tokio::test]
async fn a_unary_call_carries_exactly_one_message() {
    let r = rig("").await;
    let path = format!("{WS}StartWorkflowExecution");
    let two = framed(&[&start("default"), &start("other")], false);
    refused(&r.call(&path, GRPC, two).await, "3", "2 gRPC messages");
    // An empty body gets what the frontend answers: UNKNOWN "EOF", at once.
    let a = tokio::time::timeout(Duration::from_secs(5), r.call(&path, GRPC, Bytes::new()))
        .await
        .expect("an empty body is answered at once");
    refused(&a, "2", "EOF");
    r.nothing_forwarded();
}

#[tokio::test]
async fn every_namespace_a_call_names_is_authorized() {
    let r = rig(AUTH).await;
    let bearer = format!("Bearer {TEAM1}");
    let team1: &[(&str, &[u8])] = &[
        ("authorization", bearer.as_bytes()),
        ("temporal-namespace", b"team1"),
    ];
    let id = "6f7c1b52-0000-4000-8000-000000000002";
    let worker = |namespace: &str| EndpointTarget {
        variant: Some(endpoint_target::Variant::Worker(endpoint_target::Worker {
            namespace: namespace.into(),
            task_queue: "q".into(),
        })),
    };
    // (method, request, what the refusal names). A namespace named by id is
    // not checkable against name rules, so cluster-level; so are Nexus
    // endpoints, whatever they target, and calls naming no namespace.
    let cases: Vec<(String, Vec<u8>, &str)> = vec![
        (
            format!("{OS}AddSearchAttributes"),
            AddSearchAttributesRequest {
                search_attributes: [("Leak".to_string(), 2)].into(),
                namespace: "team2".into(),
            }
            .encode_to_vec(),
            "team2",
        ),
        (
            format!("{OS}DeleteNamespace"),
            DeleteNamespaceRequest {
                namespace: "team2".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            "team2",
        ),
        (
            format!("{OS}DeleteNamespace"),
            DeleteNamespaceRequest {
                namespace_id: id.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            "system = true",
        ),
        (
            format!("{WS}DescribeNamespace"),
            DescribeNamespaceRequest {
                id: id.into(),
                ..Default::default()
            }
            .encode_to_vec(),
            "system = true",
        ),
        (
            format!("{OS}CreateNexusEndpoint"),
            CreateNexusEndpointRequest {
                spec: Some(EndpointSpec {
                    name: "x".into(),
                    target: Some(worker("team2")),
                    ..Default::default()
                }),
            }
            .encode_to_vec(),
            "system = true",
        ),
        (
            format!("{WS}StartWorkflowExecution"),
            start("team2"),
            "team2",
        ),
        (
            format!("{WS}ListNamespaces"),
            ListNamespacesRequest::default().encode_to_vec(),
            "system = true",
        ),
    ];
    for (path, message, names) in &cases {
        let a = r.grpc(path, team1, message).await;
        assert_eq!(a.grpc_status().as_deref(), Some("7"), "{path}: {a:?}");
        assert!(
            a.grpc_message().contains(names),
            "{path}: {}",
            a.grpc_message()
        );
    }
    r.nothing_forwarded();

    // What team1 may do goes through; the SDKs' handshake needs only a token.
    r.ok(
        &format!("{WS}StartWorkflowExecution"),
        team1,
        &start("team1"),
    )
    .await;
    let list = ListNamespacesRequest::default().encode_to_vec();
    let info = GetSystemInfoRequest::default().encode_to_vec();
    r.ok(&format!("{WS}GetSystemInfo"), team1, &info).await;
    let admin = format!("Bearer {ADMIN}");
    r.ok(
        &format!("{WS}ListNamespaces"),
        &[("authorization", admin.as_bytes())],
        &list,
    )
    .await;
    let paths: Vec<_> = r.upstream.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        [
            format!("{WS}StartWorkflowExecution"),
            format!("{WS}GetSystemInfo"),
            format!("{WS}ListNamespaces")
        ]
    );
    for s in r.upstream.requests() {
        assert!(
            s.headers.get("authorization").is_none(),
            "credentials stay here"
        );
    }
}

/// `count` gzip frames, each inflating to `inflated` zero bytes.
fn gzip_frames(inflated: usize, count: usize) -> Bytes {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &vec![0u8; inflated]).unwrap();
    let bomb = gz.finish().unwrap();
    let mut body = BytesMut::new();
    for _ in 0..count {
        body.extend_from_slice(&[1]);
        body.extend_from_slice(&(bomb.len() as u32).to_be_bytes());
        body.extend_from_slice(&bomb);
    }
    body.freeze()
}

impl Rig {
    /// A gzip-encoded StartWorkflowExecution with `body` and `extra` headers.
    async fn gzip_call(&self, extra: &[(&str, &[u8])], body: Bytes) -> RawAnswer {
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("content-type", b"application/grpc"),
            ("grpc-encoding", b"gzip"),
        ];
        headers.extend_from_slice(extra);
        self.call(&format!("{WS}StartWorkflowExecution"), &headers, body)
            .await
    }
}

#[tokio::test]
async fn nothing_is_read_or_inflated_before_authentication() {
    let r = rig(AUTH).await;
    // 64 frames of gzip, each inflating to 1 MiB: refused on the headers.
    let body = gzip_frames(1 << 20, 64);
    refused(&r.gzip_call(&[], body.clone()).await, "16", "Bearer");
    assert_eq!(r.gateway.app.buffered().0, 0);
    // A known caller whose header names a namespace it may not use: the
    // same, before the body is read.
    let bearer = format!("Bearer {TEAM1}");
    let team2: &[(&str, &[u8])] = &[
        ("authorization", bearer.as_bytes()),
        ("temporal-namespace", b"team2"),
    ];
    refused(&r.gzip_call(team2, body).await, "7", "team2");
    assert_eq!(r.gateway.app.buffered().0, 0);
    r.nothing_forwarded();
}

#[tokio::test]
async fn a_gzip_bomb_costs_its_own_call_only() {
    let r = rig("[proxy]\nmax_message_bytes = 4194304").await;
    let a = r.gzip_call(&[], gzip_frames(64 << 20, 1)).await;
    refused(&a, "8", "4194304");
    assert_eq!(r.gateway.app.buffered().0, 0, "its bytes went back");
    r.nothing_forwarded();
}

#[tokio::test]
async fn buffered_bytes_are_bounded_and_retryable_when_spent() {
    let r = rig("[proxy]\nmax_message_bytes = 1048576\nmemory_budget_bytes = 2097152").await;
    let path = format!("{WS}StartWorkflowExecution");
    // Two requests send 900 KiB each and hold their bodies open.
    let chunk = Bytes::from(vec![7u8; 900 << 10]);
    let mut open = Vec::new();
    for _ in 0..2 {
        let (tx, body) = raw_channel();
        let client = r.client.clone();
        let req = raw_request(&path, GRPC, body);
        let call = tokio::spawn(async move { client.send(req).await });
        tx.send(chunk.clone()).await.unwrap();
        open.push((tx, call));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while r.gateway.app.buffered().0 < 1800 << 10 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            r.gateway.app.buffered()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A third, of 300 KiB, does not fit in what is left.
    let big = framed(&[&vec![0u8; 300 << 10]], false);
    let a = r.call(&path, GRPC, big).await;
    refused(&a, "8", "retry");
    // The held calls end (the client gives up): their bytes come back.
    for (tx, call) in open {
        drop(tx);
        let a = call.await.unwrap();
        assert_ne!(a.grpc_status().as_deref(), Some("0"));
    }
    assert_eq!(r.gateway.app.buffered().0, 0);
    r.ok(&path, &[], &start("default")).await;
    assert_eq!(r.upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_body_that_never_arrives_is_refused_in_time() {
    let r = rig("[proxy]\nrequest_body_timeout = \"300ms\"").await;
    let (tx, body) = raw_channel();
    let req = raw_request(&format!("{WS}StartWorkflowExecution"), GRPC, body);
    let a = tokio::time::timeout(Duration::from_secs(5), r.client.send(req))
        .await
        .expect("refused within the body timeout");
    refused(&a, "4", "request_body_timeout");
    drop(tx);
    r.nothing_forwarded();
}

#[tokio::test]
async fn trailers_only_answers_stay_trailers_only() {
    let r = rig_with("", |_| Reply {
        trailers_only: Some(vec![
            ("grpc-status", "5".into()),
            ("grpc-message", "workflow not found for ID: wf-1".into()),
        ]),
        ..Reply::default()
    })
    .await;
    let a = r
        .grpc(&format!("{WS}DescribeWorkflowExecution"), &[], b"")
        .await;
    assert_eq!(a.status, 200);
    assert!(
        a.ended_with_headers,
        "one HEADERS frame with END_STREAM: {a:?}"
    );
    assert!(a.body.is_empty() && a.trailers.is_none(), "{a:?}");
    assert_eq!(a.headers["grpc-status"], "5");
    assert_eq!(a.headers["grpc-message"], "workflow not found for ID: wf-1");
}

#[tokio::test]
async fn large_header_lists_pass_without_closing_the_connection() {
    let r = rig("").await;
    let big = "x".repeat(64 << 10);
    r.ok(
        &format!("{WS}StartWorkflowExecution"),
        &[("x-big", big.as_bytes())],
        &start("default"),
    )
    .await;
    assert_eq!(r.upstream.last().headers["x-big"].len(), 64 << 10);
    // The same connection still serves.
    r.ok(
        &format!("{WS}StartWorkflowExecution"),
        &[],
        &start("default"),
    )
    .await;
}

#[tokio::test]
async fn a_cancelled_call_is_counted_and_leaves_the_gauge() {
    let r = rig_with("", |_| Reply {
        delay: Duration::from_secs(30),
        ..Reply::message(Bytes::new())
    })
    .await;
    let poll = format!("{WS}PollWorkflowTaskQueue");
    let req = raw_request(&poll, GRPC, raw_full(framed(&[b""], false)));
    let client = r.client.clone();
    let call = tokio::spawn(async move { client.start(req).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while r.upstream.requests().is_empty() {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    call.abort(); // the worker cancels its long poll: RST_STREAM
    let admin = r.gateway.admin_addr.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (_, text) = crate::observability::get(admin, "/metrics").await;
        let cancelled = crate::observability::sample(
            &text,
            "sealgate_calls_total",
            &["code=\"cancelled\"", "PollWorkflowTaskQueue"],
        );
        let in_flight = crate::observability::sample(&text, "sealgate_calls_in_flight", &[]);
        if cancelled == Some(1.0) && in_flight == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cancelled {cancelled:?}, in flight {in_flight:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
