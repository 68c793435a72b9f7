#[runner_core::main]
fn main() {}
