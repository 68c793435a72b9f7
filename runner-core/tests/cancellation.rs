//! Cancellation (SPEC section 3): what `cancel()` does where a task is
//! suspended, `cancellable` and `shield`, counted requests, and a
//! cancellation handed to the task a cancelled task awaits.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

mod common;
use common::OnDrop;
use runner_core::{
    as_completed, cancellable, current_task, run, shield, sleep, spawn, timeout, yield_now, Cancelled, EventLoop,
};

#[test]
fn cancelling_a_task_blocked_on_a_timer_drops_it_and_runs_its_cleanup() {
    let log = Rc::new(RefCell::new(Vec::<&str>::new()));
    let l = log.clone();
    let started = Instant::now();
    let err = run(async move {
        let t = spawn(async move {
            let _cleanup = OnDrop(move || l.borrow_mut().push("finally"));
            sleep(Duration::from_secs(3600)).await;
            unreachable!("the sleep never completes");
        });
        sleep(Duration::from_millis(5)).await;
        t.cancel();
        t.await.unwrap_err()
    })
    .unwrap();
    assert!(err.is_cancelled());
    assert_eq!(*log.borrow(), ["finally"]);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn cancelled_timer_is_removed_so_the_loop_does_not_wait_for_it() {
    let lp = EventLoop::new().unwrap();
    let t = lp.spawn(sleep(Duration::from_secs(3600)));
    lp.run_until_complete(yield_now()).unwrap();
    t.cancel();
    let started = Instant::now();
    lp.run_until_complete(async {
        yield_now().await;
        yield_now().await;
    })
    .unwrap();
    assert!(t.is_cancelled());
    assert!(format!("{lp:?}").contains("timers: 0"), "{lp:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn cancellation_can_be_caught_and_followed_by_async_cleanup() {
    let (out, cancelling) = run(async {
        let worker = spawn(async {
            match cancellable(sleep(Duration::from_secs(3600))).await {
                Ok(()) => ("finished", 0),
                Err(Cancelled) => {
                    sleep(Duration::from_millis(2)).await;
                    yield_now().await;
                    ("cleaned up asynchronously", current_task().unwrap().cancelling())
                }
            }
        });
        yield_now().await;
        worker.cancel();
        worker.await.unwrap()
    })
    .unwrap();
    assert_eq!(out, "cleaned up asynchronously");
    assert_eq!(cancelling, 1, "the request stays counted until uncancel()");
}

#[test]
fn innermost_cancellable_catches_the_cancellation() {
    let out = run(async {
        let t = spawn(async {
            let outer = cancellable(async {
                let inner = cancellable(std::future::pending::<()>()).await;
                (inner.is_err(), "inner caught, outer goes on")
            })
            .await;
            outer
        });
        yield_now().await;
        t.cancel();
        t.await.unwrap()
    })
    .unwrap();
    assert_eq!(out, Ok((true, "inner caught, outer goes on")));
}

#[test]
fn task_that_caught_its_cancellation_runs_normally_afterwards() {
    let out = run(async {
        let t = spawn(async {
            let _ = cancellable(std::future::pending::<()>()).await;
            // Later awaits are not cancelled again.
            sleep(Duration::from_millis(1)).await;
            let me = current_task().unwrap();
            (me.cancelling(), me.uncancel(), "done")
        });
        yield_now().await;
        t.cancel();
        t.await.unwrap()
    })
    .unwrap();
    assert_eq!(out, (1, 0, "done"));
}

#[test]
fn shield_defers_cancellation_until_the_section_completes() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let res = run(async move {
        let t = spawn(async move {
            let l2 = l.clone();
            shield(async move {
                sleep(Duration::from_millis(10)).await;
                l2.borrow_mut().push("shielded section completed");
            })
            .await;
            sleep(Duration::from_secs(3600)).await;
            l.borrow_mut().push("never");
        });
        yield_now().await;
        t.cancel();
        t.await
    })
    .unwrap();
    assert!(res.unwrap_err().is_cancelled());
    assert_eq!(*log.borrow(), ["shielded section completed"]);
}

#[test]
fn cancelling_a_task_that_awaits_another_cancels_the_awaited_one_too() {
    let inner_dropped = Rc::new(Cell::new(false));
    let bystander_dropped = Rc::new(Cell::new(false));
    let (i, b) = (inner_dropped.clone(), bystander_dropped.clone());
    run(async move {
        let outer = spawn(async move {
            let inner = spawn(async move {
                let _g = OnDrop(move || i.set(true));
                std::future::pending::<()>().await
            });
            let _ = inner.await;
        });
        let bystander = spawn(async move {
            let _g = OnDrop(move || b.set(true));
            std::future::pending::<()>().await
        });
        yield_now().await;
        yield_now().await;
        outer.cancel();
        assert!(outer.await.unwrap_err().is_cancelled());
        yield_now().await;
        yield_now().await;
        assert!(!bystander.is_done(), "a task nobody awaited is left alone");
        bystander.cancel();
    })
    .unwrap();
    assert!(inner_dropped.get(), "the awaited task was cancelled with its awaiter");
    assert!(bystander_dropped.get());
}

#[test]
fn a_cancelled_awaiter_waits_for_the_awaited_tasks_async_cleanup() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let cancelling = run(async move {
        let outer = spawn(async move {
            let inner = spawn(async move {
                // Async cleanup the cancellation waits for; then the
                // cancellation lands at the next await.
                shield(async move {
                    sleep(Duration::from_millis(20)).await;
                    l1.borrow_mut().push("inner cleaned up");
                })
                .await;
                std::future::pending::<()>().await
            });
            let _g = OnDrop(move || l2.borrow_mut().push("outer dropped"));
            let _ = inner.await;
            unreachable!("the awaited task ended cancelled, so this one is");
        });
        yield_now().await;
        yield_now().await;
        outer.cancel();
        let cancelling = outer.cancelling();
        assert!(outer.await.unwrap_err().is_cancelled());
        cancelling
    })
    .unwrap();
    assert_eq!(cancelling, 1);
    assert_eq!(
        *log.borrow(),
        ["inner cleaned up", "outer dropped"],
        "asyncio waits for the awaited task"
    );
}

