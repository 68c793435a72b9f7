//! `#[runner_core::runner_test]` used for real: each test below runs on a
//! fresh runner, with the attribute's arguments and the standard test
//! attributes.

use std::cell::{Cell, RefCell};
use std::time::Duration;

use runner_core::{get_running_loop, sleep, spawn, EventLoop};

#[runner_core::runner_test]
async fn runs_the_body_on_a_running_loop() {
    let lp = get_running_loop().expect("the body runs inside a loop");
    assert!(lp.is_running());
    let t = spawn(async { 21 * 2 });
    assert_eq!(t.await.unwrap(), 42);
}

thread_local! {
    static SEEN: RefCell<Vec<EventLoop>> = const { RefCell::new(Vec::new()) };
}

#[runner_core::runner_test]
async fn records_its_loop() {
    let lp = get_running_loop().unwrap();
    SEEN.with(|s| s.borrow_mut().push(lp));
}

#[test]
fn each_runner_test_gets_a_fresh_loop_closed_at_the_end() {
    // The generated function is a plain `fn`: call it twice on this thread.
    records_its_loop();
    records_its_loop();
    let seen = SEEN.with(|s| s.borrow().clone());
    let own: Vec<_> = seen.iter().rev().take(2).collect();
    assert!(!own[0].ptr_eq(own[1]));
    assert!(own.iter().all(|lp| lp.is_closed()));
}

#[runner_core::runner_test(debug)]
async fn debug_argument_reaches_the_loop() {
    assert!(get_running_loop().unwrap().get_debug());
}

#[runner_core::runner_test(debug = false)]
async fn debug_false_reaches_the_loop() {
    assert!(!get_running_loop().unwrap().get_debug());
}

fn small_loop() -> std::io::Result<EventLoop> {
    EventLoop::builder()
        .slow_callback_duration(Duration::from_millis(4))
        .build()
}

#[runner_core::runner_test(loop_factory = small_loop)]
async fn loop_factory_reaches_the_loop() {
    assert_eq!(
        get_running_loop().unwrap().slow_callback_duration(),
        Duration::from_millis(4)
    );
}

#[runner_core::runner_test]
#[should_panic(expected = "boom in a test")]
async fn should_panic_works() {
    sleep(Duration::from_millis(1)).await;
    panic!("boom in a test");
}

#[runner_core::runner_test]
#[should_panic(expected = "the main task was cancelled")]
async fn a_cancelled_test_body_fails_with_the_reason() {
    runner_core::current_task().unwrap().cancel();
    runner_core::yield_now().await;
}

#[runner_core::runner_test]
#[ignore = "shows that #[ignore] is kept; run with --ignored to see it fail"]
async fn ignore_is_kept() {
    panic!("ignored tests do not run");
}

#[runner_core::runner_test]
async fn result_returning_tests_work() -> Result<(), std::num::ParseIntError> {
    let n: u32 = "7".parse()?;
    sleep(Duration::from_millis(1)).await;
    assert_eq!(n, 7);
    Ok(())
}

#[runner_core::runner_test(timeout = "100ms")]
#[should_panic(expected = "the test timed out after 100ms")]
async fn a_test_past_its_timeout_fails_naming_it() {
    sleep(Duration::from_secs(3600)).await;
}

#[runner_core::runner_test(timeout = "5s")]
async fn a_test_within_its_timeout_is_unaffected() {
    sleep(Duration::from_millis(5)).await;
}

thread_local! {
    static CLEANED_UP: Cell<bool> = const { Cell::new(false) };
}

struct SetOnDrop;
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        CLEANED_UP.with(|c| c.set(true));
    }
}

// Called by the test below (the generated function is a plain fn); ignored
// on its own because it is meant to fail.
#[runner_core::runner_test(timeout = "50ms")]
#[ignore = "called by timed_out_test_cancels_its_tasks_and_closes_its_runner"]
async fn slow_test_with_a_background_task() {
    spawn(async {
        let _guard = SetOnDrop;
        std::future::pending::<()>().await
    });
    sleep(Duration::from_secs(3600)).await;
}

#[test]
fn timed_out_test_cancels_its_tasks_and_closes_its_runner() {
    CLEANED_UP.with(|c| c.set(false));
    let started = std::time::Instant::now();
    let err = std::panic::catch_unwind(slow_test_with_a_background_task).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("timed out after 50ms"), "{msg}");
    assert!(
        CLEANED_UP.with(|c| c.get()),
        "the background task was cancelled (its destructor ran)"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[runner_core::runner_test(start_paused, timeout = "2s")]
async fn the_timeout_is_real_time_even_on_a_paused_clock() {
    // An hour of virtual time passes at once; the 2 s real-time timeout
    // does not fire.
    sleep(Duration::from_secs(3600)).await;
}

#[runner_core::runner_test(start_paused)]
async fn start_paused_makes_an_hour_take_no_wall_time() {
    let wall = std::time::Instant::now();
    let lp = get_running_loop().unwrap();
    assert!(lp.is_clock_paused());
    let t0 = lp.time();
    sleep(Duration::from_secs(3600)).await;
    assert!(lp.time() - t0 >= Duration::from_secs(3600));
    assert!(wall.elapsed() < Duration::from_secs(1));
}

#[runner_core::runner_test]
#[should_panic(expected = "1 task(s) spawned by the test panicked")]
async fn a_detached_task_panic_fails_the_test() {
    let t = spawn(async { panic!("background boom") });
    t.set_name("background");
    drop(t);
    sleep(Duration::from_millis(5)).await;
}

#[runner_core::runner_test]
#[should_panic(expected = "panicked with: background boom")]
async fn the_failure_names_the_panic_message() {
    drop(spawn(async { panic!("background boom") }));
    sleep(Duration::from_millis(5)).await;
}

#[runner_core::runner_test(allow_task_panics)]
async fn allow_task_panics_lets_the_test_pass() {
    drop(spawn(async { panic!("expected in this test") }));
    sleep(Duration::from_millis(5)).await;
}

#[runner_core::runner_test]
async fn an_awaited_task_panic_is_the_tests_to_handle() {
    // Retrieved by the test: not a lost panic, so the test decides.
    let err = spawn(async { panic!("handled") }).await.unwrap_err();
    assert!(err.is_panic());
}
