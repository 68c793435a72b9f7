//! TaskGroup: asyncio 3.11's semantics. Most cases are ported from
//! CPython's `Lib/test/test_asyncio/test_taskgroups.py` (the test they come
//! from is named in each), named here after the behaviour they check; the
//! last ones are Rust's own (a dropped scope, panics, a cancel from
//! another thread, results in completion order).
//!
//! They run on a paused clock: sleeps take no wall time and happen in the
//! order of their virtual deadlines, so the interleavings are exact.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use runner_core::{
    as_completed, cancellable, current_task, sleep, spawn, task_group, yield_now, EventLoop, JoinError, TaskGroupError,
};

mod common;
use common::{paused_loop, run_paused as run, Boom};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

fn errors(e: &TaskGroupError) -> Vec<String> {
    e.failures()
        .iter()
        .map(|f| match f.error() {
            Some(e) => e.to_string(),
            None => format!("panic: {}", f.panic_message().unwrap()),
        })
        .collect()
}

// test_taskgroup_01, _02, _03
#[test]
fn children_give_their_results_and_the_scope_waits_for_all_of_them() {
    let (sum, late) = run(async {
        let late = Rc::new(RefCell::new(None));
        let l = late.clone();
        let sum = task_group(|tg| async move {
            let a = tg.spawn(async {
                sleep(ms(100)).await;
                Ok::<_, Boom>(42)
            });
            sleep(ms(150)).await;
            let b = tg.spawn(async {
                sleep(ms(100)).await;
                Ok::<_, Boom>(11)
            });
            // Not awaited in the body: the scope waits for it anyway.
            tg.spawn({
                let tg = tg.clone();
                async move {
                    // A child spawns into its own group.
                    let grandchild = tg.spawn(async {
                        sleep(ms(300)).await;
                        Ok::<_, Boom>("late")
                    });
                    *l.borrow_mut() = Some(grandchild.await.unwrap());
                }
            });
            Ok::<_, Boom>(a.await.unwrap() + b.await.unwrap())
        })
        .await
        .unwrap();
        let late = late.borrow_mut().take();
        (sum, late)
    });
    assert_eq!(sum, 53);
    assert_eq!(late, Some("late"), "the scope ended only after every child");
}

// test_taskgroup_04
#[test]
fn a_childs_failure_cancels_its_siblings_and_the_body_whose_cleanup_runs() {
    let log = log();
    let l = log.clone();
    let err = run(async move {
        task_group(|tg| async move {
            let l2 = l.clone();
            let sibling = tg.spawn(async move {
                match cancellable(sleep(ms(10_000))).await {
                    Ok(()) => push(&l2, "sibling slept"),
                    Err(_) => {
                        sleep(ms(5)).await; // async cleanup
                        push(&l2, "sibling cleaned up");
                    }
                }
            });
            tg.spawn(async {
                sleep(ms(100)).await;
                Err::<(), _>(Boom("child"))
            });
            match cancellable(sleep(ms(10_000))).await {
                Ok(()) => push(&l, "body slept"),
                Err(_) => push(&l, "body cancelled"),
            }
            let s = sibling.await;
            push(&l, format!("sibling cancelled: {}", s.is_ok()));
            Ok::<_, Boom>(())
        })
        .await
        .unwrap_err()
    });
    assert_eq!(errors(&err), ["boom: child"]);
    assert!(!err.is_cancelled());
    assert_eq!(
        *log.borrow(),
        ["body cancelled", "sibling cleaned up", "sibling cancelled: true"]
    );
}

// test_taskgroup_05 (a child cancelled by hand is not a failure)
#[test]
fn an_explicitly_cancelled_child_does_not_fail_the_group() {
    let out = run(async {
        task_group(|tg| async move {
            let sleeper = tg.spawn(async {
                sleep(ms(10_000)).await;
                Ok::<_, Boom>(1)
            });
            let quick = tg.spawn(async { Ok::<_, Boom>(2) });
            yield_now().await;
            sleeper.cancel();
            let cancelled = sleeper.await.unwrap_err().is_cancelled();
            Ok::<_, Boom>((cancelled, quick.await.unwrap()))
        })
        .await
    });
    assert_eq!(out.unwrap(), (true, 2));
}

