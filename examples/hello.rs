//! A tour of runner in one program: `run`, a `Runner` used twice, spawned
//! tasks, `sleep`, a context variable flowing into tasks, and a task whose
//! cancellation is caught and followed by async cleanup.
//!
//! `cargo run --example hello`

use std::time::{Duration, Instant};

use runner_core::{cancellable, sleep, spawn, yield_now, ContextVar, Runner};

static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");

async fn fetch(name: &'static str, ms: u64) -> String {
    sleep(Duration::from_millis(ms)).await;
    // The context variable set by the spawner is visible here.
    format!("{name} (request {}) after {ms} ms", REQUEST_ID.get().unwrap_or(0))
}

fn main() {
    let start = Instant::now();

    // 1. asyncio.run(): one main task on a fresh loop, closed at the end.
    let greeting = runner_core::run(async {
        let _ = REQUEST_ID.set(1);
        let a = spawn(fetch("alpha", 30));
        let b = spawn(fetch("beta", 10));
        // Both sleep concurrently: about 30 ms in total, not 40.
        format!("{} | {}", a.await.unwrap(), b.await.unwrap())
    })
    .expect("the run completes");
    println!("run:      {greeting}");
    println!("          took {} ms", start.elapsed().as_millis());

    // 2. asyncio.Runner: two calls on one loop and one context.
    let runner = Runner::new();
    runner
        .run(async {
            let _ = REQUEST_ID.set(2);
        })
        .expect("the first call completes");
    let seen = runner
        .run(async { REQUEST_ID.get() })
        .expect("the second call completes");
    println!("Runner:   the second run() sees request_id = {seen:?}, set by the first");

    // 3. Cancellation caught as a value, then async cleanup.
    let report = runner
        .run(async {
            let worker = spawn(async {
                match cancellable(sleep(Duration::from_secs(3600))).await {
                    Ok(()) => "worker slept an hour".to_string(),
                    Err(_cancelled) => {
                        sleep(Duration::from_millis(5)).await; // e.g. flush, say goodbye
                        "worker was cancelled, flushed its buffer, and exited cleanly".to_string()
                    }
                }
            });
            yield_now().await;
            worker.cancel();
            worker.await.unwrap()
        })
        .expect("the third call completes");
    println!("cancel:   {report}");

    runner.close().expect("closing from outside the loop works");
    println!("closed:   runner closed = {}", runner.is_closed());
}
