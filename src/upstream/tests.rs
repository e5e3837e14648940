use super::*;

fn kind(e: &(dyn std::error::Error + 'static), tls: bool) -> FailureKind {
    FailureKind::of(e, tls)
}

#[test]
fn the_kind_comes_from_the_error_types_not_their_text() {
    use std::io::{Error, ErrorKind};
    assert_eq!(
        kind(&Error::from(ErrorKind::ConnectionRefused), false),
        FailureKind::Refused
    );
    assert_eq!(
        kind(&Error::from(ErrorKind::ConnectionReset), true),
        FailureKind::Closed
    );
    // tokio-rustls wraps rustls' error in an io::Error.
    let wrapped = |e: rustls::Error| Error::new(ErrorKind::InvalidData, e);
    assert_eq!(
        kind(
            &wrapped(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            )),
            true
        ),
        FailureKind::TlsVerification
    );
    assert_eq!(
        kind(
            &wrapped(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            )),
            true
        ),
        FailureKind::TlsClientCertificate
    );
    assert_eq!(
        kind(
            &wrapped(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            )),
            true
        ),
        FailureKind::WrongScheme
    );
    assert_eq!(
        kind(&wrapped(rustls::Error::DecryptError), true),
        FailureKind::Tls
    );
    // A message that merely mentions a cause is not that cause.
    assert_eq!(
        kind(&Error::other("Connection refused by policy"), false),
        FailureKind::Other
    );
}

#[test]
fn a_tls_server_answering_plaintext_http2_is_the_wrong_scheme() {
    let e = h2::Error::from(h2::Reason::FRAME_SIZE_ERROR);
    assert_eq!(kind(&e, false), FailureKind::WrongScheme);
    assert_eq!(kind(&e, true), FailureKind::Protocol);
}

fn options(keepalive_interval: Duration, keepalive_timeout: Duration) -> UpstreamOptions {
    UpstreamOptions {
        connections: 1,
        connect_timeout: Duration::from_secs(5),
        keepalive_interval,
        keepalive_timeout,
        api_key: None,
        max_payload_bytes: 2 << 20,
        max_request_bytes: 4 << 20,
        grpc_meta: Vec::new(),
        tls: TlsSettings::default(),
        allow_plaintext_credentials: false,
        namespaces: None,
        forward_authorization: false,
    }
}

fn call() -> Request<Bytes> {
    let mut req = Request::new(Bytes::from_static(b"\0\0\0\0\0"));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() =
        Uri::from_static("/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo");
    req
}

/// A peer that accepts TCP connections, reads what comes and never writes:
/// a frontend that hung, or a connection cut by a firewall without a reset.
async fn silent_peer() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut tcp, _)) = listener.accept().await {
            held.push(tokio::spawn(async move {
                let mut sink = [0u8; 4096];
                while tcp.read(&mut sink).await.is_ok_and(|n| n > 0) {}
            }));
        }
    });
    (addr, task)
}

#[tokio::test]
async fn an_upstream_that_stops_answering_is_dropped_after_an_unanswered_ping() {
    let (addr, _peer) = silent_peer().await;
    let address = Address::parse(&format!("http://{addr}")).unwrap();
    let upstream = Upstream::new(
        &address,
        &options(Duration::from_millis(200), Duration::from_millis(300)),
        1,
    )
    .unwrap();
    let started = std::time::Instant::now();
    let sent = tokio::time::timeout(Duration::from_secs(10), upstream.send_unary(5, call)).await;
    let err = sent
        .expect("the keepalive ends the call well within 10 s")
        .expect_err("a silent peer never answers");
    assert!(started.elapsed() >= Duration::from_millis(500), "{err}");
    assert_eq!(err.kind(), FailureKind::Timeout, "{err}");
    assert!(
        err.to_string()
            .contains("no answer to a keepalive PING within 300ms"),
        "{err}"
    );
    assert_eq!(upstream.open_connections(), 0);
    // The call was taken (the peer read it): it is not sent again.
    assert_eq!(upstream.stats().retries.load(Relaxed), 0);
}