// test_taskgroup_06, _07, _22
#[test]
fn the_owner_cancelled_from_outside_is_a_cancellation_after_every_childs_cleanup() {
    let log = log();
    let l = log.clone();
    let (owner_cancelled, cancelling_after) = run(async move {
        let owner = spawn(async move {
            let result = task_group(|tg| async move {
                for i in 0..5 {
                    let l = l.clone();
                    tg.spawn(async move {
                        if cancellable(sleep(ms(10_000))).await.is_err() {
                            sleep(ms(i)).await;
                            push(&l, format!("child {i} cleaned up"));
                        }
                    });
                }
                sleep(ms(10_000)).await;
                Ok::<_, Boom>(())
            })
            .await;
            let e = result.unwrap_err();
            assert!(e.is_cancelled() && e.failures().is_empty(), "{e}");
            // The cancellation goes on: this never runs to completion.
            yield_now().await;
            unreachable!("the owner's cancellation went on at its next suspension");
        });
        sleep(ms(100)).await;
        owner.cancel();
        let out = owner.await;
        (out.unwrap_err().is_cancelled(), current_task().unwrap().cancelling())
    });
    assert!(owner_cancelled);
    assert_eq!(cancelling_after, 0);
    let mut cleaned = log.borrow().clone();
    cleaned.sort();
    assert_eq!(cleaned.len(), 5, "every child's cleanup ran: {cleaned:?}");
}

// test_taskgroup_08
#[test]
fn the_owner_cancelled_while_waiting_for_children_cancels_them() {
    let log = log();
    let l = log.clone();
    let owner_out = run(async move {
        let owner = spawn(async move {
            let child = Rc::new(RefCell::new(None));
            let c = child.clone();
            let e = task_group(|tg| async move {
                let h = tg.spawn(async {
                    sleep(ms(10_000)).await;
                    Ok::<_, Boom>(())
                });
                *c.borrow_mut() = Some(h);
                // The body ends at once; the scope then waits.
                Ok::<_, Boom>(())
            })
            .await
            .unwrap_err();
            let h = child.borrow_mut().take().unwrap();
            push(
                &l,
                format!(
                    "scope cancelled: {}, child cancelled: {}",
                    e.is_cancelled(),
                    h.is_cancelled()
                ),
            );
            // The cancellation goes on: the task ends cancelled even though
            // it returns without suspending again.
            "returned"
        });
        sleep(ms(10)).await;
        owner.cancel();
        owner.await
    });
    assert!(owner_out.unwrap_err().is_cancelled());
    assert_eq!(*log.borrow(), ["scope cancelled: true, child cancelled: true"]);
}

// test_taskgroup_09
#[test]
fn a_body_that_fails_cancels_the_children() {
    let log = log();
    let l = log.clone();
    let err = run(async move {
        task_group(|tg| async move {
            for i in 0..2 {
                let l = l.clone();
                tg.spawn(async move {
                    if cancellable(sleep(ms(10_000))).await.is_err() {
                        push(&l, format!("child {i} cancelled"));
                    }
                });
            }
            sleep(ms(100)).await;
            Err::<(), _>(Boom("body"))
        })
        .await
        .unwrap_err()
    });
    assert_eq!(errors(&err), ["boom: body"]);
    assert_eq!(err.failures()[0].task(), None, "the body's failure names no task");
    assert_eq!(*log.borrow(), ["child 0 cancelled", "child 1 cancelled"]);
}

// test_taskgroup_10
#[test]
fn a_body_that_fails_before_any_child_runs_never_runs_them() {
    let ran = Rc::new(RefCell::new(false));
    let r = ran.clone();
    let err = run(async move {
        task_group(|tg| async move {
            let r = r.clone();
            tg.spawn(async move {
                *r.borrow_mut() = true;
            });
            Err::<(), _>(Boom("at once"))
        })
        .await
        .unwrap_err()
    });
    assert_eq!(errors(&err), ["boom: at once"]);
    assert!(!*ran.borrow(), "the child was cancelled before its first poll");
}

