//! What user code holds of a task: [`JoinHandle`], [`CurrentTask`], and
//! [`JoinError`], what awaiting a task gives when it has no output.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};

use sync_wrapper::SyncWrapper;

use super::core::{Outcome, TaskCore};
use super::raw::{RawTask, TaskRef};
use super::sched::{self, Scheduler};
use crate::runtime::{ExceptionContext, TaskId};

type Output<T> = Result<T, JoinError>;

/// An owned permission to await, cancel and inspect a spawned task.
///
/// Awaiting it gives the task's output, or a [`JoinError`] when the task was
/// cancelled or panicked. Dropping it detaches the task: it keeps running,
/// and if it panics, the panic is reported to the loop's exception handler.
///
/// A task runs only while its loop runs: awaited inside a run of another
/// loop, the handle answers at once with a [`JoinError`] that says so
/// ([`is_other_loop`](JoinError::is_other_loop)) rather than wait forever.
/// Polled where no loop runs (by another executor), it waits for its loop's
/// next run.
///
/// ```
/// let out = runner_core::run(async {
///     let task = runner_core::spawn(async { 6 * 7 });
///     task.set_name("answer");
///     task.await.unwrap()
/// })
/// .unwrap();
/// assert_eq!(out, 42);
/// ```
pub struct JoinHandle<T: 'static> {
    /// Holds a reference to the task.
    task: RawTask,
    /// Owns a `T` once the task finished; `Unpin` whatever `T` is.
    _output: PhantomData<fn() -> T>,
}

impl<T: 'static> JoinHandle<T> {
    /// Takes over a reference to `task`, whose output is a `T`.
    pub(crate) fn new(task: RawTask) -> JoinHandle<T> {
        JoinHandle {
            task,
            _output: PhantomData,
        }
    }

    /// The task's loop's scheduler, while that loop exists (found from the
    /// task: a handle is one word, as tokio's and smol's are).
    fn sched(&self) -> Option<Rc<Scheduler>> {
        sched::of(self.task)
    }

    fn core(&self) -> &TaskCore {
        self.task.core()
    }

    /// Requests the task's cancellation (asyncio's `Task.cancel()`); `false`
    /// when the task is already done. See the [module docs](crate::task) for
    /// where the cancellation lands.
    pub fn cancel(&self) -> bool {
        self.task.cancel()
    }

    /// Whether the task finished (with an output, cancelled or panicked).
    pub fn is_done(&self) -> bool {
        self.core().is_done()
    }

    /// Whether the task ended cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.core().outcome() == Outcome::Cancelled
    }

    /// Whether the task ended by panicking.
    pub fn is_panicked(&self) -> bool {
        self.core().outcome() == Outcome::Panicked
    }

    /// Whether the task was a [`TaskGroup`](crate::TaskGroup) child that
    /// returned an error.
    pub fn is_failed(&self) -> bool {
        self.core().outcome() == Outcome::Failed
    }

    /// How many cancellation requests are outstanding (Python's
    /// `Task.cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.core().cancelling()
    }

    /// Takes back one cancellation request and returns how many remain
    /// (Python's `Task.uncancel()`). Taking back the last one withdraws a
    /// cancellation the task has not seen yet: it runs on.
    pub fn uncancel(&self) -> u32 {
        self.core().uncancel()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.core().id()
    }

    /// The task's name, if one was set.
    pub fn name(&self) -> Option<String> {
        self.sched().and_then(|s| s.name(self.core()))
    }

    /// Names the task; the name appears in reports and debug output.
    pub fn set_name(&self, name: impl Into<String>) {
        if let Some(s) = self.sched() {
            s.set_name(self.core(), name.into());
        }
    }

    /// Where the task was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.task.spawned_at()
    }

    /// Names the task "main" (a runner's main task), without the name
    /// table.
    pub(crate) fn mark_main(&self) {
        self.core().mark_main();
    }

    /// A handle that cancels the task from any thread.
    pub fn cancel_handle(&self) -> super::CancelHandle {
        super::CancelHandle::new(&self.task_ref())
    }

    /// A counted reference to the task.
    pub(crate) fn task_ref(&self) -> TaskRef {
        self.task.task_ref()
    }

    /// The outcome of a finished task, without a waker; `None` while it
    /// runs, or once taken.
    pub(crate) fn take_outcome(&mut self) -> Option<Output<T>> {
        if self.core().output_taken() || !self.is_done() {
            return None;
        }
        let mut out = None;
        // SAFETY: `T` is the output type of the task's future
        // (`JoinHandle::new`'s contract).
        #[allow(unsafe_code)]
        unsafe {
            self.task.take_output(&mut out)
        };
        self.core().mark_output_taken();
        out
    }
}

