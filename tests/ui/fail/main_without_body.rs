#[runner_core::main]
async fn main();
