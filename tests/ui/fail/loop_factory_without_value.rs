#[runner_core::main(loop_factory)]
async fn main() {}
