mod reexport {
    pub use runner_core as rc;
}

#[runner_core::main(crate = "reexport::rc")]
async fn main() {
    reexport::rc::yield_now().await;
}
