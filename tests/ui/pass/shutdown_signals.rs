// `shutdown_signals` reaches the runner: the SIGTERM this program sends
// itself cancels the main task (without the argument it would end the
// process).
use std::time::Duration;

#[runner_core::main(shutdown_signals = ["SIGTERM", "SIGHUP"])]
async fn main() {
    // SAFETY: kill(2) takes plain integers; the pid is this process's own.
    let sent = unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    assert_eq!(sent, 0, "kill -TERM self: {}", std::io::Error::last_os_error());
    let caught = runner_core::cancellable(runner_core::sleep(Duration::from_secs(30))).await;
    assert!(caught.is_err(), "SIGTERM cancelled the main task");
}
