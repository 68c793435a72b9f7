//! `run` and `Runner`: the cases of CPython's `test_runners.py` that apply,
//! and the promises of SPEC sections 1, 2 and 4.

mod common;

use std::cell::{Cell, RefCell};

use common::capture_reports;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskCx, Poll};
use std::time::Duration;

use runner_core::{
    cancellable, get_event_loop, get_running_loop, sleep, spawn, yield_now, Builder, Context, ContextVar, Error,
    EventLoop, Runner,
};

/// A future that records whether it was ever polled.
struct Probe(Rc<Cell<bool>>);

impl Future for Probe {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut TaskCx<'_>) -> Poll<()> {
        self.0.set(true);
        Poll::Ready(())
    }
}

#[test]
fn run_returns_main_task_output() {
    let out = runner_core::run(async {
        sleep(Duration::from_millis(1)).await;
        42
    });
    assert_eq!(out.unwrap(), 42);
}

#[test]
fn run_accepts_any_into_future() {
    struct Later;
    impl std::future::IntoFuture for Later {
        type Output = &'static str;
        type IntoFuture = std::future::Ready<&'static str>;
        fn into_future(self) -> Self::IntoFuture {
            std::future::ready("awaited")
        }
    }
    assert_eq!(runner_core::run(Later).unwrap(), "awaited");
}

#[test]
fn run_propagates_main_task_panic_after_closing_the_loop() {
    let lp_seen: Rc<RefCell<Option<EventLoop>>> = Rc::default();
    let slot = lp_seen.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runner_core::run(async move {
            *slot.borrow_mut() = Some(get_running_loop().unwrap());
            panic!("boom in main");
        })
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in main"));
    assert!(lp_seen.borrow().as_ref().unwrap().is_closed());
}

#[test]
fn run_returns_main_task_error_value_unchanged() {
    let out: Result<Result<(), String>, Error> = runner_core::run(async { Err("bad input".to_string()) });
    assert_eq!(out.unwrap(), Err("bad input".to_string()));
}

#[test]
fn run_debug_true_turns_debug_on() {
    assert!(Builder::new()
        .debug(true)
        .run(async { get_running_loop().unwrap().get_debug() })
        .unwrap());
}

#[test]
fn run_debug_false_turns_debug_off() {
    assert!(!Builder::new()
        .debug(false)
        .run(async { get_running_loop().unwrap().get_debug() })
        .unwrap());
}

#[test]
fn run_from_running_loop_fails_without_polling_the_future() {
    let polled = Rc::new(Cell::new(false));
    let probe = Probe(polled.clone());
    let err = runner_core::run(async move { runner_core::run(probe).unwrap_err() }).unwrap();
    assert!(matches!(err, Error::NestedRun { .. }));
    assert!(err
        .to_string()
        .contains("runner_core::run() cannot be called from a running event loop"));
    assert!(!polled.get());
}

#[test]
// The handle is returned un-awaited on purpose: it is inspected after close.
#[allow(clippy::async_yields_async)]
fn run_cancels_hanging_tasks_at_the_end() {
    let dropped = Rc::new(Cell::new(false));
    let flag = dropped.clone();
    let handle = runner_core::run(async move {
        struct OnDrop(Rc<Cell<bool>>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let t = spawn(async move {
            let _guard = OnDrop(flag);
            std::future::pending::<()>().await;
        });
        yield_now().await;
        t
    })
    .unwrap();
    assert!(dropped.get(), "the hanging task's future was dropped (its cleanup ran)");
    assert!(handle.is_done() && handle.is_cancelled());
}

#[test]
fn run_reports_errors_of_hanging_tasks_at_shutdown() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let sink = reports.clone();
    runner_core::run(async move {
        get_running_loop()
            .unwrap()
            .set_exception_handler(move |_, ctx| sink.borrow_mut().push(ctx.clone()));
        let t = spawn(async {
            if cancellable(sleep(Duration::from_secs(3600))).await.is_err() {
                panic!("cleanup failed with ZeroDivisionError");
            }
        });
        t.set_name("leftover");
        yield_now().await;
    })
    .unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].message, "unhandled error during runner shutdown");
    assert_eq!(
        reports[0].panic.as_deref(),
        Some("cleanup failed with ZeroDivisionError")
    );
    assert_eq!(reports[0].task.as_ref().unwrap().name.as_deref(), Some("leftover"));
}

