// `shutdown_signals` reaches the runner: the SIGTERM this program sends
// itself cancels the main task (without the argument it would end the
// process).
use std::time::Duration;

#[runner_core::main(shutdown_signals = ["SIGTERM", "SIGHUP"])]
async fn main() {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let caught = runner_core::cancellable(runner_core::sleep(Duration::from_secs(30))).await;
    assert!(caught.is_err(), "SIGTERM cancelled the main task");
}
