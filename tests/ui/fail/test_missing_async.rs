#[runner_core::runner_test]
fn my_test() {}

fn main() {}
