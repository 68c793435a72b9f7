//! What `#[runner_test]` runs: a fresh runner per test, with a real-time
//! timeout that is a hard bound, failure on panics of the test's tasks, and
//! an optional virtual clock.
//!
//! # The timeout
//!
//! A watchdog thread waits on a condition variable. At the timeout (real
//! time, even under `start_paused`) it stops the loop from the outside
//! (`call_soon_threadsafe`), and the test closes its runner with deadlines
//! counted from the timeout, so the test fails within the timeout plus
//! [`TIMEOUT_GRACE`] whatever its tasks or blocking jobs do:
//!
//! - close steps 1 and 2 (the cancelled tasks, async generators' cleanup)
//!   get until timeout + 1 s; a task still alive then is reported and
//!   dropped;
//! - close step 3 (blocking jobs) gets until timeout + 1.5 s; jobs still
//!   running are left on their detached threads;
//! - the failure names what did not stop: tasks with where they were
//!   spawned, and the number of blocking jobs still running.
//!
//! A body that blocks its thread and never yields (a blocking call, a busy
//! loop) cannot be interrupted in Rust: the loop never sees the stop. At
//! timeout + [`TIMEOUT_GRACE`] the watchdog then ends the whole test process
//! (exit status 101, as a failed test binary), after printing which test
//! it was: a hung CI is worse than a failed one. The watchdog is joined on
//! every other path, so no thread outlives the test.

use std::cell::RefCell;
use std::future::IntoFuture;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::event_loop::{EventLoop, ExceptionContext, LoopHandle};
use crate::runners::CloseDeadlines;
use crate::{Builder, Error};

/// The environment variable giving every `#[runner_test]` without its own
/// `timeout` a default one (`"30s"`, `"500ms"`, `"2m"`, `"1h"`).
pub const TEST_TIMEOUT_ENV: &str = "RUNNER_TEST_TIMEOUT";

/// How long after its timeout a test has failed at the latest: its close
/// gives up on tasks after 1 s and on blocking jobs after 1.5 s; a body
/// stuck on its thread ends the test process at 2 s.
pub const TIMEOUT_GRACE: Duration = Duration::from_secs(2);
const TASKS_GRACE: Duration = Duration::from_millis(1000);
const EXECUTOR_GRACE: Duration = Duration::from_millis(1500);

/// The options of one `#[runner_test]`, from the attribute's arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestOptions {
    /// The test's path (`module::name`), for the message when the watchdog
    /// must end the process.
    pub name: &'static str,
    /// Fail the test when it has not finished after this long (real time).
    /// `None`: `RUNNER_TEST_TIMEOUT`, or no timeout.
    pub timeout: Option<Duration>,
    /// Run on a virtual clock with auto-advance.
    pub start_paused: bool,
    /// Do not fail the test when a task it spawned panics.
    pub allow_task_panics: bool,
}

/// Parses `"5s"`-style durations: a whole number and `ms`, `s`, `m` or `h`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = text[..split].parse().ok()?;
    let ms = match text[split..].trim() {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        _ => return None,
    };
    (ms > 0).then(|| Duration::from_millis(ms))
}

fn env_timeout() -> Option<Duration> {
    let raw = std::env::var(TEST_TIMEOUT_ENV).ok()?;
    if raw.trim().is_empty() {
        return None;
    }
    match parse_duration(&raw) {
        Some(d) => Some(d),
        None => panic!(
            "{TEST_TIMEOUT_ENV}={raw:?} is not a duration: use a whole number and a unit, such as \"30s\", \
             \"500ms\", \"2m\" or \"1h\", or unset it"
        ),
    }
}

/// Stops the loop at the test's timeout, and ends the process if the test
/// is still not over after the grace.
struct Watchdog {
    state: Arc<(Mutex<bool>, Condvar)>,
    fired: Arc<AtomicBool>,
    /// Whether the body's run is still going: only it is stopped (a close
    /// that outlives the timeout is bounded by its deadlines instead).
    body_running: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(name: &'static str, timeout: Duration, at: Instant, handle: LoopHandle) -> Watchdog {
        let state = Arc::new((Mutex::new(false), Condvar::new()));
        let fired = Arc::new(AtomicBool::new(false));
        let body_running = Arc::new(AtomicBool::new(true));
        let (s, f, running) = (state.clone(), fired.clone(), body_running.clone());
        let thread = thread::Builder::new()
            .name("runner-test-timeout".into())
            .spawn(move || {
                if !wait_until(&s, at) {
                    return;
                }
                let _ = handle.call_soon_threadsafe(move || {
                    if running.load(Ordering::SeqCst) {
                        f.store(true, Ordering::SeqCst);
                        if let Some(lp) = EventLoop::running() {
                            lp.stop();
                        }
                    }
                });
                if !wait_until(&s, at + TIMEOUT_GRACE) {
                    return;
                }
                // Straight to stderr: libtest's output capture would keep
                // the message in a buffer this exit throws away.
                let _ = writeln!(
                    std::io::stderr(),
                    "test {name} timed out after {timeout:?} and was still running {TIMEOUT_GRACE:?} later: its body \
                     blocks the thread without yielding (a blocking call or a busy loop), which cannot be \
                     interrupted in Rust; ending the test process so that it does not hang"
                );
                std::process::exit(101);
            })
            .ok();
        Watchdog {
            state,
            fired,
            body_running,
            thread,
        }
    }

