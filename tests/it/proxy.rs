//! The data plane against an in-process fake upstream that records the exact
//! bytes it receives.

use crate::support;

use std::{sync::Arc, time::Duration};

use prost::Message;
use sealgate::{codec::Session, proxy::server::Drained, rewrite::rewrite, schema::Schema};
use support::{
    contains,
    generate::{CANARY, Gen, Options},
    net::{Client, FakeUpstream, Gateway, Reply, config_text, parse_config},
};
use temporalio_protos::temporal::api::{
    common::v1::{Payload, Payloads, WorkflowExecution, WorkflowType},
    errordetails::v1::QueryFailedFailure,
    failure::v1::Failure,
    query::v1::WorkflowQuery,
    workflowservice::v1::{
        QueryWorkflowRequest, QueryWorkflowResponse, StartWorkflowExecutionRequest,
        StartWorkflowExecutionResponse,
    },
};

const WS: &str = "/temporal.api.workflowservice.v1.WorkflowService/";

fn json(data: &str) -> Payload {
    Payload {
        metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
        data: data.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn start_request(secret: &str) -> Vec<u8> {
    StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: "wf-1".into(),
        workflow_type: Some(WorkflowType {
            name: "Greet".into(),
        }),
        input: Some(Payloads {
            payloads: vec![json(&format!("\"{secret}\""))],
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn start_response() -> Vec<u8> {
    StartWorkflowExecutionResponse {
        run_id: "run-1".into(),
        started: true,
        ..Default::default()
    }
    .encode_to_vec()
}

/// A gateway in front of a fake upstream, plus the codec chain both share.
struct Rig {
    upstream: FakeUpstream,
    gateway: Gateway,
    client: Client,
    chain: Arc<Session>,
    schema: Schema,
}

async fn rig_with(
    extra: &str,
    handler: impl Fn(&support::net::Recorded) -> Reply + Send + Sync + 'static,
) -> Rig {
    let upstream = FakeUpstream::start(handler).await;
    let config = parse_config(&config_text(upstream.addr, extra));
    let chain = Arc::new(sealgate::pipeline(&config.codec).unwrap().session(""));
    let gateway = Gateway::start(config).await;
    let client = Client::connect(gateway.addr).await;
    Rig {
        upstream,
        gateway,
        client,
        chain,
        schema: Schema::embedded().unwrap(),
    }
}

async fn rig(handler: impl Fn(&support::net::Recorded) -> Reply + Send + Sync + 'static) -> Rig {
    rig_with("", handler).await
}

impl Rig {
    fn id(&self, ty: &str) -> sealgate::schema::MessageId {
        self.schema.message_id(ty).unwrap()
    }

    /// What the worker sent, recovered from what the upstream received.
    fn decode(&self, ty: &str, bytes: &[u8]) -> Vec<u8> {
        rewrite(&self.schema, self.id(ty), bytes, &mut self.chain.decoder())
            .unwrap()
            .into_owned()
    }

    fn encode(&self, ty: &str, bytes: &[u8]) -> Vec<u8> {
        rewrite(&self.schema, self.id(ty), bytes, &mut self.chain.encoder())
            .unwrap()
            .into_owned()
    }

    /// A start call that must succeed: the proxy is still serving.
    async fn still_serving(&self) {
        let a = self
            .client
            .call(
                &format!("{WS}StartWorkflowExecution"),
                &start_request("ok"),
                &[],
                false,
            )
            .await;
        assert_eq!(a.status(), 0, "{}", a.grpc_message());
    }
}

#[tokio::test]
async fn start_workflow_reaches_upstream_encrypted_and_metadata_is_forwarded() {
    let r = rig(|_| Reply::message(start_response())).await;
    let request = start_request("card 4111-1111");
    let a = r
        .client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &request,
            &[
                ("temporal-namespace", "default"),
                ("client-name", "temporal-python"),
                ("client-version", "1.35.0"),
                ("x-custom", "kept"),
                ("authorization", "Bearer worker-credential"),
                ("grpc-timeout", "5S"),
            ],
            false,
        )
        .await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(a.message().as_ref(), start_response().as_slice());

    let seen = r.upstream.last();
    assert_eq!(seen.path, format!("{WS}StartWorkflowExecution"));
    assert!(
        !contains(&seen.body, b"4111"),
        "plaintext reached the upstream"
    );
    let on_wire = seen.message();
    let stored = StartWorkflowExecutionRequest::decode(on_wire.as_ref()).unwrap();
    assert_eq!(
        stored.input.unwrap().payloads[0].metadata["encoding"],
        b"binary/encrypted"
    );
    assert_eq!(
        r.decode(
            "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest",
            &on_wire
        ),
        request
    );
    for (h, v) in [
        ("temporal-namespace", "default"),
        ("client-name", "temporal-python"),
        ("client-version", "1.35.0"),
        ("x-custom", "kept"),
        ("grpc-timeout", "5S"),
        ("te", "trailers"),
    ] {
        assert_eq!(
            seen.headers.get(h).map(|v| v.to_str().unwrap()),
            Some(v),
            "{h}"
        );
    }
    assert!(
        seen.headers.get("authorization").is_none(),
        "caller credentials must not go upstream"
    );
}

#[tokio::test]
async fn every_method_round_trips_with_no_canary_upstream() {
    // Each WorkflowService method: a generated request with canaries on every
    // payload path goes up; the upstream answers a generated response it
    // encoded with the same keys; the worker gets the plaintext back.
    let schema = Schema::embedded().unwrap();
    let pool = support::pool();
    let mut methods: Vec<(String, String, String)> = schema
        .methods()
        .filter(|m| &*m.service == sealgate::schema::WORKFLOW_SERVICE)
        .map(|m| {
            (
                m.path.to_string(),
                schema.message(m.input).name().to_string(),
                schema.message(m.output).name().to_string(),
            )
        })
        .collect();
    // A stable order, so each method gets the same seed every run.
    methods.sort();
    let responses: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>> =
        Arc::default();
    let replies = responses.clone();
    let r = rig(move |rec| Reply::message(replies.lock().unwrap()[&rec.path].clone())).await;
    let opts = Options {
        max_depth: 4,
        ..Options::default()
    };
    // Requests carry no unknown fields: those are refused (tested apart).
    let request_opts = Options {
        unknown_chance: 0,
        ..opts
    };
    for (i, (path, input, output)) in methods.iter().enumerate() {
        let req = Gen::new(&pool, i as u64, request_opts).message(input);
        let resp = Gen::new(&pool, 1000 + i as u64, opts).message(output);
        responses
            .lock()
            .unwrap()
            .insert(path.clone(), r.encode(output, &resp.bytes));
        let a = r.client.call(path, &req.bytes, &[], i % 2 == 0).await;
        assert_eq!(a.status(), 0, "{path}: {}", a.grpc_message());
        let seen = r.upstream.last();
        assert!(
            !contains(&seen.body, CANARY),
            "{path}: canary on the upstream wire"
        );
        assert_eq!(
            r.decode(input, &seen.message()),
            req.bytes,
            "{path}: request"
        );
        assert_eq!(
            a.message().as_ref(),
            resp.bytes.as_slice(),
            "{path}: response"
        );
    }
}

#[tokio::test]
async fn gzip_requests_and_responses() {
    let r = rig(|_| Reply {
        gzip: true,
        ..Reply::message(start_response())
    })
    .await;
    let request = start_request("gzipped secret");
    let a = r
        .client
        .call(&format!("{WS}StartWorkflowExecution"), &request, &[], true)
        .await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(a.message().as_ref(), start_response().as_slice());
    let seen = r.upstream.last();
    assert!(!contains(&seen.body, b"gzipped secret"));
    assert_eq!(
        r.decode(
            "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest",
            &seen.message()
        ),
        request
    );
}

/// A failed query's status: google.rpc.Status { code 3, message,
/// details: [Any(QueryFailedFailure { failure })] }.
fn query_failed_status(message: &str, failure: Failure) -> Vec<u8> {
    let failure = QueryFailedFailure {
        failure: Some(failure),
    }
    .encode_to_vec();
    let mut any = Vec::new();
    support::generate::len_field(
        1,
        b"type.googleapis.com/temporal.api.errordetails.v1.QueryFailedFailure",
        &mut any,
    );
    support::generate::len_field(2, &failure, &mut any);
    let mut status = vec![0x08, 0x03]; // code = 3
    support::generate::len_field(2, message.as_bytes(), &mut status);
    support::generate::len_field(3, &any, &mut status);
    status
}

#[tokio::test]
async fn query_results_and_status_details_are_decoded() {
    let ty = "temporal.api.workflowservice.v1.QueryWorkflowResponse";
    let schema = Schema::embedded().unwrap();
    let response = QueryWorkflowResponse {
        query_result: Some(Payloads {
            payloads: vec![json("\"the answer\"")],
        }),
        ..Default::default()
    }
    .encode_to_vec();
    let status = query_failed_status(
        "query failed",
        Failure {
            message: "query failed".into(),
            encoded_attributes: Some(json("{\"detail\":\"secret detail\"}")),
            ..Default::default()
        },
    );
    let status_plain = status.clone();

    let upstream_chain: Arc<std::sync::Mutex<Option<Arc<Session>>>> = Arc::default();
    let chain_slot = upstream_chain.clone();
    let r = rig(move |rec| {
        let chain = chain_slot.lock().unwrap().clone().unwrap();
        let schema = Schema::embedded().unwrap();
        let enc = |ty: &str, b: &[u8]| {
            rewrite(
                &schema,
                schema.message_id(ty).unwrap(),
                b,
                &mut chain.encoder(),
            )
            .unwrap()
            .into_owned()
        };
        let q = QueryWorkflowRequest::decode(rec.message()).unwrap();
        let qt = q.query.unwrap().query_type;
        if qt == "encoded" {
            // What the server answers for a query whose failure sealgate
            // encoded on the worker's side: error_message "Encoded failure".
            // As sealgate makes it from a bare error_message (source "sealgate").
            let st = query_failed_status(
                "Encoded failure",
                Failure {
                    message: "handler said: card 4111".into(),
                    source: "sealgate".into(),
                    ..Default::default()
                },
            );
            let details = enc("google.rpc.Status", &st);
            assert!(
                !details.windows(4).any(|w| w == b"4111"),
                "encoded upstream"
            );
            let b64 =
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, details);
            return Reply {
                trailers_only: Some(vec![
                    ("grpc-status", "3".into()),
                    ("grpc-message", "Encoded failure".into()),
                    ("grpc-status-details-bin", b64),
                ]),
                ..Reply::default()
            };
        }
        if qt == "fail" {
            let details = enc("google.rpc.Status", &status);
            let b64 =
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, details);
            Reply {
                trailers_only: Some(vec![
                    ("grpc-status", "3".into()),
                    ("grpc-message", "query failed".into()),
                    ("grpc-status-details-bin", b64),
                ]),
                ..Reply::default()
            }
        } else {
            Reply::message(enc(
                "temporal.api.workflowservice.v1.QueryWorkflowResponse",
                &response,
            ))
        }
    })
    .await;
    *upstream_chain.lock().unwrap() = Some(r.chain.clone());
    let query = |t: &str| {
        QueryWorkflowRequest {
            namespace: "default".into(),
            execution: Some(WorkflowExecution {
                workflow_id: "wf-1".into(),
                run_id: String::new(),
            }),
            query: Some(WorkflowQuery {
                query_type: t.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let ok = r
        .client
        .call(&format!("{WS}QueryWorkflow"), &query("state"), &[], false)
        .await;
    assert_eq!(ok.status(), 0);
    let got = QueryWorkflowResponse::decode(ok.message()).unwrap();
    assert_eq!(
        got.query_result.unwrap().payloads[0].data,
        b"\"the answer\""
    );
    let _ = (ty, schema);

    // Trailers-only error: status and message pass back, details decoded.
    let failed = r
        .client
        .call(&format!("{WS}QueryWorkflow"), &query("fail"), &[], false)
        .await;
    assert_eq!(failed.status(), 3);
    assert_eq!(failed.grpc_message(), "query failed");
    assert!(failed.messages.is_empty());
    let details = failed.header("grpc-status-details-bin").unwrap().as_bytes();
    let details =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD_NO_PAD, details).unwrap();
    assert_eq!(
        details, status_plain,
        "details come back as the server's plaintext"
    );

    // A failure whose text sealgate encoded: the caller reads it back in
    // grpc-message too (grpc-java and grpc-go report that string).
    let encoded = r
        .client
        .call(&format!("{WS}QueryWorkflow"), &query("encoded"), &[], false)
        .await;
    assert_eq!(encoded.status(), 3);
    assert_eq!(encoded.grpc_message(), "handler said: card 4111");
    // ...and in the details' own message, which grpc-go reports instead.
    let details = encoded
        .header("grpc-status-details-bin")
        .unwrap()
        .as_bytes();
    let details =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD_NO_PAD, details).unwrap();
    assert_eq!(
        sealgate::rewrite::top_level_string(&details, 2),
        Some("handler said: card 4111")
    );
    // The failure sealgate made is gone again: an empty QueryFailedFailure,
    // as the SDK (which sent only error_message) would have it.
    let mut empty_any = Vec::new();
    support::generate::len_field(
        1,
        b"type.googleapis.com/temporal.api.errordetails.v1.QueryFailedFailure",
        &mut empty_any,
    );
    let mut want = Vec::new();
    support::generate::len_field(3, &empty_any, &mut want);
    assert!(details.ends_with(&want), "{details:?}");
}

#[tokio::test]
async fn deadlines_are_forwarded_and_enforced() {
    let r = rig(|_| Reply {
        delay: Duration::from_secs(3),
        ..Reply::message(start_response())
    })
    .await;
    let started = std::time::Instant::now();
    let a = r
        .client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &start_request("x"),
            &[("grpc-timeout", "300m")],
            false,
        )
        .await;
    assert_eq!(a.status(), 4, "DEADLINE_EXCEEDED: {}", a.grpc_message());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.upstream.last().headers["grpc-timeout"], "300m");
}

#[tokio::test]
async fn upstream_down_then_up_without_restarting_the_gateway() {
    let mut r = rig(|_| Reply::message(start_response())).await;
    r.still_serving().await;
    r.upstream.stop().await;
    let a = r
        .client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &start_request("x"),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 14, "UNAVAILABLE: {}", a.grpc_message());
    assert!(
        a.grpc_message().contains(&r.upstream.addr.to_string()),
        "names the upstream: {}",
        a.grpc_message()
    );
    r.upstream.restart().await;
    // Every pooled connection re-dials on its next use.
    for _ in 0..8 {
        r.still_serving().await;
    }
}

#[tokio::test]
async fn oversize_messages_are_resource_exhausted() {
    let r = rig_with("[proxy]\nmax_message_bytes = 4096\n", |_| {
        Reply::message(start_response())
    })
    .await;
    let a = r
        .client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &start_request(&"x".repeat(10_000)),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 8, "RESOURCE_EXHAUSTED: {}", a.grpc_message());
    assert!(a.grpc_message().contains("4096"), "{}", a.grpc_message());
    assert!(r.upstream.requests().is_empty());
    r.still_serving().await;
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument_and_never_forwarded() {
    let r = rig(|_| Reply::message(start_response())).await;
    let path = format!("{WS}StartWorkflowExecution");
    // Truncated protobuf.
    let a = r.client.call(&path, &[0x2a, 0x10, 0x01], &[], false).await;
    assert_eq!(a.status(), 3, "{}", a.grpc_message());
    assert!(
        a.grpc_message().contains("StartWorkflowExecutionRequest"),
        "{}",
        a.grpc_message()
    );
    // A payload field holding something that is not a Payload: fail closed.
    let mut bad = Vec::new();
    support::generate::len_field(1, &[0x0a, 0x05, 0x01], &mut bad); // Payloads.payloads = garbage
    let mut msg = Vec::new();
    support::generate::len_field(5, &bad, &mut msg);
    let a = r.client.call(&path, &msg, &[], false).await;
    assert_eq!(a.status(), 3, "{}", a.grpc_message());
    // Broken framing.
    let a = r
        .client
        .call_raw(
            &path,
            bytes::Bytes::from_static(&[0, 0, 0, 0, 9, 1]),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 3, "{}", a.grpc_message());
    // Compressed flag without an encoding.
    let a = r
        .client
        .call_raw(
            &path,
            bytes::Bytes::from_static(&[1, 0, 0, 0, 1, 0]),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 3, "{}", a.grpc_message());
    assert!(
        r.upstream.requests().is_empty(),
        "nothing malformed was forwarded"
    );
    r.still_serving().await;
}

#[tokio::test]
async fn other_services_stream_through_and_unknown_ones_are_refused() {
    let r = rig(|rec| Reply::message(rec.body.slice(5..))).await;
    // OperatorService is allowed and passed through byte for byte.
    let body = b"\x0a\x07default\x98\x01\x00".to_vec(); // includes an unknown varint field
    let a = r
        .client
        .call(
            "/temporal.api.operatorservice.v1.OperatorService/ListSearchAttributes",
            &body,
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 0);
    assert_eq!(a.message().as_ref(), body.as_slice());
    assert_eq!(&r.upstream.last().body[5..], body.as_slice());
    // Health too.
    let a = r
        .client
        .call("/grpc.health.v1.Health/Check", b"", &[], false)
        .await;
    assert_eq!(a.status(), 0);
    // Not on the allowlist.
    let a = r
        .client
        .call("/some.other.Service/Do", b"", &[], false)
        .await;
    assert_eq!(a.status(), 12, "UNIMPLEMENTED: {}", a.grpc_message());
    assert!(a.grpc_message().contains("some.other.Service"));
    assert_eq!(r.upstream.requests().len(), 2);
}

#[tokio::test]
async fn unknown_fields_survive_both_ways() {
    let reply = |_: &support::net::Recorded| {
        let mut resp = start_response();
        resp.extend_from_slice(b"\xc2\x3e\x03new"); // field 1000, from a newer server
        Reply::message(resp)
    };
    let mut request = start_request("x");
    request.extend_from_slice(b"\xc2\x3e\x06future"); // field 1000, from a newer SDK
    // By default a request field the schema lacks is refused: it could
    // carry a payload sealgate cannot see.
    let strict = rig(reply).await;
    let a = strict
        .client
        .call(&format!("{WS}StartWorkflowExecution"), &request, &[], false)
        .await;
    assert_eq!(a.status(), 12, "{}", a.grpc_message());
    assert!(
        a.grpc_message().contains(
            "field 1000 of temporal.api.workflowservice.v1.StartWorkflowExecutionRequest"
        ) && a.grpc_message().contains("unknown_request_fields"),
        "{}",
        a.grpc_message()
    );
    assert!(strict.upstream.requests().is_empty());
    // Forwarded when the operator says so; responses keep theirs either way.
    let r = rig_with("[schema]\nunknown_request_fields = \"forward\"\n", reply).await;
    let a = r
        .client
        .call(&format!("{WS}StartWorkflowExecution"), &request, &[], false)
        .await;
    assert!(a.message().ends_with(b"\xc2\x3e\x03new"));
    let seen = r.upstream.last().message();
    assert!(seen.ends_with(b"\xc2\x3e\x06future"));
    assert_eq!(
        r.decode(
            "temporal.api.workflowservice.v1.StartWorkflowExecutionRequest",
            &seen
        ),
        request
    );
    // The response's unknown field passed, and was counted (the first
    // response is always audited).
    let admin = r.gateway.admin_addr.unwrap();
    let (_, text) = crate::observability::get(admin, "/metrics").await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("sealgate_unknown_fields_total{")
                && l.contains("action=\"passed\"")
                && l.contains("StartWorkflowExecutionResponse")),
        "{text}"
    );
}

