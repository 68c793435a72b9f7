//! Timeouts (asyncio's `timeout`, `timeout_at` and `wait_for`): what
//! comes first, the output or the deadline, and what a timeout does to
//! the task around it and to the future it wraps.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

mod common;
use common::OnDrop;
use runner_core::{cancellable, run, sleep, spawn, timeout, yield_now, Cancelled, EventLoop};

#[test]
fn timeout_gives_output_when_in_time_and_elapsed_otherwise() {
    let (fast, slow) = run(async {
        let fast = timeout(Duration::from_secs(5), async { 7 }).await;
        let slow = timeout(Duration::from_millis(5), sleep(Duration::from_secs(3600))).await;
        (fast, slow)
    })
    .unwrap();
    assert_eq!(fast, Ok(7));
    let err = slow.unwrap_err();
    assert!(err.to_string().contains("timed out after 5ms"));
}

/// CPython's test_timeouts.py: test_timeout_zero, test_timeout_zero_sleep_zero,
/// test_timeout_in_the_past_sleep_zero, and a block that never suspends.
#[test]
fn a_zero_or_past_timeout_interrupts_whatever_suspends_even_a_zero_sleep() {
    let out = run(async {
        let lp = runner_core::get_running_loop().unwrap();
        let started = lp.time();
        let zero = timeout(Duration::ZERO, sleep(Duration::from_secs(10))).await;
        let took = lp.time() - started;
        let zero_sleep_zero = timeout(Duration::ZERO, sleep(Duration::ZERO)).await;
        let past = runner_core::timeout_at(lp.time() - Duration::from_secs(100), sleep(Duration::ZERO)).await;
        let past_yield = runner_core::timeout_at(lp.time() - Duration::from_secs(100), yield_now()).await;
        // A block that never suspends is never interrupted.
        let ready = timeout(Duration::ZERO, async { 3 }).await;
        (
            zero.is_err(),
            took,
            zero_sleep_zero.is_err(),
            past.is_err(),
            past_yield.is_err(),
            ready,
        )
    })
    .unwrap();
    assert!(out.0);
    assert!(out.1 < Duration::from_secs(2), "{:?}", out.1);
    assert!(out.2, "timeout(0) around sleep(0) must time out, as asyncio's");
    assert!(out.3, "a past deadline around sleep(0) must time out");
    assert!(out.4, "a past deadline around a yield must time out");
    assert_eq!(out.5, Ok(3));
}

/// CPython's test_outer_task_is_not_cancelled and
/// test_foreign_cancel_doesnt_timeout_if_not_expired: a timeout that fires
/// leaves the task's cancellation count alone, and a cancellation from
/// outside, inside an unexpired timeout, is a cancellation, not a timeout.
#[test]
fn a_timeout_is_not_a_cancellation_of_the_task_and_a_cancel_is_not_a_timeout() {
    let (count_after_timeout, foreign) = run(async {
        let expired = timeout(Duration::from_millis(1), sleep(Duration::from_secs(10))).await;
        assert!(expired.is_err());
        let count_after_timeout = runner_core::current_task().unwrap().cancelling();
        let task = spawn(async {
            match cancellable(timeout(Duration::from_secs(10), sleep(Duration::from_secs(10)))).await {
                Err(Cancelled) => "cancelled",
                Ok(Err(_elapsed)) => "timed out",
                Ok(Ok(())) => "slept",
            }
        });
        yield_now().await;
        task.cancel();
        (count_after_timeout, task.await.unwrap())
    })
    .unwrap();
    assert_eq!(count_after_timeout, 0);
    assert_eq!(foreign, "cancelled");
}

/// When the deadline's timer fires in the same iteration as the wrapped
/// future's wake-up, the deadline wins (asyncio cancels the task before
/// its next step), and the wrapped future is dropped unpolled: the item
/// that woke it stays in the channel, nothing is lost.
#[test]
fn a_deadline_that_fires_with_the_wake_up_wins_and_loses_nothing() {
    let lp = EventLoop::builder().start_paused(true).build().unwrap();
    let (result, left) = lp
        .run_until_complete(async {
            let lp = runner_core::get_running_loop().unwrap();
            let (tx, rx) = async_channel::bounded(1);
            let deadline = lp.time() + Duration::from_millis(5);
            // Due at the deadline too, and scheduled first: it sends just
            // before the timeout's own timer fires, in the same iteration.
            lp.call_at(deadline, move || tx.try_send(7).unwrap()).unwrap();
            let result = runner_core::timeout_at(deadline, rx.recv()).await;
            (result.map(|r| r.unwrap()), rx.try_recv().ok())
        })
        .unwrap();
    lp.close().unwrap();
    assert!(result.is_err(), "{result:?}");
    assert_eq!(left, Some(7), "the item that arrived with the deadline was lost");
}

/// asyncio's `wait_for(task, t)`: on timeout the task is cancelled (its
/// cleanup runs before `wait_for` returns) and the result is `Elapsed`; in
/// time, its output; a task that catches the cancellation and returns gives
/// that output.
#[test]
fn wait_for_cancels_the_task_on_timeout_and_waits_for_its_cleanup() {
    use runner_core::wait_for;
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let slow = spawn(async move {
            let _guard = OnDrop(move || l2.borrow_mut().push("slow task's cleanup ran"));
            sleep(Duration::from_secs(3600)).await;
        });
        let r = wait_for(Duration::from_millis(10), slow).await;
        l.borrow_mut().push(if r.is_err() { "elapsed" } else { "not elapsed" });
        assert_eq!(
            runner_core::get_running_loop().unwrap().task_count(),
            1,
            "only main is left"
        );

        let in_time = wait_for(Duration::from_secs(5), spawn(async { 6 * 7 })).await;
        assert_eq!(in_time.unwrap().unwrap(), 42);

        let stubborn = spawn(async {
            match cancellable(sleep(Duration::from_secs(3600))).await {
                Ok(()) => "slept",
                Err(Cancelled) => "caught and returned",
            }
        });
        let r = wait_for(Duration::from_millis(10), stubborn).await;
        assert_eq!(r.unwrap().unwrap(), "caught and returned");
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["slow task's cleanup ran", "elapsed"]);
}

/// CPython's test_nested_timeouts: two timeouts with one deadline; only
/// the outermost reports it (the inner one is dropped with what it wraps).
#[test]
fn nested_timeouts_with_one_deadline_report_it_at_the_outermost() {
    let outcome = run(async {
        let lp = runner_core::get_running_loop().unwrap();
        let deadline = lp.time() + Duration::from_millis(10);
        runner_core::timeout_at(
            deadline,
            runner_core::timeout_at(deadline, sleep(Duration::from_secs(10))),
        )
        .await
    })
    .unwrap();
    assert!(outcome.is_err(), "the outer timeout reports the deadline: {outcome:?}");
}
