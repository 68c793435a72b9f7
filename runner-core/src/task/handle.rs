//! What user code holds of a task: [`JoinHandle`], [`CurrentTask`], and
//! [`JoinError`], what awaiting a task gives when it has no output.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::rc::Weak;
use std::task::{Context as TaskContext, Poll, Waker};

use sync_wrapper::SyncWrapper;

use super::core::{Outcome, TaskCore, TaskRef};
use super::sched::{self, Scheduler};
use crate::runtime::{ExceptionContext, TaskId};

type Output<T> = Result<T, JoinError>;

/// An owned permission to await, cancel and inspect a spawned task.
///
/// Awaiting it gives the task's output, or a [`JoinError`] when the task was
/// cancelled or panicked. Dropping it detaches the task: it keeps running,
/// and if it panics, the panic is reported to the loop's exception handler.
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
    /// async-task's handle; `None` once detached (in `drop`).
    task: Option<async_task::Task<Output<T>, TaskCore>>,
    sched: Weak<Scheduler>,
}

impl<T: 'static> JoinHandle<T> {
    pub(crate) fn new(task: async_task::Task<Output<T>, TaskCore>, sched: Weak<Scheduler>) -> JoinHandle<T> {
        JoinHandle {
            task: Some(task),
            sched,
        }
    }

    fn core(&self) -> &TaskCore {
        self.task.as_ref().expect("invariant: detached only in drop").metadata()
    }

    /// Requests the task's cancellation (asyncio's `Task.cancel()`); `false`
    /// when the task is already done. See the [module docs](crate::task) for
    /// where the cancellation lands.
    pub fn cancel(&self) -> bool {
        self.core().cancel()
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

    /// How many cancellation requests are outstanding (Python's
    /// `Task.cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.core().cancelling()
    }

    /// Takes back one cancellation request and returns how many remain
    /// (Python's `Task.uncancel()`).
    pub fn uncancel(&self) -> u32 {
        self.core().uncancel()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.core().id()
    }

    /// The task's name, if one was set.
    pub fn name(&self) -> Option<String> {
        self.sched.upgrade().and_then(|s| s.name(self.core()))
    }

    /// Names the task; the name appears in reports and debug output.
    pub fn set_name(&self, name: impl Into<String>) {
        if let Some(s) = self.sched.upgrade() {
            s.set_name(self.core(), name.into());
        }
    }

    /// Where the task was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.core().spawned_at
    }

    /// Names the task "main" (a runner's main task), without the name
    /// table.
    pub(crate) fn mark_main(&self) {
        self.core().mark_main();
    }

    /// A counted reference to the task, while its future lives.
    pub(crate) fn task_ref(&self) -> Option<TaskRef> {
        self.core().task_ref()
    }

    /// The outcome of a finished task, without a waker; `None` while it runs.
    pub(crate) fn take_outcome(&mut self) -> Option<Output<T>> {
        if self.core().output_taken() || !self.is_done() {
            return None;
        }
        match self.poll_task(&mut TaskContext::from_waker(Waker::noop())) {
            Poll::Ready(outcome) => Some(outcome),
            Poll::Pending => None,
        }
    }

    fn poll_task(&mut self, cx: &mut TaskContext<'_>) -> Poll<Output<T>> {
        assert!(
            !self.core().output_taken(),
            "JoinHandle polled after it returned the task's outcome"
        );
        let task = self.task.as_mut().expect("invariant: detached only in drop");
        let poll = Pin::new(task).poll(cx);
        if poll.is_ready() {
            self.core().mark_output_taken();
        }
        poll
    }
}

impl<T: 'static> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let me = self.core() as *const TaskCore;
        let awaiter_is_me = sched::with_current_task(|c| std::ptr::eq(c, me)).unwrap_or(false);
        assert!(
            !awaiter_is_me,
            "task {} awaited its own JoinHandle, which can never complete; await the handle from another task",
            self.id()
        );
        let poll = self.poll_task(cx);
        if poll.is_pending() {
            let target = self.task_ref();
            sched::with_current_task(|c| c.set_awaiting(target));
        }
        poll
    }
}

impl<T: 'static> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if self.core().output_taken() {
            return;
        }
        if self.is_done() {
            // Finished and never awaited: a panic in it is reported now
            // (unless closing already did).
            let reported = self.core().panic_reported();
            if let Some(Err(e)) = self.take_outcome() {
                if e.is_panic() && !reported {
                    if let Some(sched) = self.sched.upgrade() {
                        sched.report(ExceptionContext {
                            message: sched.unretrieved_panic_message().into(),
                            panic: e.panic_message(),
                            task: Some(sched.info(self.core())),
                        });
                    }
                }
            }
            return;
        }
        // Still running: detached; it reports its panic when it finishes.
        self.core().mark_detached();
        if let Some(task) = self.task.take() {
            task.detach();
        }
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

/// A handle on the task that is running now, from inside it
/// ([`current_task`](crate::current_task)).
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

    /// Requests the task's own cancellation; it lands at its next suspension.
    pub fn cancel(&self) -> bool {
        self.core().cancel()
    }

    /// Outstanding cancellation requests (Python's `Task.cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.core().cancelling()
    }

    /// Takes back one cancellation request; returns how many remain.
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
/// panicked.
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
    panic: Option<Box<Panicked>>,
}

struct Panicked {
    /// Read when reporting; taken from the payload when it was caught.
    message: String,
    payload: SyncWrapper<Box<dyn Any + Send + 'static>>,
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError { panic: None }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            panic: Some(Box::new(Panicked {
                message: panic_message(payload.as_ref()),
                payload: SyncWrapper::new(payload),
            })),
        }
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.panic.is_none()
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        self.panic.is_some()
    }

    /// The panic's message, when the task panicked (with a string; other
    /// payloads give a placeholder).
    pub fn panic_message(&self) -> Option<String> {
        self.panic.as_ref().map(|p| p.message.clone())
    }

    /// The panic payload, to pass to [`std::panic::resume_unwind`].
    ///
    /// # Panics
    /// When the task was cancelled rather than panicked (check
    /// [`is_panic`](Self::is_panic) first, or use
    /// [`try_into_panic`](Self::try_into_panic)).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        self.try_into_panic().unwrap_or_else(|_| {
            panic!("JoinError::into_panic called on a cancelled task's error; check is_panic() first")
        })
    }

    /// The panic payload, or the error back when the task was cancelled.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.panic {
            Some(p) => Ok(p.payload.into_inner()),
            None => Err(self),
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
        match &self.panic {
            None => f.write_str("JoinError::Cancelled"),
            Some(p) => write!(f, "JoinError::Panicked({:?})", p.message),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.panic {
            None => f.write_str("the task was cancelled before it produced its output"),
            Some(p) => write!(f, "the task panicked: {}", p.message),
        }
    }
}

impl std::error::Error for JoinError {}
