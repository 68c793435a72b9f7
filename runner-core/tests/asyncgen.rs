//! Async generators (SPEC section 4, step 2): values, early close with async
//! cleanup, and finalization by the runner after the remaining tasks.

mod common;

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use common::capture_reports;
use std::panic::AssertUnwindSafe;

use futures_lite::{FutureExt, Stream, StreamExt};
use runner_core::{asyncgen, cancellable, get_running_loop, sleep, spawn, yield_now, AsyncGen, Runner};

type Log = Rc<RefCell<Vec<String>>>;

fn counter(log: Log) -> AsyncGen<u32> {
    asyncgen(move |mut y| async move {
        for i in 1..=3 {
            if y.yield_(i).await.is_err() {
                sleep(Duration::from_millis(1)).await;
                log.borrow_mut().push(format!("closed at {i}, async cleanup done"));
                return;
            }
        }
        log.borrow_mut().push("ran to the end".into());
    })
}

#[test]
fn generator_yields_values_in_order_then_ends() {
    let log: Log = Rc::default();
    let l = log.clone();
    let got = runner_core::run(async move {
        let mut g = counter(l);
        let mut got = Vec::new();
        while let Some(v) = g.next().await {
            got.push(v);
        }
        assert!(g.is_finished());
        assert_eq!(g.next().await, None, "stays ended");
        got
    })
    .unwrap();
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(*log.borrow(), ["ran to the end"]);
}

#[test]
fn generator_is_a_stream() {
    let doubled: Vec<u32> = runner_core::run(async {
        let g = asyncgen(|mut y| async move {
            for i in 0..5 {
                let _ = y.yield_(i).await;
                yield_now().await;
            }
        });
        g.map(|v| v * 2).collect().await
    })
    .unwrap();
    assert_eq!(doubled, [0, 2, 4, 6, 8]);
}

