//! `run` and `Runner`: asyncio's Runners.
//!
//! A [`Runner`] is a small state machine — created, initialized, closed —
//! like CPython's `asyncio.Runner`. Creating one does nothing (lazy); the
//! first [`Runner::run`] or [`Runner::get_loop`] creates the loop (through
//! the `loop_factory` if one was given) and the runner's [`Context`]. Every
//! `run` spawns its future as the *main task* in that context on that loop
//! and drives the loop until the main task is done, plus the one iteration
//! asyncio's loop finishes after the main task's done-callback stopped it:
//! a task spawned in the main task's last step has started before close
//! cancels it.
//!
//! [`Runner::close`] is the shutdown sequence, in this order, each step run
//! even when an earlier one failed:
//!
//! 1. cancel every task still alive and drive the loop until they finished,
//!    reporting each that panicked ("unhandled error during runner
//!    shutdown");
//! 2. finalize the async generators still open on the loop
//!    ([`EventLoop::shutdown_asyncgens`]);
//! 3. shut down the default executor ([`EventLoop::shutdown_default_executor`]);
//! 4. unset the thread's current loop (if the runner set it), close the
//!    loop, release the context.
//!
//! An optional deadline ([`Builder::close_timeout`], beyond asyncio) bounds
//! steps 1 and 2, for services that are killed a fixed time after SIGTERM:
//! past it, every task still alive is reported (its name, where it was
//! spawned, that it ignored its cancellation) and dropped, and closing goes
//! on.
//!
//! # Ctrl-C
//!
//! While a `run` is active on the main thread, Ctrl-C (and the signals
//! opted into acting as it) is taken by the run (see [`signal`] for the
//! handler): the first cancels the main task; when that cancellation
//! escapes it, `run` returns [`Error::KeyboardInterrupt`] (or
//! [`Error::Cancelled`] when the main task was also cancelled by something
//! else, as asyncio). A later one is *final*: `run` returns
//! `KeyboardInterrupt` at once, and the close that follows does not wait
//! (tasks are dropped, not driven; blocking jobs are left running). A
//! Ctrl-C during a close is final too: the close stops waiting and returns
//! `KeyboardInterrupt`. When a close waits more than
//! [`CLOSE_HINT_AFTER`] after a Ctrl-C, it says once on stderr what it
//! waits for.
//!
//! [`run`] is a runner used once: build, run, close.
//!
//! The parts: `builder` (the options), `close` (the shutdown sequence);
//! this file holds the runner's state and its runs, with the interrupt
//! signals each run takes.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::IntoFuture;
use std::panic::Location;
use std::time::Duration;

use crate::event_loop::signals::Outcome as Interrupted;
use crate::event_loop::{self, EventLoop};
use crate::signal::{self, Phase};
use crate::task::raw::TaskRef;
use crate::{Context, Error};

mod builder;
mod close;

pub use self::builder::Builder;
use self::builder::LoopFactory;
pub(crate) use self::close::CloseDeadlines;

/// The message reported for a task that panicked while it was being
/// cancelled at shutdown.
pub const SHUTDOWN_ERROR_MESSAGE: &str = crate::runtime::SHUTDOWN_ERROR_MESSAGE;

/// The start of what a close reports for each task it gave up on at its
/// deadline ([`Builder::close_timeout`]).
pub const CLOSE_TIMEOUT_MESSAGE: &str = "closing gave up waiting";

/// How long a close may wait, after a Ctrl-C, before it says on stderr
/// what it waits for (tasks that ignored their cancellation, blocking
/// jobs) and that another Ctrl-C stops the wait.
pub const CLOSE_HINT_AFTER: Duration = Duration::from_secs(1);

/// Runs `fut` as the main task of a new event loop, returns its output, and
/// closes the loop (asyncio's `asyncio.run`).
///
/// The loop is closed on every path (output, cancellation, panic); a panic
/// of the main task is resumed after the close. Called while a loop is
/// running on this thread, it fails with [`Error::NestedRun`] and drops `fut`
/// without polling it.
///
/// `fut` must be `'static`, as a spawned task's future (tokio's `block_on`
/// would take a borrowing one): it runs as the loop's main task, which
/// the loop may hold after `run` returns, to cancel and finish at its
/// close (a second Ctrl-C returns at once; see [`Runner::run`]). Move
/// what it needs into it (`async move`), or share it with `Rc`/`Arc`:
///
/// ```
/// let words = vec!["a", "b"];
/// // `async { words.len() }` borrows `words`: "borrowed value does not
/// // live long enough". `async move` owns it, and gives it back:
/// let (n, words) = runner_core::run(async move { (words.len(), words) }).unwrap();
/// assert_eq!((n, words.len()), (2, 2));
/// ```
///
/// ```
/// use std::time::Duration;
///
/// let answer = runner_core::run(async {
///     runner_core::sleep(Duration::from_millis(1)).await;
///     42
/// });
/// assert_eq!(answer.unwrap(), 42);
/// ```
#[track_caller]
pub fn run<F>(fut: F) -> Result<F::Output, Error>
where
    F: IntoFuture,
    F::IntoFuture: 'static,
    F::Output: 'static,
{
    Builder::new().run(fut)
}

