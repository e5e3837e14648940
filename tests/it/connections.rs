//! A client connection's life: closed when it never sends a first call or
//! stays idle, and sent away (GOAWAY) at its maximum age without cutting
//! the call in flight.

use crate::support;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use support::net::{
    FakeUpstream, Gateway, RawClient, Reply, config_text, frame_into, parse_config, raw_full,
    raw_request, start_request,
};
use tokio::io::AsyncReadExt;

const START: &str = "/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution";
const GRPC: &[(&str, &[u8])] = &[("content-type", b"application/grpc"), ("te", b"trailers")];

fn framed(m: &[u8]) -> Bytes {
    let mut b = BytesMut::new();
    frame_into(&mut b, m, false);
    b.freeze()
}

async fn gateway(proxy: &str, delay: Duration) -> (FakeUpstream, Gateway) {
    let up = FakeUpstream::start(move |_| Reply {
        delay,
        ..Reply::message(Bytes::new())
    })
    .await;
    let g = Gateway::start(parse_config(&config_text(
        up.addr,
        &format!("[proxy]\n{proxy}"),
    )))
    .await;
    (up, g)
}

/// A start call that must go through.
async fn start_ok(client: &RawClient) {
    let a = client
        .send(raw_request(
            START,
            GRPC,
            raw_full(framed(&start_request("default"))),
        ))
        .await;
    assert_eq!(a.grpc_status().as_deref(), Some("0"), "{a:?}");
}

/// Waits (bounded) for the server to close the client's connection.
async fn goes_away(client: &RawClient, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !client.is_closed() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads until the server closes the socket; `None` if it stays open.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(started + limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue, // SETTINGS, GOAWAY...
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_connection_that_never_calls_is_closed() {
    let (_up, g) = gateway("first_request_timeout = \"300ms\"\n", Duration::ZERO).await;
    // A slowloris: connects and sends nothing at all.
    let mut silent = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(10)).await;
    assert!(took.is_some(), "still open after 10 s");
}

#[tokio::test]
async fn a_connection_that_sends_only_the_http2_preface_is_closed() {
    use tokio::io::AsyncWriteExt;
    let (_up, g) = gateway("first_request_timeout = \"300ms\"\n", Duration::ZERO).await;
    let mut s = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    // The client preface and an empty SETTINGS frame, then no HEADERS.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let took = closed_within(&mut s, Duration::from_secs(10)).await;
    assert!(took.is_some(), "still open after 10 s");
}

#[tokio::test]
async fn a_tls_handshake_that_never_finishes_is_closed() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("conn-tls-{}", std::process::id()));
    let pki = support::pki::generate(&dir, &["localhost"]);
    let up = FakeUpstream::start(|_| Reply::message(Bytes::new())).await;
    let extra = format!(
        "[proxy]\ntls_handshake_timeout = \"300ms\"\nfirst_request_timeout = \"20s\"\n\
         [inbound]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        pki.file("server.pem").display(),
        pki.file("server-key.pem").display(),
    );
    let g = Gateway::start(parse_config(&config_text(up.addr, &extra))).await;
    // Connects, then never sends a ClientHello: the handshake bound (not the
    // 20 s first-call bound) closes it.
    let mut silent = tokio::net::TcpStream::connect(g.addr).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(10)).await;
    let took = took.expect("still open after 10 s");
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
}

#[tokio::test]
async fn an_idle_connection_is_closed_and_a_busy_one_is_not() {
    let (_up, g) = gateway(
        "idle_timeout = \"400ms\"\nfirst_request_timeout = \"400ms\"\n",
        Duration::from_millis(1200),
    )
    .await;
    let client = RawClient::connect(g.addr).await;
    // A call longer than the idle bound: the connection is busy, not idle.
    start_ok(&client).await;
    // Then nothing: the connection goes away.
    goes_away(&client, "idle connection still open").await;
}

#[tokio::test]
async fn at_its_maximum_age_a_connection_gets_goaway_and_its_call_finishes() {
    let (_up, g) = gateway(
        "max_connection_age = \"300ms\"\nmax_connection_age_grace = \"5s\"\n",
        Duration::from_millis(1000),
    )
    .await;
    let client = RawClient::connect(g.addr).await;
    // In flight when the age passes: it still completes.
    start_ok(&client).await;
    goes_away(&client, "no GOAWAY after the maximum age").await;
    // A new connection serves as usual.
    start_ok(&RawClient::connect(g.addr).await).await;
}
