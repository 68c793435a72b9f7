//! Graceful Ctrl-C: ticks once a second until Ctrl-C, then cleans up
//! asynchronously (a worker task finishes its job, a "goodbye" is sent) and
//! exits normally. A second Ctrl-C during the cleanup exits at once.
//!
//! `cargo run --example graceful`, then press Ctrl-C (twice to skip the
//! cleanup).

use std::time::Duration;

use runner_core::{cancellable, sleep, spawn, Cancelled};

async fn tick_forever() {
    let mut n = 0u64;
    loop {
        n += 1;
        println!("tick {n} (Ctrl-C to stop)");
        sleep(Duration::from_secs(1)).await;
    }
}

async fn say_goodbye() {
    // Stands for flushing a buffer or closing a connection politely.
    for step in ["flushing the log", "saying goodbye to peers", "closing the connection"] {
        println!("cleanup: {step}...");
        sleep(Duration::from_millis(300)).await;
    }
}

#[runner_core::main]
async fn main() {
    let worker = spawn(async {
        // A background job the cleanup waits for.
        sleep(Duration::from_millis(700)).await;
        "the worker's job is saved"
    });
    match cancellable(tick_forever()).await {
        Ok(()) => unreachable!("ticks forever"),
        Err(Cancelled) => {
            println!("Ctrl-C: cleaning up (press Ctrl-C again to skip)");
            say_goodbye().await;
            println!("cleanup: {}", worker.await.unwrap_or("the worker was cancelled"));
            println!("bye");
        }
    }
}
