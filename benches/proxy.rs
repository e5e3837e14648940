//! One unary call's latency, direct to a fake upstream vs through sealgate
//! (codec off, and snappy + AES-256-GCM), all in one process and one run.
//!
//! Run: `cargo bench --bench proxy`. Sequential calls on one connection,
//! so this is latency per call, not throughput (that is the load harness's
//! job). Numbers go in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
#[path = "../tests/it/support/net.rs"]
mod net;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use net::{Client, FakeUpstream, Gateway, Reply, parse_config};
use prost::Message;
use temporalio_protos::temporal::api::{
    common::v1::{Payload, Payloads, WorkflowType},
    workflowservice::v1::{StartWorkflowExecutionRequest, StartWorkflowExecutionResponse},
};

const PATH: &str = "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution";

fn request() -> Vec<u8> {
    let unit = b"{\"sku\":\"A-1\",\"qty\":3},";
    let data: Vec<u8> = unit.iter().copied().cycle().take(1024).collect();
    StartWorkflowExecutionRequest {
        namespace: "default".into(),
        workflow_id: "order-1".into(),
        workflow_type: Some(WorkflowType {
            name: "ProcessOrder".into(),
        }),
        input: Some(Payloads {
            payloads: vec![Payload {
                metadata: [("encoding".into(), b"json/plain".to_vec())].into(),
                data,
                ..Default::default()
            }],
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn config(upstream: std::net::SocketAddr, codec: &str) -> String {
    let (_, key) = sealgate::keys::generate("key").unwrap();
    let key = key.as_str();
    format!(
        "listen = \"127.0.0.1:0\"\nupstream = \"http://{upstream}\"\n[telemetry]\nadmin_listen = \"off\"\n[codec]\n{codec}\nactive_key = \"k\"\n[[codec.keys]]\nid = \"k\"\nmaterial = \"{key}\"\n"
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let msg = request();
    let reply = StartWorkflowExecutionResponse {
        run_id: "run".into(),
        started: true,
        ..Default::default()
    }
    .encode_to_vec();
    let (direct, off, on, _keep) = rt.block_on(async {
        let up = FakeUpstream::start(move |_| Reply::message(reply.clone())).await;
        let gw_off = Gateway::start(parse_config(&config(
            up.addr,
            "compression = false\nencryption = false",
        )))
        .await;
        let gw_on = Gateway::start(parse_config(&config(
            up.addr,
            "compression = true\nencryption = true",
        )))
        .await;
        let direct = Client::connect(up.addr).await;
        let off = Client::connect(gw_off.addr).await;
        let on = Client::connect(gw_on.addr).await;
        (direct, off, on, (up, gw_off, gw_on))
    });
    // The fake upstream records every request; keep its memory bounded.
    let mut group = c.benchmark_group("unary_call_1k");
    for (name, client) in [
        ("direct", &direct),
        ("sealgate_codec_off", &off),
        ("sealgate_snappy_aes", &on),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let a = client.call(PATH, &msg, &[], false).await;
                        assert_eq!(a.status(), 0);
                    }
                    start.elapsed()
                })
            })
        });
        _keep.0.seen.lock().unwrap().clear();
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
