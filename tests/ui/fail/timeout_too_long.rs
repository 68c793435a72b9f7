#[runner_core::runner_test(timeout = "99999999999999999999h")]
async fn waits_a_long_time() {}

fn main() {}
