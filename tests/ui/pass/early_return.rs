// `return` inside the body returns from `main`.
#[runner_core::main]
async fn main() -> Result<(), String> {
    if runner_core::get_running_loop().is_ok() {
        return Ok(());
    }
    Err("unreachable".into())
}
