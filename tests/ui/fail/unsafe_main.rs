#[runner_core::main]
async unsafe fn main() {}
