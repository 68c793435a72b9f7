#[runner_core::runner_test]
#[test]
async fn my_test() {}

fn main() {}
