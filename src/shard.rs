//! Which serving thread this is, for per-thread shares of upstream pools.
//!
//! With `[proxy] runtime = "per-core"` each serving thread enters its
//! index once at start (`crate::proxy::shards`); an upstream pool built for
//! N threads keeps a share of connections per thread and picks this
//! thread's (`crate::upstream`). Every other thread is shard 0. A thread's
//! own identity, not process state: nothing here is shared between threads.

use std::cell::Cell;

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// This thread's shard; 0 on every thread that is not a serving thread.
pub(crate) fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Makes the calling thread serving thread `i`.
pub(crate) fn enter(i: usize) {
    INDEX.with(|c| c.set(i));
}
