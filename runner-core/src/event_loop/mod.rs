//! The event loop: a ready queue, timers, a reactor, and the tasks on them.
//!
//! An [`EventLoop`] belongs to the thread that created it (it is `!Send`);
//! everything on the same-thread path is `Cell`/`RefCell`, with no lock and
//! no atomic read-modify-write of its own. The part other threads may touch
//! is the loop's `runtime::Shared` (a lock-free queue of wake-ups and
//! callbacks, and the poller to wake); a [`LoopHandle`] wraps it for user
//! code.
//!
//! The loop sits on top of the layers below it and owns their per-loop
//! state: the task scheduler (`task`), the clock and timers (`time`), the
//! reactor (`reactor`, made on first need), the blocking pool
//! (`executor`). While it runs it makes each the thread's current one,
//! which is how `spawn`, `sleep`, sockets and `spawn_blocking` find it.
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`EventLoop`], running it, the thread's current loop |
//! | `core.rs` | the loop's state and one iteration |
//! | `builder.rs` | [`LoopBuilder`] |
//! | `callbacks.rs` | `call_soon`, `call_later`, `add_reader`, ... |
//! | `blocking.rs` | the default executor from the loop's side |
//! | `shutdown.rs` | `close` and the pieces of the runner's close |
//! | `signals.rs` | what a signal delivery does to the loop |
//! | `report.rs` | the exception handler and debug settings |
//! | `threadsafe.rs` | [`LoopHandle::spawn`]: spawning from other threads |
//!
//! # One iteration
//!
//! 1. Decide how long the reactor may block: not at all when something is
//!    ready or a stop is pending, else until the next timer, else forever.
//! 2. Block in the reactor (skipped when the timeout is zero, except every
//!    `REACTOR_INTERVAL` iterations when file descriptors are registered,
//!    so I/O is never starved by busy tasks), then take what other threads
//!    sent.
//! 3. Move every expired timer to the ready queue.
//! 4. Run the ready items that were queued when the batch started; what they
//!    schedule runs in the next iteration, as in asyncio. Before each, look
//!    at signal deliveries (one relaxed load).
//!
//! A wait for a result ([`run_until_complete`](EventLoop::run_until_complete),
//! a runner's run) ends after the iteration following the one in which the
//! result came, as asyncio's loop stops from the done-callback of the
//! future it waits for.

mod blocking;
mod builder;
mod callbacks;
pub(crate) mod core;
mod report;
mod shutdown;
pub(crate) mod signals;
mod threadsafe;

use std::cell::RefCell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::panic::{resume_unwind, Location};
use std::rc::Rc;
use std::time::{Duration, Instant};

use self::core::LoopCore;
use crate::task::{self, harness, JoinHandle};
use crate::{Context, Error};

pub use self::builder::LoopBuilder;
pub use self::callbacks::{CallbackHandle, TimerHandle};
pub use self::signals::{signal_stream, SignalStream};
pub use self::threadsafe::Submitted;
pub use crate::runtime::{ExceptionContext, LoopHandle};
pub use crate::task::spawn;

/// The environment variable that turns debug mode on by default (set and
/// non-empty), like Python's `PYTHONASYNCIODEBUG`.
pub const DEBUG_ENV: &str = "RUNNER_DEBUG";

/// The default [`EventLoop::slow_callback_duration`].
pub const DEFAULT_SLOW_CALLBACK_DURATION: Duration = Duration::from_millis(100);

pub(crate) fn env_debug() -> bool {
    std::env::var_os(DEBUG_ENV).is_some_and(|v| !v.is_empty())
}

/// The loop's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Idle,
    Running,
    Closed,
}

type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