// test_taskgroup_19 (and the order of failures)
#[test]
fn every_failure_is_kept_in_the_order_they_happened() {
    let err = run(async {
        task_group(|tg| async move {
            tg.spawn(async {
                sleep(ms(100)).await;
                Err::<(), _>(Boom("first"))
            });
            tg.spawn(async {
                // Fails in its cancellation cleanup.
                if cancellable(sleep(ms(10_000))).await.is_err() {
                    return Err(Boom("in cleanup"));
                }
                Ok(())
            });
            tg.spawn(async {
                // Cancelled inside a shield: the cancellation waits, and
                // the failure right after the shield still counts.
                runner_core::shield(sleep(ms(150))).await;
                Err::<(), _>(Boom("after a shield"))
            });
            sleep(ms(10_000)).await;
            Ok::<_, Boom>(())
        })
        .await
        .unwrap_err()
    });
    assert_eq!(
        errors(&err),
        ["boom: first", "boom: in cleanup", "boom: after a shield"]
    );
    assert!(err.to_string().starts_with("3 failures in a TaskGroup: "), "{err}");
}

// test_taskgroup_13
#[test]
fn an_outer_failure_cancels_an_inner_group() {
    let err = run(async {
        task_group(|outer| async move {
            outer.spawn(async {
                sleep(ms(100)).await;
                Err::<(), _>(Boom("outer child"))
            });
            let inner = task_group(|inner| async move {
                inner.spawn(async {
                    sleep(ms(200)).await;
                    Err::<(), _>(Boom("inner child"))
                });
                Ok::<_, Boom>(())
            })
            .await;
            // The inner scope was cancelled with the body (its owner).
            assert!(inner.unwrap_err().is_cancelled());
            Ok::<_, Boom>(())
        })
        .await
        .unwrap_err()
    });
    assert_eq!(errors(&err), ["boom: outer child"]);
}

// test_taskgroup_14
#[test]
fn an_inner_groups_failure_is_nested_in_the_outer_groups_error() {
    let err = run(async {
        task_group(|outer| async move {
            outer.spawn(async {
                sleep(ms(10_000)).await;
                Err::<(), _>(Boom("never"))
            });
            task_group(|inner| async move {
                inner.spawn(async {
                    sleep(ms(100)).await;
                    Err::<(), _>(Boom("inner child"))
                });
                Ok::<_, Boom>(())
            })
            .await?;
            Ok::<_, TaskGroupError>(())
        })
        .await
        .unwrap_err()
    });
    assert_eq!(err.failures().len(), 1);
    let nested = err.failures()[0]
        .error()
        .and_then(|e| e.downcast_ref::<TaskGroupError>())
        .expect("the body's failure is the inner group's error");
    assert_eq!(errors(nested), ["boom: inner child"]);
}

