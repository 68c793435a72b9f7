//! The loop API underneath the runner (SPEC section 7, without networking).

mod common;

use std::cell::{Cell, RefCell};

use common::{capture_reports, thread_cpu};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use runner_core::{get_running_loop, sleep, spawn, yield_now, Error, EventLoop, ExceptionContext};

#[test]
fn call_soon_runs_callbacks_in_order() {
    let lp = EventLoop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    for i in 0..5 {
        let o = order.clone();
        lp.call_soon(move || o.borrow_mut().push(i)).unwrap();
    }
    lp.run_until_complete(yield_now()).unwrap();
    assert_eq!(*order.borrow(), [0, 1, 2, 3, 4]);
}

#[test]
fn cancelled_callback_does_not_run() {
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    let h = lp.call_soon(move || r.set(true)).unwrap();
    h.cancel();
    lp.run_until_complete(yield_now()).unwrap();
    assert!(!ran.get() && h.is_cancelled());
}

#[test]
fn run_forever_runs_until_stop() {
    let lp = EventLoop::new().unwrap();
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let lp2 = lp.clone();
    lp.call_later(Duration::from_millis(5), move || {
        t.set(t.get() + 1);
        lp2.stop();
    })
    .unwrap();
    lp.run_forever().unwrap();
    assert_eq!(ticks.get(), 1);
    assert!(!lp.is_running());
}

#[test]
fn stop_before_run_forever_runs_one_iteration() {
    let lp = EventLoop::new().unwrap();
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    lp.call_soon(move || r.set(true)).unwrap();
    lp.stop();
    lp.run_forever().unwrap();
    assert!(ran.get());
}

#[test]
fn stop_during_run_until_complete_is_an_error() {
    let lp = EventLoop::new().unwrap();
    let lp2 = lp.clone();
    lp.call_soon(move || lp2.stop()).unwrap();
    let err = lp.run_until_complete(sleep(Duration::from_secs(3600))).unwrap_err();
    assert!(matches!(err, Error::Stopped));
    assert!(err.to_string().contains("stopped before the future completed"));
}

#[test]
fn is_running_is_true_only_inside() {
    let lp = EventLoop::new().unwrap();
    assert!(!lp.is_running());
    let inside = lp
        .run_until_complete(async { get_running_loop().unwrap().is_running() })
        .unwrap();
    assert!(inside);
    assert!(!lp.is_running());
}

#[test]
fn running_the_loop_from_inside_itself_is_refused() {
    let lp = EventLoop::new().unwrap();
    let err = lp
        .run_until_complete(async { get_running_loop().unwrap().run_until_complete(async {}).unwrap_err() })
        .unwrap();
    assert!(matches!(err, Error::LoopRunning));
    let err = lp
        .run_until_complete(async { get_running_loop().unwrap().close().unwrap_err() })
        .unwrap();
    assert!(err.to_string().contains("already running"));
}

#[test]
fn running_a_second_loop_inside_a_running_one_is_refused() {
    let outer = EventLoop::new().unwrap();
    let err = outer
        .run_until_complete(async {
            let other = EventLoop::new().unwrap();
            other.run_until_complete(async {}).unwrap_err()
        })
        .unwrap();
    assert!(matches!(err, Error::NestedRun { .. }));
}

#[test]
fn closed_loop_refuses_scheduling_with_clear_errors() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    lp.close().unwrap();
    assert!(lp.is_closed());
    assert!(matches!(lp.call_soon(|| {}), Err(Error::LoopClosed)));
    assert!(matches!(lp.call_later(Duration::ZERO, || {}), Err(Error::LoopClosed)));
    assert!(matches!(lp.call_soon_threadsafe(|| {}), Err(Error::LoopClosed)));
    assert!(matches!(
        lp.handle().call_soon_threadsafe(|| {}),
        Err(Error::LoopClosed)
    ));
    let err = lp.run_until_complete(async {}).unwrap_err();
    assert!(err.to_string().contains("Event loop is closed"));
    assert!(lp.run_forever().is_err());
}

