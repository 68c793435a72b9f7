use std::process::ExitCode;

#[runner_core::main]
async fn main() -> ExitCode {
    if runner_core::spawn(async { 1 + 1 }).await.unwrap() == 2 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
