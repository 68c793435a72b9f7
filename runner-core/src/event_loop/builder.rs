//! [`LoopBuilder`]: the options of a new loop, what a `loop_factory` uses.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use super::core::LoopCore;
use super::signals::Interrupts;
use super::{env_debug, EventLoop, State, DEFAULT_SLOW_CALLBACK_DURATION};
use crate::executor::{ExecutorSlot, DEFAULT_EXECUTOR_SHUTDOWN_TIMEOUT};
use crate::reactor::ReactorDriver;
use crate::runtime::{LoopHandle, Report, Shared};
use crate::task::sched::Scheduler;
use crate::time::driver::TimeDriver;

/// Options for a new [`EventLoop`]; what a `loop_factory` uses to configure
/// the loop.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{EventLoop, Runner};
///
/// let runner = Runner::builder()
///     .loop_factory(|| {
///         EventLoop::builder()
///             .slow_callback_duration(Duration::from_millis(20))
///             .build()
///     })
///     .build();
/// let lp = runner.get_loop().unwrap();
/// assert_eq!(lp.slow_callback_duration(), Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, Default)]
pub struct LoopBuilder {
    debug: Option<bool>,
    slow_callback_duration: Option<Duration>,
    max_blocking_threads: Option<usize>,
    executor_shutdown_timeout: Option<Duration>,
    start_paused: bool,
}

impl LoopBuilder {
    /// Debug mode on or off; by default it follows [`RUNNER_DEBUG`](super::DEBUG_ENV).
    pub fn debug(mut self, on: bool) -> Self {
        self.debug = Some(on);
        self
    }

    /// How long one poll or callback may block before debug mode warns.
    pub fn slow_callback_duration(mut self, d: Duration) -> Self {
        self.slow_callback_duration = Some(d);
        self
    }

    /// The most threads the default executor starts (default
    /// `min(32, cores + 4)`; at least 1).
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = Some(n.max(1));
        self
    }

    /// How long closing waits for the default executor's threads (default 5
    /// minutes) before it warns and leaves them detached.
    pub fn executor_shutdown_timeout(mut self, d: Duration) -> Self {
        self.executor_shutdown_timeout = Some(d);
        self
    }

    /// Starts the loop on a virtual clock with auto-advance on (see
    /// [`time`](crate::time)): timers fire in deadline order without
    /// waiting, so tests of long timeouts take no wall time.
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.start_paused = paused;
        self
    }

    /// Creates the loop. It makes no system call: its poller is created
    /// when it first registers a file descriptor or has to block. The
    /// `io::Result` is kept for loops whose construction may fail.
    pub fn build(self) -> io::Result<EventLoop> {
        let shared = Shared::new();
        let sched = Scheduler::new(shared.clone());
        let time = TimeDriver::new(shared.loop_id);
        let reactor = ReactorDriver::new(shared.clone());
        let executor = ExecutorSlot::new(
            LoopHandle { shared: shared.clone() },
            self.max_blocking_threads,
            self.executor_shutdown_timeout
                .unwrap_or(DEFAULT_EXECUTOR_SHUTDOWN_TIMEOUT),
        );
        let core = Rc::new(LoopCore {
            shared,
            sched,
            time,
            reactor,
            executor,
            real_deadline: Cell::new(None),
            state: Cell::new(State::Idle),
            stopping: Cell::new(false),
            tick: Cell::new(0),
            debug: Cell::new(self.debug.unwrap_or_else(env_debug)),
            slow_callback_duration: Cell::new(self.slow_callback_duration.unwrap_or(DEFAULT_SLOW_CALLBACK_DURATION)),
            exception_handler: RefCell::new(None),
            asyncgens: RefCell::new(Vec::new()),
            asyncgens_shut_down: Cell::new(false),
            interrupts: Interrupts::default(),
            listens: Cell::new(false),
            runner_listens: Cell::new(false),
            signal_handlers: RefCell::new(Vec::new()),
            abort: Cell::new(false),
            listening: RefCell::new(None),
        });
        // The task layer reports (panics nobody awaited) to this loop's
        // handler while the loop lives.
        let reporter: std::rc::Weak<dyn Report> = Rc::downgrade(&core) as _;
        core.sched.set_reporter(reporter);
        if self.start_paused {
            core.time.clock.pause();
        }
        Ok(EventLoop { core })
    }
}