// test_taskgroup_15
#[test]
fn a_failure_during_the_bodys_cancellation_cleanup_interrupts_it_and_wins() {
    let log = log();
    let l = log.clone();
    run(async move {
        let owner = spawn(async move {
            let l2 = l.clone();
            let r = task_group(|tg| async move {
                tg.spawn(async {
                    sleep(ms(300)).await;
                    Err::<(), _>(Boom("crash soon"))
                });
                if cancellable(sleep(ms(10_000))).await.is_err() {
                    // Cancelled from outside at 100 ms; the crash at 300 ms
                    // cancels this cleanup in turn, as in asyncio.
                    sleep(ms(500)).await;
                    push(&l2, "body cleanup done");
                }
                Ok::<_, Boom>(())
            })
            .await;
            let e = r.unwrap_err();
            push(&l, format!("cancelled: {}, {:?}", e.is_cancelled(), errors(&e)));
        });
        sleep(ms(100)).await;
        owner.cancel();
        let _ = owner.await;
    });
    assert_eq!(*log.borrow(), [r#"cancelled: false, ["boom: crash soon"]"#]);
}

// test_taskgroup_16, with the cleanup done before the crash would come
#[test]
fn a_body_cleanup_that_awaits_before_re_raising_runs_to_the_end_and_the_cancellation_goes_on() {
    let log = log();
    let l = log.clone();
    let out = run(async move {
        let inner = spawn(async move {
            let l2 = l.clone();
            let r = task_group(|tg| async move {
                let l3 = l2.clone();
                tg.spawn(async move {
                    if cancellable(sleep(ms(1_000))).await.is_err() {
                        push(&l3, "child cancelled");
                        return Ok(());
                    }
                    Err::<(), _>(Boom("crash late"))
                });
                if let Err(cancelled) = cancellable(sleep(ms(10_000))).await {
                    sleep(ms(500)).await;
                    push(&l2, "body cleanup done");
                    // Re-raised: the body's cancellation is not a failure.
                    return Err(cancelled);
                }
                Ok(())
            })
            .await;
            push(&l, format!("scope cancelled: {}", r.unwrap_err().is_cancelled()));
        });
        // The group runs in a task awaited by another, which is cancelled
        // (and cancels the awaited task with it, as asyncio does); it then
        // waits for the inner task's end, as an asyncio task awaiting
        // another does.
        let outer = spawn(async move {
            let mut inner = inner;
            match cancellable(&mut inner).await {
                Ok(out) => out,
                Err(_) => inner.await,
            }
        });
        sleep(ms(100)).await;
        outer.cancel();
        outer.await
    });
    let inner_out = out.expect("the outer task caught its cancellation");
    assert!(inner_out.unwrap_err().is_cancelled(), "the inner task ended cancelled");
    assert_eq!(
        *log.borrow(),
        ["body cleanup done", "child cancelled", "scope cancelled: true"]
    );
}

// test_taskgroup_17, _18
#[test]
fn a_group_without_children_cancelled_is_a_plain_cancellation() {
    let out = run(async {
        let owner = spawn(async {
            let r = task_group(|_tg| async {
                sleep(ms(10_000)).await;
                Ok::<_, Boom>(())
            })
            .await;
            assert!(r.unwrap_err().is_cancelled());
            sleep(ms(1)).await; // the cancellation lands here
            "not reached"
        });
        sleep(ms(10)).await;
        owner.cancel();
        owner.await
    });
    assert!(out.unwrap_err().is_cancelled());
}

// test_taskgroup_cancellation_does_not_leak (the group's own cancel of
// its owner is taken back)
#[test]
fn a_failure_does_not_leave_the_owner_cancelled() {
    let (cancelling, next_sleep_ok) = run(async {
        let r = task_group(|tg| async move {
            tg.spawn(async { Err::<(), _>(Boom("x")) });
            sleep(ms(10_000)).await;
            Ok::<_, Boom>(())
        })
        .await;
        assert!(r.is_err());
        let me = current_task().unwrap();
        let cancelling = me.cancelling();
        sleep(ms(10)).await;
        (cancelling, true)
    });
    assert_eq!(cancelling, 0);
    assert!(next_sleep_ok);
}

// test_taskgroup_24 style: a group inside a spawned task that is cancelled
#[test]
fn a_group_inside_a_cancelled_spawned_task_cancels_its_children_and_the_task_ends_cancelled() {
    let log = log();
    let l = log.clone();
    let out = run(async move {
        let task = spawn(async move {
            let _ = task_group(|tg| async move {
                let l = l.clone();
                tg.spawn(async move {
                    if cancellable(sleep(ms(10_000))).await.is_err() {
                        push(&l, "child cleaned up");
                    }
                });
                Ok::<_, Boom>(())
            })
            .await;
            sleep(ms(1)).await;
        });
        sleep(ms(10)).await;
        task.cancel();
        task.await
    });
    assert!(out.unwrap_err().is_cancelled());
    assert_eq!(*log.borrow(), ["child cleaned up"]);
}

#[test]
fn spawning_into_a_group_that_is_shutting_down_gives_a_cancelled_task() {
    let late = run(async {
        let late = Rc::new(RefCell::new(None));
        let l = late.clone();
        let _ = task_group(|tg| async move {
            tg.spawn(async { Err::<(), _>(Boom("x")) });
            let _ = cancellable(sleep(ms(10_000))).await;
            // After the failure: the group refuses new work.
            let h = tg.spawn(async { Ok::<_, Boom>(1) });
            *l.borrow_mut() = Some(h);
            Ok::<_, Boom>(())
        })
        .await;
        let h = late.borrow_mut().take().unwrap();
        h.await
    });
    assert!(late.unwrap_err().is_cancelled());
}

// Rust's own

#[test]
fn dropping_the_scope_mid_way_cancels_the_children() {
    let log = log();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let scope = task_group(|tg| async move {
            tg.spawn(async move {
                if cancellable(sleep(ms(10_000))).await.is_err() {
                    push(&l2, "child cleaned up");
                }
            });
            sleep(ms(10_000)).await;
            Ok::<_, Boom>(())
        });
        // The scope future is dropped by the timeout.
        let r = runner_core::timeout(ms(50), scope).await;
        assert!(r.is_err());
        sleep(ms(1)).await;
        push(&l, "after");
    });
    assert_eq!(*log.borrow(), ["child cleaned up", "after"]);
}

