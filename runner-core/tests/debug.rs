//! Debug mode's reports (SPEC section 8) and their absence with debug off.

mod common;

use std::time::Duration;

use common::capture_reports;
use runner_core::{sleep, EventLoop};

fn debug_loop(on: bool) -> EventLoop {
    EventLoop::builder().debug(on).build().unwrap()
}

#[test]
fn debug_reports_tasks_still_pending_when_the_loop_closes() {
    let lp = debug_loop(true);
    let reports = capture_reports(&lp);
    let started = lp.spawn(sleep(Duration::from_secs(3600)));
    started.set_name("sleeper");
    lp.run_until_complete(runner_core::yield_now()).unwrap();
    let never = lp.spawn(async {});
    never.set_name("never-ran");
    lp.close().unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 2, "{reports:?}");
    let find = |name: &str| {
        reports
            .iter()
            .find(|r| r.task.as_ref().and_then(|t| t.name.as_deref()) == Some(name))
            .unwrap_or_else(|| panic!("no report for {name}: {reports:?}"))
            .message
            .clone()
    };
    assert!(find("sleeper").contains("task was destroyed but it is pending"));
    assert!(find("never-ran").contains("it was never polled"));
    // The report says where the task was spawned.
    let spawned_at = reports[0].task.as_ref().unwrap().spawned_at;
    assert!(spawned_at.file().ends_with("debug.rs"), "{spawned_at}");
}

#[test]
fn no_close_report_with_debug_off() {
    let lp = debug_loop(false);
    let reports = capture_reports(&lp);
    let _t = lp.spawn(sleep(Duration::from_secs(3600)));
    lp.run_until_complete(runner_core::yield_now()).unwrap();
    lp.close().unwrap();
    assert!(reports.borrow().is_empty());
}

#[test]
fn debug_slow_callback_warning_names_the_threshold_and_the_callback() {
    let lp = EventLoop::builder()
        .debug(true)
        .slow_callback_duration(Duration::from_millis(10))
        .build()
        .unwrap();
    let reports = capture_reports(&lp);
    lp.call_soon(|| std::thread::sleep(Duration::from_millis(25))).unwrap();
    lp.run_until_complete(runner_core::yield_now()).unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].message.starts_with("a callback blocked the event loop for"));
    assert!(reports[0].message.contains("slow_callback_duration is 10ms"));
}

#[test]
fn runner_closing_normally_reports_nothing_in_debug_mode() {
    let runner = runner_core::Runner::builder().debug(true).build();
    let reports = capture_reports(&runner.get_loop().unwrap());
    runner
        .run(async {
            runner_core::spawn(sleep(Duration::from_secs(3600)));
            runner_core::yield_now().await;
        })
        .unwrap();
    runner.close().unwrap();
    // Close step 1 cancelled the hanging task: nothing was left open.
    assert!(reports.borrow().is_empty(), "{:?}", reports.borrow());
}

#[test]
fn debug_reports_sources_still_registered_when_the_loop_closes() {
    let lp = debug_loop(true);
    let reports = capture_reports(&lp);
    let listener = lp
        .run_until_complete(async { runner_core::net::TcpListener::bind("127.0.0.1:0").await.unwrap() })
        .unwrap();
    lp.close().unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0]
        .message
        .starts_with("1 file descriptor source(s) were still registered when the loop closed"));
    drop(listener);
}
