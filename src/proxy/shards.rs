//! Thread-per-core serving (`[proxy] runtime = "per-core"`): N threads,
//! each running its own single-threaded runtime, serving the connections
//! the acceptor hands them (each to the least loaded). A connection, its
//! calls and the upstream connections they use stay on that thread, so a
//! call never waits for another thread to wake up: with the work-stealing runtime those handoffs
//! (futex wakeups, task stealing) cost about a third of the CPU per call.
//!
//! Each thread keeps its own upstream connections: `crate::shard::index`
//! picks the thread's share of an upstream's pool.
//!
//! Why: docs/design.md#thread-per-core.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot, watch};

use super::{
    Proxy,
    server::{self, Drained},
};

/// A serving thread, as the acceptor sees it.
struct Shard {
    index: usize,
    /// Its inbox for accepted connections.
    handoff: mpsc::UnboundedSender<std::net::TcpStream>,
    /// How many connections it has open.
    load: Arc<AtomicUsize>,
}

/// Hands `stream` to the least loaded thread. A thread whose inbox is gone
/// (it ended: a bug) leaves the rotation and the next one gets the
/// connection. False when no thread is left.
fn hand_over(shards: &mut Vec<Shard>, mut stream: std::net::TcpStream) -> bool {
    loop {
        let Some(i) = (0..shards.len()).min_by_key(|&i| shards[i].load.load(Relaxed)) else {
            return false;
        };
        let shard = &shards[i];
        shard.load.fetch_add(1, Relaxed);
        match shard.handoff.send(stream) {
            Ok(()) => return true,
            Err(returned) => {
                tracing::error!(
                    thread = shard.index,
                    "a serving thread has ended; serving on the others"
                );
                stream = returned.0;
                shards.swap_remove(i);
            }
        }
    }
}

/// Serves `listener` on `threads` threads until `stop` turns true, then
/// lets each drain its in-flight calls for up to `grace`. Connections are
/// accepted here and each is handed to the thread with the fewest open
/// connections: workers keep few, long-lived connections, and a random
/// spread could leave one core with most of them.
pub async fn serve(
    listener: tokio::net::TcpListener,
    proxy: Arc<Proxy>,
    threads: usize,
    stop: watch::Receiver<bool>,
    grace: Duration,
) -> Drained {
    // Everything that can fail happens before the first thread starts.
    let mut runtimes = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => runtimes.push(rt),
            Err(e) => return Drained::Failed(format!("cannot start runtime {i}: {e}")),
        }
    }
    let mut shards = Vec::with_capacity(runtimes.len());
    let mut done = Vec::with_capacity(runtimes.len());
    for (i, runtime) in runtimes.into_iter().enumerate() {
        let (handoff, streams) = mpsc::unbounded_channel();
        let load = Arc::new(AtomicUsize::new(0));
        let source = server::Source::Handed {
            streams,
            load: load.clone(),
        };
        let proxy = proxy.clone();
        let stop = stop.clone();
        let (tx, rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("sealgate-{i}"))
            .spawn(move || {
                crate::shard::enter(i);
                let stopped = server::stopped(stop);
                let drained = runtime.block_on(server::serve_from(source, proxy, stopped, grace));
                let _ = tx.send(drained);
            });
        match spawned {
            Ok(_) => {
                shards.push(Shard {
                    index: i,
                    handoff,
                    load,
                });
                done.push(rx);
            }
            // The threads already started serve until `stop`.
            Err(e) => return Drained::Failed(format!("cannot start thread {i}: {e}")),
        }
    }
    let mut listener = listener;
    crate::serve::accept_loop("grpc", &mut listener, server::stopped(stop), |stream, _| {
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot hand over an accepted connection");
                return std::ops::ControlFlow::Continue(());
            }
        };
        if hand_over(&mut shards, stream) {
            std::ops::ControlFlow::Continue(())
        } else {
            std::ops::ControlFlow::Break(())
        }
    })
    .await;
    drop(listener);
    drop(shards);
    let mut all = Drained::Clean;
    for rx in done {
        match rx.await {
            Ok(Drained::Clean) => {}
            Ok(other) => all = other,
            Err(_) => all = Drained::Failed("a serving thread panicked".to_string()),
        }
    }
    all
}

#[cfg(test)]
mod tests;