/// asyncio's `async with timeout(d): async with TaskGroup()`: the
/// children's async cancellation cleanup ends before the timeout is
/// reported. `timeout` around the scope drops it (above: the cleanup runs
/// after); `wait_for` around the group's own task cancels that task, so
/// the group cancels its children and waits for them, as asyncio's does.
#[test]
fn a_deadline_on_the_groups_task_reports_the_timeout_after_the_childrens_cleanup() {
    let log = log();
    let l = log.clone();
    run(async move {
        let l2 = l.clone();
        let group = spawn(task_group(|tg| async move {
            tg.spawn(async move {
                if cancellable(sleep(ms(10_000))).await.is_err() {
                    push(&l2, "child cleanup started");
                    sleep(ms(20)).await;
                    push(&l2, "child cleanup done");
                }
                Ok::<_, Boom>(())
            });
            sleep(ms(10_000)).await;
            Ok::<_, Boom>(())
        }));
        let r = runner_core::wait_for(ms(50), group).await;
        assert!(r.is_err(), "{r:?}");
        push(&l, "timeout reported");
    });
    assert_eq!(
        *log.borrow(),
        ["child cleanup started", "child cleanup done", "timeout reported"]
    );
}

#[test]
fn panics_are_failures_and_never_lost() {
    let lp = paused_loop();
    let reported = Rc::new(RefCell::new(Vec::new()));
    let r = reported.clone();
    lp.set_exception_handler(move |_, ctx| r.borrow_mut().push(ctx.message.clone()));
    let (err, handle_err) = lp
        .run_until_complete(async {
            let h = Rc::new(RefCell::new(None));
            let h2 = h.clone();
            let err = task_group(|tg| async move {
                let child = tg.spawn(async {
                    sleep(ms(10)).await;
                    if true {
                        panic!("child panicked");
                    }
                    Ok::<(), Boom>(())
                });
                *h2.borrow_mut() = Some(child);
                Ok::<_, Boom>(())
            })
            .await
            .unwrap_err();
            let child = h.borrow_mut().take().unwrap();
            (err, child.await.unwrap_err())
        })
        .unwrap();
    lp.close().unwrap();
    assert_eq!(errors(&err), ["panic: child panicked"]);
    assert!(err.failures()[0].task().is_some());
    assert!(handle_err.is_panic());
    assert_eq!(handle_err.panic_message().as_deref(), Some("child panicked"));
    let payload = err.into_failures().remove(0).into_panic().unwrap();
    assert_eq!(*payload.downcast::<&str>().unwrap(), "child panicked");
    assert!(
        reported.borrow().is_empty(),
        "reported once, by the group: {:?}",
        reported.borrow()
    );
}

#[test]
fn a_panicking_body_is_a_failure_after_the_children_are_cancelled() {
    let err = run(async {
        task_group(|tg| async move {
            tg.spawn(async {
                sleep(ms(10_000)).await;
                Ok::<_, Boom>(())
            });
            yield_now().await;
            if true {
                panic!("body panicked");
            }
            Ok::<_, Boom>(())
        })
        .await
        .unwrap_err()
    });
    assert_eq!(errors(&err), ["panic: body panicked"]);
}

