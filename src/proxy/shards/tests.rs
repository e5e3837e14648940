use std::{
    net::{TcpListener, TcpStream},
    sync::{Arc, atomic::AtomicUsize},
};

use tokio::sync::mpsc;

use super::{Relaxed, Shard, hand_over};

fn stream() -> TcpStream {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    TcpStream::connect(l.local_addr().unwrap()).unwrap()
}

fn shard(index: usize, load: usize) -> (Shard, mpsc::UnboundedReceiver<TcpStream>) {
    let (handoff, inbox) = mpsc::unbounded_channel();
    let shard = Shard {
        index,
        handoff,
        load: Arc::new(AtomicUsize::new(load)),
    };
    (shard, inbox)
}

#[test]
fn a_connection_goes_to_the_least_loaded_thread() {
    let (a, mut a_in) = shard(0, 2);
    let (b, mut b_in) = shard(1, 1);
    let mut shards = vec![a, b];
    assert!(hand_over(&mut shards, stream()));
    assert!(b_in.try_recv().is_ok());
    assert!(a_in.try_recv().is_err());
    assert_eq!(shards[1].load.load(Relaxed), 2);
}

#[test]
fn a_thread_that_ended_leaves_the_rotation() {
    let (a, a_in) = shard(0, 0);
    let (b, mut b_in) = shard(1, 5);
    drop(a_in);
    let mut shards = vec![a, b];
    assert!(hand_over(&mut shards, stream()));
    assert!(
        b_in.try_recv().is_ok(),
        "the live thread got the connection"
    );
    assert_eq!(shards.len(), 1);
    assert_eq!(shards[0].index, 1);
    drop(b_in);
    assert!(!hand_over(&mut shards, stream()), "no thread left");
    assert!(shards.is_empty());
}
