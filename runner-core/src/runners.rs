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

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::IntoFuture;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::time::{Duration, Instant};

use crate::event_loop::signals::Outcome as Interrupted;
use crate::event_loop::{self, EventLoop, ExceptionContext};
use crate::signal::{self, Phase};
use crate::task;
use crate::task::raw::TaskRef;
use crate::{Context, Error};

type LoopFactory = Box<dyn FnMut() -> io::Result<EventLoop>>;

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

/// Options for a [`Runner`] or a single [`run`]: the `debug` and
/// `loop_factory` arguments of `asyncio.run` / `asyncio.Runner`.
///
/// ```
/// let out = runner_core::Builder::new()
///     .debug(true)
///     .run(async { runner_core::get_running_loop().unwrap().get_debug() })
///     .unwrap();
/// assert!(out);
/// ```
#[derive(Default)]
pub struct Builder {
    debug: Option<bool>,
    loop_factory: Option<LoopFactory>,
    executor_shutdown_timeout: Option<Duration>,
    close_timeout: Option<Duration>,
    shutdown_signals: Vec<crate::signal::Signal>,
}

impl Builder {
    /// Default options: debug mode from `RUNNER_DEBUG`, a new default loop.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// `true`/`Some(true)`: debug mode on; `false`/`Some(false)`: off;
    /// `None` (the default): the loop keeps its own setting, which for a
    /// default loop follows the `RUNNER_DEBUG` environment variable.
    pub fn debug(mut self, debug: impl Into<Option<bool>>) -> Builder {
        self.debug = debug.into();
        self
    }

    /// Creates the loop with `factory` instead of [`EventLoop::new`]. The
    /// loop it returns is the one everything runs on. As in asyncio, the
    /// runner does not make a factory's loop the thread's current loop; the
    /// factory may call [`set_event_loop`](crate::set_event_loop) itself.
    ///
    /// The factory is called when the runner is first used; when it fails
    /// (or panics), the runner stays unused and calls it again on the next
    /// use, as asyncio does: it never falls back to a default loop.
    ///
    /// ```
    /// use std::{cell::Cell, io, rc::Rc};
    /// use runner_core::{EventLoop, Runner};
    ///
    /// let calls = Rc::new(Cell::new(0));
    /// let counter = calls.clone();
    /// let runner = Runner::builder()
    ///     .loop_factory(move || {
    ///         counter.set(counter.get() + 1);
    ///         if counter.get() == 1 {
    ///             return Err(io::Error::other("not yet"));
    ///         }
    ///         EventLoop::builder().debug(true).build()
    ///     })
    ///     .build();
    /// assert!(runner.run(async {}).is_err());
    /// // Called again: the loop is the factory's (debug on), not a default one.
    /// assert!(runner.run(async { runner_core::get_running_loop().unwrap().get_debug() }).unwrap());
    /// assert_eq!(calls.get(), 2);
    /// ```
    pub fn loop_factory(mut self, factory: impl FnMut() -> io::Result<EventLoop> + 'static) -> Builder {
        self.loop_factory = Some(Box::new(factory));
        self
    }

    /// How long closing waits for the default executor's threads (close
    /// step 3) before it warns and goes on; by default the loop's setting
    /// (`LoopBuilder::executor_shutdown_timeout`, 5 minutes unless changed).
    pub fn executor_shutdown_timeout(mut self, timeout: Duration) -> Builder {
        self.executor_shutdown_timeout = Some(timeout);
        self
    }

    /// Bounds how long closing drives what is left on the loop: the
    /// cancelled tasks (close step 1) and the async generators' cleanup
    /// (step 2), together. Past it, each task still alive is reported to
    /// the exception handler (its name, where it was spawned, that it
    /// ignored its cancellation) and dropped: its destructors run, its
    /// async cleanup does not; then closing goes on. By default there is
    /// no bound, as in asyncio: a task that ignores its cancellation keeps
    /// the close waiting. A service that is killed a fixed time after
    /// SIGTERM (`docker stop` waits 10 s) sets it below that.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use runner_core::{cancellable, sleep, spawn, yield_now, Builder};
    ///
    /// let started = Instant::now();
    /// Builder::new()
    ///     .close_timeout(Duration::from_millis(50))
    ///     .run(async {
    ///         spawn(async {
    ///             loop {
    ///                 // Ignores every cancellation.
    ///                 let _ = cancellable(sleep(Duration::from_secs(3600))).await;
    ///             }
    ///         });
    ///         yield_now().await;
    ///     })
    ///     .unwrap();
    /// assert!(started.elapsed() < Duration::from_secs(5));
    /// ```
    pub fn close_timeout(mut self, timeout: Duration) -> Builder {
        self.close_timeout = Some(timeout);
        self
    }

