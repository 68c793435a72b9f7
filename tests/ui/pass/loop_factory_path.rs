use std::cell::RefCell;
use std::time::Duration;

use runner_core::EventLoop;

thread_local! {
    static MADE: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

fn factory() -> std::io::Result<EventLoop> {
    let lp = EventLoop::builder()
        .slow_callback_duration(Duration::from_millis(3))
        .build()?;
    MADE.with(|m| *m.borrow_mut() = Some(lp.clone()));
    Ok(lp)
}

// Both arguments, factory first.
#[runner_core::main(loop_factory = factory, debug = true)]
async fn main() {
    let running = runner_core::get_running_loop().unwrap();
    let made = MADE.with(|m| m.borrow().clone()).expect("the factory ran");
    assert!(running.ptr_eq(&made), "the factory's loop is the one running");
    assert_eq!(running.slow_callback_duration(), Duration::from_millis(3));
    assert!(running.get_debug());
}
