#[runner_core::runner_test(timeout = "5 parsecs")]
async fn my_test() {}

fn main() {}
