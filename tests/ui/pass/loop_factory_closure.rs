use std::time::Duration;

// An expression, not just a path; `debug` first this time.
#[runner_core::main(debug = false, loop_factory = || runner_core::EventLoop::builder()
    .slow_callback_duration(Duration::from_millis(9))
    .build())]
async fn main() {
    let lp = runner_core::get_running_loop().unwrap();
    assert_eq!(lp.slow_callback_duration(), Duration::from_millis(9));
    assert!(!lp.get_debug());
}
