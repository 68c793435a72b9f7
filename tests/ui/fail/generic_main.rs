#[runner_core::main]
async fn main<T: Default>() {}
