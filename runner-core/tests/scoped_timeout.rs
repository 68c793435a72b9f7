//! `scoped_timeout`: asyncio's `async with asyncio.timeout(..)`, the
//! deadline delivered as a cancellation where the code is suspended, its
//! cleanup run before the timeout returns. Most cases are CPython's
//! `Lib/test/test_asyncio/test_timeouts.py` (named in each), on a paused
//! clock so that the interleavings are exact.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use runner_core::{
    cancellable, current_task, get_running_loop, scoped_timeout, scoped_timeout_at, scoped_timeout_with, sleep, spawn,
    task_group, yield_now, BoxError,
};

mod common;
use common::{run_paused as run, Boom};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn cancelling() -> u32 {
    current_task().expect("inside a task").cancelling()
}

type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

// test_timeout_basic, test_outer_task_is_not_cancelled
#[test]
fn the_deadline_cancels_the_code_inside_and_the_task_goes_on_uncancelled() {
    let (timed_out, count, next_sleep_ok) = run(async {
        let r = scoped_timeout(ms(10), sleep(ms(10_000))).await;
        (r.is_err(), cancelling(), cancellable(sleep(ms(1))).await.is_ok())
    });
    assert!(timed_out);
    assert_eq!(count, 0, "the deadline's request was taken back");
    assert!(next_sleep_ok, "nothing is left pending");
}

// test_timeout_not_triggered
#[test]
fn a_future_that_finishes_in_time_gives_its_output() {
    let out = run(async {
        scoped_timeout(ms(100), async {
            sleep(ms(10)).await;
            7
        })
        .await
    });
    assert_eq!(out, Ok(7));
}

// test_timeout_zero, test_timeout_in_the_past_sleep_zero,
// test_timeout_zero_sleep_zero
#[test]
fn a_deadline_already_passed_interrupts_at_the_first_suspension_only() {
    let (never_suspends, suspends, past) = run(async {
        let never = scoped_timeout(Duration::ZERO, async { 5 }).await;
        let suspends = scoped_timeout(Duration::ZERO, sleep(Duration::ZERO)).await;
        let when = get_running_loop().unwrap().time() - ms(1_000);
        let past = scoped_timeout_at(when, sleep(ms(10))).await;
        (never, suspends.is_err(), past.is_err())
    });
    assert_eq!(never_suspends, Ok(5));
    assert!(suspends, "sleep(0) suspends once: the deadline lands there");
    assert!(past);
}

// The point of it: the cleanup inside runs, `.await`s included, before
// the timeout returns.
#[test]
fn the_code_inside_runs_its_async_cleanup_before_the_timeout_returns() {
    let log: Log = Rc::default();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let r = scoped_timeout(ms(10), async move {
            if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                sleep(ms(5)).await;
                push(&l2, "cleanup done");
                cancelled.resume().await;
            }
        })
        .await;
        push(&l, format!("timed out: {}", r.is_err()));
    });
    assert_eq!(*log.borrow(), ["cleanup done", "timed out: true"]);
}

// A task group inside: asyncio's `async with timeout(): async with
// TaskGroup()` order.
#[test]
fn a_task_group_inside_cancels_its_children_whose_cleanup_runs_first() {
    let log: Log = Rc::default();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let r = scoped_timeout(
            ms(10),
            task_group(|tg| async move {
                for n in 1..=2 {
                    let l3 = l2.clone();
                    tg.spawn(async move {
                        if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                            sleep(ms(n)).await;
                            push(&l3, format!("child {n} cleaned up"));
                            return Err::<(), BoxError>(cancelled.into());
                        }
                        Ok(())
                    });
                }
                sleep(ms(10_000)).await;
                Ok::<_, BoxError>(())
            }),
        )
        .await;
        let scope = r.map(|g| g.map_err(|e| e.is_cancelled()));
        push(&l, format!("{scope:?}, cancelling {}", cancelling()));
    });
    assert_eq!(
        *log.borrow(),
        [
            "child 1 cleaned up",
            "child 2 cleaned up",
            "Err(Elapsed { duration: Some(10ms) }), cancelling 0"
        ]
    );
}

