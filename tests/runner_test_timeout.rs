//! `#[runner_test(timeout)]` is a hard bound (SPEC section 6): a timed-out
//! test fails within its timeout plus `TIMEOUT_GRACE` (2 s) whatever its
//! tasks or blocking jobs do, and the failure names what did not stop. Each
//! stuck case below is an ignored test that the driver tests run alone in a
//! child process (this same test binary), timing it from the outside.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runner_core::{cancellable, sleep, spawn, spawn_blocking};

const HOUR: Duration = Duration::from_secs(3600);

async fn swallow_every_cancellation() {
    loop {
        let _ = cancellable(sleep(HOUR)).await;
    }
}

#[runner_core::runner_test(timeout = "300ms")]
#[ignore = "run by a_task_that_swallows_cancellation_fails_the_test_within_the_grace"]
async fn stuck_on_a_task_that_swallows_cancellation() {
    spawn(swallow_every_cancellation());
    sleep(HOUR).await;
}

#[runner_core::runner_test(timeout = "300ms")]
#[ignore = "run by a_body_that_swallows_cancellation_fails_the_test_within_the_grace"]
async fn stuck_in_a_body_that_swallows_cancellation() {
    swallow_every_cancellation().await;
}

#[runner_core::runner_test(timeout = "300ms")]
#[ignore = "run by a_blocking_job_in_flight_fails_the_test_within_the_grace"]
async fn stuck_on_a_blocking_job() {
    spawn_blocking(|| std::thread::sleep(Duration::from_secs(8)))
        .await
        .unwrap();
}

#[runner_core::runner_test(timeout = "300ms")]
#[ignore = "run by a_body_stuck_on_its_thread_ends_the_test_process_within_the_grace"]
async fn stuck_on_its_thread() {
    std::thread::sleep(Duration::from_secs(30));
}

#[runner_core::runner_test(timeout = "300ms")]
#[ignore = "run by a_close_that_outlives_the_timeout_fails_a_finished_test"]
async fn finishes_but_leaves_a_task_that_swallows_cancellation() {
    spawn(swallow_every_cancellation());
    runner_core::yield_now().await;
}

/// Runs the ignored test `name` alone in a child process; returns whether
/// it passed, its output (stdout and stderr) and how long it took.
fn run_alone(name: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a child that does not end is killed, and the test fails.
    let deadline = started + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("{name} did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = started.elapsed();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (status.code(), text, took)
}

/// The bound every stuck case must meet: the 300 ms timeout, the 2 s grace,
/// and a second for starting the child process on a loaded machine.
const BOUND: Duration = Duration::from_millis(300 + 2000 + 1000);

#[test]
fn a_task_that_swallows_cancellation_fails_the_test_within_the_grace() {
    let (code, out, took) = run_alone("stuck_on_a_task_that_swallows_cancellation");
    assert_ne!(code, Some(0), "{out}");
    assert!(took < BOUND, "took {took:?}: {out}");
    assert!(out.contains("the test timed out after 300ms"), "{out}");
    assert!(out.contains("ignored its cancellation"), "{out}");
    assert!(
        out.contains("spawned at tests/runner_test_timeout.rs:23:5"),
        "names the task: {out}"
    );
}

#[test]
fn a_body_that_swallows_cancellation_fails_the_test_within_the_grace() {
    let (code, out, took) = run_alone("stuck_in_a_body_that_swallows_cancellation");
    assert_ne!(code, Some(0), "{out}");
    assert!(took < BOUND, "took {took:?}: {out}");
    assert!(out.contains("the test timed out after 300ms"), "{out}");
    assert!(
        out.contains("task #") && out.contains("'main'"),
        "names the body: {out}"
    );
}

#[test]
fn a_blocking_job_in_flight_fails_the_test_within_the_grace() {
    let (code, out, took) = run_alone("stuck_on_a_blocking_job");
    assert_ne!(code, Some(0), "{out}");
    assert!(took < BOUND, "took {took:?} (the job sleeps 8 s): {out}");
    assert!(out.contains("the test timed out after 300ms"), "{out}");
    assert!(out.contains("1 blocking job(s)"), "names the job: {out}");
}

#[test]
fn a_body_stuck_on_its_thread_ends_the_test_process_within_the_grace() {
    let (code, out, took) = run_alone("stuck_on_its_thread");
    assert_eq!(code, Some(101), "{out}");
    assert!(took < BOUND, "took {took:?} (the body sleeps 30 s): {out}");
    assert!(
        out.contains("test runner_test_timeout::stuck_on_its_thread timed out after 300ms"),
        "names the test: {out}"
    );
}

#[test]
fn a_close_that_outlives_the_timeout_fails_a_finished_test() {
    let (code, out, took) = run_alone("finishes_but_leaves_a_task_that_swallows_cancellation");
    assert_ne!(code, Some(0), "{out}");
    assert!(took < BOUND, "took {took:?}: {out}");
    assert!(out.contains("its close did not within the timeout"), "{out}");
    assert!(out.contains("ignored its cancellation"), "{out}");
}