/// CPython's test_asyncio_run_reports_hanging_tasks_errors, in its own
/// form: the task is spawned in the main task's last step. It still gets
/// that step (it enters its `try`), so at close its cancellation is caught
/// and its failure reported.
#[test]
fn run_reports_errors_of_a_task_spawned_in_mains_last_step() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let leftover = Rc::new(RefCell::new(None));
    let (sink, slot) = (reports.clone(), leftover.clone());
    let out = runner_core::run(async move {
        get_running_loop()
            .unwrap()
            .set_exception_handler(move |_, ctx| sink.borrow_mut().push(ctx.clone()));
        let t = spawn(async {
            if cancellable(sleep(Duration::from_millis(100))).await.is_err() {
                panic!("division by zero");
            }
        });
        t.set_name("leftover");
        *slot.borrow_mut() = Some(t);
        123
    })
    .unwrap();
    assert_eq!(out, 123);
    assert!(leftover.borrow().as_ref().unwrap().is_done());
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].message, "unhandled error during runner shutdown");
    assert_eq!(reports[0].panic.as_deref(), Some("division by zero"));
    assert_eq!(reports[0].task.as_ref().unwrap().name.as_deref(), Some("leftover"));
}

/// asyncio stops the loop from the main task's done-callback, so the
/// iteration after the main task's last step still runs: a task spawned
/// in that step starts, and its cancellation cleanup runs at close.
#[test]
fn a_task_spawned_in_mains_last_step_gets_its_first_step_before_close() {
    let started = Rc::new(Cell::new(false));
    let cleaned = Rc::new(Cell::new(false));
    let (s, c) = (started.clone(), cleaned.clone());
    let out = runner_core::run(async move {
        spawn(async move {
            s.set(true);
            let _ = cancellable(sleep(Duration::from_secs(3600))).await;
            c.set(true);
        });
        7
    })
    .unwrap();
    assert_eq!(out, 7);
    assert!(started.get(), "the task got its first step");
    assert!(cleaned.get(), "its cleanup ran when close cancelled it");
}

/// Only what was scheduled when the main task finished gets the extra
/// step: a task spawned during that step does not start (as in asyncio,
/// where it would be scheduled after the loop stopped).
#[test]
fn the_final_iteration_runs_only_what_was_already_scheduled() {
    let first = Rc::new(Cell::new(false));
    let second = Rc::new(Cell::new(false));
    let (f, s) = (first.clone(), second.clone());
    runner_core::run(async move {
        spawn(async move {
            f.set(true);
            spawn(async move { s.set(true) });
        });
    })
    .unwrap();
    assert!(first.get());
    assert!(
        !second.get(),
        "spawned in the final iteration: cancelled before its first step"
    );
}

#[test]
fn run_until_complete_also_finishes_the_iteration_after_its_future() {
    let lp = EventLoop::new().unwrap();
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    lp.run_until_complete(async move {
        spawn(async move { s.set(true) });
    })
    .unwrap();
    assert!(started.get());
    lp.close().unwrap();
}

#[test]
fn hanging_task_can_await_async_cleanup_when_cancelled_at_shutdown() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    runner_core::run(async move {
        spawn(async move {
            if cancellable(std::future::pending::<()>()).await.is_err() {
                l.borrow_mut().push("caught");
                sleep(Duration::from_millis(5)).await;
                l.borrow_mut().push("async cleanup done");
            }
        });
        yield_now().await;
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["caught", "async cleanup done"]);
}

#[test]
fn custom_loop_factory_loop_is_the_one_used() {
    let made: Rc<RefCell<Option<EventLoop>>> = Rc::default();
    let slot = made.clone();
    let runner = Runner::builder()
        .loop_factory(move || {
            let lp = EventLoop::builder()
                .slow_callback_duration(Duration::from_millis(7))
                .build()?;
            *slot.borrow_mut() = Some(lp.clone());
            Ok(lp)
        })
        .build();
    assert!(made.borrow().is_none(), "the constructor is lazy");
    let running = runner.run(async { get_running_loop().unwrap() }).unwrap();
    let made = made.borrow().clone().unwrap();
    assert!(running.ptr_eq(&made));
    assert!(runner.get_loop().unwrap().ptr_eq(&made));
    assert_eq!(running.slow_callback_duration(), Duration::from_millis(7));
    // A factory's loop is not made the thread's current loop by the runner.
    assert!(get_event_loop().is_none());
}

