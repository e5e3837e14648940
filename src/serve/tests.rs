use super::*;

#[test]
fn failed_accepts_back_off_exponentially_up_to_a_second() {
    let mut b = Backoff::default();
    let e = io::Error::from_raw_os_error(24); // EMFILE
    let waits: Vec<Duration> = (0..12).map(|_| b.failed("test", &e)).collect();
    assert_eq!(waits[0], Duration::from_millis(5));
    assert_eq!(waits[1], Duration::from_millis(10));
    assert!(waits.windows(2).all(|w| w[1] >= w[0]));
    assert_eq!(*waits.last().unwrap(), MAX_WAIT);
    b.reset("test");
    assert_eq!(b.failed("test", &e), FIRST_WAIT);
}

/// A source that fails a number of times, then gives connections.
struct Flaky {
    fails: usize,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    listener: TcpListener,
}

impl Incoming for Flaky {
    async fn next(&mut self) -> Next {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if self.fails > 0 {
            self.fails -= 1;
            return Next::Failed(io::Error::from_raw_os_error(24));
        }
        self.listener.next().await
    }
}

#[tokio::test]
async fn a_loop_that_cannot_accept_waits_instead_of_spinning() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut source = Flaky {
        fails: usize::MAX,
        calls: calls.clone(),
        listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    // 300 ms of failing accepts.
    let shutdown = tokio::time::sleep(Duration::from_millis(300));
    accept_loop("test", &mut source, shutdown, |_, _| {
        ControlFlow::Continue(())
    })
    .await;
    // 5+10+20+40+80+160 ms covers it in about 7 tries (a loaded machine
    // makes fewer); a spinning loop would have made hundreds of thousands.
    let n = calls.load(std::sync::atomic::Ordering::Relaxed);
    assert!((2..=10).contains(&n), "{n} accepts in 300 ms");
}

#[tokio::test]
async fn connections_reach_the_handler_and_shutdown_ends_the_loop() {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut source = Flaky {
        fails: 2,
        calls,
        listener,
    };
    let client = tokio::spawn(async move { TcpStream::connect(addr).await.unwrap() });
    let mut seen = 0;
    accept_loop("test", &mut source, std::future::pending(), |_, _| {
        seen += 1;
        ControlFlow::Break(())
    })
    .await;
    assert_eq!(seen, 1);
    client.await.unwrap();
}