thread_local! {
    /// The loop running on this thread.
    static RUNNING: RefCell<Option<Rc<LoopCore>>> = const { RefCell::new(None) };
    /// The loop set with `set_event_loop`.
    static THREAD_LOOP: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// A single-threaded event loop (asyncio's `AbstractEventLoop`).
///
/// Cloning gives another handle to the same loop. The loop is `!Send`: it
/// runs on the thread that created it; other threads reach it through a
/// [`LoopHandle`]. Most programs never touch it directly and use
/// [`run`](crate::run) or [`Runner`](crate::Runner).
///
/// ```
/// use runner_core::EventLoop;
///
/// let lp = EventLoop::new().unwrap();
/// let task = lp.spawn(async { 1 + 1 });
/// assert_eq!(lp.run_until_complete(task).unwrap().unwrap(), 2);
/// lp.close().unwrap();
/// assert!(lp.is_closed());
/// ```
#[derive(Clone)]
pub struct EventLoop {
    core: Rc<LoopCore>,
}

impl EventLoop {
    /// A new loop with default settings (debug mode from
    /// [`RUNNER_DEBUG`](DEBUG_ENV)): asyncio's `new_event_loop()`.
    pub fn new() -> io::Result<EventLoop> {
        LoopBuilder::default().build()
    }

    /// Options for a new loop.
    pub fn builder() -> LoopBuilder {
        LoopBuilder::default()
    }

    pub(crate) fn core(&self) -> &Rc<LoopCore> {
        &self.core
    }

    /// The loop running on this thread, if any.
    pub(crate) fn running() -> Option<EventLoop> {
        RUNNING.with(|r| r.borrow().clone().map(|core| EventLoop { core }))
    }

    /// Whether two handles refer to the same loop.
    pub fn ptr_eq(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.core, &other.core)
    }

    /// The loop's clock: a monotonic `Instant`; virtual time when the
    /// clock is paused (see [`time`](crate::time)).
    pub fn time(&self) -> Instant {
        self.core.time.now()
    }

    /// Switches the loop to a virtual clock, starting at the real now, with
    /// auto-advance on (tokio's `time::pause`). Timers already set keep
    /// their deadlines. Calling it again does nothing.
    pub fn pause_clock(&self) {
        self.core.time.clock.pause();
    }

    /// Whether the loop runs on a virtual clock.
    pub fn is_clock_paused(&self) -> bool {
        self.core.time.clock.get_virtual().is_some()
    }

    /// Moves the virtual clock forward by `duration` (about 30 years when
    /// `duration` is too large for the clock); the timers that come due
    /// fire at the loop's next iteration. Fails with
    /// [`Error::ClockNotPaused`] on a real clock.
    pub fn advance(&self, duration: Duration) -> Result<(), Error> {
        if self.core.time.clock.advance(duration) {
            Ok(())
        } else {
            Err(Error::ClockNotPaused)
        }
    }

    /// Turns the virtual clock's auto-advance on or off. Fails with
    /// [`Error::ClockNotPaused`] on a real clock.
    pub fn set_auto_advance(&self, on: bool) -> Result<(), Error> {
        if self.core.time.clock.set_auto_advance(on) {
            Ok(())
        } else {
            Err(Error::ClockNotPaused)
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.core.is_closed() {
            Err(Error::LoopClosed)
        } else {
            Ok(())
        }
    }

    /// Spawns `fut` as a task on this loop, in a copy of the current context
    /// (asyncio's `create_task`). It starts running when the loop runs.
    ///
    /// On a closed loop the task is cancelled at once: `fut` is dropped
    /// without being polled and awaiting the handle gives a cancelled
    /// [`JoinError`](crate::JoinError).
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        self.spawn_at(fut.into_future(), None, Location::caller())
    }

    /// Like [`spawn`](Self::spawn), but the task runs in `ctx` itself (not a
    /// copy): what it sets stays in `ctx`.
    #[track_caller]
    pub fn spawn_in_context<F>(&self, fut: F, ctx: &Context) -> JoinHandle<F::Output>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        self.spawn_at(fut.into_future(), Some(ctx.clone()), Location::caller())
    }

    /// Spawns with an explicit spawn location (the runner's main task is
    /// "spawned" where the user called `run`).
    pub(crate) fn spawn_at<F>(
        &self,
        fut: F,
        ctx: Option<Context>,
        at: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        harness::spawn(&self.core.sched, fut, ctx, at)
    }

    /// How many tasks are alive on the loop (spawned and not finished).
    pub fn task_count(&self) -> usize {
        self.core.sched.task_count()
    }

    /// Makes this loop the thread's running one, or fails: closed, already
    /// running, or another loop runs on this thread.
    fn enter(&self) -> Result<self::core::RunningGuard<'_>, Error> {
        match self.core.state.get() {
            State::Closed => return Err(Error::LoopClosed),
            State::Running => return Err(Error::LoopRunning),
            State::Idle => {}
        }
        let prev = RUNNING.with(|r| r.borrow_mut().replace(self.core.clone()));
        if prev.is_some() {
            RUNNING.with(|r| *r.borrow_mut() = prev);
            return Err(Error::NestedRun {
                caller: "EventLoop::run_until_complete() / run_forever()",
            });
        }
        Ok(self.core.enter(prev))
    }

    /// Runs iterations until `done()` or `stop()`; `true` when `done()`.
    ///
    /// As asyncio's loop stops from the done-callback of the future it
    /// waits for, the iteration after the one that made `done()` true still
    /// runs: what was scheduled by then (a task spawned in a main task's
    /// last step, say) gets its step. A final interrupt ends the run at
    /// once, without it.
    pub(crate) fn run_until(&self, done: impl Fn() -> bool) -> Result<bool, Error> {
        let _guard = self.enter()?;
        loop {
            if self.core.abort.get() {
                return Ok(done());
            }
            if done() {
                self.core.run_final_iteration();
                return Ok(true);
            }
            self.core.run_once();
            if self.core.stopping.get() {
                return Ok(done());
            }
        }
    }

    /// Runs `fut` as a task until it completes and returns its output
    /// (asyncio's `run_until_complete`). A panic of the task is resumed here;
    /// a cancelled task gives [`Error::Cancelled`].
    pub fn run_until_complete<F>(&self, fut: F) -> Result<F::Output, Error>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        if self.core.is_closed() {
            return Err(Error::LoopClosed);
        }
        let task = self.spawn(fut);
        self.run_task(task)
    }

    /// Runs the loop until `task` is done and turns its outcome into the
    /// run's result.
    pub(crate) fn run_task<T: 'static>(&self, mut task: JoinHandle<T>) -> Result<T, Error> {
        if !self.run_until(|| task.is_done())? {
            return Err(Error::Stopped);
        }
        outcome_into_result(task.take_outcome().expect("invariant: the task is done"))
    }

    /// Runs the loop until [`stop`](Self::stop) is called (asyncio's
    /// `run_forever`).
    pub fn run_forever(&self) -> Result<(), Error> {
        self.run_until(|| false).map(|_| ())
    }

    /// Makes `run_forever` return after the current iteration (and
    /// `run_until_complete` fail with [`Error::Stopped`] if its future is not
    /// done). Called before the loop runs, the next run does one iteration.
    pub fn stop(&self) {
        self.core.stopping.set(true);
    }

    /// Whether the loop is running now.
    pub fn is_running(&self) -> bool {
        self.core.state.get() == State::Running
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("id", &self.core.id())
            .field("state", &self.core.state.get())
            .field("debug", &self.core.debug.get())
            .field("tasks", &self.task_count())
            .field("timers", &self.core.time.timers.borrow().len())
            .finish()
    }
}

