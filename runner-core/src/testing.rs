//! What `#[runner_test]` runs: a fresh runner per test, with a real-time
//! timeout, failure on panics of the test's tasks, and an optional virtual
//! clock.
//!
//! The timeout is a watchdog thread waiting on a condition variable: when
//! it fires it stops the loop from the outside (`call_soon_threadsafe`),
//! and the test closes its runner as usual (every task cancelled and driven
//! to the end) before failing with a message naming the timeout. It is real
//! time even under `start_paused`, and the watchdog is joined on every path,
//! so no thread outlives the test.

use std::cell::RefCell;
use std::future::IntoFuture;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::event_loop::{EventLoop, ExceptionContext, LoopHandle};
use crate::{Builder, Error};

/// The environment variable giving every `#[runner_test]` without its own
/// `timeout` a default one (`"30s"`, `"500ms"`, `"2m"`, `"1h"`).
pub const TEST_TIMEOUT_ENV: &str = "RUNNER_TEST_TIMEOUT";

/// The options of one `#[runner_test]`, from the attribute's arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct TestOptions {
    /// Fail the test when its body has not finished after this long (real
    /// time). `None`: `RUNNER_TEST_TIMEOUT`, or no timeout.
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

/// Stops the loop if the test runs past its timeout.
struct Watchdog {
    state: Arc<(Mutex<bool>, Condvar)>,
    fired: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(timeout: Duration, handle: LoopHandle) -> Watchdog {
        let state = Arc::new((Mutex::new(false), Condvar::new()));
        let fired = Arc::new(AtomicBool::new(false));
        let (s, f) = (state.clone(), fired.clone());
        let thread = thread::Builder::new()
            .name("runner-test-timeout".into())
            .spawn(move || {
                let (done, cv) = &*s;
                let deadline = Instant::now() + timeout;
                let mut finished = done.lock().unwrap_or_else(PoisonError::into_inner);
                while !*finished {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        f.store(true, Ordering::SeqCst);
                        let _ = handle.call_soon_threadsafe(|| {
                            if let Some(lp) = EventLoop::running() {
                                lp.stop();
                            }
                        });
                        return;
                    }
                    finished = cv
                        .wait_timeout(finished, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            })
            .ok();
        Watchdog { state, fired, thread }
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
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

/// Runs a `#[runner_test]` body: see the module docs of `runner_core::testing`.
#[track_caller]
pub fn run_test<F>(builder: Builder, options: TestOptions, body: F) -> F::Output
where
    F: IntoFuture,
    F::IntoFuture: 'static,
    F::Output: 'static,
{
    let timeout = options.timeout.or_else(env_timeout);
    let runner = builder.build();
    let lp = runner
        .get_loop()
        .unwrap_or_else(|e| panic!("the test's runner could not start: {e}"));
    if options.start_paused {
        lp.pause_clock();
    }
    let task_panics: Rc<RefCell<Vec<ExceptionContext>>> = Rc::default();
    if !options.allow_task_panics {
        let sink = task_panics.clone();
        lp.set_exception_handler(move |lp, ctx| {
            if ctx.panic.is_some() {
                sink.borrow_mut().push(ctx.clone());
            }
            lp.default_exception_handler(ctx);
        });
    }
    let watchdog = timeout.map(|t| Watchdog::start(t, lp.handle()));
    let result = runner.run(body);
    let timed_out = watchdog.as_ref().is_some_and(Watchdog::fired);
    drop(watchdog);
    let _ = runner.close();
    if timed_out {
        let t = timeout.unwrap_or_default();
        panic!(
            "the test timed out after {t:?} (#[runner_test(timeout = ..)] or {TEST_TIMEOUT_ENV}); its tasks were \
             cancelled and its runner closed"
        );
    }
    let output = match result {
        Ok(v) => v,
        Err(Error::Stopped) => panic!("the test's loop was stopped before its body finished"),
        Err(e) => panic!("the test's run ended without an output: {e}"),
    };
    let panics = task_panics.borrow();
    if let Some(first) = panics.first() {
        let who = first
            .task
            .as_ref()
            .map_or_else(|| "a callback".to_string(), |t| t.to_string());
        panic!(
            "{} task(s) spawned by the test panicked (allow it with #[runner_test(allow_task_panics)]); the first, \
             {who}, panicked with: {}",
            panics.len(),
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
