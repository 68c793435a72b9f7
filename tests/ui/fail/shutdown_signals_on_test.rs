#[runner_core::runner_test(shutdown_signals = "SIGTERM")]
async fn a_test() {}

fn main() {}
