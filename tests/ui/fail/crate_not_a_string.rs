#[runner_core::main(crate = runner_core)]
async fn main() {}
