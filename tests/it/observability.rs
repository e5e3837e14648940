//! Metrics, health and traces as an SRE sees them.

use crate::support;

use std::{net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use prost::Message;
use sealgate::proxy::server::Drained;
use support::net::{Client, FakeUpstream, Gateway, Reply, config_text, parse_config};
use temporalio_protos::temporal::api::{
    common::v1::{Payload, Payloads},
    workflowservice::v1::{StartWorkflowExecutionRequest, StartWorkflowExecutionResponse},
};

const START: &str = "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution";

pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "admin")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The value of the first sample whose line contains every `needle`.
pub(crate) fn sample(text: &str, name: &str, needles: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn start_request(i: usize) -> Vec<u8> {
    StartWorkflowExecutionRequest {
        workflow_id: format!("wf-{i}"),
        input: Some(Payloads {
            payloads: vec![Payload {
                metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
                data: format!("\"{}\"", "x".repeat(300)).into_bytes(),
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test]
async fn metrics_move_by_the_right_amounts_and_health_follows_the_upstream() {
    let mut up = FakeUpstream::start(|_| {
        Reply::message(StartWorkflowExecutionResponse::default().encode_to_vec())
    })
    .await;
    let g = Gateway::start(parse_config(&config_text(up.addr, ""))).await;
    let admin = g.admin_addr.unwrap();
    assert_eq!(get(admin, "/live").await.0, 200);
    assert_eq!(get(admin, "/ready").await.0, 200);

    let client = Client::connect(g.addr).await;
    for i in 0..3 {
        assert_eq!(
            client
                .call(START, &start_request(i), &[], false)
                .await
                .status(),
            0
        );
    }
    assert_eq!(
        client
            .call("/not.Allowed/Call", b"", &[], false)
            .await
            .status(),
        12
    );

    let (status, text) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    let calls = |code: &str, method: &str| {
        sample(
            &text,
            "sealgate_calls_total",
            &[&format!("code=\"{code}\""), &format!("method=\"{method}\"")],
        )
    };
    assert_eq!(calls("0", "StartWorkflowExecution"), Some(3.0), "{text}");
    assert_eq!(calls("12", "other"), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "sealgate_payloads_total",
            &["direction=\"encode\"", "result=\"encoded\""]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "sealgate_key_operations_total",
            &["key_id=\"k1\"", "operation=\"encrypt\""]
        ),
        Some(3.0)
    );
    // Static keys: the envelope counters exist and stay at zero.
    assert_eq!(
        sample(
            &text,
            "sealgate_kms_calls_total",
            &["operation=\"wrap\"", "result=\"ok\""]
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sealgate_dek_cache_total", &["result=\"miss\""]),
        Some(0.0)
    );
    let before = sample(
        &text,
        "sealgate_payload_bytes",
        &["direction=\"encode\"", "stage=\"before\""],
    )
    .unwrap();
    let after = sample(
        &text,
        "sealgate_payload_bytes",
        &["direction=\"encode\"", "stage=\"after\""],
    )
    .unwrap();
    assert!(after < before, "300 x's compress: {before} -> {after}");
    assert_eq!(
        sample(
            &text,
            "sealgate_call_duration_seconds_count",
            &["method=\"StartWorkflowExecution\""]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "sealgate_upstream_duration_seconds_count",
            &["StartWorkflowExecution"]
        ),
        Some(3.0)
    );
    assert!(
        sample(
            &text,
            "sealgate_codec_duration_seconds_count",
            &["direction=\"encode\""]
        )
        .unwrap()
            >= 3.0
    );
    assert!(
        sample(
            &text,
            "sealgate_codec_duration_seconds_count",
            &["direction=\"decode\""]
        )
        .unwrap()
            >= 3.0
    );
    assert_eq!(sample(&text, "sealgate_calls_in_flight", &[]), Some(0.0));
    // Counted per service, up at the start and down at the end.
    assert_eq!(
        sample(
            &text,
            "sealgate_calls_in_flight",
            &["service=\"temporal.api.workflowservice.v1.WorkflowService\""]
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "sealgate_schema_info", &["api=\"temporalio-protos"]),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "sealgate_upstream_connects_total",
            &["result=\"ok\""]
        )
        .unwrap()
            >= 1.0
    );
    assert!(!text.contains("wf-0"), "no workflow ids in labels");

    // Not ready while the upstream is down, ready again after.
    up.stop().await;
    let (status, body) = get(admin, "/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&up.addr.to_string()), "{body}");
    up.restart().await;
    let mut ready = false;
    for _ in 0..50 {
        if get(admin, "/ready").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready);
}

mod otlp {
    use std::sync::{Arc, Mutex};

    use opentelemetry_proto::tonic::collector::{
        metrics::v1::{
            ExportMetricsServiceRequest, ExportMetricsServiceResponse,
            metrics_service_server::{MetricsService, MetricsServiceServer},
        },
        trace::v1::{
            ExportTraceServiceRequest, ExportTraceServiceResponse,
            trace_service_server::{TraceService, TraceServiceServer},
        },
    };

    /// An OTLP receiver (the collector's TraceService and MetricsService)
    /// that keeps what it gets.
    #[derive(Clone, Default)]
    pub(crate) struct Receiver(
        pub(crate) Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
        pub(crate) Arc<Mutex<Vec<ExportMetricsServiceRequest>>>,
    );

    #[tonic::async_trait]
    impl MetricsService for Receiver {
        async fn export(
            &self,
            request: tonic::Request<ExportMetricsServiceRequest>,
        ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
            self.1.lock().unwrap().push(request.into_inner());
            Ok(tonic::Response::new(ExportMetricsServiceResponse {
                partial_success: None,
            }))
        }
    }

    #[tonic::async_trait]
    impl TraceService for Receiver {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            self.0.lock().unwrap().push(request.into_inner());
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: None,
            }))
        }
    }

    pub(crate) async fn start() -> (std::net::SocketAddr, Receiver) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let receiver = Receiver::default();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver.clone()))
                .add_service(MetricsServiceServer::new(receiver.clone()))
                .serve(addr),
        );
        // Wait until it accepts connections.
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        (addr, receiver)
    }
}