/// A finished task's outcome as a run's result: a panic is resumed here, a
/// cancellation is [`Error::Cancelled`].
pub(crate) fn outcome_into_result<T>(outcome: Result<T, task::JoinError>) -> Result<T, Error> {
    match outcome {
        Ok(v) => Ok(v),
        Err(e) => match e.try_into_panic() {
            Ok(payload) => resume_unwind(payload),
            Err(_) => Err(Error::Cancelled),
        },
    }
}

/// The loop running on this thread (asyncio's `get_running_loop()`), or
/// [`Error::NoRunningLoop`].
///
/// ```
/// assert!(runner_core::get_running_loop().is_err());
/// let debug = runner_core::run(async { runner_core::get_running_loop().unwrap().get_debug() });
/// assert!(debug.is_ok());
/// ```
pub fn get_running_loop() -> Result<EventLoop, Error> {
    EventLoop::running().ok_or(Error::NoRunningLoop)
}

/// The running loop, or else the loop set with [`set_event_loop`]
/// (asyncio's `get_event_loop()`, without creating one).
pub fn get_event_loop() -> Option<EventLoop> {
    EventLoop::running().or_else(|| THREAD_LOOP.with(|t| t.borrow().clone()))
}

/// Sets (or, with `None`, unsets) the thread's current loop (asyncio's
/// `set_event_loop`). A `loop_factory` that wants its loop to be the
/// thread's current one calls this, as in asyncio.
pub fn set_event_loop(lp: Option<&EventLoop>) {
    THREAD_LOOP.with(|t| *t.borrow_mut() = lp.cloned());
}
