// Without `debug`, the loop follows RUNNER_DEBUG. The test harness runs this
// program twice: with the variable unset, then set to 1.
#[runner_core::main]
async fn main() {
    let env_on = std::env::var_os("RUNNER_DEBUG").is_some_and(|v| !v.is_empty());
    assert_eq!(runner_core::get_running_loop().unwrap().get_debug(), env_on);
    println!("RUNNER_DEBUG on: {env_on}");
}
