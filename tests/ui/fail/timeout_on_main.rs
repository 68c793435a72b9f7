#[runner_core::main(timeout = "5s")]
async fn main() {}
