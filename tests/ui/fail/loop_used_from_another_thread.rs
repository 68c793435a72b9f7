// The loop belongs to its thread: using it from another one does not
// compile. Other threads get a LoopHandle (`lp.handle()`) instead.
fn main() {
    let lp = runner_core::EventLoop::new().unwrap();
    std::thread::spawn(move || {
        let _ = lp.call_soon(|| {});
    });
}