#[test]
fn spawn_on_a_closed_loop_gives_a_cancelled_task_without_polling() {
    let lp = EventLoop::new().unwrap();
    lp.close().unwrap();
    let polled = Rc::new(Cell::new(false));
    let p = polled.clone();
    let h = lp.spawn(async move { p.set(true) });
    assert!(h.is_done() && h.is_cancelled());
    assert!(!polled.get());
}

#[test]
fn close_drops_pending_tasks_and_callbacks() {
    let lp = EventLoop::new().unwrap();
    let dropped = Rc::new(Cell::new(0));
    struct Count(Rc<Cell<i32>>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let c1 = Count(dropped.clone());
    let c2 = Count(dropped.clone());
    let _t = lp.spawn(async move {
        let _c = c1;
        std::future::pending::<()>().await
    });
    lp.call_later(Duration::from_secs(3600), move || drop(c2)).unwrap();
    lp.close().unwrap();
    assert_eq!(dropped.get(), 2);
    assert_eq!(lp.task_count(), 0);
}

#[test]
fn call_soon_threadsafe_from_another_thread_wakes_a_blocked_loop() {
    let lp = EventLoop::new().unwrap();
    let handle = lp.handle();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let started = Instant::now();
    // Nothing else is scheduled: the loop blocks in the poller with no
    // timeout until the other thread's callback arrives.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let worker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        handle
            .call_soon_threadsafe(move || {
                let _ = tx.send(());
            })
            .unwrap();
    });
    lp.run_until_complete(async move {
        std::future::poll_fn(|cx| {
            // Re-check each time the loop runs us; a callback that ran sends
            // on the channel and we get woken by the following wake-up.
            match rx.try_recv() {
                Ok(()) => std::task::Poll::Ready(()),
                Err(_) => {
                    let w = cx.waker().clone();
                    get_running_loop().unwrap().call_soon(move || w.wake()).unwrap();
                    std::task::Poll::Pending
                }
            }
        })
        .await;
        g.set(1);
    })
    .unwrap();
    worker.join().unwrap();
    assert_eq!(got.get(), 1);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn blocked_loop_sleeps_instead_of_spinning() {
    // A loop waiting on a timer must block in the poller, not busy-loop:
    // measure the CPU time of this thread across a 100 ms sleep.
    let before = thread_cpu();
    runner_core::run(sleep(Duration::from_millis(200))).unwrap();
    let used = thread_cpu() - before;
    assert!(
        used < Duration::from_millis(100),
        "the loop used {used:?} of CPU while sleeping"
    );
}

#[test]
fn callback_panic_is_reported_and_the_loop_goes_on() {
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    lp.call_soon(|| panic!("callback boom")).unwrap();
    let after = lp.run_until_complete(async { 5 }).unwrap();
    assert_eq!(after, 5);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].panic.as_deref(), Some("callback boom"));
}

#[test]
fn panicking_exception_handler_falls_back_to_the_default() {
    let lp = EventLoop::new().unwrap();
    lp.set_exception_handler(|_, _| panic!("handler is broken"));
    lp.call_exception_handler(&ExceptionContext::new("first report"));
    // Still usable afterwards.
    lp.clear_exception_handler();
    lp.call_exception_handler(&ExceptionContext::new("second report"));
    assert_eq!(lp.run_until_complete(async { 1 }).unwrap(), 1);
}

#[test]
fn set_debug_toggles_debug_mode() {
    let lp = EventLoop::builder().debug(false).build().unwrap();
    assert!(!lp.get_debug());
    lp.set_debug(true);
    assert!(lp.get_debug());
}

#[test]
fn debug_mode_warns_about_a_slow_poll_with_the_task_name() {
    let lp = EventLoop::builder()
        .debug(true)
        .slow_callback_duration(Duration::from_millis(20))
        .build()
        .unwrap();
    let reports = capture_reports(&lp);
    lp.run_until_complete(async {
        let t = spawn(async { std::thread::sleep(Duration::from_millis(40)) });
        t.set_name("hog");
        t.await.unwrap();
    })
    .unwrap();
    let reports = reports.borrow();
    let slow: Vec<_> = reports
        .iter()
        .filter(|r| r.message.contains("blocked the event loop"))
        .collect();
    assert!(!slow.is_empty(), "{reports:?}");
    assert_eq!(slow[0].task.as_ref().unwrap().name.as_deref(), Some("hog"));
}