impl<T: 'static> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(
            !this.core().output_taken(),
            "JoinHandle polled after it returned the task's outcome"
        );
        if let Some(outcome) = this.take_outcome() {
            return Poll::Ready(outcome);
        }
        let current = sched::current_raw();
        assert!(
            current != Some(this.task),
            "task {} awaited its own JoinHandle, which can never complete; await the handle from another task",
            this.id()
        );
        if sched::runs_another_loop(this.task.shared()) {
            return Poll::Ready(Err(JoinError::other_loop(this.id())));
        }
        this.task.join_slot().register(cx.waker());
        // Awaited by a task itself (not through a combinator that polls
        // handles with wakers of its own, like `as_completed`): cancelling
        // that task is handed to this one first, as asyncio cancels the
        // future a task waits on.
        if let Some(current) = current.filter(|c| c.is_own_waker(cx.waker())) {
            current.core().await_task(this.task_ref());
        }
        Poll::Pending
    }
}

impl<T: 'static> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if !self.core().output_taken() {
            if self.is_done() {
                // Finished and never awaited: a panic in it is reported
                // now (unless closing already did).
                let reported = self.core().panic_reported();
                if let Some(Err(e)) = self.take_outcome() {
                    if e.is_panic() && !reported {
                        if let Some(sched) = self.sched() {
                            sched.report(ExceptionContext {
                                message: sched.unretrieved_panic_message().into(),
                                panic: e.panic_message(),
                                task: Some(sched.info(self.task)),
                            });
                        }
                    }
                }
            } else {
                // Still running: detached; it reports its panic and drops
                // its output when it finishes.
                self.core().mark_detached();
                self.task.join_slot().clear();
                // Dropped by the task that awaited it (`select!` lost that
                // branch): that task's cancellation is no longer handed on
                // to this one.
                if let Some(current) = sched::current_raw() {
                    current.core().forget_await(self.task);
                }
            }
        }
        if self.is_done() && self.core().is_named() {
            // The name was kept for this handle (`Scheduler::forget_name`).
            if let Some(sched) = self.sched() {
                sched.forget_name(self.core());
            }
        }
        // SAFETY: the handle's reference, used no more.
        #[allow(unsafe_code)]
        unsafe {
            self.task.release()
        };
    }
}

impl<T: 'static> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("outcome", &self.core().outcome())
            .finish()
    }
}

/// A handle on a task of the running loop that does not join it: the task
/// running now ([`current_task`](crate::current_task)), or any live one
/// ([`all_tasks`](crate::all_tasks)). It names the task, counts and takes
/// back cancellation requests, and cancels it.
#[derive(Clone)]
pub struct CurrentTask {
    task: TaskRef,
}

impl CurrentTask {
    pub(crate) fn new(task: TaskRef) -> CurrentTask {
        CurrentTask { task }
    }

    fn core(&self) -> &TaskCore {
        self.task.core()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.core().id()
    }

    /// The task's name, if one was set.
    pub fn name(&self) -> Option<String> {
        sched::current().and_then(|s| s.name(self.core()))
    }

    /// Names the task.
    pub fn set_name(&self, name: impl Into<String>) {
        if let Some(s) = sched::current() {
            s.set_name(self.core(), name.into());
        }
    }

    /// Whether the task finished (with an output, cancelled or panicked):
    /// a handle from [`all_tasks`](crate::all_tasks) may outlive its task.
    pub fn is_done(&self) -> bool {
        self.core().is_done()
    }

    /// Requests the task's cancellation; it lands at the task's next
    /// suspension (for the current task: its own next `.await` that
    /// suspends). `false` when the task already finished.
    pub fn cancel(&self) -> bool {
        self.task.cancel()
    }

    /// A handle that cancels the task from any thread.
    pub fn cancel_handle(&self) -> super::CancelHandle {
        super::CancelHandle::new(&self.task)
    }

    /// Outstanding cancellation requests (Python's `Task.cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.core().cancelling()
    }

    /// Takes back one cancellation request; returns how many remain (the
    /// last one withdraws a cancellation not delivered yet).
    pub fn uncancel(&self) -> u32 {
        self.core().uncancel()
    }
}

impl fmt::Debug for CurrentTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CurrentTask")
            .field("id", &self.id())
            .field("name", &self.name())
            .finish()
    }
}

/// Why awaiting a [`JoinHandle`] gave no output: the task was cancelled or
/// panicked (or, a mistake, the handle was awaited inside a run of another
/// loop: [`is_other_loop`](Self::is_other_loop)).
///
/// `Send + Sync` (the panic payload is kept so that it can only be taken
/// out by value), so `?` converts it into `Box<dyn Error + Send + Sync>`
/// or `anyhow::Error`:
///
/// ```
/// fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
///     let out = runner_core::run(async {
///         let answer = runner_core::spawn(async { 42 }).await?;
///         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(answer)
///     })??;
///     assert_eq!(out, 42);
///     Ok(())
/// }
/// ```
pub struct JoinError {
    /// `None`: the task was cancelled. One pointer, so that a task's
    /// output slot (`Result<T, JoinError>`) stays small.
    ended: Option<Box<Ended>>,
}

struct Ended {
    /// The panic's message (taken from the payload when it was caught), or
    /// the error's.
    message: String,
    kind: Kind,
}