// test_timeout_taskgroup: a failure in the children's cleanup is the
// group's error, which the timeout hands on as the output.
#[test]
fn a_failure_in_the_groups_cleanup_is_its_error_not_a_timeout() {
    let out = run(async {
        let r = scoped_timeout(
            ms(10),
            task_group(|tg| async move {
                tg.spawn(async {
                    let _ = cancellable(sleep(ms(2_000))).await;
                    Err::<(), _>(Boom("crash in cleanup"))
                });
                sleep(ms(1_000)).await;
                Ok::<_, Boom>(())
            }),
        )
        .await;
        let next = cancellable(sleep(ms(1))).await.is_ok();
        (r.map(|g| g.map_err(|e| e.failures().len())), cancelling(), next)
    });
    assert_eq!(out, (Ok(Err(1)), 0, true));
}

// test_nested_timeouts
#[test]
fn nested_timeouts_that_expire_together_time_out_the_outer_one() {
    let log: Log = Rc::default();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let outer = scoped_timeout(ms(10), async move {
            let inner = cancellable(scoped_timeout(ms(10), sleep(ms(10_000)))).await;
            match inner {
                // Both deadlines cancelled the task: the inner timeout
                // hands the cancellation on, the outer one answers.
                Err(cancelled) => {
                    push(&l2, "inner: cancelled");
                    cancelled.resume().await;
                }
                Ok(r) => push(&l2, format!("inner: {r:?}")),
            }
        })
        .await;
        push(
            &l,
            format!("outer timed out: {}, cancelling {}", outer.is_err(), cancelling()),
        );
    });
    assert_eq!(
        *log.borrow(),
        ["inner: cancelled", "outer timed out: true, cancelling 0"]
    );
}

// test_nested_timeouts_concurrent: the outer deadline first.
#[test]
fn an_outer_deadline_that_comes_first_goes_through_the_inner_timeout() {
    let out = run(async {
        let r = scoped_timeout(ms(2), async {
            // Not this one's deadline: the cancellation goes through.
            let _ = scoped_timeout(ms(100), sleep(ms(1_000))).await;
            "not reached"
        })
        .await;
        (r.is_err(), cancelling())
    });
    assert_eq!(out, (true, 0));
}

// test_nested_timeout_in_finally
#[test]
fn a_timeout_in_the_cleanup_of_a_timed_out_block_times_out_on_its_own() {
    let log: Log = Rc::default();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let outer = scoped_timeout(ms(10), async move {
            if let Err(cancelled) = cancellable(sleep(ms(1_000))).await {
                // The cleanup has its own deadline, which expires too.
                let inner = scoped_timeout(ms(10), sleep(ms(10_000))).await;
                push(&l2, format!("inner timed out: {}", inner.is_err()));
                cancelled.resume().await;
            }
        })
        .await;
        push(
            &l,
            format!("outer timed out: {}, cancelling {}", outer.is_err(), cancelling()),
        );
    });
    assert_eq!(
        *log.borrow(),
        ["inner timed out: true", "outer timed out: true, cancelling 0"]
    );
}

// test_timeout_after_cancellation
#[test]
fn a_timeout_in_the_cleanup_of_a_caught_cancellation_still_times_out() {
    let out = run(async {
        let me = current_task().unwrap();
        me.cancel();
        let caught = cancellable(sleep(ms(1_000))).await.is_err();
        // The caught request is still counted (1): the timeout compares
        // with that.
        let r = scoped_timeout(Duration::ZERO, sleep(ms(1_000))).await;
        (caught, r.is_err(), cancelling())
    });
    assert_eq!(out, (true, true, 1));
}

// test_cancel_in_timeout_after_cancellation,
// test_foreign_cancel_doesnt_timeout_if_not_expired
#[test]
fn a_cancellation_from_elsewhere_goes_on_as_a_cancellation() {
    let out = run(async {
        let r = cancellable(scoped_timeout(ms(10_000), async {
            current_task().unwrap().cancel();
            sleep(ms(2_000)).await;
        }))
        .await;
        r.map(|inner| inner.is_err())
    });
    assert!(out.is_err(), "the cancellation went past the timeout");
}

// The deadline and a cancel from elsewhere, both: the cancellation wins.
#[test]
fn a_deadline_that_comes_with_an_outside_cancel_hands_the_cancellation_on() {
    let out = run(async {
        let task = spawn(async { scoped_timeout(ms(10), sleep(ms(10_000))).await.is_err() });
        // Lands in the same turn as the deadline.
        sleep(ms(10)).await;
        task.cancel();
        task.await
    });
    assert!(out.unwrap_err().is_cancelled());
}