#[tokio::test]
async fn a_unary_call_and_a_streamed_call_reach_an_h2_server_whole() {
    // A plain h2 server that echoes each request's body and sends trailers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(tcp).await.unwrap();
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            tokio::spawn(async move {
                let mut body = req.into_body();
                let mut got = Vec::new();
                while let Some(Ok(chunk)) = body.data().await {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    got.extend_from_slice(&chunk);
                }
                let mut send = respond
                    .send_response(http::Response::new(()), false)
                    .unwrap();
                send.send_data(Bytes::from(got), false).unwrap();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", HeaderValue::from_static("0"));
                send.send_trailers(trailers).unwrap();
            });
        }
    });
    let address = Address::parse(&format!("http://{addr}")).unwrap();
    let upstream = Upstream::new(
        &address,
        &options(Duration::from_secs(30), Duration::from_secs(10)),
        1,
    )
    .unwrap();
    // Larger than the 64 KiB initial window h2 servers start with, so the
    // body goes out as the window opens.
    let big = Bytes::from(vec![7u8; 300 << 10]);
    let mut unary = call();
    *unary.body_mut() = big.clone();
    upstream.prepare(&mut unary);
    let resp = upstream
        .send_unary(big.len(), || clone(&unary))
        .await
        .unwrap();
    let whole = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    assert_eq!(whole.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(whole.to_bytes(), big);

    let body = http_body_util::BodyExt::boxed_unsync(Chunks(vec![
        big.slice(100 << 10..),
        big.slice(..100 << 10),
    ]));
    let mut streamed = Request::new(body);
    *streamed.method_mut() = http::Method::POST;
    *streamed.uri_mut() = unary.uri().clone();
    let resp = upstream.send(streamed).await.unwrap();
    let whole = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap();
    assert_eq!(whole.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(whole.to_bytes(), big);
    assert_eq!(upstream.stats().connects.load(Relaxed), 1);
}

fn clone(req: &Request<Bytes>) -> Request<Bytes> {
    let mut up = Request::new(req.body().clone());
    *up.method_mut() = req.method().clone();
    *up.uri_mut() = req.uri().clone();
    up
}

/// A body that yields its chunks (last first) one poll at a time.
struct Chunks(Vec<Bytes>);

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        std::task::Poll::Ready(self.0.pop().map(|c| Ok(http_body::Frame::data(c))))
    }
}

#[tokio::test]
async fn calls_beyond_the_servers_stream_limit_wait_for_a_free_stream() {
    // One stream at a time, each answered after 50 ms.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peak = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let (seen_peak, seen_open) = (peak.clone(), open.clone());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::Builder::new()
            .max_concurrent_streams(1)
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        while let Some(Ok((_req, mut respond))) = conn.accept().await {
            let (peak, open) = (seen_peak.clone(), seen_open.clone());
            tokio::spawn(async move {
                let now = open.fetch_add(1, Relaxed) + 1;
                peak.fetch_max(now, Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
                open.fetch_sub(1, Relaxed);
                let mut head = http::Response::new(());
                head.headers_mut()
                    .insert("grpc-status", HeaderValue::from_static("0"));
                let _ = respond.send_response(head, true);
            });
        }
    });
    let address = Address::parse(&format!("http://{addr}")).unwrap();
    let upstream = Upstream::new(
        &address,
        &options(Duration::from_secs(30), Duration::from_secs(10)),
        1,
    )
    .unwrap();
    let send = || async {
        let mut req = call();
        upstream.prepare(&mut req);
        upstream.send_unary(0, || clone(&req)).await
    };
    let (a, b, c) = tokio::join!(send(), send(), send());
    for r in [a, b, c] {
        assert_eq!(r.unwrap().headers()["grpc-status"], "0");
    }
    assert_eq!(peak.load(Relaxed), 1);
    assert_eq!(upstream.stats().connects.load(Relaxed), 1);
    assert_eq!(upstream.stats().retries.load(Relaxed), 0);
}

/// An h2 server that accepts any number of connections and answers every
/// request at once with `grpc-status: 0`.
async fn answering_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(tcp).await.unwrap();
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    let mut head = http::Response::new(());
                    head.headers_mut()
                        .insert("grpc-status", HeaderValue::from_static("0"));
                    let _ = respond.send_response(head, true);
                }
            });
        }
    });
    addr
}

/// A pool of four connections (one thread) to [`answering_server`].
async fn four_connections_to_an_answering_server() -> Upstream {
    let addr = answering_server().await;
    let address = Address::parse(&format!("http://{addr}")).unwrap();
    Upstream::new(
        &address,
        &UpstreamOptions {
            connections: 4,
            ..options(Duration::from_secs(30), Duration::from_secs(10))
        },
        1,
    )
    .unwrap()
}

#[tokio::test]
async fn consecutive_calls_share_a_connection_in_runs() {
    let upstream = four_connections_to_an_answering_server().await;
    let mut req = call();
    upstream.prepare(&mut req);
    for _ in 0..2 * RUN {
        let resp = upstream.send_unary(0, || clone(&req)).await.unwrap();
        assert_eq!(resp.headers()["grpc-status"], "0");
    }
    // Two runs: two of the four connections dialled.
    assert_eq!(upstream.stats().connects.load(Relaxed), 2);
    for _ in 0..2 * RUN {
        upstream.send_unary(0, || clone(&req)).await.unwrap();
    }
    // Then the other two: every connection gets its share.
    assert_eq!(upstream.stats().connects.load(Relaxed), 4);
    assert_eq!(upstream.open_connections(), 4);
}

