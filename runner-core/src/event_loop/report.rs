//! Reports and debug mode: the loop's exception handler (asyncio's
//! `set_exception_handler`, `call_exception_handler` and the default
//! handler) and the debug settings.

use std::rc::Rc;
use std::time::Duration;

use super::EventLoop;
use crate::runtime::{log_report, ExceptionContext};

impl EventLoop {
    /// Whether debug mode is on.
    pub fn get_debug(&self) -> bool {
        self.core.debug.get()
    }

    /// Turns debug mode on or off.
    pub fn set_debug(&self, on: bool) {
        self.core.debug.set(on);
    }

    /// How long one poll or callback may block before debug mode warns.
    pub fn slow_callback_duration(&self) -> Duration {
        self.core.slow_callback_duration.get()
    }

    /// Sets [`slow_callback_duration`](Self::slow_callback_duration).
    pub fn set_slow_callback_duration(&self, d: Duration) {
        self.core.slow_callback_duration.set(d);
    }

    /// Routes reports (panics nobody retrieved, shutdown errors, debug
    /// warnings) to `handler` instead of the default one.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let lp = runner_core::EventLoop::new().unwrap();
    /// let sink = seen.clone();
    /// lp.set_exception_handler(move |_lp, ctx| sink.borrow_mut().push(ctx.message.clone()));
    /// lp.call_exception_handler(&runner_core::ExceptionContext::new("hello"));
    /// assert_eq!(*seen.borrow(), ["hello"]);
    /// ```
    pub fn set_exception_handler(&self, handler: impl Fn(&EventLoop, &ExceptionContext) + 'static) {
        *self.core.exception_handler.borrow_mut() = Some(Rc::new(handler));
    }

    /// Goes back to the default exception handler.
    pub fn clear_exception_handler(&self) {
        self.core.exception_handler.borrow_mut().take();
    }

    /// Sends `ctx` to the exception handler.
    pub fn call_exception_handler(&self, ctx: &ExceptionContext) {
        self.core.report(ctx.clone());
    }

    /// The default handler: the report goes to the `log` facade (target
    /// `runner`; error level for panics, warning otherwise) when the
    /// application installed a logger, else to standard error, so that no
    /// report is lost.
    pub fn default_exception_handler(&self, ctx: &ExceptionContext) {
        log_report(ctx);
    }
}
