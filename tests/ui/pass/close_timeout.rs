// `close_timeout` reaches the runner: without it, closing would wait
// forever for a task that ignores its cancellation.
use std::time::{Duration, Instant};

#[runner_core::main(close_timeout = "100ms")]
async fn main() {
    let started = Instant::now();
    runner_core::spawn(async move {
        loop {
            let _ = runner_core::cancellable(runner_core::sleep(Duration::from_secs(3600))).await;
            assert!(started.elapsed() < Duration::from_secs(30), "the close gave up long ago");
        }
    });
    runner_core::yield_now().await;
}