#[test]
fn no_slow_warning_with_debug_off() {
    let lp = EventLoop::builder()
        .debug(false)
        .slow_callback_duration(Duration::from_millis(1))
        .build()
        .unwrap();
    let reports = capture_reports(&lp);
    lp.run_until_complete(async { std::thread::sleep(Duration::from_millis(10)) })
        .unwrap();
    assert!(reports.borrow().is_empty());
}

#[test]
fn set_event_loop_sets_and_unsets_the_thread_loop() {
    let lp = EventLoop::new().unwrap();
    runner_core::set_event_loop(Some(&lp));
    assert!(runner_core::get_event_loop().unwrap().ptr_eq(&lp));
    runner_core::set_event_loop(None);
    assert!(runner_core::get_event_loop().is_none());
}

#[test]
fn get_running_loop_outside_a_loop_is_a_clear_error() {
    let err = get_running_loop().unwrap_err();
    assert!(matches!(err, Error::NoRunningLoop));
    assert!(err.to_string().contains("no running event loop"));
}

#[test]
fn executor_returns_results_and_panics() {
    let (ok, panicked) = runner_core::run(async {
        let ok = runner_core::spawn_blocking(|| std::thread::current().name().map(str::to_owned)).await;
        let panicked = runner_core::spawn_blocking(|| -> u8 { panic!("job boom") }).await;
        (ok, panicked)
    })
    .unwrap();
    assert!(ok.unwrap().unwrap().starts_with("runner-blocking-"));
    let err = panicked.unwrap_err();
    assert_eq!(err.panic_message().as_deref(), Some("job boom"));
}

#[test]
fn executor_survives_a_panicking_job() {
    let lp = EventLoop::builder().max_blocking_threads(1).build().unwrap();
    let (a, b) = lp
        .run_until_complete(async {
            let lp = get_running_loop().unwrap();
            let a = lp.run_in_executor(|| -> u8 { panic!("first job fails") }).await;
            let b = lp.run_in_executor(|| 2).await;
            (a.is_err(), b.unwrap())
        })
        .unwrap();
    assert!(a);
    assert_eq!(b, 2);
    assert_eq!(lp.executor_thread_count(), 1);
}

#[test]
fn executor_respects_its_thread_bound_under_many_jobs() {
    let lp = EventLoop::builder().max_blocking_threads(3).build().unwrap();
    let running = Arc::new(Mutex::new((0usize, 0usize)));
    let r = running.clone();
    let total = lp
        .run_until_complete(async move {
            let lp = get_running_loop().unwrap();
            let jobs: Vec<_> = (0..1000)
                .map(|i| {
                    let r = r.clone();
                    lp.run_in_executor(move || {
                        {
                            let mut g = r.lock().unwrap();
                            g.0 += 1;
                            g.1 = g.1.max(g.0);
                        }
                        std::thread::yield_now();
                        r.lock().unwrap().0 -= 1;
                        i
                    })
                })
                .collect();
            let mut total = 0;
            for j in jobs {
                total += j.await.unwrap();
            }
            total
        })
        .unwrap();
    assert_eq!(total, (0..1000).sum::<i32>());
    assert!(lp.executor_thread_count() <= 3);
    assert!(running.lock().unwrap().1 <= 3);
}

