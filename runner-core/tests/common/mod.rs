//! Helpers shared by the integration tests.

use std::cell::RefCell;
use std::rc::Rc;

use runner_core::{EventLoop, ExceptionContext};

/// Routes `lp`'s reports to a list the test can read.
pub fn capture_reports(lp: &EventLoop) -> Rc<RefCell<Vec<ExceptionContext>>> {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let sink = seen.clone();
    lp.set_exception_handler(move |_, ctx| sink.borrow_mut().push(ctx.clone()));
    seen
}
