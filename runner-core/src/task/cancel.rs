//! Catching and deferring cancellation: [`cancellable`] and [`shield`].
//!
//! Both are plain future wrappers, pinned in place (no allocation). While
//! they are polled they record themselves in the current task's core, so
//! that the next delivery of a cancellation knows where the task was
//! suspended (see the [module docs](super)).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use pin_project_lite::pin_project;

use super::sched;

/// The cancellation of the current task, caught as a value by
/// [`cancellable`]: Python's `CancelledError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the task was cancelled")
    }
}

impl std::error::Error for Cancelled {}

impl Cancelled {
    /// Lets the caught cancellation go on from here: Python's bare `raise`
    /// in `except CancelledError:`, after async cleanup.
    ///
    /// Awaited in a task, this does not return: the cancellation is
    /// pending again (no new request: [`cancelling`](crate::JoinHandle::cancelling)
    /// does not change) and is delivered where the task suspends, here:
    /// to the innermost enclosing [`cancellable`], or, outside any, the
    /// task ends cancelled, and a task awaiting it is cancelled too. It
    /// returns this `Cancelled` at once where the cancellation cannot go
    /// on: outside a task, or inside a [`shield`] (which would hold it
    /// forever).
    ///
    /// ```
    /// use std::time::Duration;
    /// use runner_core::{cancellable, sleep, spawn, yield_now};
    ///
    /// let (outcome, log) = runner_core::run(async {
    ///     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    ///     let l = log.clone();
    ///     let worker = spawn(async move {
    ///         if let Err(cancelled) = cancellable(sleep(Duration::from_secs(3600))).await {
    ///             sleep(Duration::from_millis(1)).await; // async cleanup
    ///             l.borrow_mut().push("cleaned up");
    ///             cancelled.resume().await;
    ///             l.borrow_mut().push("never");
    ///         }
    ///     });
    ///     yield_now().await;
    ///     worker.cancel();
    ///     (worker.await, log.take())
    /// })
    /// .unwrap();
    /// assert!(outcome.unwrap_err().is_cancelled());
    /// assert_eq!(log, ["cleaned up"]);
    /// ```
    pub fn resume(self) -> Resume {
        Resume { resumed: false }
    }
}

/// The future of [`Cancelled::resume`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Resume {
    resumed: bool,
}

impl Future for Resume {
    type Output = Cancelled;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<Cancelled> {
        if self.resumed {
            // Polled again: the cancellation was delivered to a scope that
            // does not enclose this future (a sibling in a join).
            return Poll::Ready(Cancelled);
        }
        if sched::with_current_task(|core| core.resume_cancel()) == Some(true) {
            // The task is scheduled again when this poll ends, and the
            // cancellation delivered then.
            self.resumed = true;
            return Poll::Pending;
        }
        Poll::Ready(Cancelled)
    }
}

/// Lets the current task catch its cancellation as a value.
///
/// If the task is cancelled while suspended inside `fut`, `fut` is dropped
/// and this returns `Err(Cancelled)`; the task then goes on normally and may
/// `.await` async cleanup. Outside a task it simply awaits `fut`.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{cancellable, sleep, spawn, yield_now};
///
/// let log = runner_core::run(async {
///     let worker = spawn(async {
///         match cancellable(sleep(Duration::from_secs(3600))).await {
///             Ok(()) => "slept",
///             Err(_cancelled) => {
///                 sleep(Duration::from_millis(1)).await; // async cleanup
///                 "cleaned up"
///             }
///         }
///     });
///     yield_now().await;
///     worker.cancel();
///     worker.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(log, "cleaned up");
/// ```
pub fn cancellable<F: IntoFuture>(fut: F) -> Cancellable<F::IntoFuture> {
    Cancellable {
        inner: Some(fut.into_future()),
        scope: 0,
    }
}

pin_project! {
    /// The future of [`cancellable`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Cancellable<F> {
        #[pin]
        inner: Option<F>,
        // Given on first poll; 0 until then.
        scope: u32,
    }
}

impl<F> Cancellable<F> {
    /// Gives the scope its id before its first poll, so that a
    /// cancellation can be meant for it (see `branches`): one of the
    /// polling task's [`new_scope`](super::core::TaskCore::new_scope).
    pub(crate) fn set_scope(self: Pin<&mut Self>, scope: u32) {
        *self.project().scope = scope;
    }
}