#[test]
fn default_loop_is_set_as_current_and_unset_at_close() {
    let runner = Runner::new();
    let lp = runner.get_loop().unwrap();
    assert!(get_event_loop().unwrap().ptr_eq(&lp));
    runner.close().unwrap();
    assert!(get_event_loop().is_none());
}

#[test]
fn loop_factory_error_is_returned() {
    let runner = Runner::builder()
        .loop_factory(|| Err(std::io::Error::other("no loop today")))
        .build();
    let err = runner.run(async {}).unwrap_err();
    assert!(matches!(&err, Error::Io(e) if e.kind() == std::io::ErrorKind::Other));
    assert_eq!(
        err.to_string(),
        "the runner's loop_factory failed: no loop today; the runner calls it again on its next use"
    );
    // The factory's own error is kept as the source.
    let source = std::error::Error::source(&err).and_then(std::error::Error::source);
    assert_eq!(source.map(ToString::to_string).as_deref(), Some("no loop today"));
}

/// asyncio calls a failed factory again at the next use: the runner never
/// falls back silently to a default loop, losing the user's settings.
#[test]
fn a_failing_or_panicking_loop_factory_is_called_again_on_the_next_use() {
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let runner = Runner::builder()
        .loop_factory(move || {
            c.set(c.get() + 1);
            match c.get() {
                1 => Err(std::io::Error::other("first call fails")),
                2 => panic!("second call panics"),
                _ => EventLoop::builder()
                    .slow_callback_duration(Duration::from_millis(7))
                    .build(),
            }
        })
        .build();
    let err = runner.run(async {}).unwrap_err();
    assert!(err.to_string().contains("first call fails"), "{err}");
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.get_loop())).unwrap_err();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"second call panics"));
    let lp = runner.get_loop().unwrap();
    assert_eq!(
        lp.slow_callback_duration(),
        Duration::from_millis(7),
        "the factory's loop"
    );
    assert_eq!(runner.run(async { 5 }).unwrap(), 5);
    assert_eq!(calls.get(), 3, "called again after each failure, then no more");
}

#[test]
fn runner_debug_none_keeps_the_loops_setting() {
    let runner = Runner::builder()
        .loop_factory(|| EventLoop::builder().debug(true).build())
        .build();
    assert!(runner.get_loop().unwrap().get_debug());
    let runner = Runner::builder()
        .debug(false)
        .loop_factory(|| EventLoop::builder().debug(true).build())
        .build();
    assert!(!runner.get_loop().unwrap().get_debug());
}

#[test]
fn runner_run_many_times_on_one_loop() {
    let runner = Runner::new();
    let a = runner.run(async { get_running_loop().unwrap() }).unwrap();
    let b = runner.run(async { get_running_loop().unwrap() }).unwrap();
    assert!(a.ptr_eq(&b));
    assert_eq!(runner.run(async { 1 }).unwrap() + runner.run(async { 2 }).unwrap(), 3);
}

#[test]
fn runner_run_keeps_context_across_calls() {
    static VAR: ContextVar<i32> = ContextVar::new("var");
    let runner = Runner::new();
    runner
        .run(async {
            let _ = VAR.set(1);
        })
        .unwrap();
    assert_eq!(runner.run(async { VAR.get() }).unwrap(), Some(1));
    assert_eq!(runner.context().unwrap().get(&VAR), Some(1));
    // The caller's own context is untouched.
    assert_eq!(VAR.get(), None);
}

#[test]
fn runner_run_with_explicit_context_uses_it_instead() {
    static VAR: ContextVar<i32> = ContextVar::new("var");
    let runner = Runner::new();
    let custom = Context::new();
    runner
        .run_in_context(
            async {
                let _ = VAR.set(2);
            },
            &custom,
        )
        .unwrap();
    assert_eq!(custom.get(&VAR), Some(2));
    assert_eq!(runner.run(async { VAR.get() }).unwrap(), None);
}

#[test]
fn a_token_set_in_one_run_resets_in_the_next_as_both_run_in_the_runners_context() {
    static VAR: ContextVar<i32> = ContextVar::new("var");
    let runner = Runner::new();
    let token = runner.run(async { VAR.set(1) }).unwrap();
    let reset = runner.run(async move { VAR.reset(token).map(|()| VAR.get()) }).unwrap();
    assert_eq!(
        reset,
        Ok(None),
        "the token belongs to the runner's context, where it was made"
    );
    assert_eq!(runner.context().unwrap().get(&VAR), None);
}