    /// The body's run returned: the timeout no longer stops the loop.
    /// Whether it had stopped it.
    fn body_returned(&self) -> bool {
        self.body_running.store(false, Ordering::SeqCst);
        self.fired.load(Ordering::SeqCst)
    }
}

/// Waits until `at`; `false` when dismissed first.
fn wait_until(state: &(Mutex<bool>, Condvar), at: Instant) -> bool {
    let (done, cv) = state;
    let mut finished = done.lock().unwrap_or_else(PoisonError::into_inner);
    while !*finished {
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        finished = cv
            .wait_timeout(finished, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    false
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (done, cv) = &*self.state;
        *done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the test's exception handler collected.
#[derive(Default)]
struct Collected {
    /// Panics of tasks the test spawned and did not await.
    task_panics: Vec<ExceptionContext>,
    /// Set when the test closes its runner.
    closing: bool,
    /// What the close reported, panics aside: tasks it gave up on,
    /// blocking jobs left running.
    close_reports: Vec<ExceptionContext>,
}

/// Runs a `#[runner_test]` body: see the module docs of `runner_core::testing`.
#[track_caller]
pub fn run_test<F>(builder: Builder, options: TestOptions, body: F) -> F::Output
where
    F: IntoFuture,
    F::IntoFuture: 'static,
    F::Output: 'static,
{
    let started = Instant::now();
    let timeout = options.timeout.or_else(env_timeout);
    let runner = builder.build();
    let lp = runner
        .get_loop()
        .unwrap_or_else(|e| panic!("the test's runner could not start: {e}"));
    if options.start_paused {
        lp.pause_clock();
    }
    let collected: Rc<RefCell<Collected>> = Rc::default();
    let sink = collected.clone();
    let allow_task_panics = options.allow_task_panics;
    lp.set_exception_handler(move |lp, ctx| {
        let mut c = sink.borrow_mut();
        if ctx.panic.is_some() {
            if !allow_task_panics {
                c.task_panics.push(ctx.clone());
            }
        } else if c.closing {
            c.close_reports.push(ctx.clone());
        }
        drop(c);
        lp.default_exception_handler(ctx);
    });
    let watchdog = timeout.map(|t| {
        let at = started + t;
        runner.set_close_deadlines(CloseDeadlines {
            tasks: Some(at + TASKS_GRACE),
            executor: Some(at + EXECUTOR_GRACE),
        });
        Watchdog::start(options.name, t, at, lp.handle())
    });
    let result = runner.run(body);
    let timed_out = watchdog.as_ref().is_some_and(Watchdog::body_returned);
    collected.borrow_mut().closing = true;
    let _ = runner.close();
    drop(watchdog);
    let collected = collected.borrow();
    let left_behind = || -> String {
        collected
            .close_reports
            .iter()
            .map(|r| format!("\n  - {}", r.to_string().replace('\n', "\n    ")))
            .collect()
    };
    if timed_out {
        let t = timeout.unwrap_or_default();
        let left = left_behind();
        if left.is_empty() {
            panic!(
                "the test timed out after {t:?} (#[runner_test(timeout = ..)] or {TEST_TIMEOUT_ENV}); its tasks were \
                 cancelled and its runner closed"
            );
        }
        panic!(
            "the test timed out after {t:?} (#[runner_test(timeout = ..)] or {TEST_TIMEOUT_ENV}); its runner was \
             stopped, and its close gave up on what did not stop within the grace:{left}"
        );
    }
    if !collected.close_reports.is_empty() && timeout.is_some() {
        panic!(
            "the test's body finished, but its close did not within the timeout and its grace; it gave up \
             on:{}",
            left_behind()
        );
    }
    let output = match result {
        Ok(v) => v,
        Err(Error::Stopped) => panic!("the test's loop was stopped before its body finished"),
        Err(e) => panic!("the test's run ended without an output: {e}"),
    };
    if let Some(first) = collected.task_panics.first() {
        let who = first
            .task
            .as_ref()
            .map_or_else(|| "a callback".to_string(), |t| t.to_string());
        panic!(
            "{} task(s) spawned by the test panicked (allow it with #[runner_test(allow_task_panics)]); the first, \
             {who}, panicked with: {}",
            collected.task_panics.len(),
            first.panic.as_deref().unwrap_or_default()
        );
    }
    output
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_parse_with_their_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration(" 2m "), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in ["", "5", "s", "5 parsecs", "0s", "-1s", "1.5s"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