#[test]
fn aclose_runs_the_bodys_async_cleanup() {
    let log: Log = Rc::default();
    let l = log.clone();
    runner_core::run(async move {
        let mut g = counter(l);
        assert_eq!(g.next().await, Some(1));
        g.aclose().await;
        assert!(g.is_finished());
        assert_eq!(g.next().await, None);
        g.aclose().await; // a second close does nothing
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["closed at 1, async cleanup done"]);
}

#[test]
fn closing_a_generator_that_never_started_runs_nothing() {
    let started = Rc::new(Cell::new(false));
    let s = started.clone();
    runner_core::run(async move {
        let mut g = asyncgen(move |mut y| async move {
            s.set(true);
            let _ = y.yield_(1).await;
        });
        g.aclose().await;
        assert!(g.is_finished());
    })
    .unwrap();
    assert!(!started.get());
}

#[test]
fn yielding_after_close_is_reported_and_the_body_dropped() {
    let runner = Runner::new();
    let reports = capture_reports(&runner.get_loop().unwrap());
    let reached_end = Rc::new(Cell::new(false));
    let r = reached_end.clone();
    runner
        .run(async move {
            let mut g = asyncgen(move |mut y| async move {
                let _ = y.yield_(1).await;
                let _ = y.yield_(2).await; // ignores the close
                r.set(true);
            });
            assert_eq!(g.next().await, Some(1));
            g.aclose().await;
            assert!(g.is_finished());
        })
        .unwrap();
    assert!(!reached_end.get());
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    assert!(reports[0]
        .message
        .contains("yielded a value after it was asked to close"));
}

/// The panic's message, from a payload `catch_unwind` caught.
fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn a_generator_whose_body_panicked_is_finished_and_never_polled_again() {
    let runner = Runner::new();
    let reports = capture_reports(&runner.get_loop().unwrap());
    let failed = runner
        .run(async {
            let mut g = asyncgen(|mut y| async move {
                let _ = y.yield_(1).await;
                panic!("generator body failed");
            });
            assert_eq!(g.next().await, Some(1));
            let failed = AssertUnwindSafe(g.next()).catch_unwind().await.unwrap_err();
            // Python: a generator that raised is exhausted.
            assert!(g.is_finished());
            assert_eq!(g.next().await, None);
            g.aclose().await;
            message(failed)
        })
        .unwrap();
    runner.close().unwrap();
    assert_eq!(failed, "generator body failed");
    // Neither closing it nor the loop's finalization polled the panicked
    // body again (that would be a second panic, reported).
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn a_cleanup_that_panics_finishes_the_generator() {
    let runner = Runner::new();
    let reports = capture_reports(&runner.get_loop().unwrap());
    let failed = runner
        .run(async {
            let mut g = asyncgen(|mut y| async move {
                if y.yield_(1).await.is_err() {
                    sleep(Duration::from_millis(1)).await;
                    panic!("cleanup failed");
                }
            });
            assert_eq!(g.next().await, Some(1));
            let failed = AssertUnwindSafe(g.aclose()).catch_unwind().await.unwrap_err();
            assert!(g.is_finished());
            // A later close has nothing left to wait for.
            let again = runner_core::timeout(Duration::from_secs(5), g.aclose()).await;
            assert!(again.is_ok(), "a second aclose waited for a cleanup that had panicked");
            message(failed)
        })
        .unwrap();
    runner.close().unwrap();
    assert_eq!(failed, "cleanup failed");
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn a_close_cancelled_half_way_ends_the_cleanup_and_the_generator() {
    let log: Log = Rc::default();
    let l = log.clone();
    runner_core::run(async move {
        let mut g = asyncgen(move |mut y| async move {
            if y.yield_(1).await.is_err() {
                let _finally = common::OnDrop(move || l.borrow_mut().push("cleanup's destructors ran".to_string()));
                sleep(Duration::from_secs(3600)).await;
                unreachable!("the cleanup was cancelled while it slept");
            }
        });
        assert_eq!(g.next().await, Some(1));
        // The close is given up half-way (its future dropped, as a
        // cancelled task's is), while the cleanup sleeps.
        let abandoned = runner_core::timeout(Duration::from_millis(5), g.aclose()).await;
        assert!(abandoned.is_err());
        // Python: the cancellation reaches the cleanup and ends the
        // generator; nothing is left for a later close to wait on.
        assert!(g.is_finished());
        let again = runner_core::timeout(Duration::from_secs(5), g.aclose()).await;
        assert!(
            again.is_ok(),
            "a second aclose waited for a close that had been cancelled"
        );
        assert_eq!(g.next().await, None);
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["cleanup's destructors ran"]);
}

#[test]
fn a_started_generator_dropped_unclosed_is_closed_by_the_loop() {
    let log: Log = Rc::default();
    let l = log.clone();
    runner_core::run(async move {
        let mut g = counter(l);
        assert_eq!(g.next().await, Some(1));
        drop(g);
        sleep(Duration::from_millis(10)).await;
    })
    .unwrap();
    assert_eq!(*log.borrow(), ["closed at 1, async cleanup done"]);
}

/// CPython's test_asyncio_run_closes_gens_after_hanging_tasks_errors, in
/// its own form: the main task spawns the task that iterates a generator
/// and fails in the same step. The task still gets its first step (the
/// iteration after the main task's last one), so it starts the generator;
/// at close the task is cancelled, fails in its handler (reported), and
/// only then is the generator finalized — with async cleanup.
#[test]
fn run_closes_generators_after_hanging_tasks_errors() {
    let log: Log = Rc::default();
    let spinner: Rc<RefCell<Option<AsyncGen<u32>>>> = Rc::default();
    let (l, s) = (log.clone(), spinner.clone());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        runner_core::run(async move {
            let lp = get_running_loop().unwrap();
            let sink = l.clone();
            lp.set_exception_handler(move |_, ctx| {
                sink.borrow_mut().push(format!(
                    "reported: {} ({})",
                    ctx.message,
                    ctx.panic.clone().unwrap_or_default()
                ))
            });
            let gl = l.clone();
            *s.borrow_mut() = Some(asyncgen(move |mut y| async move {
                loop {
                    if y.yield_(1).await.is_err() {
                        sleep(Duration::from_millis(1)).await;
                        gl.borrow_mut().push("generator finalized, async cleanup done".into());
                        return;
                    }
                    sleep(Duration::from_millis(20)).await;
                }
            }));
            let spin_gen = s.clone();
            spawn(async move {
                // As in CPython's test, the generator is owned outside the
                // task (`nonlocal spinner`): borrowed only while polled.
                let spin = async {
                    loop {
                        let next = std::future::poll_fn(|cx| {
                            let mut g = spin_gen.borrow_mut();
                            Pin::new(g.as_mut().unwrap()).poll_next(cx)
                        })
                        .await;
                        if next.is_none() {
                            break;
                        }
                    }
                };
                if cancellable(spin).await.is_err() {
                    panic!("ZeroDivisionError in the cancellation handler");
                }
            });
            panic!("FancyExit");
        })
    }));
    let payload = result.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"FancyExit"));
    assert_eq!(
        *log.borrow(),
        [
            "reported: unhandled error during runner shutdown (ZeroDivisionError in the cancellation handler)",
            "generator finalized, async cleanup done",
        ]
    );
    assert!(spinner.borrow().as_ref().is_some_and(|g| g.is_finished()));
}