/// Kills the child if the test fails half-way.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn spans_continue_the_callers_trace_and_reach_an_otlp_collector() {
    let up = FakeUpstream::start(|_| {
        Reply::message(StartWorkflowExecutionResponse::default().encode_to_vec())
    })
    .await;
    let (collector, receiver) = otlp::start().await;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("otlp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_, key) = sealgate::keys::generate("key").unwrap();
    let key = key.as_str();
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\nupstream = \"http://{}\"\n\
         [telemetry]\nadmin_listen = \"off\"\notlp_endpoint = \"http://{collector}\"\n\
         [codec]\nactive_key = \"k1\"\n[[codec.keys]]\nid = \"k1\"\nmaterial = \"{key}\"\n",
        up.addr
    );
    let path = dir.join("sealgate.toml");
    std::fs::write(&path, config).unwrap();
    let log = std::fs::File::create(dir.join("sealgate.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let child = Reaper(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent}-01");
    let client = Client::connect(addr).await;
    let a = client
        .call(
            START,
            &start_request(1),
            &[
                ("traceparent", &traceparent),
                ("temporal-namespace", "default"),
            ],
            false,
        )
        .await;
    assert_eq!(a.status(), 0);
    // Upstream got our span as the parent, in the caller's trace.
    let sent = up.last().headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(sent.starts_with(&format!("00-{trace_id}-")), "{sent}");
    assert!(
        !sent.contains(parent),
        "sealgate's own span is the upstream's parent: {sent}"
    );

    // SIGTERM flushes the batch of spans.
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let mut spans = Vec::new();
    for _ in 0..200 {
        spans = receiver
            .0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_spans.iter())
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.iter().cloned())
            .collect::<Vec<_>>();
        if !spans.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let span = spans
        .iter()
        .find(|s| s.name.ends_with("StartWorkflowExecution"))
        .unwrap_or_else(|| {
            panic!(
                "no call span among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    assert_eq!(hex(&span.trace_id), trace_id);
    assert_eq!(hex(&span.parent_span_id), parent);
    assert!(
        sent.contains(&hex(&span.span_id)),
        "upstream parent is this span"
    );
    let attr = |k: &str| {
        span.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default()
    };
    assert!(attr("rpc.method").contains("StartWorkflowExecution"));
    assert!(attr("namespace").contains("default"));
    assert!(attr("rpc.grpc.status_code").contains('0'));
    assert!(attr("payloads").contains('1'), "{}", attr("payloads"));
    // Metrics went out over OTLP too (flushed at shutdown).
    let mut names = Vec::new();
    for _ in 0..100 {
        names = receiver
            .1
            .lock()
            .unwrap()
            .iter()
            .flat_map(|r| r.resource_metrics.iter())
            .flat_map(|rm| rm.scope_metrics.iter())
            .flat_map(|sm| sm.metrics.iter().map(|m| m.name.clone()))
            .collect::<Vec<_>>();
        if names.iter().any(|n| n == "sealgate.calls") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        names.iter().any(|n| n == "sealgate.calls"),
        "OTLP metrics: {names:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// On SIGTERM, sealgate first says it is going away, while it still
/// serves: `/ready` answers 503 and the gRPC health service NOT_SERVING
/// (answered by sealgate, not forwarded), for `shutdown_delay`; then it
/// drains, and `/ready` stays 503 until the end.
#[tokio::test]
async fn shutting_down_reports_not_serving_before_the_drain() {
    let up = FakeUpstream::start(|_| Reply::message(vec![0x08, 0x01])).await;
    let extra = "[proxy]\nshutdown_delay = \"1s\"\nshutdown_grace = \"2s\"\n";
    let mut g = Gateway::start(parse_config(&config_text(up.addr, extra))).await;
    let admin = g.admin_addr.unwrap();
    let client = Client::connect(g.addr).await;
    const CHECK: &str = "/grpc.health.v1.Health/Check";
    // Serving: health comes from the upstream (SERVING = 1).
    let a = client.call(CHECK, &[], &[], false).await;
    assert_eq!((a.status(), &a.message()[..]), (0, &[0x08, 0x01][..]));
    assert_eq!(get(admin, "/ready").await.0, 200);
    let forwarded = up.requests().len();

    g.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, body) = get(admin, "/ready").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("shutting down"), "{body}");
    // NOT_SERVING = 2, from sealgate itself; still serving calls.
    let a = client.call(CHECK, &[], &[], false).await;
    assert_eq!((a.status(), &a.message()[..]), (0, &[0x08, 0x02][..]));
    assert_eq!(up.requests().len(), forwarded, "not asked upstream");
    let a = client.call(START, &start_request(9), &[], false).await;
    assert_eq!(a.status(), 0, "{}", a.grpc_message());
    let fresh = Client::connect(g.addr).await;
    let a = fresh.call(CHECK, &[], &[], false).await;
    assert_eq!(
        a.status(),
        0,
        "new connections are still served during the delay"
    );
    assert_eq!(g.shutdown().await, Drained::Clean);
}
