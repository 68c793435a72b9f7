//! The channel benchmark's floor executor (`benches/bare.rs`): its
//! hand-made waker (the `unsafe` of the benchmarks) run under Miri with
//! the rest: `cargo +nightly miri test -p runner-core --test bench_floor`.

#[path = "../benches/bare.rs"]
mod bare;

use std::future::poll_fn;
use std::task::Poll;

async fn ping(to: async_channel::Sender<u64>, from: async_channel::Receiver<u64>, rounds: u64) -> u64 {
    let mut last = 0;
    for i in 0..rounds {
        to.send(i).await.unwrap();
        last = from.recv().await.unwrap();
    }
    last
}

async fn pong(to: async_channel::Sender<u64>, from: async_channel::Receiver<u64>, rounds: u64) {
    for _ in 0..rounds {
        let v = from.recv().await.unwrap();
        to.send(v + 1).await.unwrap();
    }
}

#[test]
fn the_floor_executor_plays_the_channel_ping_pong_to_the_end() {
    let (a_tx, a_rx) = async_channel::bounded(1);
    let (b_tx, b_rx) = async_channel::bounded(1);
    assert_eq!(bare::run_two(pong(b_tx, a_rx, 100), ping(a_tx, b_rx, 100)), 100);
}

#[test]
fn its_wakers_are_cloned_woken_and_dropped_anywhere() {
    let mut step = 0;
    let yielder = poll_fn(move |cx| {
        step += 1;
        match step {
            1 => {
                // A clone dropped on another thread, one woken by value.
                let clone = cx.waker().clone();
                std::thread::spawn(move || drop(clone)).join().unwrap();
                let by_value = cx.waker().clone();
                by_value.wake();
                Poll::Pending
            }
            2 => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    });
    assert_eq!(bare::run_two(yielder, async { 7 }), 7);
}
