//! `#[runner_core::main(debug)]`: debug mode on whatever the environment
//! says. A poll that blocks the loop for longer than the slow-callback
//! threshold is reported, with the task's name and where it was spawned; so
//! is a panic nobody awaited (that one is reported with debug off too).
//!
//! `cargo run --example main_debug`

use std::time::Duration;

#[runner_core::main(debug)]
async fn main() {
    let lp = runner_core::get_running_loop().expect("inside the main task");
    println!("debug mode: {}", lp.get_debug());
    let hog = runner_core::spawn(async {
        // Blocking the loop thread on purpose: debug mode warns about it.
        std::thread::sleep(Duration::from_millis(150));
    });
    hog.set_name("hog");
    hog.await.expect("the task completes");

    let lost = runner_core::spawn(async { panic!("nobody awaits me") });
    lost.set_name("fire-and-forget");
    drop(lost);
    runner_core::sleep(Duration::from_millis(5)).await;
}