// A code that catches the cancellation and finishes: its output stands,
// as asyncio's timeout does not raise then.
#[test]
fn code_that_swallows_the_deadline_and_finishes_gives_its_output() {
    let out = run(async {
        let r = scoped_timeout(ms(10), async {
            match cancellable(sleep(ms(10_000))).await {
                Ok(()) => "slept",
                Err(_) => "caught",
            }
        })
        .await;
        (r, cancelling())
    });
    assert_eq!(out, (Ok("caught"), 0));
}

// Around a task's handle: the awaited task is cancelled (asyncio's
// `fut_waiter.cancel()`) and awaited; its cleanup runs first.
#[test]
fn around_a_handle_the_awaited_task_is_cancelled_and_its_cleanup_awaited() {
    let log: Log = Rc::default();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let worker = spawn(async move {
            if cancellable(sleep(ms(10_000))).await.is_err() {
                sleep(ms(5)).await;
                push(&l2, "worker cleaned up");
                return Err("cancelled");
            }
            Ok(())
        });
        yield_now().await;
        let r = scoped_timeout(ms(10), worker).await;
        push(&l, format!("{r:?}"));
    });
    // The worker caught the cancellation and returned: its output stands.
    assert_eq!(*log.borrow(), ["worker cleaned up", "Ok(Ok(Err(\"cancelled\")))"]);
}

#[test]
fn around_a_handle_whose_task_ends_cancelled_it_times_out() {
    let out = run(async {
        let worker = spawn(sleep(ms(10_000)));
        yield_now().await;
        let r = scoped_timeout(ms(10), worker).await;
        (r.is_err(), cancelling())
    });
    assert_eq!(out, (true, 0));
}

// Polled where no task runs (loop callbacks here), it cannot cancel
// anything: it drops the future at the deadline, as `timeout` does.
/// Polls `fut` where no task runs (in loop callbacks): at once, then
/// 50 ms later; what each poll answered goes to `log`, and `fut` is
/// dropped before the loop closes.
fn poll_outside_a_task(fut: impl std::future::Future<Output = Result<(), runner_core::Elapsed>> + 'static, log: &Log) {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Context;

    type Shared = Rc<RefCell<Pin<Box<dyn Future<Output = Result<(), runner_core::Elapsed>>>>>>;

    let fut: Shared = Rc::new(RefCell::new(Box::pin(fut)));
    let poll_in_a_callback = |fut: Shared, log: Log| {
        move || {
            let mut cx = Context::from_waker(futures::task::noop_waker_ref());
            let p = fut.borrow_mut().as_mut().poll(&mut cx);
            push(&log, format!("{p:?}"));
        }
    };
    let lp = runner_core::EventLoop::new().unwrap();
    lp.call_soon(poll_in_a_callback(fut.clone(), log.clone())).unwrap();
    lp.call_later(ms(50), poll_in_a_callback(fut.clone(), log.clone()))
        .unwrap();
    lp.run_until_complete(sleep(ms(60))).unwrap();
    drop(fut);
    lp.close().unwrap();
}

#[test]
fn outside_a_task_the_deadline_drops_the_future() {
    struct Guard(Log);
    impl Drop for Guard {
        fn drop(&mut self) {
            push(&self.0, "future dropped");
        }
    }
    let log: Log = Rc::default();
    let guard = Guard(log.clone());
    poll_outside_a_task(
        scoped_timeout(ms(5), async move {
            let _guard = guard;
            std::future::pending::<()>().await
        }),
        &log,
    );
    assert_eq!(
        *log.borrow(),
        [
            "Pending",
            "Ready(Err(Elapsed { duration: Some(5ms) }))",
            "future dropped"
        ]
    );
}

// A shield inside: the deadline waits for its end and lands after it.
#[test]
fn inside_a_shield_the_deadline_waits_for_the_shields_end() {
    let log: Log = Rc::default();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let r = scoped_timeout(ms(10), async move {
            runner_core::shield(async {
                sleep(ms(50)).await;
                push(&l2, "shielded section done");
            })
            .await;
            sleep(ms(10_000)).await;
            push(&l2, "not reached");
        })
        .await;
        push(&l, format!("timed out: {}, cancelling {}", r.is_err(), cancelling()));
    });
    assert_eq!(
        *log.borrow(),
        ["shielded section done", "timed out: true, cancelling 0"]
    );
}