    /// Makes `signals` act exactly as Ctrl-C does, besides SIGINT: the
    /// first cancels the main task for a graceful cleanup, a second (or
    /// one during closing) is final. The run's error names the signal
    /// ([`Error::Interrupted`]), and `#[main]` then exits the way the
    /// signal's default would (a shell sees 143 for SIGTERM). By default
    /// only SIGINT does, as in asyncio; a service that `docker stop`,
    /// systemd or Kubernetes stop wants SIGTERM here.
    ///
    /// A signal that cannot act as Ctrl-C (SIGKILL, SIGSTOP, a fault such
    /// as SIGSEGV, one whose default is not to end the process such as
    /// SIGCHLD) makes the first `run` fail with
    /// [`Error::UnsupportedSignal`], saying why. A signal ignored when the
    /// program started (`nohup`), or handled by the program itself, is
    /// left alone, as SIGINT is.
    ///
    /// ```no_run
    /// use runner_core::{cancellable, signal::Signal, sleep, Builder};
    /// use std::time::Duration;
    ///
    /// let result = Builder::new()
    ///     .shutdown_signals([Signal::SIGTERM, Signal::SIGHUP])
    ///     .run(async {
    ///         if cancellable(sleep(Duration::from_secs(3600))).await.is_err() {
    ///             println!("SIGTERM or SIGHUP: shutting down gracefully");
    ///         }
    ///     });
    /// ```
    pub fn shutdown_signals(mut self, signals: impl IntoIterator<Item = crate::signal::Signal>) -> Builder {
        for sig in signals {
            if !self.shutdown_signals.contains(&sig) {
                self.shutdown_signals.push(sig);
            }
        }
        self
    }

    /// A runner with these options; it creates nothing until first used.
    pub fn build(self) -> Runner {
        Runner {
            debug: self.debug,
            loop_factory: RefCell::new(self.loop_factory),
            executor_shutdown_timeout: self.executor_shutdown_timeout,
            close_timeout: self.close_timeout,
            deadlines: Cell::new(CloseDeadlines::default()),
            interrupt_signals: self
                .shutdown_signals
                .iter()
                .map(|s| s.as_raw())
                .filter(|&s| s != libc::SIGINT)
                .collect(),
            last_run: RefCell::new(None),
            state: RefCell::new(State::Created),
        }
    }

    /// Runs `fut` on a new runner with these options and closes it:
    /// [`run`] with options. A Ctrl-C during the close makes it
    /// `KeyboardInterrupt`, as asyncio's does.
    #[track_caller]
    pub fn run<F>(self, fut: F) -> Result<F::Output, Error>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        let at = Location::caller();
        let runner = self.build();
        let result = catch_unwind(AssertUnwindSafe(|| runner.run_at(fut, None, "runner_core::run()", at)));
        let closed = runner.close();
        match result {
            Ok(Ok(v)) => closed.map(|()| v),
            Ok(Err(e)) => Err(e),
            Err(panic) => resume_unwind(panic),
        }
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("debug", &self.debug)
            .field("loop_factory", &self.loop_factory.is_some())
            .field("executor_shutdown_timeout", &self.executor_shutdown_timeout)
            .field("close_timeout", &self.close_timeout)
            .field("shutdown_signals", &self.shutdown_signals)
            .finish()
    }
}