#[test]
fn executor_shutdown_within_timeout_joins_threads() {
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    lp.run_until_complete(async {
        let lp = get_running_loop().unwrap();
        // Leave a job running when shutdown starts.
        drop(lp.run_in_executor(|| std::thread::sleep(Duration::from_millis(50))));
        yield_now().await;
    })
    .unwrap();
    lp.shutdown_default_executor(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(lp.executor_thread_count(), 0);
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
    // After shutdown, new jobs are refused rather than hanging.
    let refused = lp.run_until_complete(lp.run_in_executor(|| 1)).unwrap();
    assert!(refused.is_err());
}

#[test]
fn executor_shutdown_past_timeout_warns_and_returns() {
    let lp = EventLoop::builder()
        .executor_shutdown_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let reports = capture_reports(&lp);
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    lp.run_until_complete(async move {
        let lp = get_running_loop().unwrap();
        drop(lp.run_in_executor(move || {
            let _ = release_rx.recv_timeout(Duration::from_secs(30));
        }));
        yield_now().await;
    })
    .unwrap();
    let started = Instant::now();
    lp.shutdown_default_executor(None).unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(50) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    assert!(
        reports[0]
            .message
            .contains("did not finish joining its threads within 50ms"),
        "{}",
        reports[0].message
    );
    drop(release_tx);
}

#[test]
fn set_default_executor_replaces_the_pool_and_close_joins_both() {
    let lp = EventLoop::builder().max_blocking_threads(4).build().unwrap();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    lp.run_until_complete(async move {
        let lp = get_running_loop().unwrap();
        // A job of the old pool still running when the pool is replaced.
        drop(lp.run_in_executor(move || {
            let _ = release_rx.recv_timeout(Duration::from_secs(10));
        }));
        yield_now().await;
        lp.set_default_executor(runner_core::executor::ThreadPool::new(1))
            .unwrap();
        let names: Vec<_> = (0..4)
            .map(|_| lp.run_in_executor(|| std::thread::current().id()))
            .collect();
        let mut ids = Vec::new();
        for n in names {
            ids.push(n.await.unwrap());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "the new pool has one thread");
    })
    .unwrap();
    assert_eq!(lp.executor_thread_count(), 2, "old pool's thread + new pool's thread");
    release_tx.send(()).unwrap();
    lp.shutdown_default_executor(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(lp.executor_thread_count(), 0);
}

/// `EventLoop::close()` on its own drops the tasks still alive; one whose
/// future panics as it is dropped, with no handle left to tell, is reported
/// to the exception handler with the task.
#[test]
fn close_reports_a_detached_task_that_panics_when_dropped() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("destructor failed");
        }
    }
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let t = lp.spawn(async {
        let _guard = PanicOnDrop;
        std::future::pending::<()>().await
    });
    t.set_name("bomb");
    drop(t);
    lp.run_until_complete(yield_now()).unwrap();
    lp.close().unwrap();
    // Debug mode (RUNNER_DEBUG) also reports the task as destroyed while
    // pending; the panic is reported once either way.
    let reports = reports.borrow();
    let panics: Vec<_> = reports.iter().filter(|r| r.panic.is_some()).collect();
    assert_eq!(panics.len(), 1, "{reports:?}");
    assert!(
        panics[0].message.contains("when the closing loop dropped it"),
        "{}",
        panics[0].message
    );
    assert_eq!(panics[0].panic.as_deref(), Some("destructor failed"));
    assert_eq!(panics[0].task.as_ref().unwrap().name.as_deref(), Some("bomb"));
    assert_eq!(reports.len(), if lp.get_debug() { 2 } else { 1 }, "{reports:?}");
}

/// A handle reaches its task's loop while that loop is not running: names
/// set before the loop runs, and a panic nobody awaited, reported to the
/// loop's own exception handler when the handle is dropped afterwards.
#[test]
fn a_handle_used_while_its_loop_is_not_running_still_reaches_the_loop() {
    let lp = EventLoop::new().unwrap();
    let other = EventLoop::new().unwrap();
    let reports = Rc::new(RefCell::new(Vec::new()));
    let sink = reports.clone();
    lp.set_exception_handler(move |_, ctx| sink.borrow_mut().push(ctx.clone()));
    let h = lp.spawn(async { panic!("nobody awaits me") });
    h.set_name("lonely");
    assert_eq!(h.name().as_deref(), Some("lonely"));
    // Another loop's existence does not confuse which loop is the task's.
    let o = other.spawn(async {});
    assert_eq!(o.name(), None);
    lp.run_until_complete(yield_now()).unwrap();
    assert!(h.is_done());
    assert_eq!(h.name().as_deref(), Some("lonely"));
    drop(h);
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0].task.as_ref().and_then(|t| t.name.as_deref()), Some("lonely"));
    assert!(reports[0]
        .panic
        .as_deref()
        .is_some_and(|p| p.contains("nobody awaits me")));
}