// A shield that is the last thing inside: the deadline, never delivered,
// is withdrawn when the timeout takes its request back, and the output
// stands (asyncio 3.13).
#[test]
fn a_shielded_last_step_keeps_its_output() {
    let out = run(async {
        let r = scoped_timeout(
            ms(10),
            runner_core::shield(async {
                sleep(ms(50)).await;
                7
            }),
        )
        .await;
        (r, cancelling(), cancellable(sleep(ms(1))).await.is_ok())
    });
    assert_eq!(out, (Ok(7), 0, true));
}

// scoped_timeout_with: the deadline in the hands of the code (asyncio's
// `async with asyncio.timeout(..) as cm:` and `cm`).

fn now() -> std::time::Instant {
    get_running_loop().unwrap().time()
}

// test_timeout_disabled, test_timeout_at_disabled
#[test]
fn without_a_deadline_the_code_runs_to_its_end() {
    let (out, when, expired, took) = run(async {
        let t0 = now();
        let mut handle = None;
        let out = scoped_timeout_with(None, |cm| {
            handle = Some(cm);
            async {
                sleep(ms(10_000)).await;
                7
            }
        })
        .await;
        let cm = handle.unwrap();
        (out, cm.when(), cm.expired(), now() - t0)
    });
    assert_eq!(out, Ok(7));
    assert_eq!((when, expired), (None, false));
    assert_eq!(took, ms(10_000));
}

// test_reschedule: another task holds the handle and moves the deadline
// while the code sleeps; cancelled from outside, it is not expired.
#[test]
fn another_task_reads_and_moves_the_deadline() {
    let out = run(async {
        let deadline1 = now() + ms(10_000);
        let deadline2 = deadline1 + ms(20_000);
        let (tx, rx) = futures::channel::oneshot::channel();
        let task = spawn(scoped_timeout_with(Some(deadline1), move |cm| async move {
            tx.send(cm).unwrap();
            sleep(ms(50_000)).await;
        }));
        let cm = rx.await.unwrap();
        let mut seen = vec![cm.when() == Some(deadline1)];
        cm.reschedule(Some(deadline2)).unwrap();
        seen.push(cm.when() == Some(deadline2));
        cm.reschedule(None).unwrap();
        seen.push(cm.when().is_none());
        sleep(ms(40_000)).await; // past both deadlines: neither fires
        seen.push(!task.is_done());
        task.cancel();
        let r = task.await;
        (seen, r.map_err(|e| e.is_cancelled()), cm.expired())
    });
    assert_eq!(out.0, [true, true, true, true]);
    assert_eq!(out.1, Err(true), "the task ends cancelled, not timed out");
    assert!(!out.2, "cancelled from outside: not expired");
}

// An idle timeout: every sign of life moves the deadline on.
#[test]
fn a_deadline_moved_on_by_each_step_fires_after_the_last() {
    let (r, took, expired) = run(async {
        let t0 = now();
        let mut handle = None;
        let r = scoped_timeout_with(Some(now() + ms(30)), |cm| {
            handle = Some(cm.clone());
            async move {
                for _ in 0..5 {
                    sleep(ms(20)).await;
                    cm.reschedule(Some(now() + ms(30))).unwrap();
                }
                sleep(ms(10_000)).await;
            }
        })
        .await;
        (r.is_err(), now() - t0, handle.unwrap().expired())
    });
    assert!(r, "timed out after the last step");
    assert_eq!(took, ms(5 * 20 + 30), "at the last deadline set, not the first");
    assert!(expired);
}