/// Absolute (real-time) bounds on a close, set by `#[runner_test(timeout)]`
/// so that a timed-out test's close ends within the grace whatever path
/// closes the runner.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CloseDeadlines {
    /// For steps 1 and 2 (as `close_timeout`).
    pub(crate) tasks: Option<Instant>,
    /// For step 3 (as `executor_shutdown_timeout`).
    pub(crate) executor: Option<Instant>,
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Runs `fut` as the main task of a new event loop, returns its output, and
/// closes the loop (asyncio's `asyncio.run`).
///
/// The loop is closed on every path (output, cancellation, panic); a panic
/// of the main task is resumed after the close. Called while a loop is
/// running on this thread, it fails with [`Error::NestedRun`] and drops `fut`
/// without polling it.
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
            Some(make) => make()?,
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
    /// [module docs](crate::runner)). A panic of the main task is resumed
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

    /// Closes the runner: the shutdown sequence of the [module
    /// docs](crate::runner). A second call does nothing. A runner closed
    /// before it was used is closed too: `run` and `get_loop` fail
    /// afterwards.
    ///
    /// After a final Ctrl-C (the last run returned `KeyboardInterrupt`
    /// without waiting for its main task), or on a Ctrl-C during the
    /// close, it does not wait: the remaining tasks are dropped rather than
    /// driven, async generators are not finalized, blocking jobs are left
    /// running, the loop is closed, and the result is
    /// [`Error::KeyboardInterrupt`].
    ///
    /// Fails with [`Error::LoopRunning`], changing nothing, when called from
    /// inside the runner's own running loop.
    pub fn close(&self) -> Result<(), Error> {
        if let State::Initialized { event_loop, .. } = &*self.state.borrow() {
            if event_loop.is_running() {
                return Err(Error::LoopRunning);
            }
        }
        let state = std::mem::replace(&mut *self.state.borrow_mut(), State::Closed);
        let State::Initialized {
            event_loop,
            context,
            set_event_loop,
        } = state
        else {
            return Ok(());
        };
        let last_run = self.last_run.borrow_mut().take();
        let deadlines = self.deadlines.get();
        let closing = Closing {
            runner: self,
            event_loop: &event_loop,
            deadline: earliest(
                self.close_timeout.and_then(|t| Instant::now().checked_add(t)),
                deadlines.tasks,
            ),
            close_timeout: self.close_timeout,
            hard_before: last_run.as_ref().and_then(|r| r.hard),
            last_run: RefCell::new(last_run),
            listening: Cell::new(false),
            hint_at: Cell::new(None),
            hinted: Cell::new(false),
            listened: Cell::new(false),
        };
        let steps: [(&str, &dyn Fn()); 4] = [
            ("cancelling the remaining tasks", &|| closing.cancel_all_tasks()),
            ("finalizing async generators", &|| closing.shutdown_asyncgens()),
            ("shutting down the default executor", &|| {
                let timeout = match deadlines.executor {
                    Some(at) => {
                        let left = at.saturating_duration_since(Instant::now());
                        Some(self.executor_shutdown_timeout.map_or(left, |t| t.min(left)))
                    }
                    None => self.executor_shutdown_timeout,
                };
                closing.shutdown_executor(timeout)
            }),
            ("closing the loop", &|| {
                if set_event_loop {
                    event_loop::set_event_loop(None);
                }
                let _ = event_loop.close();
            }),
        ];
        for (what, step) in steps {
            // A failing step must not skip the next ones.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(step)) {
                event_loop.default_exception_handler(&ExceptionContext {
                    message: format!("runner close: {what} panicked; the remaining steps still ran"),
                    panic: Some(task::panic_message(panic.as_ref())),
                    task: None,
                });
            }
        }
        let aborted_by = closing.aborted_by();
        if closing.listened.get() {
            // Joins the watchdog, if the close had it.
            drop(self.release_interrupts(&event_loop, closing.listening.get()));
        }
        drop(closing);
        drop(context);
        match aborted_by {
            Some(sig) => Err(Error::interrupted_by(sig)),
            None => Ok(()),
        }
    }
}

/// The state of one close: whether a final interrupt came (before or
/// during it), and the one-time hint of what it waits for.
struct Closing<'a> {
    runner: &'a Runner,
    event_loop: &'a EventLoop,
    /// When steps 1 and 2 give up on what is left (real time).
    deadline: Option<Instant>,
    /// What the deadline came from, for reports (`None`: a test's grace).
    close_timeout: Option<Duration>,
    /// The final interrupt of the run before the close.
    hard_before: Option<i32>,
    /// What the interrupts of the run before the close came to.
    last_run: RefCell<Option<Interrupted>>,
    /// Whether the close takes the interrupt signals: from when a step
    /// first has to wait (a close with nothing to wait for costs no signal
    /// bookkeeping); the loop keeps the state.
    listening: Cell<bool>,
    /// When to say what the close waits for (after a Ctrl-C only).
    hint_at: Cell<Option<Instant>>,
    hinted: Cell<bool>,
    listened: Cell<bool>,
}