impl<F> fmt::Debug for Cancellable<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellable")
            .field("done", &self.inner.is_none())
            .finish()
    }
}

impl<F: Future> Future for Cancellable<F> {
    type Output = Result<F::Output, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.inner.is_none() {
            panic!("Cancellable polled after completion");
        }
        let entered = sched::with_current_task(|core| core.enter_catch(this.scope));
        let entered = match entered {
            // Outside a task: nothing can cancel us.
            None => None,
            // The pending cancellation is delivered here: the inner future
            // is dropped (its destructors run) and the task goes on.
            Some(None) => {
                this.inner.set(None);
                return Poll::Ready(Err(Cancelled));
            }
            Some(Some(entered)) => Some(entered),
        };
        let inner = this.inner.as_mut().as_pin_mut().expect("checked above");
        let poll = inner.poll(cx);
        if let Some(entered) = entered {
            let scope = *this.scope;
            sched::with_current_task(|core| core.leave_catch(scope, entered, poll.is_pending()));
        }
        if poll.is_ready() {
            this.inner.set(None);
        }
        poll.map(Ok)
    }
}

/// Protects `fut` from cancellation of the current task.
///
/// A cancellation requested while the task is suspended inside `fut` waits:
/// it is delivered at the first suspension after `fut` completed (or, if the
/// task finishes first, the task ends cancelled, as in asyncio).
///
/// ```
/// use runner_core::{shield, spawn, yield_now};
///
/// let saved = runner_core::run(async {
///     let writer = spawn(async {
///         shield(async {
///             yield_now().await; // the cancel arrives here...
///             "saved" // ...but the shielded section still completes
///         })
///         .await
///     });
///     yield_now().await;
///     writer.cancel();
///     writer.await
/// })
/// .unwrap();
/// assert!(saved.unwrap_err().is_cancelled()); // cancelled after the section
/// ```
pub fn shield<F: IntoFuture>(fut: F) -> Shield<F::IntoFuture> {
    Shield {
        inner: fut.into_future(),
        pending: false,
    }
}

pin_project! {
    /// The future of [`shield`].
    #[must_use = "futures do nothing unless awaited"]
    pub struct Shield<F> {
        #[pin]
        inner: F,
        // Its last poll returned `Pending`.
        pending: bool,
    }

    impl<F> PinnedDrop for Shield<F> {
        fn drop(this: Pin<&mut Self>) {
            if this.pending {
                // Dropped while pending (a `select!`'s losing branch): the
                // task polling it may have been recorded as suspended in
                // it, holding a cancellation back for a shield that is
                // gone. Its next poll finds where it really is.
                if let Some(task) = sched::current_raw() {
                    task.wake();
                }
            }
        }
    }
}

impl<F> fmt::Debug for Shield<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Shield<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let in_task = sched::with_current_task(|core| core.enter_shield()).is_some();
        let this = self.project();
        let poll = this.inner.poll(cx);
        if in_task {
            sched::with_current_task(|core| core.leave_shield());
        }
        *this.pending = poll.is_pending();
        if poll.is_pending() {
            sched::with_current_task(|core| core.shield_pending());
        }
        poll
    }
}

pin_project! {
    /// `inner`, and whether a cancellation came out of it in flight: one
    /// handed on (a nested task group's scope that was cancelled, a
    /// resumed `Cancelled`) during the poll that finished it, so that the
    /// scope around can catch it as its `cancellable` would have at the
    /// next suspension. One set before that poll (by a sibling in a
    /// `join!`) is not this future's.
    pub(crate) struct WatchFlight<F> {
        #[pin]
        inner: F,
    }
}

impl<F> WatchFlight<F> {
    pub(crate) fn new(inner: F) -> WatchFlight<F> {
        WatchFlight { inner }
    }

    pub(crate) fn inner(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().inner
    }
}

impl<F: Future> Future for WatchFlight<F> {
    type Output = (F::Output, bool);

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let in_flight = || sched::with_current_task(|core| core.in_flight()).unwrap_or(false);
        let before = in_flight();
        match self.project().inner.poll(cx) {
            Poll::Ready(out) => Poll::Ready((out, in_flight() && !before)),
            Poll::Pending => Poll::Pending,
        }
    }
}
