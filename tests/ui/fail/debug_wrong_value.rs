#[runner_core::main(debug = "yes")]
async fn main() {}