#[test]
fn an_awaited_task_that_swallows_the_cancellation_lets_its_awaiter_go_on() {
    let out = run(async move {
        let outer = spawn(async move {
            let inner = spawn(async move {
                assert!(cancellable(std::future::pending::<()>()).await.is_err());
                7
            });
            let v = inner.await.expect("the awaited task returned");
            (v * 2, current_task().unwrap().cancelling())
        });
        yield_now().await;
        yield_now().await;
        assert!(outer.cancel());
        outer.await
    })
    .unwrap();
    // The request went to the awaited task, which consumed it; it is
    // still counted on the awaiter, as asyncio counts it.
    assert_eq!(out.unwrap(), (14, 1));
}

#[test]
fn a_shielded_handle_is_not_cancelled_with_its_awaiter() {
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let inner_outcome = run(async move {
        let inner = spawn(async move {
            sleep(Duration::from_millis(20)).await;
            f.set(true);
            5
        });
        let inner_id = inner.id();
        let outer = spawn(async move {
            let v = shield(inner).await;
            sleep(Duration::from_secs(3600)).await;
            v
        });
        yield_now().await;
        yield_now().await;
        outer.cancel();
        let outcome = timeout(Duration::from_secs(10), outer).await.expect("bounded");
        (inner_id, outcome)
    })
    .unwrap();
    assert!(inner_outcome.1.unwrap_err().is_cancelled());
    assert!(finished.get(), "the shielded task ran to its end");
}

#[test]
fn a_handle_polled_through_as_completed_is_not_handed_the_awaiters_cancellation() {
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    run(async move {
        let inner = spawn(async move {
            sleep(Duration::from_millis(30)).await;
            f.set(true);
        });
        let outer = spawn(async move {
            let mut done = as_completed([inner]);
            done.next().await
        });
        yield_now().await;
        yield_now().await;
        outer.cancel();
        assert!(outer.await.unwrap_err().is_cancelled());
        // The awaiter was a combinator's, not the task's own await: the
        // task was detached, as asyncio's as_completed leaves its tasks.
        sleep(Duration::from_millis(100)).await;
    })
    .unwrap();
    assert!(finished.get(), "the detached task was not cancelled");
}

#[test]
fn a_forwarded_cancellation_comes_back_when_the_awaiter_wakes_for_something_else() {
    let elapsed = run(async move {
        let started = Instant::now();
        let outer = spawn(async move {
            let mut inner = spawn(async move {
                // Catches the cancellation and keeps going for a long time.
                let _ = cancellable(std::future::pending::<()>()).await;
                sleep(Duration::from_secs(3600)).await;
            });
            // The timeout's timer wakes this task while the awaited one
            // still runs: the cancellation handed to it is this task's
            // again, delivered then (not after the hour).
            let _ = timeout(Duration::from_millis(20), &mut inner).await;
            unreachable!("cancelled when the timeout woke the task");
        });
        yield_now().await;
        yield_now().await;
        outer.cancel();
        let outcome = timeout(Duration::from_secs(10), outer).await.expect("bounded");
        assert!(outcome.unwrap_err().is_cancelled());
        started.elapsed()
    });
    let elapsed = elapsed.unwrap();
    assert!(elapsed >= Duration::from_millis(20), "{elapsed:?}");
}

