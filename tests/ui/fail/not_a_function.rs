#[runner_core::main]
struct Server;

fn main() {}
