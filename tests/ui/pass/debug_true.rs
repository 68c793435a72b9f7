#[runner_core::main(debug = true)]
async fn main() {
    assert!(runner_core::get_running_loop().unwrap().get_debug());
}
