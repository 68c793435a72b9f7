//! TaskGroup and cancellations: a group takes back the cancellation it
//! asked for of its owner, and hands on one that came from outside, also
//! when failures win (ported from CPython's
//! `Lib/test/test_asyncio/test_taskgroups.py`, 3.13's cases, named in
//! each); a caught cancellation returned by a child is no failure. On a
//! paused clock, so that the interleavings are exact.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use runner_core::{
    cancellable, current_task, get_running_loop, sleep, spawn, task_group, timeout, yield_now, BoxError,
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

// test_error_and_cancel
#[test]
fn a_cancel_from_outside_that_comes_with_a_failure_goes_on_after_the_scope() {
    let log: Log = Rc::default();
    let l = log.clone();
    let out = run(async move {
        let (tx, rx) = async_channel::bounded::<()>(1);
        let task = spawn(async move {
            let l2 = l.clone();
            let r = task_group(|tg| async move {
                tg.spawn(async move {
                    tx.send(()).await.unwrap();
                    yield_now().await;
                    Err::<(), _>(Boom("child"))
                });
                sleep(ms(1_000)).await;
                l2.borrow_mut().push("not reached: the group's sleep".into());
                Ok::<_, Boom>(())
            })
            .await;
            let e = r.unwrap_err();
            l.borrow_mut().push(format!(
                "scope: cancelled {}, {} failure(s), cancelling {}",
                e.is_cancelled(),
                e.failures().len(),
                cancelling()
            ));
            sleep(ms(1_000)).await;
            l.borrow_mut().push("not reached: the sleep after the scope".into());
        });
        rx.recv().await.unwrap();
        assert_eq!(task.cancelling(), 0);
        task.cancel();
        assert_eq!(task.cancelling(), 1);
        timeout(ms(10_000), task).await
    });
    let joined = out.expect("the task ended before the bound");
    assert!(
        joined.unwrap_err().is_cancelled(),
        "the outside cancel landed after the scope"
    );
    assert_eq!(*log.borrow(), ["scope: cancelled false, 1 failure(s), cancelling 1"]);
}

// test_taskgroup_18: the body turns the outside cancellation into an
// error; the task, returning it at once, ends with it (asyncio: the task
// raises the ExceptionGroup), while the request stays counted.
#[test]
fn a_task_that_returns_the_groups_error_at_once_ends_with_it_not_cancelled() {
    let out = run(async {
        let task = spawn(async {
            let r = task_group(|_tg| async {
                match cancellable(sleep(ms(10_000))).await {
                    Err(_) => Err(Boom("raised in the body's except")),
                    Ok(()) => Ok(()),
                }
            })
            .await;
            (r.map_err(|e| (e.is_cancelled(), e.failures().len())), cancelling())
        });
        sleep(ms(100)).await;
        task.cancel();
        task.await
    });
    let (scope, count) = out.expect("the task ended with its output, not cancelled");
    assert_eq!(scope, Err((false, 1)));
    assert_eq!(count, 1);
}

// test_nested_groups_both_cancelled
#[test]
fn nested_groups_that_both_fail_take_back_each_their_own_request() {
    let log: Log = Rc::default();
    let l = log.clone();
    let outer = run(async move {
        let l2 = l.clone();
        let outer = task_group(|outer_tg| async move {
            let inner = task_group(|inner_tg| async move {
                inner_tg.spawn(async {
                    yield_now().await;
                    Err::<(), _>(Boom("inner child"))
                });
                outer_tg.spawn(async {
                    yield_now().await;
                    Err::<(), _>(Boom("outer child"))
                });
                Ok::<_, Boom>(())
            })
            .await;
            l2.borrow_mut()
                .push(format!("inner failed {}, cancelling {}", inner.is_err(), cancelling()));
            Ok::<_, Boom>(())
        })
        .await;
        l.borrow_mut()
            .push(format!("outer failed {}, cancelling {}", outer.is_err(), cancelling()));
        // Nothing is left over to cancel this sleep.
        cancellable(sleep(ms(1))).await.is_ok()
    });
    assert!(outer, "no cancellation leaked out of the groups");
    assert_eq!(
        *log.borrow(),
        ["inner failed true, cancelling 1", "outer failed true, cancelling 0"]
    );
}

