//! # runner-core
//!
//! Python's asyncio *Runners* for Rust: [`run`] a future as the main task of
//! a fresh single-threaded event loop, or keep a [`Runner`] for several
//! top-level calls on one loop and one context; cancellable tasks whose
//! cancellation can be caught and followed by async cleanup; context
//! variables that flow into spawned tasks; a close sequence that cancels
//! what is left, finalizes, shuts the blocking pool down and releases the
//! loop.
//!
//! ```
//! use std::time::Duration;
//! use runner_core::{spawn, sleep, ContextVar};
//!
//! static REQUEST: ContextVar<u32> = ContextVar::new("request");
//!
//! let total = runner_core::run(async {
//!     let _ = REQUEST.set(7);
//!     // Spawned tasks run in a copy of the spawner's context.
//!     let child = spawn(async {
//!         sleep(Duration::from_millis(1)).await;
//!         REQUEST.get().unwrap() * 6
//!     });
//!     child.await.unwrap()
//! })
//! .unwrap();
//! assert_eq!(total, 42);
//! ```
//!
//! The modules map to the parts of asyncio they mirror: [`runners`]
//! (`asyncio.run`, `asyncio.Runner`), [`event_loop`] (the loop API),
//! [`task`] (tasks, cancellation, `shield`), [`time`] (`sleep`, timeouts),
//! [`context`] (`contextvars`), [`executor`] (`run_in_executor`).

// Audited exceptions, each block with its SAFETY comment: a task's memory
// (`task::raw`, its callers in `task`, the `RemoteTask` pointer of
// `runtime`, the polled task's context in `context`: for speed, checked by
// Miri through tests/task_memory.rs);
// FFI: the signal handler and its `sigaction` calls (`signal`), the
// `epoll_pwait2` system call and polling's `Poller::add` on the portable
// backend (`poll`).
#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations)]

pub mod asyncgen;
pub mod context;
pub mod error;
pub mod event_loop;
pub mod executor;
#[cfg(feature = "hyper")]
pub mod hyper_rt;
pub mod net;
mod poll;
mod reactor;
pub mod runners;
mod runtime;
pub mod signal;
#[cfg(unix)]
pub mod stdio;
pub mod task;
mod testing;
pub mod time;

pub use asyncgen::{asyncgen, AsyncGen, Closing, Yielder};
pub use context::{Context, ContextError, ContextVar, Token};
pub use error::Error;
pub use event_loop::{
    get_event_loop, get_running_loop, set_event_loop, signal_stream, spawn, CallbackHandle, EventLoop,
    ExceptionContext, LoopBuilder, LoopHandle, SignalStream, Submitted, TimerHandle,
};
pub use executor::{spawn_blocking, Blocking};
#[doc(inline)]
pub use runner_macros::{main, runner_test};
pub use runners::{run, Builder, Runner};
pub use task::{
    all_tasks, as_completed, cancellable, current_task, shield, task_group, BoxError, CancelHandle, Cancelled,
    CurrentTask, Failure, JoinError, JoinHandle, TaskGroup, TaskGroupError, TaskId, TaskInfo, TaskResult,
};
pub use time::{
    scoped_timeout, scoped_timeout_at, scoped_timeout_with, sleep, sleep_until, timeout, timeout_at, wait_for,
    yield_now, Elapsed, RescheduleError, Sleep, TimeoutHandle,
};

/// What the expansions of `#[main]` and `#[runner_test]` call. Not public
/// API: names and signatures may change without notice.
#[doc(hidden)]
pub mod __private {
    use std::future::IntoFuture;

    use crate::{Builder, Error};

    pub use crate::testing::{run_test, TestOptions, TEST_TIMEOUT_ENV};

    /// A `#[main]`: runs the body, then ends the process as the result says.
    /// A final Ctrl-C (the second, or one during closing) ends the process
    /// at once, in the signal handler: nothing of the program runs after
    /// it anyway, and so nothing it would still wait on can delay it.
    #[track_caller]
    pub fn run_main<F>(builder: Builder, body: F) -> F::Output
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        crate::signal::set_final_in_handler();
        main_result(builder.run(body))
    }

    /// The end of a `#[main]`: the body's output, or the conventional exit
    /// for a run that gave none.
    pub fn main_result<T>(result: Result<T, Error>) -> T {
        match result {
            Ok(v) => v,
            Err(e) => match e.interrupt_signal() {
                Some(sig) => {
                    if e.is_keyboard_interrupt() {
                        eprintln!("KeyboardInterrupt");
                    } else {
                        eprintln!("runner: {e}");
                    }
                    crate::signal::exit_by(sig)
                }
                None => {
                    eprintln!("Error: {e}");
                    std::process::exit(1)
                }
            },
        }
    }

    /// Ends the process the way SIGINT's default disposition does, so a
    /// shell reports status 130.
    pub fn exit_by_sigint() -> ! {
        crate::signal::exit_by(libc::SIGINT)
    }
}