enum State {
    Created,
    Initialized {
        event_loop: EventLoop,
        context: Context,
        /// Whether the runner made its loop the thread's current loop (it
        /// does for a default loop, not for a factory's).
        set_event_loop: bool,
    },
    Closed,
}

/// Several top-level `run` calls on one loop and one context (asyncio's
/// `asyncio.Runner`). Dropping a runner closes it.
///
/// ```
/// use runner_core::{ContextVar, Runner};
///
/// static USER: ContextVar<&'static str> = ContextVar::new("user");
///
/// let runner = Runner::new();
/// runner.run(async { let _ = USER.set("ada"); }).unwrap();
/// // The second call sees what the first one set: same context.
/// assert_eq!(runner.run(async { USER.get() }).unwrap(), Some("ada"));
/// runner.close().unwrap();
/// assert!(runner.run(async {}).unwrap_err().to_string().contains("Runner is closed"));
/// ```
pub struct Runner {
    debug: Option<bool>,
    loop_factory: RefCell<Option<LoopFactory>>,
    executor_shutdown_timeout: Option<Duration>,
    close_timeout: Option<Duration>,
    deadlines: Cell<CloseDeadlines>,
    /// The signals that act as Ctrl-C besides SIGINT (none by default).
    interrupt_signals: Vec<i32>,
    /// The interrupt state of the last run, for its close.
    last_run: RefCell<Option<Interrupted>>,
    state: RefCell<State>,
}

impl Runner {
    /// A runner with default options. Creates nothing yet.
    pub fn new() -> Runner {
        Builder::new().build()
    }

    /// Options for a runner.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// Sets absolute bounds for the close (see [`CloseDeadlines`]).
    pub(crate) fn set_close_deadlines(&self, deadlines: CloseDeadlines) {
        self.deadlines.set(deadlines);
    }

    /// Creates the loop and the context on first use.
    fn lazy_init(&self) -> Result<(EventLoop, Context), Error> {
        let mut state = self.state.borrow_mut();
        match &*state {
            State::Closed => return Err(Error::RunnerClosed),
            State::Initialized {
                event_loop, context, ..
            } => return Ok((event_loop.clone(), context.clone())),
            State::Created => {}
        }
        // A factory that fails (or panics) stays, to be called again on the
        // next use; one that succeeded is done with.
        let mut factory = self.loop_factory.borrow_mut();
        let set_event_loop = factory.is_none();
        let event_loop = match factory.as_mut() {
            Some(make) => make().map_err(crate::error::FactoryFailed::wrap)?,
            None => EventLoop::new()?,
        };
        factory.take();
        drop(factory);
        if set_event_loop {
            event_loop::set_event_loop(Some(&event_loop));
        }
        if let Some(debug) = self.debug {
            event_loop.set_debug(debug);
        }
        let context = Context::copy_current();
        *state = State::Initialized {
            event_loop: event_loop.clone(),
            context: context.clone(),
            set_event_loop,
        };
        Ok((event_loop, context))
    }

