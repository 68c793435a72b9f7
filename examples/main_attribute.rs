//! `#[runner_core::main]` with no arguments: debug mode follows the
//! `RUNNER_DEBUG` environment variable; the body's `Result` is `main`'s.
//!
//! `cargo run --example main_attribute`
//! `RUNNER_DEBUG=1 cargo run --example main_attribute`

use std::time::Duration;

#[runner_core::main]
async fn main() -> Result<(), runner_core::Error> {
    let lp = runner_core::get_running_loop()?;
    println!("debug mode: {}", lp.get_debug());
    let t = runner_core::spawn(async {
        runner_core::sleep(Duration::from_millis(5)).await;
        "a spawned task finished"
    });
    println!("{}", t.await.expect("the task completes"));
    Ok(())
}