/// A generator consumed by another generator's body, both left open when
/// the runner closes: the outer one's finalizer drives its step, which is
/// waiting on the inner one, while the close's step 2 closes the inner
/// one. The inner one's closer takes its body over and, when done, wakes
/// the outer step that waited on it (it used to wait forever: the body
/// kept only the closer's waker), so both cleanups run. Found by a
/// randomized test of cancellation programs.
#[test]
fn a_generator_inside_another_generators_step_is_closed_and_the_outer_one_finishes_too() {
    let log: Log = Rc::default();
    let l = log.clone();
    let lp = runner_core::EventLoop::builder().start_paused(true).build().unwrap();
    let reports = capture_reports(&lp);
    let factory_loop = lp.clone();
    let out = common::within_wall_time(Duration::from_secs(60), move || {
        runner_core::Builder::new()
            // Only a step that waits for nothing reaches it: then the
            // close gives up and reports it.
            .close_timeout(Duration::from_secs(5))
            .loop_factory(move || Ok(factory_loop.clone()))
            .run(async move {
                let l2 = l.clone();
                spawn(async move {
                    let l3 = l2.clone();
                    let mut outer = asyncgen(move |mut y| async move {
                        for i in 0..3u32 {
                            if y.yield_(i).await.is_err() {
                                l3.borrow_mut().push("outer: closed at a yield".to_string());
                                return;
                            }
                            let l4 = l3.clone();
                            let mut inner = asyncgen(move |mut y| async move {
                                for j in 0..3u32 {
                                    if y.yield_(j).await.is_err() {
                                        sleep(Duration::from_millis(1)).await;
                                        l4.borrow_mut().push("inner: async cleanup done".to_string());
                                        return;
                                    }
                                    sleep(Duration::from_millis(17)).await;
                                }
                            });
                            let (a, b) = (inner.next().await, inner.next().await);
                            l3.borrow_mut().push(format!("outer: step {i} got {a:?} {b:?}"));
                        }
                    });
                    outer.next().await;
                    // Mid-step: the inner generator sleeps.
                    outer.next().await;
                });
                sleep(Duration::from_millis(5)).await;
                // The task is left over: the close cancels it.
            })
    });
    assert!(out.is_ok(), "{out:?}");
    let reports: Vec<String> = reports.borrow().iter().map(|r| r.message.clone()).collect();
    assert!(reports.is_empty(), "{reports:?}");
    assert_eq!(
        *log.borrow(),
        [
            "inner: async cleanup done",
            "outer: step 0 got Some(0) None",
            "outer: closed at a yield"
        ]
    );
}
