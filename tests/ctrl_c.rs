//! Graceful Ctrl-C (SPEC section 5), with real SIGINTs sent by `kill` to a
//! real child process (`tests/fixtures/ctrl_c.rs`). Every step is bounded in
//! time: a child that does not answer is killed and the test fails.

#![cfg(unix)]

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

mod common;

const FIXTURE: &str = env!("CARGO_BIN_EXE_ctrl-c-fixture");
const PATIENCE: Duration = Duration::from_secs(20);

struct Fixture {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Fixture {
    fn start(mode: &str) -> Fixture {
        Fixture::spawn(Command::new(FIXTURE).arg(mode))
    }

    /// Started with SIGINT ignored, as `nohup` or a background job would
    /// (`exec` keeps an ignored disposition).
    fn start_with_sigint_ignored(mode: &str) -> Fixture {
        Fixture::spawn(Command::new("sh").args(["-c", "trap '' INT; exec \"$0\" \"$1\"", FIXTURE, mode]))
    }

    fn spawn(cmd: &mut Command) -> Fixture {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the fixture starts");
        let lines = common::lines_of(child.stdout.take().unwrap());
        Fixture {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn expect_line(&mut self, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line == want;
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no line {want:?} from the fixture; it printed {:?}", self.seen);
                }
            }
        }
    }

    fn sigint(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the exit (bounded); returns the status, the rest of stdout
    /// and all of stderr.
    fn wait(mut self) -> (ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("the fixture did not exit; it printed {:?}", self.seen);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut stderr = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let mut rest = self.seen;
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
            rest.push(line);
        }
        (status, rest, stderr)
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

fn died_by_sigint(status: &ExitStatus) -> bool {
    status.signal() == Some(2)
}

#[test]
fn one_ctrl_c_while_the_main_task_sleeps_on_a_long_timer_interrupts() {
    let mut f = Fixture::start("sleeps");
    f.expect_line("ready");
    let sent = Instant::now();
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
    assert!(!out.iter().any(|l| l == "the hour passed"));
    // The loop was blocked in the poller with an hour-long timeout: the
    // signal woke it.
    assert!(sent.elapsed() < Duration::from_secs(5));
}

#[test]
fn one_ctrl_c_while_awaiting_a_future_that_never_completes_cancels_it() {
    let mut f = Fixture::start("awaits-forever");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(out.iter().any(|l| l == "the pending future was dropped"), "{out:?}");
    assert!(stderr.contains("KeyboardInterrupt"));
}

#[test]
fn main_task_can_catch_ctrl_c_and_await_async_cleanup() {
    let mut f = Fixture::start("cleans-up");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert_eq!(
        out,
        ["ready", "cleanup: started", "cleanup: buffer flushed", "cleanup: done"],
        "{stderr}"
    );
    // The main task caught the cancellation and finished: a normal exit.
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
}

#[test]
fn main_task_cancelled_by_another_task_then_ctrl_c_is_cancelled_not_keyboard_interrupt() {
    let mut f = Fixture::start("cancelled-elsewhere");
    f.expect_line("caught the other cancellation");
    f.expect_line("ready");
    f.sigint();
    let (status, _, stderr) = f.wait();
    assert_eq!(status.code(), Some(1), "{status:?} {stderr}");
    assert!(stderr.contains("the main task was cancelled"), "{stderr}");
    assert!(!stderr.contains("KeyboardInterrupt"), "{stderr}");
}

#[test]
fn second_ctrl_c_interrupts_without_waiting_for_the_main_task() {
    let mut f = Fixture::start("ignores-first-cancel");
    f.expect_line("ready");
    f.sigint();
    f.expect_line("ignoring the cancellation");
    let sent = Instant::now();
    f.sigint();
    let (status, _, stderr) = f.wait();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
    assert!(sent.elapsed() < Duration::from_secs(5));
}

#[test]
fn second_ctrl_c_ends_a_tight_cpu_loop_within_a_second() {
    let mut f = Fixture::start("spins");
    f.expect_line("ready");
    f.sigint();
    std::thread::sleep(Duration::from_millis(100));
    assert!(f.is_running(), "one Ctrl-C cannot stop a loop that never yields");
    let sent = Instant::now();
    f.sigint();
    let (status, _, stderr) = f.wait();
    let took = sent.elapsed();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn ctrl_c_with_no_runner_active_dies_by_sigint() {
    let mut f = Fixture::start("no-runner-active");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(!out.iter().any(|l| l == "still alive"));
}

#[test]
fn a_handler_the_user_installed_first_is_not_overridden() {
    let mut f = Fixture::start("user-handler-before");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert!(out
        .iter()
        .any(|l| l == "the user's handler got the Ctrl-C; the main task was not cancelled"));
}

#[test]
fn a_handler_the_user_installs_during_run_survives_the_end_of_run() {
    let mut f = Fixture::start("user-handler-during");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert!(
        out.iter().any(|l| l == "the user's handler survived the end of run()"),
        "{out:?}"
    );
}

#[test]
fn ctrl_c_with_the_runner_on_a_non_main_thread_is_not_intercepted() {
    let mut f = Fixture::start("other-thread");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(!stderr.contains("KeyboardInterrupt"), "nothing of ours ran: {stderr}");
    assert!(!out.iter().any(|l| l == "still alive"));
}

#[test]
fn an_ignored_sigint_stays_ignored() {
    let mut f = Fixture::start_with_sigint_ignored("sleeps");
    f.expect_line("ready");
    f.sigint();
    std::thread::sleep(Duration::from_millis(300));
    assert!(f.is_running(), "SIGINT was ignored, as the parent set it up");
    let _ = f.child.kill();
    let (status, _, stderr) = f.wait();
    assert_eq!(status.signal(), Some(9), "{status:?} {stderr}");
    assert!(!stderr.contains("KeyboardInterrupt"));
}

#[test]
fn runner_can_run_again_after_ctrl_c_and_closes_cleanly() {
    let mut f = Fixture::start("reused");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert_eq!(
        out,
        ["ready", "first run: KeyboardInterrupt", "second run: 5", "closed"],
        "{stderr}"
    );
}