// A deadline moved earlier fires at the new time; one moved into the past
// lands at the next suspension (asyncio's `call_soon`), and code that
// finishes first is not interrupted and not expired.
#[test]
fn a_deadline_moved_into_the_past_lands_at_the_next_suspension_only() {
    let (earlier, took, suspends, finishes) = run(async {
        let t0 = now();
        let earlier = scoped_timeout_with(Some(now() + ms(10_000)), |cm| async move {
            cm.reschedule(Some(now() + ms(15))).unwrap();
            sleep(ms(5_000)).await;
        })
        .await;
        let took = now() - t0;
        let log: Log = Rc::default();
        let l = log.clone();
        let suspends = scoped_timeout_with(None, |cm| async move {
            cm.reschedule(Some(now() - ms(1))).unwrap();
            push(&l, "still running after the reschedule");
            yield_now().await;
            push(&l, "not reached");
        })
        .await;
        let mut handle = None;
        let finishes = scoped_timeout_with(None, |cm| {
            handle = Some(cm.clone());
            async move {
                cm.reschedule(Some(now() - ms(1))).unwrap();
                5
            }
        })
        .await;
        let cm = handle.unwrap();
        let after = (cancelling(), cancellable(yield_now()).await.is_ok());
        (
            earlier.is_err(),
            took,
            (suspends.is_err(), log.take()),
            (finishes, cm.expired(), after),
        )
    });
    assert!(earlier);
    assert_eq!(took, ms(15));
    assert_eq!(suspends, (true, vec!["still running after the reschedule".to_string()]));
    assert_eq!(finishes, (Ok(5), false, (0, true)), "no cancellation left behind");
}

// test_timeout_expired, test_timeout_finished, and a reschedule from the
// cleanup of the cancellation the deadline sent (asyncio's "expiring").
#[test]
fn a_deadline_that_fired_or_a_timeout_that_returned_cannot_move() {
    let (during, after, expired, finished, before) = run(async {
        let mut handle = None;
        let mut during = None;
        let r = scoped_timeout_with(Some(now() + ms(10)), |cm| {
            handle = Some(cm.clone());
            let during = &mut during;
            async move {
                if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                    *during = Some((cm.expired(), cm.reschedule(Some(now() + ms(10_000)))));
                    cancelled.resume().await;
                }
            }
        })
        .await;
        assert!(r.is_err());
        let cm = handle.unwrap();
        let after = cm.reschedule(Some(now() + ms(10)));
        let mut finished = None;
        let _ = scoped_timeout_with(Some(now() + ms(10)), |cm| {
            finished = Some(cm);
            async {}
        })
        .await;
        let finished = finished.unwrap();
        let mut early = None;
        let fut = scoped_timeout_with(None, |cm| {
            early = Some(cm);
            async {}
        });
        let before = early.unwrap().reschedule(None);
        drop(fut);
        (
            during.unwrap(),
            after,
            cm.expired(),
            (finished.expired(), finished.reschedule(None)),
            before,
        )
    });
    let (expired_inside, refused) = during;
    assert!(expired_inside, "expired() is true as soon as the deadline fired");
    let refused = refused.unwrap_err().to_string();
    assert!(refused.contains("already fired"), "{refused}");
    assert!(after.unwrap_err().to_string().contains("has returned"));
    assert!(expired, "it stays expired");
    assert!(!finished.0);
    assert!(finished.1.unwrap_err().to_string().contains("has returned"));
    assert!(before.unwrap_err().to_string().contains("has not started"));
}

// A task group inside, its deadline moved: the children's cleanup runs
// before the timeout returns, as with a fixed deadline.
#[test]
fn a_moved_deadline_cancels_a_task_group_inside_in_place() {
    let log: Log = Rc::default();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let r = scoped_timeout_with(None, |cm| {
            task_group(move |tg| async move {
                tg.spawn(async move {
                    if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                        sleep(ms(5)).await;
                        push(&l2, "child cleaned up");
                        return Err::<(), BoxError>(cancelled.into());
                    }
                    Ok(())
                });
                sleep(ms(1)).await;
                cm.reschedule(Some(now() + ms(10))).unwrap();
                Ok::<_, BoxError>(())
            })
        })
        .await;
        push(&l, format!("timed out: {}, cancelling {}", r.is_err(), cancelling()));
    });
    assert_eq!(*log.borrow(), ["child cleaned up", "timed out: true, cancelling 0"]);
}

// Outside a task, the plain timer follows the handle: a deadline set by
// the code inside (there was none) drops the future when it passes.
#[test]
fn outside_a_task_the_plain_timer_follows_a_moved_deadline() {
    let log: Log = Rc::default();
    poll_outside_a_task(
        scoped_timeout_with(None, |cm| async move {
            cm.reschedule(Some(now() + ms(5))).unwrap();
            std::future::pending::<()>().await
        }),
        &log,
    );
    assert_eq!(*log.borrow(), ["Pending", "Ready(Err(Elapsed { duration: None }))"]);
}

