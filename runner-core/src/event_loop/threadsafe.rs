//! Spawning on a loop from another thread: [`LoopHandle::spawn`] (asyncio's
//! `run_coroutine_threadsafe`, tokio's `Handle::spawn`) and its
//! [`Submitted`] outcome.
//!
//! The future travels to the loop's thread inside a callback of the
//! loop's remote queue (`call_soon_threadsafe`), where it is spawned as a
//! task whose future catches the user's panic and hands the outcome to a
//! slot other threads can wait on. Whatever happens to it on the way (the
//! loop closed before the callback ran, the task was cancelled or dropped
//! at close), the slot is filled: a cancelled [`JoinError`], never a wait
//! forever.
//!
//! This module uses `task` (spawning, cancel handles, `JoinError`),
//! `executor` (the one-shot slot its jobs' futures use too) and `runtime`
//! (the handle); it is part of the loop's top layer.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::executor::{lock, OneShot};
use crate::runtime::LoopHandle;
use crate::task::{CancelHandle, JoinError};
use crate::Error;

impl LoopHandle {
    /// Spawns `fut` on this handle's loop, from any thread (asyncio's
    /// `run_coroutine_threadsafe`, tokio's `Handle::spawn`). The task is
    /// made on the loop's thread at its next iteration (while the loop
    /// runs) and runs like any other; the [`Submitted`] it returns gives
    /// its outcome to whoever awaits it, on any thread and any executor,
    /// and can cancel it.
    ///
    /// Fails with [`Error::LoopClosed`] when the loop is closed. If the
    /// loop closes before the task ran to its end, the outcome is a
    /// cancelled [`JoinError`]: an await of a `Submitted` never waits
    /// forever on a closed loop.
    ///
    /// Block on the outcome from a plain thread with any executor's
    /// `block_on`, never on the loop's own thread while it runs (the task
    /// could not run: the wait would not end).
    ///
    /// ```
    /// let lp = runner_core::EventLoop::new().unwrap();
    /// let handle = lp.handle();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// std::thread::spawn(move || {
    ///     let submitted = handle.spawn(async { 6 * 7 }).unwrap();
    ///     tx.send(futures::executor::block_on(submitted)).unwrap();
    /// });
    /// // The loop runs until the other thread has its answer.
    /// let answer = lp
    ///     .run_until_complete(async move {
    ///         loop {
    ///             if let Ok(answer) = rx.try_recv() {
    ///                 return answer;
    ///             }
    ///             runner_core::sleep(std::time::Duration::from_millis(1)).await;
    ///         }
    ///     })
    ///     .unwrap();
    /// assert_eq!(answer.unwrap(), 42);
    /// ```
    pub fn spawn<F>(&self, fut: F) -> Result<Submitted<F::Output>, Error>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let slot = Arc::new(Slot::default());
        // The callback takes the launch out; if the loop closed while the
        // callback was on its way (so it may never run), this side does.
        let launch = Arc::new(Mutex::new(Some(Launch {
            fut: Some(fut),
            slot: slot.clone(),
        })));
        let on_loop = launch.clone();
        self.call_soon_threadsafe(move || {
            let launch = lock(&on_loop).take();
            if let Some(launch) = launch {
                launch.start();
            }
        })?;
        if self.is_closed() {
            // Dropped unstarted: the slot says cancelled.
            let launch = lock(&launch).take();
            drop(launch);
        }
        Ok(Submitted { slot })
    }
}

/// The outcome of a future spawned from another thread
/// ([`LoopHandle::spawn`]): a future of `Result<T, JoinError>` that any
/// thread may await, with any executor. Dropping it leaves the task
/// running (detached).
#[must_use = "the task runs anyway; await this to get its outcome"]
pub struct Submitted<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Submitted<T> {
    /// Requests the task's cancellation, from any thread (asyncio's
    /// `concurrent.futures.Future.cancel`): made at the loop's next
    /// iteration, or, when the task has not started yet, it never starts.
    /// `false` when the outcome is already known (or the loop closed).
    pub fn cancel(&self) -> bool {
        let mut start = lock(&self.slot.start);
        if self.slot.outcome.is_filled() {
            return false;
        }
        match &start.started {
            Some(handle) => handle.cancel(),
            None => {
                start.cancel_before_start = true;
                true
            }
        }
    }

    /// Whether the task ended (its outcome is ready, or was taken).
    pub fn is_done(&self) -> bool {
        self.slot.outcome.is_filled()
    }
}

impl<T> Future for Submitted<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.slot.outcome.poll_take(cx) {
            Poll::Ready(Some(outcome)) => Poll::Ready(outcome),
            Poll::Ready(None) => panic!("Submitted polled after it returned the task's outcome"),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Submitted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submitted").field("done", &self.is_done()).finish()
    }
}

/// Where the outcome goes, and how to cancel the task once it exists.
struct Slot<T> {
    outcome: OneShot<T>,
    start: Mutex<Start>,
}

#[derive(Default)]
struct Start {
    /// Set once the task exists.
    started: Option<CancelHandle>,
    cancel_before_start: bool,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            outcome: OneShot::new(),
            start: Mutex::default(),
        }
    }
}

impl<T> Slot<T> {
    /// Fills the slot, once, and wakes the awaiting side.
    fn complete(&self, outcome: Result<T, JoinError>) {
        if let Some(waker) = self.outcome.fill(outcome) {
            waker.wake();
        }
    }
}

/// The future on its way to the loop's thread. Dropped without being
/// started (the loop closed first), it says so in the slot.
struct Launch<F: Future> {
    /// Taken when the task is spawned.
    fut: Option<F>,
    slot: Arc<Slot<F::Output>>,
}

impl<F> Launch<F>
where
    F: Future + 'static,
    F::Output: 'static,
{
    /// Spawns the task, on the loop's thread (a callback of the running
    /// loop), unless it was cancelled before it could start.
    fn start(mut self) {
        let Some(fut) = self.fut.take() else {
            return;
        };
        // Under the lock from the check to `started`, so that a `cancel`
        // from another thread either sees the task or stops it starting.
        let mut start = lock(&self.slot.start);
        if start.cancel_before_start {
            drop(start);
            self.slot.complete(Err(JoinError::cancelled()));
            return;
        }
        let handle = crate::spawn(Reporting {
            fut,
            slot: Some(self.slot.clone()),
        });
        start.started = Some(handle.cancel_handle());
    }
}

impl<F: Future> Drop for Launch<F> {
    fn drop(&mut self) {
        if self.fut.is_some() {
            self.slot.complete(Err(JoinError::cancelled()));
        }
    }
}

pin_project! {
    /// The task's future: the user's, whose outcome (its output, or its
    /// panic) goes to the slot. Dropped before it finished (cancelled, or
    /// the loop closed), it leaves a cancelled `JoinError` there.
    struct Reporting<F: Future> {
        #[pin]
        fut: F,
        // `None` once the outcome is in the slot.
        slot: Option<Arc<Slot<F::Output>>>,
    }

    impl<F: Future> PinnedDrop for Reporting<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(slot) = this.project().slot.take() {
                slot.complete(Err(JoinError::cancelled()));
            }
        }
    }
}

impl<F: Future> Future for Reporting<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        // A panic is the outcome, for whoever awaits it (as a task's panic
        // is its handle's), not a panic of this task.
        let outcome = match catch_unwind(AssertUnwindSafe(|| this.fut.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(JoinError::panicked(payload)),
        };
        if let Some(slot) = this.slot.take() {
            slot.complete(outcome);
        }
        Poll::Ready(())
    }
}
