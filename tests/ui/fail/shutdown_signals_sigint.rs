#[runner_core::main(shutdown_signals = ["SIGINT", "SIGTERM"])]
async fn main() {}
