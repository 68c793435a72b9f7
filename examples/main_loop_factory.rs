//! `#[runner_core::main(loop_factory = ..., debug = false)]`: a factory
//! configures the loop (here: a 20 ms slow-callback threshold and two
//! blocking threads), and debug mode is explicitly off.
//!
//! `cargo run --example main_loop_factory`

use std::time::Duration;

use runner_core::EventLoop;

fn configured_loop() -> std::io::Result<EventLoop> {
    let lp = EventLoop::builder()
        .slow_callback_duration(Duration::from_millis(20))
        .max_blocking_threads(2)
        .build()?;
    // As in asyncio, making the loop the thread's current one is the
    // factory's choice.
    runner_core::set_event_loop(Some(&lp));
    Ok(lp)
}

#[runner_core::main(debug = false, loop_factory = configured_loop)]
async fn main() {
    let lp = runner_core::get_running_loop().expect("inside the main task");
    println!(
        "debug mode: {}, slow callback threshold: {:?}",
        lp.get_debug(),
        lp.slow_callback_duration()
    );
    let sums: Vec<_> = (0..4u64)
        .map(|i| runner_core::spawn_blocking(move || (0..=i * 1000).sum::<u64>()))
        .collect();
    for s in sums {
        println!("blocking sum: {}", s.await.expect("the job completes"));
    }
    println!("executor threads (at most 2): {}", lp.executor_thread_count());
}
