//! How a `#[main]` program ends when its run gives no output: checked in
//! real child processes (this test binary re-executed in a child role).

use std::process::Command;

const ROLE: &str = "RUNNER_EXIT_TEST_ROLE";

/// In a child, plays the end of a `#[main]` whose run ended with `error`.
fn child_role() {
    match std::env::var(ROLE).as_deref() {
        Ok("interrupt") => {
            runner_core::__private::main_result::<()>(Err(runner_core::Error::KeyboardInterrupt));
        }
        Ok("cancelled") => {
            // A real run whose main task gets cancelled.
            let result = runner_core::run(async {
                runner_core::current_task().unwrap().cancel();
                runner_core::yield_now().await;
            });
            runner_core::__private::main_result(result);
        }
        _ => {}
    }
}

fn run_child(role: &str, test: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(ROLE, role)
        .output()
        .unwrap()
}

#[test]
fn keyboard_interrupt_prints_it_and_dies_by_sigint() {
    child_role();
    if std::env::var_os(ROLE).is_some() {
        unreachable!("the child role exits");
    }
    let out = run_child("interrupt", "keyboard_interrupt_prints_it_and_dies_by_sigint");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KeyboardInterrupt"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(2), "died by SIGINT: {:?}", out.status);
    }
}

#[test]
fn other_run_errors_print_the_error_and_exit_1() {
    child_role();
    if std::env::var_os(ROLE).is_some() {
        unreachable!("the child role exits");
    }
    let out = run_child("cancelled", "other_run_errors_print_the_error_and_exit_1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Error: the main task was cancelled"), "{stderr}");
}
