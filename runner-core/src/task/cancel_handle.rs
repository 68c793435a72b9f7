//! [`CancelHandle`]: a task's cancellation, from any thread.
//!
//! It holds a counted reference to the task that may cross threads
//! (`raw::SendRef`). On the loop's thread, while the loop runs, `cancel`
//! cancels at once; anywhere else it sends the request through the loop's
//! remote queue, where the loop's thread makes it (the same counted
//! request as `JoinHandle::cancel`).

use std::fmt;

use super::raw::{SendRef, TaskRef};
use crate::runtime::{Remote, TaskId};

/// Cancels a task from any thread (asyncio's
/// `loop.call_soon_threadsafe(task.cancel)`), or from a callback.
/// `Send + Sync` and cheap to clone; it keeps the task's memory (not its
/// future) until dropped.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{cancellable, sleep, spawn};
///
/// let out = runner_core::run(async {
///     let worker = spawn(async {
///         match cancellable(sleep(Duration::from_secs(3600))).await {
///             Ok(()) => "slept",
///             Err(_) => "cancelled from another thread",
///         }
///     });
///     let cancel = worker.cancel_handle();
///     std::thread::spawn(move || cancel.cancel()).join().unwrap();
///     worker.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(out, "cancelled from another thread");
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    task: SendRef,
    id: TaskId,
}

impl CancelHandle {
    pub(crate) fn new(task: &TaskRef) -> CancelHandle {
        CancelHandle {
            id: task.core().id(),
            task: SendRef::new(task),
        }
    }

    /// Requests the task's cancellation, as [`JoinHandle::cancel`] does.
    ///
    /// On the loop's thread while it runs, the request is made now and the
    /// result says whether it was (`false`: the task is done). Anywhere
    /// else the request is sent to the loop, which makes it at its next
    /// iteration; the result says whether it was sent (`false`: the loop
    /// is closed, so the task can no longer run).
    ///
    /// [`JoinHandle::cancel`]: crate::JoinHandle::cancel
    pub fn cancel(&self) -> bool {
        if let Some(task) = self.task.on_loop_thread() {
            return task.cancel();
        }
        let task = self.task.clone();
        let request = Box::new(move || {
            if let Some(task) = task.on_loop_thread() {
                task.cancel();
            }
        });
        self.task.shared().send(Remote::Call(request)).is_ok()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }
}

impl fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelHandle").field("id", &self.id).finish()
    }
}
