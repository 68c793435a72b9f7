//! `RUNNER_TEST_TIMEOUT` gives tests without their own `timeout` a default
//! one. A single test: it changes the process environment.

use std::time::Duration;

#[runner_core::runner_test]
#[ignore = "called by the_environment_variable_sets_a_default_timeout"]
async fn sleeps_an_hour() {
    runner_core::sleep(Duration::from_secs(3600)).await;
}

#[runner_core::runner_test(timeout = "5s")]
#[ignore = "called by the_environment_variable_sets_a_default_timeout"]
async fn own_timeout_wins() {
    runner_core::sleep(Duration::from_millis(300)).await;
}

#[test]
fn the_environment_variable_sets_a_default_timeout() {
    std::env::set_var("RUNNER_TEST_TIMEOUT", "100ms");
    let err = std::panic::catch_unwind(sleeps_an_hour).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("timed out after 100ms"), "{msg}");
    // A test's own timeout wins over the environment's.
    own_timeout_wins();
    std::env::set_var("RUNNER_TEST_TIMEOUT", "5 parsecs");
    let err = std::panic::catch_unwind(own_timeout_wins).err();
    assert!(err.is_none(), "the variable is only read when the test has no timeout");
    let err = std::panic::catch_unwind(sleeps_an_hour).unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.contains("RUNNER_TEST_TIMEOUT=\"5 parsecs\" is not a duration"),
        "{msg}"
    );
    std::env::remove_var("RUNNER_TEST_TIMEOUT");
}
