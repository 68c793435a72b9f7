//! Shutdown signals (SIGTERM acting as Ctrl-C) and signal handlers on the
//! loop, with real signals sent by kill(2) to a real child process
//! (`tests/fixtures/signals.rs`). Every wait is bounded.

#![cfg(unix)]

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

mod common;

use common::fixture::Fixture;

const FIXTURE: &str = env!("CARGO_BIN_EXE_signals-fixture");

fn start(mode: &str) -> Fixture {
    Fixture::start(FIXTURE, mode)
}

#[test]
fn sigterm_with_the_shutdown_option_cancels_main_for_a_graceful_cleanup_and_exits_0() {
    let mut f = start("sigterm-cleans-up");
    f.expect_line("ready");
    f.signal("TERM");
    f.expect_line("cleanup: started");
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert!(out.iter().any(|l| l == "cleanup: done"), "{out:?}");
}

#[test]
fn sigterm_that_escapes_main_ends_the_process_by_sigterm_after_the_cleanup() {
    let mut f = start("sigterm-escapes");
    f.expect_line("ready");
    f.signal("TERM");
    let (status, out, stderr) = f.wait();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?} {stderr}");
    assert!(out.iter().any(|l| l == "the main task's destructors ran"), "{out:?}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
}

#[test]
fn sighup_listed_too_acts_as_ctrl_c() {
    let mut f = start("sigterm-escapes");
    f.expect_line("ready");
    f.signal("HUP");
    let (status, out, stderr) = f.wait();
    assert_eq!(status.signal(), Some(1), "{status:?} {stderr}");
    assert!(out.iter().any(|l| l == "the main task's destructors ran"), "{out:?}");
}

#[test]
fn a_second_sigterm_is_final() {
    let mut f = start("sigterm-cleanup-hangs");
    f.expect_line("ready");
    f.signal("TERM");
    f.expect_line("cleanup: started");
    f.signal("TERM");
    let (status, _, stderr) = f.wait_within(Duration::from_secs(5));
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?} {stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
}

#[test]
fn without_the_option_sigterm_keeps_its_default() {
    let mut f = start("sigterm-not-opted-in");
    f.expect_line("ready");
    f.signal("TERM");
    let (status, out, _) = f.wait();
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!out.iter().any(|l| l == "cleanup ran"), "{out:?}");
}

#[test]
fn a_library_run_ended_by_sigterm_says_which_signal() {
    let mut f = start("library-sigterm");
    f.expect_line("ready");
    f.signal("TERM");
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert!(
        out.iter()
            .any(|l| l == "error: the run was interrupted by SIGTERM, which this runner treats as Ctrl-C"),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l == &format!("signal: Some({})", libc::SIGTERM)),
        "{out:?}"
    );
}

#[test]
fn signals_that_cannot_be_used_are_refused_with_the_reason() {
    let (status, out, stderr) = start("unsupported").wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    let errors: Vec<&String> = out.iter().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 4, "{out:?}");
    assert!(errors[0].contains("SIGKILL cannot be used here: SIGKILL and SIGSTOP cannot be caught"));
    assert!(errors[1].contains("SIGCHLD cannot be used here: its default is not to end the process"));
    assert!(errors[2].contains("SIGSEGV cannot be used here: it reports a fault"));
    assert!(errors[3].contains("only a loop on the main thread can handle signals"));
}

#[test]
fn add_signal_handler_runs_on_the_loop_thread_with_no_extra_thread_and_removal_restores_the_default() {
    let mut f = start("handler");
    let threads = {
        f.expect_line("ready");
        f.seen.iter().find(|l| l.starts_with("threads")).cloned().unwrap()
    };
    let numbers: Vec<usize> = threads.split(' ').filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers[0], numbers[1], "adding a handler started no thread: {threads}");
    for i in 1..=3 {
        f.signal("USR1");
        f.expect_line(&format!("SIGUSR1 {i} on the loop thread: true"));
    }
    f.expect_line("removed: true");
    f.expect_line("removed again: false");
    f.expect_line("ready again");
    f.signal("USR1");
    let (status, out, _) = f.wait();
    assert_eq!(
        status.signal(),
        Some(10),
        "SIGUSR1's default ended it: {status:?} {out:?}"
    );
}

#[test]
fn a_delivery_wakes_a_loop_blocked_in_its_poller_and_a_dropped_stream_gives_the_signal_back() {
    let mut f = start("handler-blocked-loop");
    f.expect_line("ready");
    f.signal("USR2");
    f.expect_line("SIGUSR2 1");
    f.signal("USR2");
    f.expect_line("SIGUSR2 2");
    f.expect_line("stream dropped");
    f.signal("USR2");
    let (status, _, _) = f.wait();
    assert_eq!(status.signal(), Some(12), "{status:?}");
}

#[test]
fn a_stream_awaited_on_another_loop_ends_at_once_and_says_why() {
    let mut f = start("stream-of-another-loop");
    f.expect_line("reported, saying why: true");
    f.expect_line("awaited on the other loop: Ok(None)");
    f.expect_line("ready");
    f.signal("USR2");
    f.expect_line("SIGUSR2 on its own loop");
    let (status, _, _) = f.wait();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_handler_takes_a_shutdown_signal_while_added_and_gives_it_back() {
    let mut f = start("handler-over-shutdown-signal");
    f.expect_line("ready");
    f.signal("TERM");
    f.expect_line("SIGTERM handled by the callback");
    f.expect_line("ready again");
    f.signal("TERM");
    f.expect_line("cancelled by SIGTERM");
    let (status, _, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
}