// Between two runs of its loop, the deadline cannot move (no loop runs to
// take it); in the next run it can.
#[test]
fn outside_its_running_loop_the_deadline_cannot_move() {
    let lp = common::paused_loop();
    let (task, cm) = lp
        .run_until_complete(async {
            let (tx, rx) = futures::channel::oneshot::channel();
            let task = spawn(scoped_timeout_with(None, move |cm| async move {
                tx.send(cm).unwrap();
                sleep(ms(10_000)).await;
            }));
            (task, rx.await.unwrap())
        })
        .unwrap();
    let between = cm.reschedule(Some(lp.time() + ms(10))).unwrap_err().to_string();
    assert!(between.contains("outside its event loop"), "{between}");
    let (r, took) = lp
        .run_until_complete(async move {
            let t0 = now();
            cm.reschedule(Some(t0 + ms(10))).unwrap();
            let r = task.await.unwrap();
            (r, now() - t0)
        })
        .unwrap();
    lp.close().unwrap();
    assert!(r.is_err(), "timed out at the deadline set in the second run");
    assert_eq!(took, ms(10));
}

// A refused reschedule is an ordinary error: `Send + Sync`, and `?` turns
// it into a `BoxError` whose message says what to do.
#[test]
fn a_refused_reschedule_goes_through_the_question_mark() {
    fn send_sync<T: std::error::Error + Send + Sync + 'static>() {}
    send_sync::<runner_core::RescheduleError>();
    let err = run(async {
        let mut kept = None;
        let _ = scoped_timeout_with(None, |cm| {
            kept = Some(cm);
            async {}
        })
        .await;
        let cm = kept.unwrap();
        let moved = || -> Result<(), BoxError> {
            cm.reschedule(None)?;
            Ok(())
        };
        moved().unwrap_err().to_string()
    });
    assert!(err.contains("start a new scoped_timeout"), "{err}");
}

// In a task that polls two branches at once (`join!`), the deadline goes
// to the branch it bounds, not to a `cancellable` in the other one, in
// either order; the cancellation handed on by the cleanup inside comes
// back out to the timeout, not to the sibling.
#[test]
fn in_a_join_the_deadline_goes_to_its_own_branch_not_a_siblings_cancellable() {
    for timed_first in [true, false] {
        let log: Log = Rc::default();
        let l = log.clone();
        run(async move {
            let (l1, l2) = (l.clone(), l.clone());
            let timed = async move {
                let r = scoped_timeout(ms(10), async {
                    if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                        push(&l1, "timed branch cleaned up");
                        cancelled.resume().await;
                    }
                })
                .await;
                push(&l1, format!("timed out: {}", r.is_err()));
            };
            let sibling = async move {
                let r = cancellable(sleep(ms(50))).await;
                push(&l2, format!("sibling cancelled: {}", r.is_err()));
            };
            if timed_first {
                futures::future::join(timed, sibling).await;
            } else {
                futures::future::join(sibling, timed).await;
            }
            push(&l, format!("cancelling {}", cancelling()));
        });
        assert_eq!(
            *log.borrow(),
            [
                "timed branch cleaned up",
                "timed out: true",
                "sibling cancelled: false",
                "cancelling 0"
            ],
            "timed branch first: {timed_first}"
        );
    }
}

// The same around a task's handle: the deadline cancels the task awaited
// in its own branch, not the one the sibling branch awaits.
#[test]
fn in_a_join_the_deadline_cancels_the_task_awaited_in_its_own_branch() {
    for timed_first in [true, false] {
        let (timed, other) = run(async move {
            let mine = spawn(async {
                sleep(ms(10_000)).await;
            });
            let theirs = spawn(async {
                sleep(ms(50)).await;
                "theirs finished"
            });
            let timed = async move { scoped_timeout(ms(10), mine).await.is_err() };
            let sibling = async move { theirs.await.map_err(|e| e.to_string()) };
            if timed_first {
                futures::future::join(timed, sibling).await
            } else {
                let (b, a) = futures::future::join(sibling, timed).await;
                (a, b)
            }
        });
        assert!(timed, "timed out (timed branch first: {timed_first})");
        assert_eq!(other, Ok("theirs finished"), "timed branch first: {timed_first}");
    }
}

