#[runner_core::main(degub)]
async fn main() {}