#[tokio::test]
async fn a_thousand_concurrent_calls() {
    concurrent_calls("").await;
}

#[tokio::test]
async fn a_thousand_concurrent_calls_on_three_per_core_threads() {
    concurrent_calls("[proxy]\nthreads = 3\n[upstream_options]\nconnections = 1\n").await;
}

#[tokio::test]
async fn a_thousand_concurrent_calls_on_the_work_stealing_runtime() {
    concurrent_calls("[proxy]\nruntime = \"work-stealing\"\n").await;
}

#[tokio::test]
async fn connections_go_to_the_least_loaded_thread_which_dials_its_own_upstream() {
    let r = rig_with(
        "[proxy]\nthreads = 2\n[upstream_options]\nconnections = 1\n",
        |_| Reply::message(start_response()),
    )
    .await;
    let second = Client::connect(r.gateway.addr).await;
    for client in [&r.client, &second] {
        let a = client
            .call(
                &format!("{WS}StartWorkflowExecution"),
                &start_request("x"),
                &[],
                false,
            )
            .await;
        assert_eq!(a.status(), 0, "{}", a.grpc_message());
    }
    // One client connection per thread, so each thread opened its own
    // upstream connection: the calls never crossed threads.
    assert_eq!(r.gateway.app.upstream().open_connections(), 2);
}

