#[runner_core::main]
async fn main() {
    let port: u16 = "8080";
    let _ = port;
}
