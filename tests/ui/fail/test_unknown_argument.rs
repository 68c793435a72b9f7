#[runner_core::runner_test(start_pasued)]
async fn my_test() {}

fn main() {}
