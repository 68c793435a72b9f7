#[runner_core::runner_test]
async fn my_test(n: u32) {
    let _ = n;
}

fn main() {}