// test_cancelling_level_preserved, with a cancel from outside: the group
// takes back only its own request.
#[test]
fn the_groups_own_request_is_taken_back_and_an_outside_one_stays() {
    let out = run(async {
        let task = spawn(async {
            let r = task_group(|tg| async move {
                tg.spawn(async {
                    sleep(ms(10)).await;
                    Err::<(), _>(Boom("late"))
                });
                // The outside cancel at 5 ms is caught here, and the body
                // waits on as its cleanup; the failure comes meanwhile.
                if cancellable(sleep(ms(1_000))).await.is_err() {
                    let _ = cancellable(sleep(ms(20))).await;
                }
                Ok::<_, Boom>(())
            })
            .await;
            (r.is_err(), cancelling(), cancellable(sleep(ms(1))).await.is_err())
        });
        sleep(ms(5)).await;
        task.cancel();
        task.await
    });
    let (failed, count, cancelled_after) = out.expect("the task returned");
    assert!(failed);
    assert_eq!(count, 1, "the outside request stays, the group's is taken back");
    assert!(cancelled_after, "the outside cancellation lands after the scope");
}

#[test]
fn a_child_returning_its_caught_cancellation_in_an_io_error_ends_cancelled_not_failed() {
    let (scope, first, second) = run(async {
        let (tx, rx) = async_channel::bounded::<(bool, bool)>(1);
        let scope = task_group(|tg| async move {
            // How an `io::Result` function hands on a caught cancellation.
            let wrapped = tg.spawn(async {
                match cancellable(sleep(ms(1_000))).await {
                    Ok(()) => Ok(()),
                    Err(cancelled) => Err(std::io::Error::other(cancelled)),
                }
            });
            let plain = tg.spawn(async {
                match cancellable(sleep(ms(1_000))).await {
                    Ok(()) => Ok(()),
                    Err(cancelled) => Err(cancelled),
                }
            });
            yield_now().await;
            wrapped.cancel();
            plain.cancel();
            let (a, b) = (wrapped.await, plain.await);
            tx.send((a.unwrap_err().is_cancelled(), b.unwrap_err().is_cancelled()))
                .await
                .unwrap();
            Ok::<_, std::io::Error>("body done")
        })
        .await;
        let (first, second) = rx.recv().await.unwrap();
        (scope.map_err(|e| e.failures().len()), first, second)
    });
    assert_eq!(scope, Ok("body done"), "no failure in the group");
    assert!(first && second, "both children ended cancelled");
}

/// A cancellation handed on (resumed) is in flight: taking back the request
/// it came from does not withdraw it (only one never delivered is), or the
/// code that resumed it would wait for it forever. Found by a randomized
/// run: a task group's request of its owner, delivered into a sibling
/// branch of a `zip` (`join!`) that resumed it, then taken back when the group
/// ended.
#[test]
fn a_resumed_cancellation_survives_the_uncancel_of_its_request() {
    let out = run(async {
        let task = spawn(async {
            let resumer = async {
                if let Err(cancelled) = cancellable(sleep(ms(3_600_000))).await {
                    cancelled.resume().await;
                    return "resume returned";
                }
                "slept"
            };
            let taker_back = async {
                yield_now().await;
                current_task().unwrap().uncancel();
            };
            futures_lite::future::zip(resumer, taker_back).await.0
        });
        yield_now().await;
        task.cancel();
        // Bounded in virtual time: a lost cancellation is an Err here.
        timeout(ms(10_000), task).await
    });
    let joined = out.expect("the task ended");
    assert!(
        joined.unwrap_err().is_cancelled(),
        "the resumed cancellation ended the task"
    );
}

/// A child that runs a nested group and hands on its cancelled scope with
/// `?` ends cancelled, as Python's `CancelledError` goes through `async
/// with TaskGroup()`: no failure of the outer group.
#[test]
fn a_child_handing_on_a_nested_scopes_cancellation_with_the_question_mark_is_cancelled() {
    let out = run(async {
        task_group(|outer| async move {
            let child = outer.spawn(async {
                task_group(|inner| async move {
                    inner.spawn(async {
                        sleep(ms(10_000)).await;
                        Ok::<_, BoxError>(())
                    });
                    Ok::<_, BoxError>(())
                })
                .await?;
                Ok::<_, BoxError>("not reached")
            });
            yield_now().await;
            child.cancel();
            Ok::<_, BoxError>(child.await.map_err(|e| e.is_cancelled()))
        })
        .await
        .map_err(|e| e.failures().len())
    });
    assert_eq!(
        out,
        Ok(Err(true)),
        "the child ended cancelled, and the group did not fail"
    );
}

