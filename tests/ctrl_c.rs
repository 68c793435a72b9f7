//! Graceful Ctrl-C (SPEC section 5), with real SIGINTs sent by `kill` to a
//! real child process (`tests/fixtures/ctrl_c.rs`). Every step is bounded in
//! time: a child that does not answer is killed and the test fails.

#![cfg(unix)]

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

mod common;

use common::fixture::Fixture;

const FIXTURE: &str = env!("CARGO_BIN_EXE_ctrl-c-fixture");

fn died_by_sigint(status: &ExitStatus) -> bool {
    status.signal() == Some(2)
}

#[test]
fn one_ctrl_c_while_the_main_task_sleeps_on_a_long_timer_interrupts() {
    let mut f = Fixture::start(FIXTURE, "sleeps");
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
    let mut f = Fixture::start(FIXTURE, "awaits-forever");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(out.iter().any(|l| l == "the pending future was dropped"), "{out:?}");
    assert!(stderr.contains("KeyboardInterrupt"));
}

#[test]
fn ctrl_c_while_the_main_task_awaits_a_worker_waits_for_the_workers_cleanup() {
    let mut f = Fixture::start(FIXTURE, "awaits-a-worker");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert_eq!(
        out,
        [
            "ready",
            "worker: cleanup started",
            "worker: cleanup done",
            "main task dropped"
        ],
        "{stderr}"
    );
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"));
}