/// 1,000 calls over three connections, each answered with its own id.
async fn concurrent_calls(extra: &str) {
    let r = rig_with(extra, |rec| {
        // Echo the workflow id back as the run id, so answers are matched.
        let req = StartWorkflowExecutionRequest::decode(rec.message()).unwrap();
        Reply::message(
            StartWorkflowExecutionResponse {
                run_id: req.workflow_id,
                ..Default::default()
            }
            .encode_to_vec(),
        )
    })
    .await;
    let clients = [
        r.client.clone(),
        Client::connect(r.gateway.addr).await,
        Client::connect(r.gateway.addr).await,
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000 {
        let client = clients[i % clients.len()].clone();
        tasks.spawn(async move {
            let req = StartWorkflowExecutionRequest {
                workflow_id: format!("wf-{i}"),
                input: Some(Payloads {
                    payloads: vec![json(&format!("\"secret {i}\""))],
                }),
                ..Default::default()
            };
            let a = client
                .call(
                    &format!("{WS}StartWorkflowExecution"),
                    &req.encode_to_vec(),
                    &[],
                    i % 3 == 0,
                )
                .await;
            assert_eq!(a.status(), 0, "{}", a.grpc_message());
            let resp = StartWorkflowExecutionResponse::decode(a.message()).unwrap();
            assert_eq!(resp.run_id, format!("wf-{i}"));
        });
    }
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(res) = tasks.join_next().await {
            res.unwrap();
        }
    })
    .await;
    assert!(done.is_ok(), "1000 calls did not finish in 60 s");
    assert_eq!(r.upstream.requests().len(), 1000);
    assert!(
        r.upstream
            .requests()
            .iter()
            .all(|s| !contains(&s.body, b"secret"))
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_calls_finish() {
    let mut r = rig_with("[proxy]\nshutdown_grace = \"5s\"\n", |_| Reply {
        delay: Duration::from_millis(700),
        ..Reply::message(start_response())
    })
    .await;
    let client = r.client.clone();
    let call = tokio::spawn(async move {
        client
            .call(
                &format!("{WS}StartWorkflowExecution"),
                &start_request("x"),
                &[],
                false,
            )
            .await
    });
    // Let the call reach the upstream, then ask the gateway to stop.
    tokio::time::timeout(Duration::from_secs(5), async {
        while r.upstream.requests().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let drained = r.gateway.shutdown().await;
    let a = call.await.unwrap();
    assert_eq!(
        a.status(),
        0,
        "in-flight call finished: {}",
        a.grpc_message()
    );
    assert_eq!(drained, Drained::Clean);
    assert!(
        tokio::net::TcpStream::connect(r.gateway.addr)
            .await
            .is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn plain_http_answers_become_clear_grpc_statuses() {
    let r = rig(|rec| {
        let start = StartWorkflowExecutionRequest::decode(rec.message()).unwrap();
        let (status, text) = match start.workflow_id.as_str() {
            "401" => (401, "<html>401 Authorization Required</html>"),
            // A hop that echoes the request's headers, credentials included.
            "echo" => (502, "authorization: Bearer upstream-secret-key"),
            _ => (
                400,
                "<html><center>No required SSL certificate was sent</center></html>",
            ),
        };
        Reply {
            http_error: Some((status, text)),
            ..Reply::default()
        }
    })
    .await;
    let call = |id: &str| {
        StartWorkflowExecutionRequest {
            workflow_id: id.into(),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let a = r
        .client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &call("401"),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 16, "UNAUTHENTICATED: {}", a.grpc_message());
    assert!(a.grpc_message().contains("api_key"), "{}", a.grpc_message());
    let a = r
        .client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &call("400"),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 13, "{}", a.grpc_message());
    let m = a.grpc_message();
    assert!(
        m.contains("HTTP 400") && m.contains("text/html") && m.contains("TEMPORAL_TLS_CLIENT"),
        "{m}"
    );
    // A body is never quoted back: it may echo the upstream's credentials.
    assert!(!m.contains("No required SSL certificate"), "{m}");
    let a = r
        .client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &call("echo"),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 14, "{}", a.grpc_message());
    assert!(
        !a.grpc_message().contains("upstream-secret-key"),
        "{}",
        a.grpc_message()
    );
}

/// An upstream (raw h2) that refuses its first `refusals` streams with
/// REFUSED_STREAM, then answers each call with an empty gRPC message; the
/// number of requests it saw.
async fn refusing_upstream(
    refusals: usize,
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                // accept() drives the connection: each stream is served on a
                // task of its own.
                while let Some(Ok((req, mut respond))) = conn.accept().await {
                    let n = count.fetch_add(1, SeqCst);
                    if n < refusals {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    tokio::spawn(async move {
                        let mut body = req.into_body();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                        }
                        let resp = http::Response::builder()
                            .header("content-type", "application/grpc")
                            .body(())
                            .unwrap();
                        let mut send = respond.send_response(resp, false).unwrap();
                        send.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), false)
                            .unwrap();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        send.send_trailers(trailers).unwrap();
                    });
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_call_the_upstream_did_not_take_is_sent_again() {
    // Temporal's frontend rotates its connections (GOAWAY every 5 min); a
    // stream it refused or never took is retried once, as grpc-go does.
    let (addr, seen) = refusing_upstream(1).await;
    let gateway = Gateway::start(parse_config(&config_text(addr, ""))).await;
    let client = Client::connect(gateway.addr).await;
    let a = client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &start_request("x"),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
    let admin = gateway.admin_addr.unwrap();
    let (_, text) = crate::observability::get(admin, "/metrics").await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("sealgate_upstream_retries_total{") && l.ends_with(" 1")),
        "{text}"
    );
    // Only once: a second refusal is the caller's UNAVAILABLE.
    let (addr, seen) = refusing_upstream(2).await;
    let gateway = Gateway::start(parse_config(&config_text(addr, ""))).await;
    let client = Client::connect(gateway.addr).await;
    let a = client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &start_request("x"),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 14, "{}", a.grpc_message());
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
}

/// The upstream, its API key and gRPC metadata can come from Temporal's
/// own client config (a temporal.toml profile): every call carries them.
#[tokio::test]
async fn a_temporal_toml_profile_is_the_upstream_with_its_key_and_metadata() {
    let up = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("temporal-profile-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let profiles = d.join("temporal.toml");
    std::fs::write(
        &profiles,
        format!(
            "[profile.staging]\naddress = \"{}\"\napi_key = \"profile-api-key\"\n\
             [profile.staging.tls]\ndisabled = true\n[profile.staging.grpc_meta]\nX_Team = \"payments\"\n",
            up.addr
        ),
    )
    .unwrap();
    let (_, key) = sealgate::keys::generate("key").unwrap();
    let text = format!(
        "listen = \"127.0.0.1:0\"\n[upstream_options]\nallow_plaintext_credentials = true\n\
         [codec]\nactive_key = \"k1\"\n[[codec.keys]]\nid = \"k1\"\nmaterial = \"{}\"\n\
         [telemetry]\nadmin_listen = \"off\"\n",
        key.as_str()
    );
    let file = profiles.display().to_string();
    let env = move |k: &str| match k {
        "TEMPORAL_CONFIG_FILE" => Some(file.clone()),
        "TEMPORAL_PROFILE" => Some("staging".to_string()),
        _ => None,
    };
    let config =
        sealgate::config::Config::parse(&text, "t.toml", std::path::Path::new("."), &env).unwrap();
    let mut g = Gateway::start(config).await;
    let client = Client::connect(g.addr).await;
    let a = client
        .call(
            &format!("{WS}StartWorkflowExecution"),
            &support::net::start_request("default"),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    let seen = up.last();
    assert_eq!(seen.headers["authorization"], "Bearer profile-api-key");
    assert_eq!(seen.headers["x-team"], "payments");
    g.shutdown().await;
    std::fs::remove_dir_all(&d).unwrap();
}

/// The size guard: a payload over the upstream's payload limit (Temporal
/// Cloud's 2 MiB by default), or a request over its request limit, is
/// refused by sealgate, retryably (RESOURCE_EXHAUSTED), naming the limit
/// and the setting; nothing reaches the server.
#[tokio::test]
async fn payloads_and_requests_over_the_upstreams_limits_never_leave() {
    use temporalio_protos::temporal::api::common::v1::{Memo, Payload, Payloads};
    let up = FakeUpstream::start(|_| Reply::message(Vec::new())).await;
    let extra = "[upstream_options]\nmax_request_bytes = 2500000\n";
    let mut g = Gateway::start(parse_config(&config_text(up.addr, extra))).await;
    let client = Client::connect(g.addr).await;
    let payload = |n: usize| Payload {
        metadata: [("encoding".to_string(), b"binary/plain".to_vec())].into(),
        // Random-looking bytes: snappy cannot shrink them.
        data: (0..n)
            .map(|i| (i * 7919 % 251) as u8 ^ (i >> 8) as u8)
            .collect(),
        ..Default::default()
    };
    let start_with_memo = |sizes: &[usize], memo: Option<usize>| {
        StartWorkflowExecutionRequest {
            namespace: "default".into(),
            workflow_id: "wf".into(),
            input: Some(Payloads {
                payloads: sizes.iter().map(|n| payload(*n)).collect(),
            }),
            memo: memo.map(|n| Memo {
                fields: [("big".to_string(), payload(n))].into(),
            }),
            ..Default::default()
        }
        .encode_to_vec()
    };
    let start = |sizes: &[usize]| start_with_memo(sizes, None);
    let start_path = format!("{WS}StartWorkflowExecution");
    let start_path = start_path.as_str();
    let a = client
        .call(start_path, &start(&[1 << 20]), &[], false)
        .await;
    assert_eq!(a.status(), 0, "1 MiB passes: {}", a.grpc_message());
    let sent = up.requests().len();

    let a = client
        .call(start_path, &start(&[3 << 20]), &[], false)
        .await;
    assert_eq!(a.status(), 8, "{}", a.grpc_message());
    let m = a.grpc_message();
    assert!(m.contains("sealgate did not forward"), "{m}");
    assert!(
        m.contains("max_payload_bytes") && m.contains("2097152"),
        "{m}"
    );
    assert!(m.contains("[external_storage]"), "says what to do: {m}");
    // Two payloads of 1.5 MiB: the list is what the server checks.
    let a = client
        .call(start_path, &start(&[3 << 19, 3 << 19]), &[], false)
        .await;
    assert_eq!(a.status(), 8, "{}", a.grpc_message());
    // Every payload list under the payload limit, the request over this
    // upstream's request limit.
    let a = client
        .call(
            start_path,
            &start_with_memo(&[1_300_000], Some(1_300_000)),
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 8, "{}", a.grpc_message());
    assert!(
        a.grpc_message().contains("max_request_bytes"),
        "{}",
        a.grpc_message()
    );
    assert_eq!(
        up.requests().len(),
        sent,
        "nothing over a limit reached the server"
    );
    g.shutdown().await;
}
