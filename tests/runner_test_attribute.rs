//! `#[runner_core::runner_test]` used for real: each test below runs on a
//! fresh runner, with the attribute's arguments and the standard test
//! attributes.

use std::cell::RefCell;
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