#[test]
fn the_main_task_and_its_contexts_run_and_get_see_one_state() {
    static VAR: ContextVar<i32> = ContextVar::new("var");
    let runner = Runner::new();
    let ctx = Context::new();
    let inside = ctx.clone();
    let seen = runner
        .run_in_context(
            async move {
                let _ = VAR.set(1);
                // The task runs in `inside`: reading or entering it sees what
                // the task set, and what `run` sets is the task's too.
                let got = inside.get(&VAR);
                let in_run = inside.run(|| {
                    let before = VAR.get();
                    let _ = VAR.set(2);
                    before
                });
                let after_run = VAR.get();
                sleep(Duration::from_millis(1)).await;
                (got, in_run, after_run, VAR.get())
            },
            &ctx,
        )
        .unwrap();
    assert_eq!(seen, (Some(1), Some(1), Some(2), Some(2)));
    assert_eq!(ctx.get(&VAR), Some(2), "nothing the task's `run` set was lost");
}

#[test]
fn runner_explicit_close_closes_loop_and_refuses_further_use() {
    let runner = Runner::new();
    let lp = runner.get_loop().unwrap();
    runner.close().unwrap();
    assert!(lp.is_closed());
    assert!(runner.is_closed());
    let err = runner.run(async {}).unwrap_err();
    assert!(matches!(err, Error::RunnerClosed));
    assert!(err.to_string().contains("Runner is closed"));
    assert!(matches!(runner.get_loop().unwrap_err(), Error::RunnerClosed));
}

#[test]
fn runner_double_close_is_a_no_op() {
    let runner = Runner::new();
    runner.run(async {}).unwrap();
    runner.close().unwrap();
    runner.close().unwrap();
    assert!(runner.is_closed());
}

#[test]
fn runner_closed_before_use_is_closed() {
    let polled = Rc::new(Cell::new(false));
    let runner = Runner::new();
    runner.close().unwrap();
    assert!(matches!(runner.run(Probe(polled.clone())), Err(Error::RunnerClosed)));
    assert!(matches!(runner.get_loop(), Err(Error::RunnerClosed)));
    assert!(!polled.get());
}

#[test]
fn runner_is_lazy_until_first_use() {
    let made = Rc::new(Cell::new(0));
    let m = made.clone();
    let runner = Runner::builder()
        .loop_factory(move || {
            m.set(m.get() + 1);
            EventLoop::new()
        })
        .build();
    assert_eq!(made.get(), 0);
    runner.get_loop().unwrap();
    runner.run(async {}).unwrap();
    assert_eq!(made.get(), 1, "the factory is called once");
}

#[test]
fn dropping_a_runner_closes_it() {
    let runner = Runner::new();
    let lp = runner.get_loop().unwrap();
    drop(runner);
    assert!(lp.is_closed());
}

#[test]
fn runner_recursive_run_fails_without_polling() {
    let runner = Rc::new(Runner::new());
    let inner = runner.clone();
    let polled = Rc::new(Cell::new(false));
    let probe = Probe(polled.clone());
    let err = runner.run(async move { inner.run(probe).unwrap_err() }).unwrap();
    assert!(err
        .to_string()
        .contains("Runner::run() cannot be called from a running event loop"));
    assert!(!polled.get());
    // The runner still works afterwards.
    assert_eq!(runner.run(async { 5 }).unwrap(), 5);
}

#[test]
fn runner_close_from_inside_its_loop_is_refused() {
    let runner = Rc::new(Runner::new());
    let inner = runner.clone();
    let err = runner.run(async move { inner.close().unwrap_err() }).unwrap();
    assert!(matches!(err, Error::LoopRunning));
    assert!(!runner.is_closed());
}

#[test]
fn main_task_cancelled_by_another_task_gives_cancelled_error() {
    let runner = Runner::new();
    let err = runner
        .run(async {
            let me = runner_core::current_task().unwrap();
            spawn(async move {
                me.cancel();
            });
            sleep(Duration::from_secs(3600)).await;
        })
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled));
    assert!(err.is_cancelled() && !err.is_keyboard_interrupt());
}

#[test]
fn close_runs_steps_in_order_tasks_then_executor_then_loop() {
    // Step 1's cleanup can still use the executor (step 3 comes after), and
    // the loop is open until step 4.
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let runner = Runner::new();
    let lp = runner.get_loop().unwrap();
    runner
        .run(async move {
            spawn(async move {
                if cancellable(std::future::pending::<()>()).await.is_err() {
                    let lp = get_running_loop().unwrap();
                    l.borrow_mut()
                        .push(format!("task cleanup, loop closed: {}", lp.is_closed()));
                    let v = runner_core::spawn_blocking(|| 21 * 2).await.unwrap();
                    l.borrow_mut().push(format!("executor still up: {v}"));
                }
            });
            yield_now().await;
        })
        .unwrap();
    runner.close().unwrap();
    assert_eq!(
        *log.borrow(),
        ["task cleanup, loop closed: false", "executor still up: 42"]
    );
    assert!(lp.is_closed());
    assert_eq!(lp.executor_thread_count(), 0);
}

