//! Spawning on a loop from other threads (`LoopHandle::spawn`, asyncio's
//! `run_coroutine_threadsafe`): the outcome reaches the other thread, a
//! panic is an error there, cancellation works from there, and a loop that
//! closes first gives a cancelled outcome, never a wait forever.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use runner_core::{cancellable, sleep, EventLoop, JoinError, LoopHandle, Submitted};

const PATIENCE: Duration = Duration::from_secs(10);

/// Awaits `submitted` on a thread of its own (any executor will do: this
/// is futures'), bounded.
fn outcome_on_another_thread<T: Send + 'static>(submitted: Submitted<T>) -> mpsc::Receiver<Result<T, JoinError>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(futures::executor::block_on(submitted));
    });
    rx
}

/// Runs `lp` until `rx` has the outcome (or the patience runs out).
fn run_until_outcome<T: 'static>(lp: &EventLoop, rx: mpsc::Receiver<Result<T, JoinError>>) -> Result<T, JoinError> {
    lp.run_until_complete(async move {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            match rx.try_recv() {
                Ok(outcome) => return outcome,
                Err(_) if std::time::Instant::now() > deadline => panic!("no outcome within {PATIENCE:?}"),
                Err(_) => sleep(Duration::from_millis(1)).await,
            }
        }
    })
    .unwrap()
}

fn spawn_from_a_thread<F, T>(handle: LoopHandle, make: impl FnOnce() -> F + Send + 'static) -> Submitted<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || handle.spawn(make()).unwrap())
        .join()
        .unwrap()
}

#[test]
fn a_future_spawned_from_another_thread_runs_on_the_loop_and_its_output_comes_back() {
    let lp = EventLoop::new().unwrap();
    let loop_thread = std::thread::current().id();
    let submitted = spawn_from_a_thread(lp.handle(), move || async move {
        sleep(Duration::from_millis(5)).await;
        std::thread::current().id() == loop_thread
    });
    let rx = outcome_on_another_thread(submitted);
    assert!(run_until_outcome(&lp, rx).unwrap(), "it ran on the loop's thread");
    lp.close().unwrap();
}

#[test]
fn a_panic_is_the_outcomes_error_not_the_loops() {
    let lp = EventLoop::new().unwrap();
    let reports = Arc::new(std::sync::Mutex::new(0));
    let r = reports.clone();
    lp.set_exception_handler(move |_, _| *r.lock().unwrap() += 1);
    let submitted = spawn_from_a_thread(lp.handle(), || async { panic!("boom") });
    let err = run_until_outcome(&lp, outcome_on_another_thread::<()>(submitted)).unwrap_err();
    assert_eq!(err.panic_message().as_deref(), Some("boom"));
    lp.close().unwrap();
    assert_eq!(
        *reports.lock().unwrap(),
        0,
        "retrieved by the other thread: nothing to report"
    );
}

#[test]
fn cancelled_from_the_other_thread_before_it_started_it_never_runs() {
    let lp = EventLoop::new().unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let submitted = spawn_from_a_thread(lp.handle(), move || async move { r.store(true, Ordering::SeqCst) });
    assert!(submitted.cancel());
    let err = run_until_outcome(&lp, outcome_on_another_thread(submitted)).unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert!(!ran.load(Ordering::SeqCst));
    lp.close().unwrap();
}

#[test]
fn cancelled_from_the_other_thread_while_it_runs_it_is_cancelled_or_gives_what_it_caught() {
    let lp = EventLoop::new().unwrap();
    let sleeper = spawn_from_a_thread(lp.handle(), || sleep(Duration::from_secs(3600)));
    let catcher = spawn_from_a_thread(lp.handle(), || async {
        match cancellable(sleep(Duration::from_secs(3600))).await {
            Ok(()) => "slept",
            Err(_) => "caught the cancellation",
        }
    });
    // Let both start, then cancel them from here (not the loop's thread).
    lp.run_until_complete(sleep(Duration::from_millis(5))).unwrap();
    let (s, c) = std::thread::scope(|scope| scope.spawn(|| (sleeper.cancel(), catcher.cancel())).join().unwrap());
    assert!(s && c);
    let slept = run_until_outcome(&lp, outcome_on_another_thread(sleeper)).unwrap_err();
    assert!(slept.is_cancelled(), "{slept}");
    assert_eq!(
        run_until_outcome(&lp, outcome_on_another_thread(catcher)).unwrap(),
        "caught the cancellation"
    );
    lp.close().unwrap();
}

#[test]
fn a_loop_that_closes_first_gives_a_cancelled_outcome_never_a_wait_forever() {
    // Queued, never run: the loop closes without running again.
    let lp = EventLoop::new().unwrap();
    let queued = spawn_from_a_thread(lp.handle(), || async { 1 });
    // Started, then the loop closes under it.
    let started = spawn_from_a_thread(lp.handle(), || async {
        sleep(Duration::from_secs(3600)).await;
        2
    });
    let handle = lp.handle();
    let rx_started = outcome_on_another_thread(started);
    lp.run_until_complete(sleep(Duration::from_millis(5))).unwrap();
    let late = spawn_from_a_thread(handle.clone(), || async { 3 });
    lp.close().unwrap();
    for (name, outcome) in [
        ("started", rx_started.recv_timeout(PATIENCE)),
        (
            "queued at close",
            outcome_on_another_thread(late).recv_timeout(PATIENCE),
        ),
    ] {
        let err = outcome.unwrap_or_else(|_| panic!("{name}: no outcome")).unwrap_err();
        assert!(err.is_cancelled(), "{name}: {err}");
    }
    // The first one did run (the loop ran after it was queued).
    let first = outcome_on_another_thread(queued)
        .recv_timeout(PATIENCE)
        .expect("an outcome");
    assert_eq!(first.unwrap(), 1);
    // And a closed loop refuses at once.
    assert!(matches!(handle.spawn(async {}), Err(runner_core::Error::LoopClosed)));
}