#[test]
fn a_failed_childs_handle_says_so_and_points_to_the_group() {
    let e: JoinError = run(async {
        let h = Rc::new(RefCell::new(None));
        let h2 = h.clone();
        let _ = task_group(|tg| async move {
            *h2.borrow_mut() = Some(tg.spawn(async { Err::<(), _>(Boom("why")) }));
            Ok::<_, Boom>(())
        })
        .await;
        let child = h.borrow_mut().take().unwrap();
        assert!(child.is_failed());
        child.await.unwrap_err()
    });
    assert!(e.is_failed() && !e.is_panic() && !e.is_cancelled());
    assert_eq!(
        e.to_string(),
        "the task failed: boom: why (the error itself is in its TaskGroup's error)"
    );
}

#[test]
fn children_run_in_copies_of_the_spawners_context() {
    static USER: runner_core::ContextVar<&str> = runner_core::ContextVar::new("user");
    let seen = run(async {
        let _ = USER.set("ada");
        task_group(|tg| async move {
            let child = tg.spawn(async {
                let seen = USER.get();
                let _ = USER.set("changed in the child");
                Ok::<_, Boom>(seen)
            });
            let seen = child.await.unwrap();
            Ok::<_, Boom>((seen, USER.get()))
        })
        .await
        .unwrap()
    });
    assert_eq!(seen, (Some("ada"), Some("ada")));
}

/// asyncio's `tg.create_task(coro, context=ctx)`: the child runs in that
/// context itself, so what it sets is there afterwards.
#[test]
fn a_child_spawned_in_a_context_runs_in_it() {
    static USER: runner_core::ContextVar<&str> = runner_core::ContextVar::new("user");
    let shared = runner_core::Context::new();
    let ctx = shared.clone();
    let (seen, spawner_after) = run(async move {
        let _ = USER.set("spawner");
        task_group(|tg| async move {
            let child = tg.spawn_in_context(
                async {
                    let seen = USER.get();
                    let _ = USER.set("set by the child");
                    Ok::<_, Boom>(seen)
                },
                &ctx,
            );
            let seen = child.await.unwrap();
            Ok::<_, Boom>((seen, USER.get()))
        })
        .await
        .unwrap()
    });
    assert_eq!(seen, None, "the given context, not the spawner's");
    assert_eq!(spawner_after, Some("spawner"));
    assert_eq!(shared.get(&USER), Some("set by the child"));
}

#[test]
fn a_cancel_handle_cancels_from_another_thread_with_a_counted_request() {
    let lp = EventLoop::new().unwrap();
    let out = lp
        .run_until_complete(async {
            let worker = spawn(async {
                let caught = cancellable(sleep(Duration::from_secs(3600))).await.is_err();
                let me = current_task().unwrap();
                (caught, me.cancelling())
            });
            let handle = worker.cancel_handle();
            let id = handle.id();
            let sent = std::thread::spawn(move || handle.cancel()).join().unwrap();
            assert!(sent);
            assert_eq!(id, worker.id());
            worker.await.unwrap()
        })
        .unwrap();
    assert_eq!(out, (true, 1));
    // A closed loop: the request cannot be made.
    let handle = lp.run_until_complete(async { spawn(sleep(Duration::from_secs(3600))).cancel_handle() });
    lp.close().unwrap();
    let handle = handle.unwrap();
    assert!(!std::thread::spawn(move || handle.cancel()).join().unwrap());
}

#[test]
fn as_completed_gives_outputs_in_completion_order() {
    let order = run(async {
        let handles: Vec<_> = [50u64, 10, 30, 20]
            .into_iter()
            .map(|d| {
                spawn(async move {
                    sleep(ms(d)).await;
                    if d == 30 {
                        panic!("thirty");
                    }
                    d
                })
            })
            .collect();
        let mut done = as_completed(handles);
        assert_eq!(done.len(), 4);
        let mut order = Vec::new();
        while let Some((i, out)) = done.next().await {
            order.push((i, out.map_err(|e| e.panic_message().unwrap())));
        }
        order
    });
    assert_eq!(
        order,
        [(1, Ok(10)), (3, Ok(20)), (2, Err("thirty".to_string())), (0, Ok(50))]
    );
}