// TaskGroup::cancel (asyncio 3.15): the group cancels its children and
// its body, and the scope ends without the cancellation going on.

/// A child that sleeps until cancelled, then cleans up with an await.
fn sleeper(log: &Log, name: &'static str) -> impl std::future::Future<Output = Result<(), BoxError>> {
    let log = log.clone();
    async move {
        if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
            sleep(ms(5)).await;
            log.borrow_mut().push(format!("{name} cleaned up"));
            return Err(cancelled.into());
        }
        Ok(())
    }
}

#[test]
fn cancel_from_a_child_ends_the_scope_after_everyones_cleanup_and_nothing_goes_on() {
    let log: Log = Rc::default();
    let l = log.clone();
    let (group_cancelled, failures, count, next_sleep_ok, took) = run(async move {
        let t0 = get_running_loop().unwrap().time();
        let l2 = l.clone();
        let r = task_group(|tg| async move {
            tg.spawn(sleeper(&l2, "sleeper"));
            let stop = tg.clone();
            tg.spawn(async move {
                sleep(ms(10)).await;
                stop.cancel();
                Ok::<_, BoxError>(())
            });
            if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                l2.borrow_mut().push("body cancelled".into());
                return Err::<u32, BoxError>(cancelled.into());
            }
            Ok(1)
        })
        .await;
        let took = get_running_loop().unwrap().time() - t0;
        let err = r.unwrap_err();
        (
            err.is_group_cancelled() && !err.is_cancelled(),
            err.failures().len(),
            cancelling(),
            cancellable(sleep(ms(1))).await.is_ok(),
            took,
        )
    });
    assert!(group_cancelled);
    assert_eq!(failures, 0);
    assert_eq!(count, 0, "the group's request of its owner was taken back");
    assert!(next_sleep_ok, "no cancellation goes on");
    assert_eq!(took, ms(15), "the scope waited for the sleeper's cleanup");
    assert_eq!(*log.borrow(), ["body cancelled", "sleeper cleaned up"]);
}

#[test]
fn cancel_after_the_body_finished_keeps_its_value() {
    let log: Log = Rc::default();
    let l = log.clone();
    let (out, count) = run(async move {
        let r = task_group(|tg| async move {
            tg.spawn(sleeper(&l, "sleeper"));
            let stop = tg.clone();
            tg.spawn(async move {
                sleep(ms(10)).await;
                stop.cancel();
                stop.cancel(); // idempotent
                Ok::<_, BoxError>(())
            });
            Ok::<_, BoxError>(7)
        })
        .await;
        (r.map_err(|e| e.to_string()), cancelling())
    });
    assert_eq!(out, Ok(7));
    assert_eq!(count, 0);
    assert_eq!(*log.borrow(), ["sleeper cleaned up"]);
}

#[test]
fn cancel_from_the_body_lands_at_its_next_suspension_or_not_at_all() {
    let (suspended, finished, count) = run(async {
        let suspended = task_group(|tg| async move {
            tg.cancel();
            assert_eq!(cancelling(), 1, "one request of the owner");
            tg.cancel();
            assert_eq!(cancelling(), 1, "idempotent");
            yield_now().await;
            Ok::<_, BoxError>("not reached")
        })
        .await;
        // The body returns without suspending: its value stands, and the
        // request, never delivered, is withdrawn.
        let finished = task_group(|tg| async move {
            tg.cancel();
            Ok::<_, BoxError>("finished")
        })
        .await;
        (
            suspended.map_err(|e| e.is_group_cancelled()),
            finished.map_err(|e| e.to_string()),
            (cancelling(), cancellable(yield_now()).await.is_ok()),
        )
    });
    assert_eq!(suspended, Err(true));
    assert_eq!(finished, Ok("finished"));
    assert_eq!(count, (0, true));
}

#[test]
fn a_body_that_catches_the_groups_cancel_and_goes_on_gives_its_value() {
    let out = run(async {
        task_group(|tg| async move {
            let stop = tg.clone();
            tg.spawn(async move {
                yield_now().await;
                stop.cancel();
                Ok::<_, BoxError>(())
            });
            let caught = cancellable(sleep(ms(10_000))).await.is_err();
            sleep(ms(5)).await; // async cleanup, not interrupted again
            Ok::<_, BoxError>(caught)
        })
        .await
        .map_err(|e| e.to_string())
    });
    assert_eq!(out, Ok(true));
}