impl Closing<'_> {
    /// The signal of a final interrupt, before or during the close.
    fn aborted_by(&self) -> Option<i32> {
        self.hard_before.or_else(|| {
            self.listening
                .get()
                .then(|| self.event_loop.core().interrupts.hard())
                .flatten()
        })
    }

    fn aborted(&self) -> bool {
        self.aborted_by().is_some()
    }

    /// Takes the interrupt signals for the rest of the close (once), and
    /// starts the hint's clock when the run before was interrupted.
    fn listen(&self) {
        if self.listened.replace(true) {
            return;
        }
        let last = self.last_run.borrow_mut().take();
        if last.as_ref().is_some_and(|r| r.soft.is_some()) {
            self.hint_at.set(Some(Instant::now() + CLOSE_HINT_AFTER));
        }
        let watchdog = last.and_then(|r| r.watchdog);
        let listening = self
            .runner
            .take_interrupts(self.event_loop, Phase::Closing, None, watchdog);
        self.listening.set(listening);
    }

    /// Drives the loop until `done` (or a final interrupt, or `deadline`,
    /// real time), printing the hint once when it is due.
    fn drive(&self, deadline: Option<Instant>, waiting_for: impl Fn() -> String, done: impl Fn() -> bool) {
        self.listen();
        let wake_at = || {
            let hint = self.hint_at.get().filter(|_| !self.hinted.get());
            match (deadline, hint) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let _ = self.event_loop.run_until_waking(wake_at, || {
            if done() || self.aborted() || deadline.is_some_and(|d| Instant::now() >= d) {
                return true;
            }
            if self.hint_at.get().is_some_and(|at| Instant::now() >= at) && !self.hinted.replace(true) {
                let again = if signal::final_in_handler() {
                    "exits now"
                } else {
                    "stops the wait"
                };
                eprintln!("runner: closing is waiting for {}; Ctrl-C again {again}", waiting_for());
            }
            false
        });
    }

    /// Close step 1: cancel all tasks alive on the loop, drive them to the
    /// end, report the ones that panicked. After a final interrupt, they
    /// are only cancelled: closing the loop drops them.
    fn cancel_all_tasks(&self) {
        let event_loop = self.event_loop;
        let tasks = event_loop.cancel_all_tasks();
        if tasks.is_empty() || self.aborted() {
            return;
        }
        // Panics of the tasks finishing now are reported, as asyncio's
        // "unhandled exception during asyncio.run() shutdown".
        let _shutdown = event_loop.enter_shutdown();
        let waiting_for = || {
            let sched = &event_loop.core().sched;
            let pending: Vec<String> = tasks
                .iter()
                .filter(|t| !t.core().is_done())
                .map(|t| sched.info(t.core()).to_string())
                .collect();
            let mut what = format!(
                "{} task(s) that did not finish after cancellation ({})",
                pending.len(),
                pending.join("; ")
            );
            let jobs = event_loop.blocking_jobs_in_flight();
            if jobs > 0 {
                what.push_str(&format!(" and {jobs} blocking job(s) still running"));
            }
            what
        };
        self.drive(self.deadline, waiting_for, || tasks.iter().all(|t| t.core().is_done()));
        self.give_up_on(&tasks, "ignored its cancellation");
    }

    /// Close step 2: finalize the async generators still open, within the
    /// deadline.
    fn shutdown_asyncgens(&self) {
        if self.aborted() {
            return;
        }
        let Ok(closing) = self.event_loop.begin_asyncgen_shutdown() else {
            return;
        };
        if !closing.is_empty() {
            let waiting_for = || format!("{} async generator(s) running their cleanup", closing.len());
            self.drive(self.deadline, waiting_for, || closing.iter().all(|h| h.is_done()));
            let tasks: Vec<TaskRef> = closing.iter().map(|h| h.task_ref()).collect();
            self.give_up_on(&tasks, "is an async generator whose cleanup did not finish");
        }
        self.event_loop.finish_asyncgen_shutdown(closing);
    }

    /// Past the deadline: reports each task of `tasks` still alive and
    /// drops it.
    fn give_up_on(&self, tasks: &[TaskRef], what: &str) {
        let past = self.deadline.is_some_and(|d| Instant::now() >= d);
        if !past || self.aborted() {
            return;
        }
        let bound = match self.close_timeout {
            Some(t) => format!("the close timeout of {t:?}"),
            None => "the test's timeout grace".to_string(),
        };
        let sched = &self.event_loop.core().sched;
        let left: Vec<&TaskRef> = tasks.iter().filter(|t| !t.core().is_done()).collect();
        for task in &left {
            self.event_loop.core().report(ExceptionContext {
                message: format!(
                    "{CLOSE_TIMEOUT_MESSAGE}: a task {what} and was still running after {bound}; it was dropped \
                     (its destructors ran, its async cleanup did not)"
                ),
                panic: None,
                task: Some(sched.info(task.core())),
            });
            self.event_loop.drop_task(task);
        }
        // The drops happen at the tasks' next scheduling: now.
        if !left.is_empty() {
            let _ = self.event_loop.run_until(|| left.iter().all(|t| t.core().is_done()));
        }
    }

    /// Close step 3: shut the default executor down, waiting for its
    /// threads up to `timeout` (none after a final interrupt).
    fn shutdown_executor(&self, timeout: Option<Duration>) {
        let event_loop = self.event_loop;
        let Ok(shutdown) = event_loop.begin_executor_shutdown(timeout) else {
            return;
        };
        if !shutdown.is_done() && !self.aborted() {
            let jobs = || {
                format!(
                    "{} blocking job(s) (spawn_blocking / run_in_executor) still running",
                    shutdown.jobs_in_flight()
                )
            };
            self.drive(shutdown.deadline, jobs, || shutdown.is_done());
        }
        if !self.aborted() {
            shutdown.finish(event_loop);
        }
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

#[cfg(test)]
mod tests {
    //! The close order with the async-generator step, through the loop's
    //! registry (the generator type that registers itself comes later; this
    //! stand-in registers the same way).
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::event_loop::core::AsyncGenFinalizer;
    use crate::{cancellable, sleep, spawn, yield_now};

    struct FakeGen {
        log: Rc<RefCell<Vec<String>>>,
        finished: bool,
    }

    impl AsyncGenFinalizer for FakeGen {
        fn is_finished(&self) -> bool {
            self.finished
        }

        fn aclose(self: Rc<Self>) -> Pin<Box<dyn Future<Output = ()>>> {
            Box::pin(async move {
                self.log.borrow_mut().push("generator cleanup starts".into());
                sleep(Duration::from_millis(2)).await;
                let lp = crate::get_running_loop().unwrap();
                self.log
                    .borrow_mut()
                    .push(format!("generator async cleanup done, loop closed: {}", lp.is_closed()));
            })
        }
    }

    #[test]
    fn close_order_is_tasks_then_generators_then_executor_then_loop() {
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let runner = Runner::new();
        let lp = runner.get_loop().unwrap();
        let open_gen = Rc::new(FakeGen {
            log: log.clone(),
            finished: false,
        });
        let done_gen = Rc::new(FakeGen {
            log: log.clone(),
            finished: true,
        });
        assert!(lp
            .core()
            .track_asyncgen(Rc::downgrade(&(open_gen.clone() as Rc<dyn AsyncGenFinalizer>))));
        assert!(lp
            .core()
            .track_asyncgen(Rc::downgrade(&(done_gen.clone() as Rc<dyn AsyncGenFinalizer>))));
        let l = log.clone();
        runner
            .run(async move {
                spawn(async move {
                    if cancellable(std::future::pending::<()>()).await.is_err() {
                        l.borrow_mut().push("task cancelled".into());
                        // The executor is still up during step 1.
                        let v = crate::spawn_blocking(|| 1).await.unwrap();
                        l.borrow_mut().push(format!("task used the executor: {v}"));
                    }
                });
                yield_now().await;
            })
            .unwrap();
        // A job left on the executor shows step 3 after step 2.
        let l = log.clone();
        let lp2 = lp.clone();
        drop(lp.run_in_executor(move || std::thread::sleep(Duration::from_millis(20))));
        runner.close().unwrap();
        l.borrow_mut().push(format!(
            "after close: executor threads {}, loop closed {}",
            lp2.executor_thread_count(),
            lp2.is_closed()
        ));
        assert_eq!(
            *log.borrow(),
            [
                "task cancelled",
                "task used the executor: 1",
                "generator cleanup starts",
                "generator async cleanup done, loop closed: false",
                "after close: executor threads 0, loop closed true",
            ]
        );
        // Generators started after the shutdown are not tracked.
        assert!(!lp
            .core()
            .track_asyncgen(Rc::downgrade(&(open_gen as Rc<dyn AsyncGenFinalizer>))));
    }
}