/// CPython's `test_cancel_awaited_task` (bpo-34872): a task cancels itself
/// while running, then awaits another task: the cancellation goes to that
/// task, and both end cancelled.
#[test]
fn a_task_that_cancels_itself_then_awaits_another_cancels_that_one() {
    let (nested_dropped, outer_cancelled) = run(async move {
        let dropped = Rc::new(Cell::new(false));
        let d = dropped.clone();
        let outer = spawn(async move {
            let handle = spawn(async move {
                let _g = OnDrop(move || d.set(true));
                std::future::pending::<()>().await
            });
            yield_now().await;
            current_task().unwrap().cancel();
            let _ = handle.await;
            unreachable!("the nested task was cancelled, so this one is");
        });
        let outcome = timeout(Duration::from_secs(10), outer).await.expect("bounded");
        // Looked at as soon as the outer task ended: the nested one was
        // cancelled and ended before it (not left running, detached).
        (dropped.get(), outcome.unwrap_err().is_cancelled())
    })
    .unwrap();
    assert!(outer_cancelled);
    assert!(
        nested_dropped,
        "the task the cancelled task blocked on was cancelled first"
    );
}

#[test]
fn task_cancelled_before_it_ever_ran_is_never_polled() {
    let polled = Rc::new(Cell::new(false));
    let p = polled.clone();
    run(async move {
        let t = spawn(async move { p.set(true) });
        t.cancel();
        assert!(t.await.unwrap_err().is_cancelled());
    })
    .unwrap();
    assert!(!polled.get());
}
#[test]
fn self_cancel_lands_at_the_next_suspension() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let res = run(async move {
        let t = spawn(async move {
            current_task().unwrap().cancel();
            l.borrow_mut().push("still running until the next await");
            yield_now().await;
            l.borrow_mut().push("never");
        });
        t.await
    })
    .unwrap();
    assert!(res.unwrap_err().is_cancelled());
    assert_eq!(*log.borrow(), ["still running until the next await"]);
}

#[test]
fn cancel_requests_are_counted_and_uncancel_takes_one_back() {
    run(async {
        let t = spawn(async {
            let caught = cancellable(std::future::pending::<()>()).await.is_err();
            assert!(caught);
            std::future::pending::<()>().await
        });
        yield_now().await;
        // Requests made before the task runs again are counted, and
        // delivered as one cancellation.
        t.cancel();
        t.cancel();
        assert_eq!(t.cancelling(), 2);
        assert_eq!(t.uncancel(), 1);
        yield_now().await;
        assert!(!t.is_done(), "the task caught the cancellation and went on");
        // A new request after that lands at its new suspension point.
        t.cancel();
        assert_eq!(t.cancelling(), 2);
        assert!(t.await.unwrap_err().is_cancelled());
    })
    .unwrap();
}

// test_tasks.py: test_uncancel_resets_must_cancel (asyncio 3.13)
#[test]
fn uncancel_down_to_zero_withdraws_a_cancellation_not_delivered_yet() {
    let out = run(async {
        let (tx, rx) = futures::channel::oneshot::channel::<()>();
        let t = spawn(async move {
            rx.await.unwrap();
            42
        });
        yield_now().await; // t waits on the channel
        tx.send(()).unwrap(); // t is runnable
        t.cancel();
        assert_eq!(t.cancelling(), 1);
        assert_eq!(t.uncancel(), 0);
        t.await
    })
    .unwrap();
    assert_eq!(out.expect("the withdrawn cancellation never landed"), 42);
}

#[test]
fn a_resumed_cancellation_ends_the_task_cancelled_after_its_cleanup_and_its_awaiter_too() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let (l1, l2) = (log.clone(), log.clone());
    let (outer_outcome, counts) = run(async move {
        let counts = Rc::new(Cell::new((0, 0)));
        let c = counts.clone();
        let outer = spawn(async move {
            let inner = spawn(async move {
                if let Err(cancelled) = cancellable(std::future::pending::<()>()).await {
                    sleep(Duration::from_millis(10)).await;
                    l1.borrow_mut().push("inner cleaned up");
                    let me = current_task().unwrap();
                    c.set((me.cancelling(), 0));
                    cancelled.resume().await;
                    l1.borrow_mut().push("never");
                }
                7
            });
            let _g = OnDrop(move || l2.borrow_mut().push("outer dropped"));
            let _ = inner.await;
            unreachable!("the awaited task ended cancelled");
        });
        yield_now().await;
        yield_now().await;
        outer.cancel();
        let outcome = timeout(Duration::from_secs(10), outer).await.expect("bounded");
        (outcome, counts.get())
    })
    .unwrap();
    assert!(outer_outcome.unwrap_err().is_cancelled());
    assert_eq!(counts.0, 1, "resuming makes no new request");
    assert_eq!(*log.borrow(), ["inner cleaned up", "outer dropped"]);
}