    /// Runs `fut` as the main task on the runner's loop, in the runner's
    /// context, and returns its output.
    ///
    /// Fails with [`Error::NestedRun`] (without polling `fut`) when a loop is
    /// running on this thread, [`Error::RunnerClosed`] after
    /// [`close`](Self::close), [`Error::Cancelled`] when the main task was
    /// cancelled, [`Error::KeyboardInterrupt`] after Ctrl-C (see the
    /// [module docs](crate::runners)). A panic of the main task is resumed
    /// here.
    #[track_caller]
    pub fn run<F>(&self, fut: F) -> Result<F::Output, Error>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        self.run_at(fut, None, "Runner::run()", Location::caller())
    }

    /// Like [`run`](Self::run), but the main task runs in `context` instead
    /// of the runner's context.
    #[track_caller]
    pub fn run_in_context<F>(&self, fut: F, context: &Context) -> Result<F::Output, Error>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        self.run_at(fut, Some(context), "Runner::run()", Location::caller())
    }

    /// The body of every `run`: `caller` names the function in the
    /// nested-run error, `at` is where the user called it (the main task's
    /// spawn location in reports).
    fn run_at<F>(
        &self,
        fut: F,
        context: Option<&Context>,
        caller: &'static str,
        at: &'static Location<'static>,
    ) -> Result<F::Output, Error>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        if event_loop::get_running_loop().is_ok() {
            drop(fut);
            return Err(Error::NestedRun { caller });
        }
        if let Err(e) = self.check_shutdown_signals() {
            drop(fut);
            return Err(e);
        }
        let (event_loop, runner_context) = match self.lazy_init() {
            Ok(v) => v,
            Err(e) => {
                drop(fut);
                return Err(e);
            }
        };
        let context = context.unwrap_or(&runner_context);
        let mut main = event_loop.spawn_at(fut.into_future(), Some(context.clone()), at);
        main.mark_main();

        // The watchdog of an earlier run (not closed yet) goes on watching.
        let watchdog = self.last_run.borrow_mut().take().and_then(|r| r.watchdog);
        let listening = self.take_interrupts(&event_loop, Phase::Running, Some(main.task_ref()), watchdog);
        let ran = event_loop.run_until(|| main.is_done());
        let outcome = self.release_interrupts(&event_loop, listening);
        let (soft, hard) = (outcome.soft, outcome.hard);
        *self.last_run.borrow_mut() = Some(outcome);

        if let Some(sig) = hard {
            // A final Ctrl-C: without waiting for the main task (it is
            // cancelled when the runner closes).
            return Err(Error::interrupted_by(sig));
        }
        if !ran? {
            return Err(Error::Stopped);
        }
        let outcome = main.take_outcome().expect("invariant: the main task is done");
        match event_loop::outcome_into_result(outcome) {
            // As asyncio: the Ctrl-C cancellation escaped the main task, and
            // no other cancellation is outstanding.
            Err(Error::Cancelled) if soft.is_some() && main.uncancel() == 0 => {
                Err(Error::interrupted_by(soft.expect("checked")))
            }
            result => result,
        }
    }

    /// Refuses shutdown signals that cannot act as Ctrl-C.
    fn check_shutdown_signals(&self) -> Result<(), Error> {
        for &signal in &self.interrupt_signals {
            if let Some(reason) = signal::unsupported(signal, true) {
                return Err(Error::UnsupportedSignal { signal, reason });
            }
        }
        if self.interrupt_signals.len() >= crate::event_loop::signals::MAX_INTERRUPT_SIGNALS {
            return Err(Error::UnsupportedSignal {
                signal: self.interrupt_signals[crate::event_loop::signals::MAX_INTERRUPT_SIGNALS - 1],
                reason: "at most 7 signals besides SIGINT can act as Ctrl-C",
            });
        }
        Ok(())
    }

    /// Takes the interrupt signals for a run (`target`: its main task) or
    /// a close, on the main thread; `None` elsewhere, or when every one of
    /// them is someone else's (ignored, or handled by the user).
    fn take_interrupts(
        &self,
        event_loop: &EventLoop,
        phase: Phase,
        target: Option<TaskRef>,
        watchdog: Option<crate::signal::Watchdog>,
    ) -> bool {
        let interrupts = &event_loop.core().interrupts;
        interrupts.reset(target, watchdog);
        if !signal::is_main_thread() {
            return false;
        }
        for sig in std::iter::once(libc::SIGINT).chain(self.interrupt_signals.iter().copied()) {
            if signal::take_interrupt(sig) {
                interrupts.add_signal(sig);
            }
        }
        if interrupts.is_empty() {
            return false;
        }
        event_loop.core().set_listening(true);
        signal::set_phase(phase);
        true
    }

    /// Ends what [`take_interrupts`](Self::take_interrupts) began: every
    /// delivery before this point is taken by this run (or close); any
    /// after it does what the signal's default does. What the interrupts
    /// came to.
    fn release_interrupts(&self, event_loop: &EventLoop, listening: bool) -> Interrupted {
        if listening {
            signal::deliver_pending();
            signal::set_phase(Phase::Idle);
            event_loop.core().take_signals();
            event_loop.core().set_listening(false);
        }
        event_loop.core().interrupts.take_outcome()
    }

    /// The runner's loop, created now if it was not yet; fails with
    /// [`Error::RunnerClosed`] after [`close`](Self::close).
    pub fn get_loop(&self) -> Result<EventLoop, Error> {
        self.lazy_init().map(|(event_loop, _)| event_loop)
    }

    /// The runner's context (where the main task of every `run` runs),
    /// created now if it was not yet.
    pub fn context(&self) -> Result<Context, Error> {
        self.lazy_init().map(|(_, context)| context)
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        matches!(*self.state.borrow(), State::Closed)
    }
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.state.borrow() {
            State::Created => "created",
            State::Initialized { .. } => "initialized",
            State::Closed => "closed",
        };
        f.debug_struct("Runner")
            .field("state", &state)
            .field("debug", &self.debug)
            .finish()
    }
}