#[test]
fn after_cancel_failures_still_win_and_new_children_never_run() {
    let ran = Rc::new(std::cell::Cell::new(false));
    let r2 = ran.clone();
    let (failures, count, group_cancelled) = run(async move {
        let r = task_group(|tg| async move {
            tg.spawn(async {
                let _ = cancellable(sleep(ms(10_000))).await;
                Err::<(), _>(Boom("cleanup failed"))
            });
            yield_now().await;
            tg.cancel();
            // Cancelled before it runs; awaiting it, the body is cancelled.
            let _ = tg
                .spawn(async move {
                    r2.set(true);
                    Ok::<_, BoxError>(())
                })
                .await;
            Ok::<_, BoxError>(())
        })
        .await;
        let err = r.unwrap_err();
        let texts: Vec<String> = err.failures().iter().map(|f| f.to_string()).collect();
        (texts, cancelling(), err.is_group_cancelled())
    });
    assert_eq!(failures.len(), 1);
    assert!(failures[0].ends_with("cleanup failed"), "{failures:?}");
    assert_eq!(count, 0);
    assert!(!group_cancelled, "the error is the failure's");
    assert!(!ran.get(), "a child spawned after cancel() never runs");
}

// gh-155433: a cancellation from outside that comes after cancel() is not
// lost with the group's own.
#[test]
fn an_outside_cancel_after_the_groups_own_goes_on() {
    for body_done in [false, true] {
        let ended_cancelled = run(async move {
            let task = spawn(async move {
                let _ = task_group(|tg| async move {
                    tg.spawn(async {
                        let _ = cancellable(sleep(ms(10_000))).await;
                        sleep(ms(20)).await; // a long cleanup
                        Ok::<_, BoxError>(())
                    });
                    yield_now().await;
                    tg.cancel();
                    if !body_done {
                        let _ = cancellable(sleep(ms(10_000))).await;
                        sleep(ms(20)).await;
                    }
                    Ok::<_, BoxError>(())
                })
                .await;
                sleep(ms(10_000)).await;
            });
            sleep(ms(10)).await;
            task.cancel();
            task.await.unwrap_err().is_cancelled()
        });
        assert!(ended_cancelled, "body done: {body_done}");
    }
}

#[test]
fn cancel_on_a_group_whose_scope_ended_does_nothing() {
    let (kept, count, ok) = run(async {
        let mut kept = None;
        let r = task_group(|tg| {
            kept = Some(tg.clone());
            async { Ok::<_, BoxError>(1) }
        })
        .await;
        let tg = kept.unwrap();
        tg.cancel();
        (r.is_ok(), cancelling(), cancellable(yield_now()).await.is_ok())
    });
    assert!(kept);
    assert_eq!(count, 0, "the owner was not cancelled");
    assert!(ok);
}

#[test]
fn a_nested_groups_cancel_leaves_the_outer_group_running() {
    let out = run(async {
        task_group(|outer| async move {
            let sibling = outer.spawn(async {
                sleep(ms(20)).await;
                Ok::<_, BoxError>("sibling done")
            });
            let inner = task_group(|tg| async move {
                tg.spawn(async {
                    sleep(ms(10_000)).await;
                    Ok::<_, BoxError>(())
                });
                sleep(ms(5)).await;
                tg.cancel();
                sleep(ms(10_000)).await;
                Ok::<_, BoxError>(())
            })
            .await;
            let inner = inner.unwrap_err().is_group_cancelled();
            Ok::<_, BoxError>((inner, sibling.await.unwrap()))
        })
        .await
        .map_err(|e| e.to_string())
    });
    assert_eq!(out, Ok((true, "sibling done")));
}

/// asyncio's `Event`, enough for the tests: `set` wakes every waiter, in
/// the order they began to wait.
#[derive(Clone, Default)]
struct Event(Rc<RefCell<(bool, Vec<std::task::Waker>)>>);

