#[runner_core::main(loop_factory = 5)]
async fn main() {}
