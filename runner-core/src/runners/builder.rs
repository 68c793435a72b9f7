//! [`Builder`]: the options of a [`Runner`] or a single `run` (asyncio's
//! `debug` and `loop_factory`, and runner's own: close deadline, shutdown
//! signals, executor timeout).

use std::fmt;
use std::future::IntoFuture;
use std::io;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::time::Duration;

use std::cell::{Cell, RefCell};

use super::{CloseDeadlines, Runner, State};
use crate::event_loop::EventLoop;
use crate::Error;

pub(super) type LoopFactory = Box<dyn FnMut() -> io::Result<EventLoop>>;

/// Options for a [`Runner`] or a single [`run`](crate::run): the `debug` and
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
    /// [`run`](crate::run) with options. A Ctrl-C during the close makes it
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
