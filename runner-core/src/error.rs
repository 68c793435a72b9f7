//! The error types of the runtime.
//!
//! [`Error`] is what the loop and the runner answer when a call cannot be
//! done or a run ends without an output (interrupt, cancellation). Task
//! outcomes have their own types in [`task`](crate::task): [`JoinError`] for
//! awaiting a task, [`Cancelled`] for a caught cancellation.
//!
//! [`JoinError`]: crate::JoinError
//! [`Cancelled`]: crate::Cancelled

use std::fmt;
use std::io;

/// Why a call on the event loop or the runner failed.
///
/// Every message says what happened and what to do about it. The `Debug`
/// form carries the message too (as `io::Error`'s does), so that an
/// `unwrap()` says it:
///
/// ```
/// let e = runner_core::Error::ClockNotPaused;
/// assert!(format!("{e:?}").starts_with("ClockNotPaused { message: \"the loop's clock is real"));
/// ```
#[non_exhaustive]
pub enum Error {
    /// The run was interrupted by Ctrl-C (SIGINT): Python's
    /// `KeyboardInterrupt`. The main task was cancelled and let the
    /// cancellation escape, or a second Ctrl-C (or one during closing)
    /// ended the run without waiting.
    KeyboardInterrupt,
    /// The run was interrupted by another signal that the runner was told
    /// to treat as Ctrl-C (`SIGTERM`, `SIGHUP`, ...), as
    /// [`KeyboardInterrupt`](Error::KeyboardInterrupt) is for SIGINT.
    Interrupted {
        /// The signal's number (`libc::SIGTERM`, ...).
        signal: i32,
    },
    /// A signal that cannot be used where it was given (as a shutdown
    /// signal, or for a signal handler on the loop).
    UnsupportedSignal {
        /// The signal's number.
        signal: i32,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The main task was cancelled (by a task calling `cancel()` on it, or by
    /// Ctrl-C while it was also cancelled by something else): Python's
    /// `CancelledError`.
    Cancelled,
    /// `run` was called on a thread where an event loop is already running.
    /// The awaitable was dropped without being polled.
    NestedRun {
        /// The function that was called, e.g. `"runner_core::run()"`.
        caller: &'static str,
    },
    /// The runner was closed; it cannot run anything or hand out its loop.
    RunnerClosed,
    /// The event loop was closed; nothing can be scheduled on it.
    LoopClosed,
    /// The event loop is already running (`run_forever`/`run_until_complete`
    /// called from inside it, or `close` called while it runs).
    LoopRunning,
    /// `stop()` ended `run_until_complete` before its future completed.
    Stopped,
    /// A call that needs a running event loop was made outside of one.
    NoRunningLoop,
    /// A virtual-clock call (`advance`, auto-advance) on a loop whose clock
    /// is real.
    ClockNotPaused,
    /// The operating system refused a resource the loop needs (for example,
    /// creating the poller when the process is out of file descriptors).
    Io(io::Error),
}

impl Error {
    /// Whether this is the Ctrl-C interruption (`KeyboardInterrupt`).
    pub fn is_keyboard_interrupt(&self) -> bool {
        matches!(self, Error::KeyboardInterrupt)
    }

    /// The signal that interrupted the run: `SIGINT` for
    /// [`KeyboardInterrupt`](Error::KeyboardInterrupt), the signal of
    /// [`Interrupted`](Error::Interrupted); `None` for any other error.
    pub fn interrupt_signal(&self) -> Option<i32> {
        match self {
            Error::KeyboardInterrupt => Some(libc::SIGINT),
            Error::Interrupted { signal } => Some(*signal),
            _ => None,
        }
    }

    /// The error of a run interrupted by `signal`.
    pub(crate) fn interrupted_by(signal: i32) -> Error {
        if signal == libc::SIGINT {
            Error::KeyboardInterrupt
        } else {
            Error::Interrupted { signal }
        }
    }

    /// Whether this is the cancellation of the main task (`CancelledError`).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            // Their names say it all.
            Error::KeyboardInterrupt => return f.write_str("KeyboardInterrupt"),
            Error::Cancelled => return f.write_str("Cancelled"),
            Error::Interrupted { signal } => return f.debug_struct("Interrupted").field("signal", signal).finish(),
            Error::Io(e) => return f.debug_tuple("Io").field(e).finish(),
            Error::NestedRun { .. } => "NestedRun",
            Error::RunnerClosed => "RunnerClosed",
            Error::LoopClosed => "LoopClosed",
            Error::LoopRunning => "LoopRunning",
            Error::Stopped => "Stopped",
            Error::NoRunningLoop => "NoRunningLoop",
            Error::ClockNotPaused => "ClockNotPaused",
            Error::UnsupportedSignal { .. } => "UnsupportedSignal",
        };
        f.debug_struct(name).field("message", &self.to_string()).finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeyboardInterrupt => f.write_str("KeyboardInterrupt: the run was interrupted by Ctrl-C (SIGINT)"),
            Error::Interrupted { signal } => write!(
                f,
                "the run was interrupted by {}, which this runner treats as Ctrl-C",
                crate::signal::name(*signal)
            ),
            Error::UnsupportedSignal { signal, reason } => {
                write!(f, "{} cannot be used here: {reason}", crate::signal::name(*signal))
            }
            Error::Cancelled => f.write_str(
                "the main task was cancelled: something called cancel() on it and the cancellation was not caught \
                 (catch it with runner_core::cancellable(..) if the task should go on)",
            ),
            Error::NestedRun { caller } => write!(
                f,
                "{caller} cannot be called from a running event loop; inside async code, `.await` the future \
                 or spawn it with runner_core::spawn(..) instead"
            ),
            Error::RunnerClosed => f.write_str(
                "Runner is closed: it cannot run futures or give out its loop after close(); create a new Runner",
            ),
            Error::LoopClosed => f.write_str(
                "Event loop is closed: nothing can be scheduled on it after close(); create a new loop or Runner",
            ),
            Error::LoopRunning => f.write_str(
                "This event loop is already running: await the future from inside the loop instead of running \
                 the loop again, and close the loop only after it stopped",
            ),
            Error::Stopped => f.write_str(
                "Event loop stopped before the future completed: stop() was called during run_until_complete; \
                 run the loop again to finish the future",
            ),
            Error::NoRunningLoop => f.write_str(
                "no running event loop: call this from code running inside runner_core::run(..) or Runner::run(..)",
            ),
            Error::ClockNotPaused => f.write_str(
                "the loop's clock is real, so it cannot be advanced by hand: build the loop with \
                 LoopBuilder::start_paused(true), call EventLoop::pause_clock(), or use #[runner_test(start_paused)]",
            ),
            Error::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<FactoryFailed>()) => write!(f, "{e}"),
            Error::Io(e) => write!(f, "the event loop could not get an operating-system resource: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// A runner's `loop_factory` failed: its error, kept as the source, in the
/// `io::Error` (of the same kind) that [`Error::Io`] carries.
#[derive(Debug)]
pub(crate) struct FactoryFailed(pub(crate) io::Error);

impl FactoryFailed {
    /// `e`, from the factory, as the runner reports it.
    pub(crate) fn wrap(e: io::Error) -> Error {
        Error::Io(io::Error::new(e.kind(), FactoryFailed(e)))
    }
}

impl fmt::Display for FactoryFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the runner's loop_factory failed: {}; the runner calls it again on its next use",
            self.0
        )
    }
}

impl std::error::Error for FactoryFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
