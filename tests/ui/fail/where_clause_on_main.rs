#[runner_core::main]
async fn main()
where
    (): Sized,
{
}