#[tokio::test]
async fn large_requests_are_spread_over_the_connections() {
    let upstream = four_connections_to_an_answering_server().await;
    // 60 KiB weighs a run of its own: each call takes the next connection.
    let mut req = call();
    *req.body_mut() = Bytes::from(vec![0u8; 60 << 10]);
    upstream.prepare(&mut req);
    for _ in 0..4 {
        let size = req.body().len();
        upstream.send_unary(size, || clone(&req)).await.unwrap();
    }
    assert_eq!(upstream.stats().connects.load(Relaxed), 4);
}

/// A transport that counts the writes made on it.
struct Counted<T> {
    io: T,
    writes: Arc<AtomicUsize>,
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counted<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Relaxed);
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.writes.fetch_add(1, Relaxed);
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    // As a TCP or TLS stream does.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn requests_queued_together_leave_in_one_write() {
    let (near, far) = tokio::io::duplex(1 << 20);
    let received = Arc::new(AtomicUsize::new(0));
    let seen = received.clone();
    tokio::spawn(async move {
        let mut conn = h2::server::handshake(far).await.unwrap();
        while let Some(Ok((req, mut respond))) = conn.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut body = req.into_body();
                while let Some(Ok(chunk)) = body.data().await {
                    let _ = body.flow_control().release_capacity(chunk.len());
                    seen.fetch_add(chunk.len(), Relaxed);
                }
                let _ = respond.send_response(http::Response::new(()), true);
            });
        }
    });
    let writes = Arc::new(AtomicUsize::new(0));
    let settings = conn::Settings {
        keepalive_interval: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(10),
        tls: false,
        name: "test".into(),
    };
    let io = Counted {
        io: near,
        writes: writes.clone(),
    };
    let mut conn = conn::handshake(io, settings).await.unwrap();
    let head = || {
        Request::post(
            "http://localhost/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo",
        )
        .body(())
        .unwrap()
    };
    // Settle the handshake (SETTINGS and their acknowledgements) first.
    let first = conn.send.send_request(head(), true).unwrap().0;
    first.await.unwrap();
    let before = writes.load(Relaxed);
    // Eight requests of 400 bytes each (a compressed, encrypted 1 KiB
    // start is about that), queued before the connection task runs.
    let mut answers = Vec::new();
    for _ in 0..8 {
        poll_fn(|cx| conn.send.poll_ready(cx)).await.unwrap();
        let (answer, mut body) = conn.send.send_request(head(), false).unwrap();
        body.send_data(Bytes::from(vec![1u8; 400]), true).unwrap();
        answers.push(answer);
    }
    for answer in answers {
        answer.await.unwrap();
    }
    assert_eq!(received.load(Relaxed), 8 * 400);
    let during = writes.load(Relaxed) - before;
    // Chained, each DATA frame would take a write of its own (eight).
    assert!(during <= 2, "{during} writes for eight requests");

    // 48 KiB: three DATA frames of 16 KiB (the server's frame size), each
    // one write (frame header and payload together), not two.
    let before = writes.load(Relaxed);
    poll_fn(|cx| conn.send.poll_ready(cx)).await.unwrap();
    let (answer, mut body) = conn.send.send_request(head(), false).unwrap();
    body.send_data(Bytes::from(vec![2u8; 48 << 10]), true)
        .unwrap();
    answer.await.unwrap();
    assert_eq!(received.load(Relaxed), 8 * 400 + (48 << 10));
    let during = writes.load(Relaxed) - before;
    assert!(during <= 3, "{during} writes for three 16 KiB frames");
}

#[tokio::test]
async fn a_held_part_goes_out_whole_across_short_writes_and_at_shutdown() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A pipe that takes at most 7 bytes a write.
    let (near, mut far) = tokio::io::duplex(7);
    let mut io = conn::Unvectored::new(near);
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        far.read_to_end(&mut got).await.unwrap();
        got
    });
    io.write_all(b"head").await.unwrap();
    io.write_all(&[9u8; 5000]).await.unwrap();
    io.write_all(b"tail").await.unwrap();
    io.shutdown().await.unwrap();
    let got = reader.await.unwrap();
    let mut want = b"head".to_vec();
    want.extend_from_slice(&[9u8; 5000]);
    want.extend_from_slice(b"tail");
    assert_eq!(got, want);
}
