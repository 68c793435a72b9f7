#[runner_core::main(debug, debug = false)]
async fn main() {}
