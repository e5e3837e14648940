//! Thread-per-core serving (`[proxy] runtime = "per-core"`): N threads,
//! each running its own single-threaded runtime, all accepting from the one
//! listening socket. A connection, its calls and the upstream connections
//! they use stay on the thread that accepted it, so a call never waits for
//! another thread to wake up: with the work-stealing runtime those handoffs
//! (futex wakeups, task stealing) cost about a third of the CPU per call.
//!
//! Each thread keeps its own upstream connections: [`index`] picks the
//! thread's share of an upstream's pool.

use std::{
    cell::Cell,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::sync::{oneshot, watch};

use super::{
    Proxy,
    server::{self, Drained},
};

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

static COUNT: AtomicUsize = AtomicUsize::new(1);

/// This thread's shard; 0 on every thread that is not a shard.
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// How many shards this process serves with, for sizing per-shard pools.
pub fn count() -> usize {
    COUNT.load(Relaxed).max(1)
}

/// Sets [`count`]; upstream pools built from now on have a share per shard.
pub(crate) fn configure(threads: usize) {
    COUNT.store(threads.max(1), Relaxed);
}

/// Serves `listener` on `threads` threads until `stop` turns true, then
/// lets each drain its in-flight calls for up to `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    proxy: Arc<Proxy>,
    threads: usize,
    stop: watch::Receiver<bool>,
    grace: Duration,
) -> Drained {
    let shared = match listener.into_std() {
        Ok(l) => l,
        Err(e) => return Drained::Failed(format!("cannot share the listening socket: {e}")),
    };
    // Everything that can fail happens before the first thread starts.
    let mut shards = Vec::with_capacity(threads);
    for i in 0..threads.max(1) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => return Drained::Failed(format!("cannot start runtime {i}: {e}")),
        };
        let listener = {
            let _inside = runtime.enter();
            match shared
                .try_clone()
                .and_then(tokio::net::TcpListener::from_std)
            {
                Ok(l) => l,
                Err(e) => {
                    return Drained::Failed(format!("cannot share the listening socket: {e}"));
                }
            }
        };
        shards.push((runtime, listener));
    }
    drop(shared);
    let mut done = Vec::with_capacity(shards.len());
    for (i, (runtime, listener)) in shards.into_iter().enumerate() {
        let proxy = proxy.clone();
        let mut stop = stop.clone();
        let (tx, rx) = oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("sealgate-{i}"))
            .spawn(move || {
                INDEX.with(|c| c.set(i));
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let drained = runtime.block_on(server::serve(listener, proxy, stopped, grace));
                let _ = tx.send(drained);
            });
        match spawned {
            Ok(_) => done.push(rx),
            // The threads already started serve until `stop`.
            Err(e) => return Drained::Failed(format!("cannot start thread {i}: {e}")),
        }
    }
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
