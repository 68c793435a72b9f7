#[runner_core::main(debug)]
async fn main() {
    assert!(runner_core::get_running_loop().unwrap().get_debug());
}
