#[runner_core::main(shutdown_signals = ["SIGKILL"])]
async fn main() {}