#[test]
fn unretrieved_task_panic_is_reported_once() {
    let runner = Runner::new();
    let lp = runner.get_loop().unwrap();
    let reports = capture_reports(&lp);
    runner
        .run(async {
            let t = spawn(async { panic!("nobody listens") });
            t.set_name("lonely");
            drop(t);
            sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    runner.close().unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].message.contains("dropped without awaiting"));
    assert_eq!(reports[0].panic.as_deref(), Some("nobody listens"));
    assert_eq!(reports[0].task.as_ref().unwrap().name.as_deref(), Some("lonely"));
}

#[test]
fn runner_executor_shutdown_timeout_bounds_close_and_warns() {
    let runner = Builder::new()
        .executor_shutdown_timeout(Duration::from_millis(50))
        .build();
    let reports = capture_reports(&runner.get_loop().unwrap());
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    runner
        .run(async move {
            drop(runner_core::spawn_blocking(move || {
                let _ = release_rx.recv_timeout(Duration::from_secs(30));
            }));
            yield_now().await;
        })
        .unwrap();
    let started = std::time::Instant::now();
    runner.close().unwrap();
    let took = started.elapsed();
    release_tx.send(()).unwrap();
    assert!(
        took >= Duration::from_millis(50) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].message.contains("within 50ms"), "{}", reports[0].message);
}

/// `Builder::close_timeout` bounds close steps 1 and 2: a task that ignores
/// its cancellation is reported (name, spawn site, what it did) and dropped
/// (its destructors run), and closing goes on to close the loop; a task
/// whose cleanup fits in the bound is not reported.
#[test]
fn close_timeout_reports_and_drops_a_task_that_ignores_cancellation_and_closing_goes_on() {
    struct OnDrop(Rc<Cell<bool>>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let dropped = Rc::new(Cell::new(false));
    let polite_cleaned = Rc::new(Cell::new(false));
    let runner = Builder::new().close_timeout(Duration::from_millis(100)).build();
    let lp = runner.get_loop().unwrap();
    let reports = capture_reports(&lp);
    let (d, p) = (dropped.clone(), polite_cleaned.clone());
    runner
        .run(async move {
            let stubborn = spawn(async move {
                let _guard = OnDrop(d);
                loop {
                    let _ = cancellable(sleep(Duration::from_secs(3600))).await;
                }
            });
            stubborn.set_name("stubborn");
            spawn(async move {
                if cancellable(sleep(Duration::from_secs(3600))).await.is_err() {
                    sleep(Duration::from_millis(5)).await;
                    p.set(true);
                }
            });
            yield_now().await;
        })
        .unwrap();
    let closing = std::time::Instant::now();
    runner.close().unwrap();
    let took = closing.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(dropped.get(), "the stubborn task was dropped");
    assert!(polite_cleaned.get(), "the polite task's async cleanup ran");
    assert!(lp.is_closed(), "closing went on");
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert!(
        report.message.starts_with(runner_core::runners::CLOSE_TIMEOUT_MESSAGE),
        "{report}"
    );
    assert!(report.message.contains("ignored its cancellation"), "{report}");
    assert!(report.message.contains("close timeout of 100ms"), "{report}");
    let task = report.task.as_ref().unwrap();
    assert_eq!(task.name.as_deref(), Some("stubborn"));
    assert!(task.spawned_at.file().ends_with("runner.rs"), "{}", task.spawned_at);
}

/// Without a close timeout, a close waits as asyncio's does: the default
/// is unchanged.
#[test]
fn without_a_close_timeout_closing_waits_for_slow_cleanup() {
    let cleaned = Rc::new(Cell::new(false));
    let c = cleaned.clone();
    runner_core::run(async move {
        spawn(async move {
            if cancellable(sleep(Duration::from_secs(3600))).await.is_err() {
                sleep(Duration::from_millis(300)).await;
                c.set(true);
            }
        });
        yield_now().await;
    })
    .unwrap();
    assert!(cleaned.get());
}