impl Event {
    fn set(&self) {
        let waiters = {
            let mut state = self.0.borrow_mut();
            state.0 = true;
            std::mem::take(&mut state.1)
        };
        waiters.into_iter().for_each(std::task::Waker::wake);
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            let mut state = self.0.borrow_mut();
            if state.0 {
                return std::task::Poll::Ready(());
            }
            state.1.push(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }
}

// test_taskgroup_cancel_one_winner: the first of two racers to finish
// cancels the group; the other, woken by the same event, is cancelled
// before its next step.
#[test]
fn the_first_racer_to_finish_cancels_the_group_and_the_other_never_finishes() {
    let log: Log = Rc::default();
    let l = log.clone();
    let (winner, count) = run(async move {
        let event = Event::default();
        let outcome = Rc::new(std::cell::Cell::new(0));
        let racer = |n: u32| {
            let (event, log) = (event.clone(), l.clone());
            async move {
                log.borrow_mut().push(format!("{n} started"));
                event.wait().await;
                log.borrow_mut().push(format!("{n} finished"));
                n
            }
        };
        let trigger = {
            let (event, log) = (event.clone(), l.clone());
            spawn(async move {
                log.borrow_mut().push("trigger started".into());
                sleep(ms(1_000)).await;
                log.borrow_mut().push("trigger set".into());
                event.set();
            })
        };
        let o = outcome.clone();
        let r = task_group(|tg| async move {
            for fut in [racer(1), racer(2)] {
                let (tg2, o) = (tg.clone(), o.clone());
                tg.spawn(async move {
                    o.set(fut.await);
                    tg2.cancel();
                    Ok::<_, BoxError>(())
                });
            }
            Ok::<_, BoxError>(())
        })
        .await;
        assert!(r.is_ok(), "the body had finished: {r:?}");
        trigger.await.unwrap();
        (outcome.get(), cancelling())
    });
    assert_eq!(winner, 1);
    assert_eq!(count, 0);
    assert_eq!(
        *log.borrow(),
        ["trigger started", "1 started", "2 started", "trigger set", "1 finished"]
    );
}

// test_taskgroup_cancel_before_exception: the body's error after cancel()
// is the group's failure; the group's own request is taken back.
#[test]
fn an_error_of_the_body_after_cancel_is_the_groups_failure() {
    let (failures, count) = run(async {
        let r = task_group(|tg| async move {
            tg.spawn(async {
                sleep(ms(10_000)).await;
                Ok::<_, BoxError>(())
            });
            tg.cancel();
            Err::<(), _>(Boom("after cancel"))
        })
        .await;
        let err = r.unwrap_err();
        let failures: Vec<String> = err.failures().iter().map(|f| f.to_string()).collect();
        (failures, cancelling())
    });
    assert_eq!(failures.len(), 1);
    assert!(failures[0].ends_with("after cancel"), "{failures:?}");
    assert_eq!(count, 0);
}

// A clone of the group in another task (not a child): its cancel() ends
// the group the same way.
#[test]
fn cancel_from_an_unrelated_task_ends_the_group() {
    let (group_cancelled, count) = run(async {
        let (tx, rx) = futures::channel::oneshot::channel();
        let stopper = spawn(async move {
            let tg: runner_core::TaskGroup = rx.await.unwrap();
            sleep(ms(10)).await;
            tg.cancel();
        });
        let r = task_group(|tg| async move {
            tx.send(tg.clone()).unwrap();
            tg.spawn(async {
                sleep(ms(10_000)).await;
                Ok::<_, BoxError>(())
            });
            sleep(ms(10_000)).await;
            Ok::<_, BoxError>(())
        })
        .await;
        stopper.await.unwrap();
        (r.unwrap_err().is_group_cancelled(), cancelling())
    });
    assert!(group_cancelled);
    assert_eq!(count, 0);
}

// In a task that polls a group's scope and another branch at once
// (`join!`), the group's failure cancels its own body, not a `cancellable`
// in the other branch; so does `TaskGroup::cancel`. Either order.
#[test]
fn in_a_join_a_groups_cancellation_of_its_body_stays_in_its_branch() {
    for (group_first, by_cancel) in [(true, false), (false, false), (true, true), (false, true)] {
        let log: Log = Rc::default();
        let l = log.clone();
        let count = run(async move {
            let (l1, l2) = (l.clone(), l.clone());
            let group = async move {
                let l3 = l1.clone();
                let r = task_group(|tg| async move {
                    let stop = tg.clone();
                    tg.spawn(async move {
                        sleep(ms(10)).await;
                        if by_cancel {
                            stop.cancel();
                            return Ok(());
                        }
                        Err::<(), _>(Boom("child"))
                    });
                    if cancellable(sleep(ms(10_000))).await.is_err() {
                        l3.borrow_mut().push("body cancelled".into());
                    }
                    Ok::<_, BoxError>(())
                })
                .await;
                l1.borrow_mut().push(format!("group ok: {}", r.is_ok()));
            };
            // Its scope is deeper than the body's: where a cancellation of
            // the task goes, were it not meant for the body.
            let sibling = async move {
                let r = cancellable(cancellable(cancellable(sleep(ms(50))))).await;
                let cancelled = !matches!(r, Ok(Ok(Ok(()))));
                l2.borrow_mut().push(format!("sibling cancelled: {cancelled}"));
            };
            if group_first {
                futures::future::join(group, sibling).await;
            } else {
                futures::future::join(sibling, group).await;
            }
            cancelling()
        });
        assert_eq!(count, 0);
        assert_eq!(
            *log.borrow(),
            [
                "body cancelled".to_string(),
                format!("group ok: {by_cancel}"),
                "sibling cancelled: false".to_string()
            ],
            "group first: {group_first}, by cancel(): {by_cancel}"
        );
    }
}

// In a join, one branch hands on a caught cancellation (`resume`) in the
// same step as a child's failure cancels the group's body in the other
// branch: the body takes the group's cancellation, the group ends with
// the failure, and the one handed on still goes on (the task ends
// cancelled, even with its request taken back), in either order.
#[test]
fn in_a_join_a_cancellation_handed_on_as_the_siblings_group_fails_goes_on() {
    for resumer_first in [true, false] {
        let log: Log = Rc::default();
        let l = log.clone();
        let outcome = run(async move {
            let worker = spawn(async move {
                let (l1, l2) = (l.clone(), l.clone());
                // The child tells the other branch as it fails: both land
                // in the task's next step.
                let (tx, rx) = futures::channel::oneshot::channel::<()>();
                let resumer = async move {
                    if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                        // Its request taken back: the group's is the only
                        // one left when the group ends.
                        current_task().unwrap().uncancel();
                        let _ = rx.await;
                        l1.borrow_mut().push("resumed".into());
                        cancelled.resume().await;
                        l1.borrow_mut().push("never: resume returned".into());
                    }
                };
                let group = async move {
                    // No scope yet when the task is cancelled at 0 ms.
                    sleep(ms(1)).await;
                    let r = task_group(|tg| async move {
                        tg.spawn(async move {
                            sleep(ms(9)).await;
                            let _ = tx.send(());
                            Err::<(), _>(Boom("child"))
                        });
                        let _ = cancellable(sleep(ms(10_000))).await;
                        Ok::<_, BoxError>(())
                    })
                    .await;
                    l2.borrow_mut().push(format!("group failed: {}", r.is_err()));
                };
                if resumer_first {
                    futures::future::join(resumer, group).await;
                } else {
                    futures::future::join(group, resumer).await;
                }
                l.borrow_mut().push("never: the join ended".into());
            });
            yield_now().await;
            worker.cancel();
            // On a paused clock: a lost cancellation is an hour, not a hang.
            timeout(ms(3_600_000), worker).await
        });
        let ended = outcome.map(|r| r.map_err(|e| e.is_cancelled()));
        assert_eq!(ended, Ok(Err(true)), "resumer first: {resumer_first}, log {log:?}");
        let mut got = log.take();
        got.sort();
        assert_eq!(got, ["group failed: true", "resumed"], "resumer first: {resumer_first}");
    }
}

// A group dropped after a child's failure asked to cancel its owner, before
// the scope could take that request back (a `select!` whose other branch
// won in that step): the drop takes it back, and the owner is not
// cancelled by a group that is gone.
#[test]
fn a_group_dropped_after_it_asked_to_cancel_its_owner_takes_that_back() {
    let (survived, count) = run(async {
        let worker = spawn(async {
            // The child tells the other branch as it fails: both land in
            // the task's next step, and the other branch is polled first.
            let (tx, rx) = futures::channel::oneshot::channel::<()>();
            let group = Box::pin(task_group(|tg| async move {
                tg.spawn(async move {
                    sleep(ms(10)).await;
                    let _ = tx.send(());
                    Err::<(), _>(Boom("child"))
                });
                sleep(ms(10_000)).await;
                Ok::<_, BoxError>(())
            }));
            common::select_won_by(common::Won::First, rx, group, "the other branch is polled first").await;
            sleep(ms(1)).await;
            cancelling()
        });
        let out = worker.await;
        (out.is_ok(), out.unwrap_or(u32::MAX))
    });
    assert!(survived, "the task was cancelled by a group that was dropped");
    assert_eq!(count, 0);
}
