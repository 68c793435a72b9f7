#[runner_core::main(shutdown_signals = SIGTERM)]
async fn main() {}