#[test]
fn a_resumed_cancellation_is_caught_by_the_enclosing_cancellable() {
    let out = run(async {
        let t = spawn(async {
            let outer = cancellable(async {
                if let Err(cancelled) = cancellable(std::future::pending::<()>()).await {
                    cancelled.resume().await;
                    return "resume returned";
                }
                "inner finished"
            })
            .await;
            outer.unwrap_or("the outer scope caught it")
        });
        yield_now().await;
        t.cancel();
        timeout(Duration::from_secs(10), t).await.expect("bounded")
    })
    .unwrap();
    assert_eq!(out.unwrap(), "the outer scope caught it");
}

#[test]
fn resume_returns_at_once_where_the_cancellation_cannot_go_on() {
    // Outside a task.
    assert_eq!(futures_lite::future::block_on(Cancelled.resume()), Cancelled);
    // Inside a shield (which would hold it forever).
    let out = run(async {
        let t = spawn(async {
            shield(async {
                let _ = Cancelled.resume().await;
                "went on inside the shield"
            })
            .await
        });
        timeout(Duration::from_secs(10), t).await.expect("bounded")
    })
    .unwrap();
    assert_eq!(out.unwrap(), "went on inside the shield");
}

// A task that awaited a handle in a `select!` whose other branch won, and
// cancels itself in the same step, keeps the cancellation: the task whose
// handle it dropped (detached, still running) is not cancelled in its
// place, and the cancellation lands at once.
#[test]
fn a_handle_dropped_by_the_select_that_awaited_it_takes_no_cancellation() {
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let caught_at = common::run_paused(async move {
        let started = runner_core::get_running_loop().unwrap().time();
        let other = spawn(async move {
            sleep(Duration::from_millis(20)).await;
            f.set(true);
        });
        let worker = spawn(async move {
            // The handle is polled (and awaited) before the sleep wins,
            // then dropped with the select's output, in the same step.
            let wins = Box::pin(sleep(Duration::from_millis(1)));
            common::select_won_by(common::Won::Second, other, wins, "the other task sleeps 20 ms").await;
            current_task().unwrap().cancel();
            cancellable(sleep(Duration::from_millis(5))).await.is_err()
        });
        let caught = worker.await.unwrap();
        let at = runner_core::get_running_loop().unwrap().time() - started;
        // The dropped handle's task runs to its end.
        sleep(Duration::from_millis(30)).await;
        caught.then_some(at)
    });
    assert!(finished.get(), "the detached task was cancelled in the worker's place");
    assert_eq!(caught_at, Some(Duration::from_millis(1)), "caught at once");
}

// The same with another handle still awaited in a sibling branch of a
// join: the cancellation is handed to that one, as to any handle the task
// awaits, and the dropped one's task runs to its end.
#[test]
fn with_a_handle_dropped_the_cancellation_goes_to_the_one_still_awaited() {
    let dropped_finished = Rc::new(Cell::new(false));
    let f = dropped_finished.clone();
    let awaited = common::run_paused(async move {
        let still_awaited = spawn(async {
            match cancellable(sleep(Duration::from_millis(20))).await {
                Ok(()) => "finished",
                Err(_) => "cancelled",
            }
        });
        let dropped = spawn(async move {
            sleep(Duration::from_millis(20)).await;
            f.set(true);
        });
        let worker = spawn(async move {
            let other_branch = async move {
                let wins = Box::pin(sleep(Duration::from_millis(1)));
                common::select_won_by(common::Won::Second, dropped, wins, "the task sleeps 20 ms").await;
                current_task().unwrap().cancel();
                sleep(Duration::from_millis(2)).await;
            };
            futures::future::join(still_awaited, other_branch).await.0
        });
        let out = worker.await;
        sleep(Duration::from_millis(30)).await;
        out
    });
    assert_eq!(awaited.unwrap().map_err(|e| e.to_string()), Ok("cancelled"));
    assert!(dropped_finished.get(), "the dropped handle's task was cancelled");
}

// A `shield` dropped while pending (a `select!`'s losing branch) holds no
// cancellation back: one that waited for the shield's end lands at the
// task's next suspension, not after a shield that is gone.
#[test]
fn a_shield_dropped_while_pending_holds_no_cancellation_back() {
    let outcome = common::run_paused(async {
        let worker = spawn(async {
            let shielded = Box::pin(shield(sleep(Duration::from_millis(20))));
            let wins = Box::pin(sleep(Duration::from_millis(1)));
            common::select_won_by(common::Won::Second, shielded, wins, "the shielded sleep is longer").await;
            std::future::pending::<()>().await;
        });
        yield_now().await;
        // Held back: the worker is inside the shield.
        worker.cancel();
        // On a paused clock: a cancellation held back is an hour, not a hang.
        timeout(Duration::from_secs(3600), worker).await
    });
    assert!(outcome.expect("the worker ended").unwrap_err().is_cancelled());
}
