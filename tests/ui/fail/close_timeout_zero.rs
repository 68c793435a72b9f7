#[runner_core::main(close_timeout = "0s")]
async fn main() {}