enum Kind {
    /// The panic payload.
    Panicked(SyncWrapper<Box<dyn Any + Send + 'static>>),
    /// A `TaskGroup` child that returned an error (the error itself is in
    /// the group's error).
    Failed,
    /// The handle was awaited inside a run of another loop (the task goes
    /// on, on its own loop).
    OtherLoop,
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError { ended: None }
    }

    fn ended(message: String, kind: Kind) -> JoinError {
        JoinError {
            ended: Some(Box::new(Ended { message, kind })),
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError::ended(
            panic_message(payload.as_ref()),
            Kind::Panicked(SyncWrapper::new(payload)),
        )
    }

    /// A `TaskGroup` child that returned an error: its message here, the
    /// error in the group's.
    pub(crate) fn failed(message: String) -> JoinError {
        JoinError::ended(message, Kind::Failed)
    }

    /// The handle of task `id` was awaited inside a run of another loop.
    fn other_loop(id: TaskId) -> JoinError {
        JoinError::ended(
            format!(
                "the handle of task {id} was awaited inside a run of another event loop, where it \
                 could never complete (its own loop cannot run meanwhile); await it inside a run \
                 of the loop (Runner) that spawned it. The task itself goes on, on its own loop"
            ),
            Kind::OtherLoop,
        )
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.ended.is_none()
    }

    fn kind(&self) -> Option<&Kind> {
        self.ended.as_ref().map(|e| &e.kind)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind(), Some(Kind::Panicked(_)))
    }

    /// Whether the task was a [`TaskGroup`](crate::TaskGroup) child that
    /// returned an error; the error itself is in the group's
    /// [`TaskGroupError`](crate::TaskGroupError).
    pub fn is_failed(&self) -> bool {
        matches!(self.kind(), Some(Kind::Failed))
    }

    /// Whether this is no outcome of the task but a mistake: its
    /// [`JoinHandle`] was awaited inside a run of another event loop than
    /// the task's (a handle returned from one `Runner`'s `run` and awaited
    /// in another's), where it could never complete. asyncio raises
    /// `RuntimeError` there ("attached to a different loop"). The task
    /// itself is left alone; the handle can still be awaited in a run of
    /// its own loop.
    ///
    /// ```
    /// use std::time::Duration;
    /// use runner_core::{spawn, timeout, yield_now, Runner};
    ///
    /// let first = Runner::new();
    /// let handle = first.run(async { spawn(async { yield_now().await; 7 }) }).unwrap();
    /// let second = Runner::new();
    /// let (handle, err) = second
    ///     .run(async move {
    ///         let mut handle = handle;
    ///         // At once, not after the bound.
    ///         let err = timeout(Duration::from_secs(10), &mut handle).await.unwrap().unwrap_err();
    ///         (handle, err)
    ///     })
    ///     .unwrap();
    /// assert!(err.is_other_loop());
    /// // In a run of its own loop it completes.
    /// assert_eq!(first.run(handle).unwrap().unwrap(), 7);
    /// ```
    pub fn is_other_loop(&self) -> bool {
        matches!(self.kind(), Some(Kind::OtherLoop))
    }

    /// The panic's message, when the task panicked (with a string; other
    /// payloads give a placeholder).
    pub fn panic_message(&self) -> Option<String> {
        self.ended
            .as_ref()
            .filter(|e| matches!(e.kind, Kind::Panicked(_)))
            .map(|e| e.message.clone())
    }

    /// The panic payload, to pass to [`std::panic::resume_unwind`].
    ///
    /// # Panics
    /// When the task did not panic (check [`is_panic`](Self::is_panic)
    /// first, or use [`try_into_panic`](Self::try_into_panic)).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().unwrap_or_else(|e| {
            panic!("JoinError::into_panic called on an error that is not a panic ({e}); check is_panic() first")
        })
    }

    /// The panic payload, or the error back when the task did not panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        let Some(ended) = self.ended else {
            return Err(JoinError::cancelled());
        };
        let Ended { message, kind } = *ended;
        match kind {
            Kind::Panicked(payload) => Ok(payload.into_inner()),
            kind => Err(JoinError::ended(message, kind)),
        }
    }
}

/// The message of a panic payload (`&str` or `String`), or a placeholder.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string panic payload>".to_string()
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ended {
            None => f.write_str("JoinError::Cancelled"),
            Some(e) => match e.kind {
                Kind::Panicked(_) => write!(f, "JoinError::Panicked({:?})", e.message),
                Kind::Failed => write!(f, "JoinError::Failed({:?})", e.message),
                Kind::OtherLoop => write!(f, "JoinError::OtherLoop({:?})", e.message),
            },
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.ended {
            None => f.write_str("the task was cancelled before it produced its output"),
            Some(e) => match e.kind {
                Kind::Panicked(_) => write!(f, "the task panicked: {}", e.message),
                Kind::Failed => write!(
                    f,
                    "the task failed: {} (the error itself is in its TaskGroup's error)",
                    e.message
                ),
                Kind::OtherLoop => f.write_str(&e.message),
            },
        }
    }
}

impl std::error::Error for JoinError {}