// In a join, one branch hands on a caught cancellation (`resume`) in the
// same step as the deadline in the other branch fires: the timeout takes
// its own cancellation, and the one handed on still goes on (the task
// ends cancelled), in either order. Found by the cancellation fuzz: the
// deadline's delivery cleared the cancellation handed on a moment before,
// and the task waited forever in `resume`.
#[test]
fn in_a_join_a_cancellation_handed_on_as_the_siblings_deadline_fires_goes_on() {
    for resumer_first in [true, false] {
        let log: Log = Rc::default();
        let l = log.clone();
        let outcome = run(async move {
            let worker = spawn(async move {
                let (l1, l2) = (l.clone(), l.clone());
                let resumer = async move {
                    if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                        // Ends at 10 ms, as the sibling's deadline.
                        sleep(ms(10)).await;
                        push(&l1, "resumed");
                        cancelled.resume().await;
                        push(&l1, "never: resume returned");
                    }
                };
                let timed = async move {
                    // No scope yet when the task is cancelled at 0 ms.
                    sleep(ms(1)).await;
                    let r = scoped_timeout(ms(9), sleep(ms(10_000))).await;
                    push(&l2, format!("timed out: {}", r.is_err()));
                };
                if resumer_first {
                    futures::future::join(resumer, timed).await;
                } else {
                    futures::future::join(timed, resumer).await;
                }
                push(&l, "never: the join ended");
            });
            yield_now().await;
            worker.cancel();
            // On a paused clock: a lost cancellation is an hour, not a hang.
            runner_core::timeout(ms(3_600_000), worker).await
        });
        let ended = outcome.map(|r| r.map_err(|e| e.is_cancelled()));
        assert_eq!(ended, Ok(Err(true)), "resumer first: {resumer_first}, log {log:?}");
        let mut got = log.take();
        got.sort();
        assert_eq!(got, ["resumed", "timed out: true"], "resumer first: {resumer_first}");
    }
}

// A timeout dropped after its deadline fired, before the cancellation
// reached the code inside (a `select!` whose other branch won in the same
// step), takes its request back, as asyncio's `__aexit__` does whatever
// ends the block: the task is not cancelled by a timeout that is gone.
#[test]
fn a_timeout_dropped_after_its_deadline_fired_takes_its_cancellation_back() {
    let (survived, count) = run(async {
        let worker = spawn(async {
            // The other branch is polled first, and wins at the deadline.
            let timed = Box::pin(scoped_timeout(ms(10), sleep(ms(100))));
            let other = Box::pin(sleep(ms(10)));
            common::select_won_by(common::Won::First, other, timed, "the other branch is polled first").await;
            sleep(ms(1)).await;
            cancelling()
        });
        let out = worker.await;
        (out.is_ok(), out.unwrap_or(u32::MAX))
    });
    assert!(survived, "the task was cancelled by a timeout that was dropped");
    assert_eq!(count, 0);
}

// The same around a task's handle whose task ended cancelled by the
// deadline before the drop: the cancellation that came back out of it is
// the timeout's, and goes with it.
#[test]
fn a_timeout_dropped_after_the_task_it_awaited_ended_cancelled_takes_that_back() {
    let (survived, awaited_cancelled) = run(async {
        let awaited = spawn(sleep(ms(100)));
        let awaited_id = awaited.id();
        let worker = spawn(async move {
            // The other branch: polled first, its timer set after the
            // deadline's, so that at 10 ms the awaited task is cancelled
            // and ends before this task's step.
            let other = Box::pin(async {
                yield_now().await;
                sleep(ms(10)).await;
            });
            let timed = Box::pin(scoped_timeout(ms(10), awaited));
            common::select_won_by(common::Won::First, other, timed, "the other branch is polled first").await;
            sleep(ms(1)).await;
        });
        let out = worker.await;
        let gone = runner_core::all_tasks().iter().all(|t| t.id() != awaited_id);
        (out.is_ok(), gone)
    });
    assert!(awaited_cancelled, "the deadline cancelled the awaited task");
    assert!(survived, "the task was cancelled by a timeout that was dropped");
}