#[test]
fn main_task_can_catch_ctrl_c_and_await_async_cleanup() {
    let mut f = Fixture::start(FIXTURE, "cleans-up");
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
fn main_task_that_resumes_a_caught_ctrl_c_after_cleanup_ends_interrupted() {
    let mut f = Fixture::start(FIXTURE, "cleans-up-then-resumes");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert_eq!(out, ["ready", "cleanup: done"], "{stderr}");
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
}

#[test]
fn main_task_cancelled_by_another_task_then_ctrl_c_is_cancelled_not_keyboard_interrupt() {
    let mut f = Fixture::start(FIXTURE, "cancelled-elsewhere");
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
    let mut f = Fixture::start(FIXTURE, "ignores-first-cancel");
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
    let mut f = Fixture::start(FIXTURE, "spins");
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
    let mut f = Fixture::start(FIXTURE, "no-runner-active");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(!out.iter().any(|l| l == "still alive"));
}

#[test]
fn a_handler_the_user_installed_first_is_not_overridden() {
    let mut f = Fixture::start(FIXTURE, "user-handler-before");
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
    let mut f = Fixture::start(FIXTURE, "user-handler-during");
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
    let mut f = Fixture::start(FIXTURE, "other-thread");
    f.expect_line("ready");
    f.sigint();
    let (status, out, stderr) = f.wait();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(!stderr.contains("KeyboardInterrupt"), "nothing of ours ran: {stderr}");
    assert!(!out.iter().any(|l| l == "still alive"));
}

#[test]
fn an_ignored_sigint_stays_ignored() {
    let mut f = Fixture::start_with_sigint_ignored(FIXTURE, "sleeps");
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
    let mut f = Fixture::start(FIXTURE, "reused");
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

/// The second Ctrl-C of a `#[main]` program is final: `KeyboardInterrupt`
/// on stderr and death by SIGINT within a second, whatever is still being
/// waited on. `first` is the line that shows the first Ctrl-C was taken.
fn second_ctrl_c_is_final(mode: &str, first: &str) {
    let mut f = Fixture::start(FIXTURE, mode);
    f.expect_line("ready");
    f.sigint();
    f.expect_line(first);
    let sent = Instant::now();
    f.sigint();
    let (status, _, stderr) = f.wait_within(Duration::from_secs(5));
    let took = sent.elapsed();
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
}

#[test]
fn second_ctrl_c_is_final_while_cleanup_awaits_a_blocking_job() {
    second_ctrl_c_is_final("cleanup-blocks", "cleanup: waiting on a 5 s blocking job");
}

#[test]
fn second_ctrl_c_is_final_while_a_shielded_section_runs() {
    second_ctrl_c_is_final("cleanup-shielded", "shielded: cancel requested, still running");
}

#[test]
fn second_ctrl_c_is_final_while_closing_waits_on_a_task_that_swallows_cancellation() {
    second_ctrl_c_is_final("task-swallows", "swallowed a cancellation");
}

/// When closing waits more than a second after a Ctrl-C on something the
/// user cannot see, it says so once, naming it; the next Ctrl-C is final.
#[test]
fn closing_after_ctrl_c_says_what_it_waits_for_a_task() {
    let mut f = Fixture::start(FIXTURE, "task-swallows");
    f.expect_line("ready");
    let sent = Instant::now();
    f.sigint();
    let hint = f.expect_error_line("closing is waiting for");
    let after = sent.elapsed();
    assert!(
        hint.contains("1 task(s) that did not finish after cancellation")
            && hint.contains("spawned at tests/fixtures/ctrl_c.rs")
            && hint.contains("Ctrl-C again exits now"),
        "{hint}"
    );
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(5),
        "{after:?}"
    );
    f.sigint();
    let (status, _, stderr) = f.wait_within(Duration::from_secs(5));
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert_eq!(
        stderr.matches("closing is waiting for").count(),
        1,
        "said once: {stderr}"
    );
}

#[test]
fn closing_after_ctrl_c_says_what_it_waits_for_a_blocking_job() {
    let mut f = Fixture::start(FIXTURE, "blocking-job-outlives-main");
    f.expect_line("ready");
    f.sigint();
    let hint = f.expect_error_line("closing is waiting for");
    assert!(hint.contains("1 blocking job(s)"), "{hint}");
    let sent = Instant::now();
    f.sigint();
    let (status, _, stderr) = f.wait_within(Duration::from_secs(5));
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(sent.elapsed() < Duration::from_secs(1));
}

/// A Ctrl-C during the close sequence is never silent and never waits.
#[test]
fn ctrl_c_during_close_prints_keyboard_interrupt_and_exits_at_once() {
    for (mode, line) in [
        ("returns-while-task-swallows", "swallowed a cancellation"),
        ("returns-while-job-runs", "main returns"),
    ] {
        let mut f = Fixture::start(FIXTURE, mode);
        f.expect_line(line);
        // Closing has begun (step 1 cancelled the task, or step 3 waits
        // for the 5 s job).
        std::thread::sleep(Duration::from_millis(100));
        let sent = Instant::now();
        f.sigint();
        let (status, _, stderr) = f.wait_within(Duration::from_secs(5));
        assert!(died_by_sigint(&status), "{mode}: {status:?} {stderr}");
        assert!(stderr.contains("KeyboardInterrupt"), "{mode}: {stderr}");
        assert!(sent.elapsed() < Duration::from_secs(1), "{mode}: {:?}", sent.elapsed());
    }
}

/// A library program's `Runner::run` returns KeyboardInterrupt at the
/// second Ctrl-C, and the close after it does not wait.
#[test]
fn runner_run_returns_keyboard_interrupt_at_the_second_ctrl_c_and_close_does_not_wait() {
    let mut f = Fixture::start(FIXTURE, "library-second");
    f.expect_line("ready");
    f.sigint();
    f.expect_line("ignoring the cancellation");
    f.sigint();
    let (status, out, stderr) = f.wait_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert_eq!(
        out,
        [
            "ready",
            "ignoring the cancellation",
            "run returned: Err(KeyboardInterrupt)",
            "second Ctrl-C answered fast: true",
            "close returned: Err(KeyboardInterrupt)",
            "close did not wait: true",
        ],
        "{stderr}"
    );
}

/// In a library program, a loop stuck after it took the first Ctrl-C
/// still lets the second end the process.
#[test]
fn second_ctrl_c_ends_a_library_program_stuck_after_the_first() {
    let mut f = Fixture::start(FIXTURE, "library-stuck");
    f.expect_line("ready");
    f.sigint();
    f.expect_line("caught; now spinning");
    let sent = Instant::now();
    f.sigint();
    let (status, out, stderr) = f.wait_within(Duration::from_secs(5));
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
    assert!(!out.iter().any(|l| l == "not reached"));
    assert!(sent.elapsed() < Duration::from_secs(1), "{:?}", sent.elapsed());
}

#[test]
fn library_close_interrupted_by_ctrl_c_returns_keyboard_interrupt_at_once() {
    let mut f = Fixture::start(FIXTURE, "library-close-interrupted");
    f.expect_line("swallowed a cancellation");
    f.sigint();
    let (status, out, stderr) = f.wait_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert_eq!(
        out.last().map(String::as_str),
        Some("close returned: Err(KeyboardInterrupt) after less than a second: true"),
        "{out:?}"
    );
}

/// CPython's test_interrupt_cancelled_task: a task cancels the main task
/// and then interrupts the process from the loop thread; the main task was
/// cancelled twice, the runner takes one back: CancelledError, count 1.
#[test]
fn interrupting_a_cancelled_main_task_gives_cancelled_not_keyboard_interrupt() {
    let f = Fixture::start(FIXTURE, "cancelled-then-interrupted");
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert_eq!(out, ["Cancelled cancelling=1"], "{stderr}");
}

/// CPython's test_interrupt_call_soon: a loop callback raises SIGINT while
/// the main task spins on `sleep(Duration::ZERO)` (a turn of the loop
/// each); the main task catches the cancellation, lets it go on, and the
/// run ends in KeyboardInterrupt.
#[test]
fn a_callback_interrupts_a_main_task_spinning_on_zero_sleeps() {
    let f = Fixture::start(FIXTURE, "interrupt-from-call-later");
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert_eq!(
        out,
        ["main caught the cancellation: true", "KeyboardInterrupt"],
        "{stderr}"
    );
}

/// A SIGINT raised by a task is seen before the loop runs another task
/// step, as CPython's synchronous handler sees it.
#[test]
fn a_sigint_raised_by_a_task_is_taken_before_the_next_task_step() {
    let f = Fixture::start(FIXTURE, "seen-before-next-step");
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert_eq!(out, ["Ok((true, Some(1)))"], "{stderr}");
}

/// 200 runs, each interrupted just as its main task returns: every SIGINT
/// belongs to its run (the main task caught it, or the run returned
/// KeyboardInterrupt because it came after the main task's last step), and
/// the process is never killed after a run returned.
#[test]
fn a_sigint_delivered_during_a_run_belongs_to_that_run_200_times() {
    let f = Fixture::start(FIXTURE, "racing-runs");
    let (status, out, stderr) = f.wait();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert_eq!(out.last().map(String::as_str), Some("all runs done"), "{out:?}");
    let results = &out[..out.len() - 1];
    assert_eq!(results.len(), 200);
    let odd: Vec<&String> = results
        .iter()
        .filter(|l| *l != "caught" && *l != "KeyboardInterrupt")
        .collect();
    assert!(odd.is_empty(), "results outside asyncio's rules: {odd:?}");
}

/// `#[main(close_timeout = "200ms")]` (no signal involved): the close gives
/// up on a task that ignores its cancellation after the bound, reports it
/// by name and spawn site, drops it, and the process exits normally.
#[test]
fn main_close_timeout_drops_a_task_that_ignores_cancellation_and_exits() {
    let mut f = Fixture::start(FIXTURE, "close-timeout");
    f.expect_line("main returns");
    let returned = Instant::now();
    let (status, out, stderr) = f.wait_within(Duration::from_secs(5));
    let took = returned.elapsed();
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(out.iter().any(|l| l == "stubborn: destructor ran"), "{out:?}");
    assert!(
        stderr.contains("closing gave up waiting: a task ignored its cancellation")
            && stderr.contains("'stubborn' spawned at tests/fixtures/ctrl_c.rs"),
        "{stderr}"
    );
}

/// Ctrl-C while the main task waits in a task group of two children (the
/// fixture's `mode`): both clean up (concurrently: either order), the scope
/// ends with `scope`, and the run ends interrupted.
fn ctrl_c_in_a_task_group(mode: &str, scope: &str) {
    let mut f = Fixture::start(FIXTURE, mode);
    f.expect_line("ready");
    f.sigint();
    let (status, mut out, stderr) = f.wait();
    if out.len() >= 3 {
        out[1..3].sort();
    }
    assert_eq!(
        out,
        ["ready", "child 1: cleanup done", "child 2: cleanup done", scope],
        "{stderr}"
    );
    assert!(died_by_sigint(&status), "{status:?} {stderr}");
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
}

#[test]
fn ctrl_c_in_a_task_group_cancels_the_children_whose_cleanup_runs_then_interrupts() {
    ctrl_c_in_a_task_group("group", "group: cancelled true, 0 failure(s)");
}

/// asyncio 3.13's TaskGroup: the failures win over the cancellation from
/// outside, which still goes on after the scope. Before, the Ctrl-C was
/// lost here and the main task slept its hour.
#[test]
fn ctrl_c_in_a_task_group_whose_child_fails_in_its_cleanup_still_interrupts_after_the_scope() {
    ctrl_c_in_a_task_group("group-child-fails", "group: cancelled false, 1 failure(s)");
}

/// Ctrl-C at a random moment of random programs of cancellation (task
/// groups, timeouts, shields, generators, blocking jobs, ...; the
/// generator of runner-core/tests/programs): the first ends the run as
/// KeyboardInterrupt, or is caught by the program and swallowed (some
/// programs catch cancellations and go on); then a second one ends it at
/// once. Either way the close of what the programs left finishes promptly.
#[test]
fn ctrl_c_at_random_moments_of_random_programs_ends_the_run_and_the_close() {
    for seed in 1..=12u64 {
        let mut f = Fixture::start(FIXTURE, &format!("random-{}", seed * 1000));
        f.expect_line("ready");
        std::thread::sleep(Duration::from_millis(seed * 37 % 150));
        f.sigint();
        let (returned, final_ctrl_c) = match f.line_within(Duration::from_secs(3), "run returned:") {
            Some(line) => (line, false),
            None => {
                // Swallowed: the second Ctrl-C is final.
                f.sigint();
                let line = f
                    .line_within(Duration::from_secs(2), "run returned:")
                    .unwrap_or_else(|| panic!("seed {seed}: a second Ctrl-C did not end the run at once"));
                (line, true)
            }
        };
        assert_eq!(returned, "run returned: Some(KeyboardInterrupt)", "seed {seed}");
        // After a final Ctrl-C the close does not wait, and says why.
        let want = if final_ctrl_c {
            "closed: Err(KeyboardInterrupt)"
        } else {
            "closed: Ok(())"
        };
        let closed = f.line_within(Duration::from_secs(3), "closed:");
        assert_eq!(
            closed.as_deref(),
            Some(want),
            "seed {seed}: the close's answer (none: it did not end within 3 s)"
        );
        let (status, _, stderr) = f.wait_within(Duration::from_secs(5));
        assert_eq!(status.code(), Some(0), "seed {seed}: {stderr}");
    }
}
