//! Tasks: spawned futures, their handles, and cancellation.
//!
//! A task is one allocation (`raw`): a header other threads may touch
//! (a reference count, a vtable), the task's `TaskCore` (`core`) of plain
//! `Cell`s, and the future (then its output). The loop's thread is the
//! only one that polls a task or touches its core; other threads only wake
//! it, through wakers that are `Send + Sync`: a wake on the loop's thread
//! pushes the task on the loop's ready queue, a wake from elsewhere sends
//! it through the loop's remote queue and wakes the poller (see
//! `harness`).
//!
//! This module and its parts use only `runtime` and `context` below them;
//! the loop drives them through `sched::Scheduler`.
//!
//! # Cancellation
//!
//! `cancel()` asks; the loop decides at the task's next scheduling, from
//! where the task was suspended during its last poll:
//!
//! - inside no [`cancellable`] and no [`shield`]: the future is dropped, so
//!   its destructors run (they are the `finally` of Python), and the task
//!   ends as cancelled;
//! - inside a [`cancellable`] (the innermost one on the path of the last
//!   poll): that scope's inner future is dropped and the scope returns
//!   `Err(Cancelled)`, after which the task goes on normally; it can `.await`
//!   async cleanup (Python's `except CancelledError:`);
//! - inside a [`shield`]: nothing happens until the task suspends outside
//!   the shield; then the cancellation is delivered as above.
//!
//! A task suspended on another task's [`JoinHandle`] (awaited with the
//! task's own waker, outside a shield) hands the request to that task and
//! waits: it is cancelled itself when that task ends cancelled, and goes on
//! with that task's outcome when it caught the cancellation (asyncio's
//! `fut_waiter.cancel()`).
//!
//! The scopes learn where they are by recording themselves in the current
//! task's core during the poll (a depth counter and the innermost scope that
//! returned `Pending`). A task suspended in several branches at once
//! (`join!`, `select!`) has several innermost scopes; a cancellation meant
//! for one scope (a `scoped_timeout`'s deadline, a task group's
//! cancellation of its body, one handed on) goes to the branch inside it
//! (`branches`). Two in one step are two: a scope that catches the one
//! delivered to it leaves pending one that another branch made pending
//! earlier in the same poll. Cancellation requests are counted: `cancelling()`
//! says how many are outstanding and `uncancel()` takes one back (the last
//! one withdraws a cancellation not delivered yet), as in Python 3.13; the
//! runner uses this to tell Ctrl-C from other cancellations.

mod branches;
mod cancel;
mod cancel_handle;
mod completed;
pub(crate) mod core;
mod group;
mod handle;
pub(crate) mod harness;
pub(crate) mod raw;
pub(crate) mod sched;

use std::future::IntoFuture;
use std::panic::Location;

pub(crate) use self::cancel::WatchFlight;
pub use self::cancel::{cancellable, shield, Cancellable, Cancelled, Resume, Shield};
pub use self::cancel_handle::CancelHandle;
pub use self::completed::{as_completed, AsCompleted};
pub use self::group::{task_group, BoxError, Failure, TaskGroup, TaskGroupError, TaskResult};
pub(crate) use self::handle::panic_message;
pub use self::handle::{CurrentTask, JoinError, JoinHandle};
pub use crate::runtime::{TaskId, TaskInfo};

/// The task being polled right now, or `None` outside of tasks (Python's
/// `asyncio.current_task()`).
///
/// ```
/// let id = runner_core::run(async {
///     let me = runner_core::current_task().expect("inside the main task");
///     me.set_name("main work");
///     (me.id(), me.name())
/// })
/// .unwrap();
/// assert_eq!(id.1.as_deref(), Some("main work"));
/// ```
pub fn current_task() -> Option<CurrentTask> {
    sched::current_raw().map(|task| CurrentTask::new(task.task_ref()))
}

/// Every task of the running loop that has not finished, the current one
/// included (Python's `asyncio.all_tasks()`), in no particular order;
/// empty outside a running loop. Each can be named, asked for its
/// cancellation count and cancelled, as the current one can.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{all_tasks, current_task, sleep, spawn, yield_now};
///
/// runner_core::run(async {
///     let worker = spawn(sleep(Duration::from_secs(3600)));
///     yield_now().await;
///     assert_eq!(all_tasks().len(), 2); // the main task and the worker
///     // Cancel every task but this one, as a shutdown handler would.
///     let me = current_task().unwrap().id();
///     for task in all_tasks().into_iter().filter(|t| t.id() != me) {
///         task.cancel();
///     }
///     assert!(worker.await.unwrap_err().is_cancelled());
///     assert_eq!(all_tasks().len(), 1);
/// })
/// .unwrap();
/// ```
pub fn all_tasks() -> Vec<CurrentTask> {
    sched::current().map_or_else(Vec::new, |s| s.live_tasks().into_iter().map(CurrentTask::new).collect())
}

/// Spawns `fut` on the running loop, in a copy of the current context
/// (asyncio's `create_task`). It starts at the loop's next iteration; the
/// handle awaits its output, cancels it, or (dropped) detaches it.
///
/// ```
/// use runner_core::{spawn, ContextVar};
///
/// static USER: ContextVar<&str> = ContextVar::new("user");
///
/// let greeting = runner_core::run(async {
///     let _ = USER.set("ada");
///     // The task runs in a copy of the spawner's context.
///     let child = spawn(async { format!("hello, {}", USER.get().unwrap()) });
///     child.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(greeting, "hello, ada");
/// ```
///
/// # Panics
/// When no loop is running on this thread (as `tokio::spawn` does outside a
/// runtime); use [`EventLoop::spawn`](crate::EventLoop::spawn) to spawn
/// onto a loop that is not running yet, and
/// [`get_running_loop()`](crate::get_running_loop)`?.spawn(fut)` where no
/// running loop should be an error rather than a panic:
///
/// ```
/// let outside = runner_core::get_running_loop().map(|lp| lp.spawn(async { 1 }));
/// assert!(outside.is_err(), "no loop runs here: an error, not a panic");
/// ```
#[track_caller]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: IntoFuture,
    F::IntoFuture: 'static,
    F::Output: 'static,
{
    match sched::current() {
        Some(sched) => harness::spawn(&sched, fut.into_future(), None, Location::caller()),
        None => panic!(
            "runner_core::spawn called outside a running event loop: call it from async code running inside \
             runner_core::run(..), or use EventLoop::spawn"
        ),
    }
}
