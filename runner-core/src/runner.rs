//! `run` and `Runner`: asyncio's Runners.
//!
//! A [`Runner`] is a small state machine — created, initialized, closed —
//! like CPython's `asyncio.Runner`. Creating one does nothing (lazy); the
//! first [`Runner::run`] or [`Runner::get_loop`] creates the loop (through
//! the `loop_factory` if one was given) and the runner's [`Context`]. Every
//! `run` spawns its future as the *main task* in that context on that loop
//! and drives the loop until the main task is done.
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
//! While a `run` is active on the main thread, Ctrl-C cancels the main task
//! (see [`signal`]); a second Ctrl-C returns
//! [`Error::KeyboardInterrupt`] at once.
//!
//! [`run`] is a runner used once: build, run, close.

use std::cell::RefCell;
use std::fmt;
use std::future::IntoFuture;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::time::Duration;

use crate::event_loop::{self, EventLoop, ExceptionContext};
use crate::signal;
use crate::task::{self, RawTask};
use crate::{Context, Error};

type LoopFactory = Box<dyn FnOnce() -> io::Result<EventLoop>>;

/// The message reported for a task that panicked while it was being
/// cancelled at shutdown.
pub const SHUTDOWN_ERROR_MESSAGE: &str = "unhandled error during runner shutdown";

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
    pub fn loop_factory(mut self, factory: impl FnOnce() -> io::Result<EventLoop> + 'static) -> Builder {
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

    /// A runner with these options; it creates nothing until first used.
    pub fn build(self) -> Runner {
        Runner {
            debug: self.debug,
            loop_factory: RefCell::new(self.loop_factory),
            executor_shutdown_timeout: self.executor_shutdown_timeout,
            state: RefCell::new(State::Created),
        }
    }

    /// Runs `fut` on a new runner with these options and closes it:
    /// [`run`] with options.
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
        let _ = runner.close();
        match result {
            Ok(result) => result,
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
            .finish()
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
        let factory = self.loop_factory.borrow_mut().take();
        let set_event_loop = factory.is_none();
        let event_loop = match factory {
            Some(factory) => factory()?,
            None => EventLoop::new()?,
        };
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
    /// cancelled. A panic of the main task is resumed here.
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
        let (event_loop, runner_context) = match self.lazy_init() {
            Ok(v) => v,
            Err(e) => {
                drop(fut);
                return Err(e);
            }
        };
        let context = context.unwrap_or(&runner_context);
        let mut main = event_loop.spawn_at(fut.into_future(), Some(context.clone()), at);
        main.set_name("main");

        // Ctrl-C cancels the main task while this run is active (see
        // `signal`); the guard hands SIGINT back when the run returns.
        let sigint = signal::take_sigint(&event_loop);
        *event_loop.core().interrupt_target.borrow_mut() = Some(main.raw());
        let hard_interrupt = || sigint.as_ref().is_some_and(|s| s.interrupts().is_hard());
        let ran = event_loop.run_until(|| main.is_done() || hard_interrupt());
        event_loop.core().interrupt_target.borrow_mut().take();
        let interrupted = sigint.as_ref().is_some_and(|s| s.interrupts().count() > 0);
        let hard = hard_interrupt();
        drop(sigint);

        if !ran? && !hard {
            return Err(Error::Stopped);
        }
        let Some(outcome) = main.take_outcome() else {
            // A second Ctrl-C: KeyboardInterrupt without waiting for the
            // main task (it is cancelled when the runner closes).
            return Err(Error::KeyboardInterrupt);
        };
        match event_loop::outcome_into_result(outcome) {
            // As asyncio: the Ctrl-C cancellation escaped the main task, and
            // no other cancellation is outstanding.
            Err(Error::Cancelled) if interrupted && main.uncancel() == 0 => Err(Error::KeyboardInterrupt),
            result => result,
        }
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
        let steps: [(&str, &dyn Fn()); 4] = [
            ("cancelling the remaining tasks", &|| cancel_all_tasks(&event_loop)),
            ("finalizing async generators", &|| {
                let _ = event_loop.shutdown_asyncgens();
            }),
            ("shutting down the default executor", &|| {
                let _ = event_loop.shutdown_default_executor(self.executor_shutdown_timeout);
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
        drop(context);
        Ok(())
    }
}

/// Close step 1: cancel all tasks alive on the loop, drive them to the end,
/// report the ones that panicked.
fn cancel_all_tasks(event_loop: &EventLoop) {
    let tasks: Vec<Rc<dyn RawTask>> = event_loop.cancel_all_tasks();
    if tasks.is_empty() {
        return;
    }
    let _shutdown = event_loop.enter_shutdown();
    let _ = event_loop.run_until(|| tasks.iter().all(|t| t.core().is_done()));
    for t in &tasks {
        if let Some(panic) = task::take_shutdown_panic(&**t) {
            event_loop.core().report(ExceptionContext {
                message: SHUTDOWN_ERROR_MESSAGE.into(),
                panic: Some(panic),
                task: Some(t.core().info()),
            });
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
    use crate::event_loop::AsyncGenFinalizer;
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
