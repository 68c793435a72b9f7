#[derive(Debug)]
struct AppError;

fn parse(s: &str) -> Result<u32, AppError> {
    s.parse().map_err(|_| AppError)
}

// `?` infers its error type from the declared return type.
#[runner_core::main]
async fn main() -> Result<(), AppError> {
    let n = parse("42")?;
    runner_core::yield_now().await;
    assert_eq!(n, 42);
    Ok(())
}
