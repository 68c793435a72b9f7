//! `debug: None` follows the `RUNNER_DEBUG` environment variable. This file
//! holds a single test because it changes the process environment.

use runner_core::{get_running_loop, Builder, EventLoop};

fn debug_of_a_default_run() -> bool {
    Builder::new()
        .debug(None)
        .run(async { get_running_loop().unwrap().get_debug() })
        .unwrap()
}

#[test]
fn debug_none_follows_the_runner_debug_environment_variable() {
    std::env::remove_var("RUNNER_DEBUG");
    assert!(!debug_of_a_default_run());
    std::env::set_var("RUNNER_DEBUG", "1");
    assert!(debug_of_a_default_run());
    assert!(EventLoop::new().unwrap().get_debug());
    // Set but empty counts as off, as PYTHONASYNCIODEBUG.
    std::env::set_var("RUNNER_DEBUG", "");
    assert!(!debug_of_a_default_run());
    // An explicit setting wins over the environment.
    std::env::set_var("RUNNER_DEBUG", "1");
    assert!(!Builder::new()
        .debug(false)
        .run(async { get_running_loop().unwrap().get_debug() })
        .unwrap());
    std::env::remove_var("RUNNER_DEBUG");
}
