//! Structured concurrency: [`task_group`], asyncio 3.11's `TaskGroup`.
//!
//! A group is a scope: its body spawns children through the [`TaskGroup`]
//! it is given, and the scope ends only when every child has finished. The
//! first failure (a child or the body returning `Err`, or panicking)
//! cancels the other children and the body; every failure is kept, in the
//! order they happened (the body's last, as asyncio appends it), in the
//! [`TaskGroupError`] the scope returns. A cancellation of the task that
//! runs the scope cancels the children too, waits for their cleanup, and
//! then goes on as that task's cancellation. [`TaskGroup::cancel`]
//! (asyncio 3.15) ends a group early: as a failure does, without one, and
//! the cancellation it sent ends with the scope.
//!
//! How it maps to the task layer: the body and the wait for the children
//! each run inside a [`cancellable`], so a cancellation of the owner task
//! lands there (or in a `cancellable` of the body's own, which can clean
//! up first) and is caught; the group cancels its owner itself on the
//! first failure (a counted request, taken back with `uncancel` when the
//! scope ends, as asyncio's `TaskGroup` does); a caught cancellation that
//! was not the group's is handed back to the owner when the scope returns:
//! it lands at the owner's next suspension, outside the scope.
//!
//! A child is spawned as a task whose future is the user's wrapped in
//! [`Child`]: it records the child's failure in the group (the error, or
//! the panic with its payload) and ends the task with a [`JoinError`]
//! saying so; its [`Membership`], dropped after the user's future (so
//! after its cleanup), tells the group the child is gone.
//!
//! What a scope gives when it gives no value, [`TaskGroupError`] and each
//! [`Failure`] in it, is the child module `error`.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use pin_project_lite::pin_project;

use super::cancel::{cancellable, Cancelled, WatchFlight};
use super::handle::{panic_message, JoinError, JoinHandle};
use super::raw::TaskRef;
use super::{harness, sched};
use crate::context::Context as VarContext;
use crate::runtime::ExceptionContext;

mod error;

use self::error::Ended;
pub use self::error::{Failure, TaskGroupError};

/// A boxed error, as a group keeps its children's errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a group's body and children return: `Result<T, E>`, whose `Err`
/// is a failure (except a cancellation handed on, which goes on as a
/// cancellation: a caught [`Cancelled`] returned as the error, also inside
/// an `io::Error` as `io::Error::other(cancelled)`, Python's `raise` in an
/// `except CancelledError:`; or a nested scope's [`TaskGroupError`] that
/// says [`is_cancelled`](TaskGroupError::is_cancelled), its `?`), or `()`.
pub trait TaskResult: 'static {
    /// The value on success.
    type Ok: 'static;
    /// The value, or the failure.
    fn into_result(self) -> Result<Self::Ok, BoxError>;
}

impl<T: 'static, E: Into<BoxError> + 'static> TaskResult for Result<T, E> {
    type Ok = T;
    fn into_result(self) -> Result<T, BoxError> {
        self.map_err(Into::into)
    }
}

impl TaskResult for () {
    type Ok = ();
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

/// Runs `body` as the scope of a task group (asyncio's `async with
/// asyncio.TaskGroup() as tg:`) and returns once it and every child it
/// spawned have finished.
///
/// The first failure (a child or the body returning `Err`, or panicking)
/// cancels the other children and the body; their cancellation cleanup
/// (`cancellable` + `.await`) runs before the scope returns. The result is
/// the body's value when nothing failed, else a [`TaskGroupError`] with
/// every failure. If the task running the scope is cancelled, the children
/// are cancelled, their cleanup awaited, and the cancellation goes on as
/// the task's own (the error says [`is_cancelled`](TaskGroupError::is_cancelled)):
/// it lands at the task's next suspension outside the scope.
/// [`TaskGroup::cancel`] ends the group early, without a failure. Dropping
/// the scope before it finished cancels the children.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{sleep, task_group};
///
/// let total = runner_core::run(async {
///     task_group(|tg| async move {
///         let a = tg.spawn(async { sleep(Duration::from_millis(2)).await; Ok::<_, std::io::Error>(40) });
///         let b = tg.spawn(async { Ok::<_, std::io::Error>(2) });
///         // The scope waits for both; their handles give their values.
///         Ok::<_, std::io::Error>(a.await.unwrap() + b.await.unwrap())
///     })
///     .await
/// })
/// .unwrap();
/// assert_eq!(total.unwrap(), 42);
/// ```
///
/// A failure cancels the rest:
///
/// ```
/// use std::time::Duration;
/// use runner_core::{sleep, task_group};
///
/// let err = runner_core::run(async {
///     task_group(|tg| async move {
///         tg.spawn(async { sleep(Duration::from_secs(3600)).await; Ok::<_, String>(()) });
///         tg.spawn(async { Err::<(), _>("disk full".to_string()) });
///         sleep(Duration::from_secs(3600)).await; // cancelled by the failure
///         Ok::<_, String>(())
///     })
///     .await
/// })
/// .unwrap()
/// .unwrap_err();
/// assert_eq!(err.failures().len(), 1);
/// assert_eq!(err.failures()[0].to_string(), format!("{} failed: disk full", err.failures()[0].task().unwrap()));
/// ```
///
/// # Panics
/// `TaskGroup::spawn` panics when no loop runs on this thread, as
/// [`spawn`](crate::spawn) does.
pub async fn task_group<B, Fut>(body: B) -> Result<<Fut::Output as TaskResult>::Ok, TaskGroupError>
where
    B: FnOnce(TaskGroup) -> Fut,
    Fut: IntoFuture,
    Fut::Output: TaskResult,
{
    let owner = sched::current_raw().map(|t| t.task_ref());
    // The body's scope is named now, so that the group's cancellations of
    // its owner can be meant for it.
    let body_scope = owner.as_ref().map_or(0, |o| o.core().new_scope());
    let inner = Rc::new(Inner {
        owner,
        body_scope,
        children: RefCell::new(Vec::new()),
        free: RefCell::new(Vec::new()),
        live: Cell::new(0),
        failures: RefCell::new(Vec::new()),
        aborting: Cell::new(false),
        exiting: Cell::new(false),
        parent_cancel_requested: Cell::new(false),
        closed: Cell::new(false),
        waker: RefCell::new(None),
    });
    let guard = CloseOnDrop(inner.clone());
    let group = TaskGroup { inner: inner.clone() };

    let mut propagate_cancel = false;
    let mut value = None;
    let mut body_failure = None;
    let mut body = pin!(WatchFlight::new(cancellable(CatchPanic::new(
        body(group).into_future()
    ))));
    body.as_mut().inner().set_scope(body_scope);
    let (ended, came_out) = body.await;
    // A body that finished with a cancellation in flight (a nested scope
    // that was cancelled hands it on, and the body returned at once) let
    // it come out: the scope catches it here, as its `cancellable` would
    // have at the body's next suspension.
    if came_out {
        if let Some(owner) = &inner.owner {
            owner.core().set_cancel_pending(false);
        }
    }
    match ended {
        Ok(Ok(out)) => match out.into_result() {
            // With a cancellation in flight the value stands only if that
            // cancellation was the group's own (`TaskGroup::cancel`).
            Ok(v) => {
                propagate_cancel = came_out;
                value = Some(v);
            }
            // A caught cancellation, re-raised: not a failure.
            Err(e) if is_cancellation(&e) => propagate_cancel = true,
            Err(e) => body_failure = Some(Failure::from_error(None, e)),
        },
        Ok(Err(payload)) => body_failure = Some(Failure::from_panic(None, payload)),
        Err(_cancelled) => propagate_cancel = true,
    }
    if (propagate_cancel || body_failure.is_some()) && !inner.aborting.get() {
        inner.abort();
    }
    inner.exiting.set(true);
    while inner.live.get() > 0 {
        if cancellable(WaitChildren(&inner)).await.is_err() {
            // The owner was cancelled while the body was done and the
            // children ran: it goes on, unless it was the group's own
            // (taken back below).
            propagate_cancel = true;
            if !inner.aborting.get() {
                inner.abort();
            }
        }
    }
    inner.closed.set(true);
    drop(guard);
    if inner.parent_cancel_requested.get() {
        // The group's own cancellation of its owner is taken back; if it
        // was the only one, it does not go on (and, not delivered yet
        // because the body finished first, it is not to be).
        if let Some(owner) = &inner.owner {
            if owner.core().uncancel() == 0 {
                propagate_cancel = false;
            }
        }
    }
    let mut failures = inner.failures.take();
    failures.extend(body_failure);
    if !failures.is_empty() {
        // The failures win over a cancellation from outside, which still
        // goes on: it lands at the owner's next suspension (asyncio 3.13
        // un-cancels and re-cancels the parent task), so a Ctrl-C or a
        // `cancel()` that came with a child's failure is not lost. A task
        // that returns the error without suspending again ends with it,
        // as an asyncio task that raises the `ExceptionGroup` does.
        if let Some(owner) = &inner.owner {
            if owner.core().cancelling() > 0 {
                owner.core().pend_at_suspension();
            }
        }
        return Err(TaskGroupError {
            failures,
            ended: Ended::Failed,
        });
    }
    if propagate_cancel {
        // The caught cancellation goes on as the owner's, from here.
        if let Some(owner) = &inner.owner {
            owner.core().pend_in_flight_here();
        }
        return Err(TaskGroupError {
            failures,
            ended: Ended::OwnerCancelled,
        });
    }
    // No value and nothing else to say: `TaskGroup::cancel` interrupted
    // the body (its cancellation, the group's own, ends here).
    value.ok_or(TaskGroupError {
        failures,
        ended: Ended::GroupCancelled,
    })
}

/// Whether a body's or child's error is a cancellation handed on: a
/// caught [`Cancelled`] returned (also wrapped in an `io::Error`, how a
/// function returning `io::Result` hands it on: `io::Error::other(cancelled)`),
/// or the error of a nested scope that was cancelled (its `?`), as
/// Python's `CancelledError` goes through `async with TaskGroup()`.
fn is_cancellation(e: &BoxError) -> bool {
    e.is::<Cancelled>()
        || e.downcast_ref::<TaskGroupError>()
            .is_some_and(TaskGroupError::is_cancelled)
        || e.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .is_some_and(|inner| inner.is::<Cancelled>())
}

/// What a group's body spawns children with (asyncio's `tg.create_task`).
/// Cheap to clone; `!Send`, like the loop's tasks.
#[derive(Clone)]
pub struct TaskGroup {
    inner: Rc<Inner>,
}

impl TaskGroup {
    /// Spawns `fut` as a child of the group, in a copy of the current
    /// context. Its `Err` (or panic) is a failure of the group: the error
    /// goes to the group's [`TaskGroupError`], and the handle's await gives
    /// a [`JoinError`] that says so ([`is_failed`](JoinError::is_failed),
    /// or [`is_panic`](JoinError::is_panic) with the panic's message); its
    /// `Ok` value is the handle's.
    ///
    /// Spawning into a group that is shutting down (after a failure) or
    /// finished gives a task that is cancelled before it runs, as asyncio
    /// refuses new tasks then.
    ///
    /// # Panics
    /// When no loop runs on this thread, as [`spawn`](crate::spawn) does.
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<<F::Output as TaskResult>::Ok>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: TaskResult,
    {
        self.spawn_at(fut, None, Location::caller())
    }

    /// Like [`spawn`](Self::spawn), but the child runs in `ctx` itself, not
    /// a copy of the current context: what it sets stays in `ctx`
    /// (asyncio's `create_task(coro, context=ctx)`).
    ///
    /// ```
    /// use runner_core::{task_group, BoxError, Context, ContextVar};
    ///
    /// static USER: ContextVar<&'static str> = ContextVar::new("user");
    ///
    /// let ctx = Context::new();
    /// runner_core::run({
    ///     let ctx = ctx.clone();
    ///     async move {
    ///         task_group(|tg| async move {
    ///             tg.spawn_in_context(async { USER.set("ada"); Ok::<_, BoxError>(()) }, &ctx);
    ///             Ok::<_, BoxError>(())
    ///         })
    ///         .await
    ///         .unwrap();
    ///     }
    /// })
    /// .unwrap();
    /// assert_eq!(ctx.get(&USER), Some("ada"));
    /// ```
    ///
    /// # Panics
    /// When no loop is running on this thread, as [`spawn`](crate::spawn) does.
    #[track_caller]
    pub fn spawn_in_context<F>(&self, fut: F, ctx: &VarContext) -> JoinHandle<<F::Output as TaskResult>::Ok>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: TaskResult,
    {
        self.spawn_at(fut, Some(ctx.clone()), Location::caller())
    }

    fn spawn_at<F>(
        &self,
        fut: F,
        ctx: Option<VarContext>,
        at: &'static Location<'static>,
    ) -> JoinHandle<<F::Output as TaskResult>::Ok>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: TaskResult,
    {
        let Some(sched) = sched::current() else {
            panic!(
                "TaskGroup::spawn called outside a running event loop: call it from async code running inside \
                 runner_core::run(..)"
            )
        };
        let slot = self.inner.reserve();
        let child = Child {
            fut: fut.into_future(),
            group: self.inner.clone(),
            _member: Membership {
                group: self.inner.clone(),
                slot,
            },
        };
        let handle = harness::spawn_flat(&sched, child, ctx, at);
        self.inner.children.borrow_mut()[slot] = Some(handle.task_ref());
        if self.inner.aborting.get() || self.inner.closed.get() {
            handle.cancel();
        }
        handle
    }

    /// How many children are still running.
    pub fn len(&self) -> usize {
        self.inner.live.get()
    }

    /// Whether no child is running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Cancels the group (asyncio 3.15's `TaskGroup.cancel()`): every
    /// child not yet done is cancelled, and so is the body, if it is still
    /// running (through the task that runs the scope, as a failure does).
    /// Their cleanup runs; then the scope ends *without* the cancellation
    /// going on: this cancellation is the group's own and ends with it.
    ///
    /// The scope gives the body's value if the body finished anyway (it
    /// had returned, or it caught the cancellation and went on to the
    /// end); else a [`TaskGroupError`] that says
    /// [`is_group_cancelled`](TaskGroupError::is_group_cancelled) and holds
    /// no failure. Failures still win: a child that fails in its
    /// cancellation cleanup makes the scope's error a failure. A
    /// cancellation of the scope's task from elsewhere still goes on.
    ///
    /// Idempotent; after the scope ended it does nothing. Children
    /// spawned afterwards are cancelled before they run.
    ///
    /// ```
    /// use std::time::Duration;
    /// use runner_core::{sleep, task_group, BoxError};
    ///
    /// runner_core::run(async {
    ///     let r = task_group(|tg| async move {
    ///         // A server and its workers, until one of them says "enough".
    ///         tg.spawn(async { sleep(Duration::from_secs(3600)).await; Ok::<_, BoxError>(()) });
    ///         let stop = tg.clone();
    ///         tg.spawn(async move {
    ///             sleep(Duration::from_millis(5)).await;
    ///             stop.cancel();
    ///             Ok::<_, BoxError>(())
    ///         });
    ///         Ok::<_, BoxError>("the body's value")
    ///     })
    ///     .await;
    ///     // The body had finished: its value stands; no cancellation goes on.
    ///     assert_eq!(r.unwrap(), "the body's value");
    ///     sleep(Duration::from_millis(1)).await;
    /// })
    /// .unwrap();
    /// ```
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

impl fmt::Debug for TaskGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("children", &self.inner.live.get())
            .field("failures", &self.inner.failures.borrow().len())
            .field("aborting", &self.inner.aborting.get())
            .field("closed", &self.inner.closed.get())
            .finish()
    }
}

struct Inner {
    /// The task running the scope, cancelled by the first failure.
    owner: Option<TaskRef>,
    /// The body's `cancellable` scope in the owner, which the group's
    /// cancellations of the owner are meant for (0: no owner).
    body_scope: u32,
    /// The children by slot; `None` once gone.
    children: RefCell<Vec<Option<TaskRef>>>,
    free: RefCell<Vec<usize>>,
    live: Cell<usize>,
    failures: RefCell<Vec<Failure>>,
    /// The first failure (or the owner's cancellation) cancelled the
    /// children.
    aborting: Cell<bool>,
    /// The body is done; the scope waits for the children.
    exiting: Cell<bool>,
    /// The group cancelled its owner (taken back when the scope ends).
    parent_cancel_requested: Cell<bool>,
    /// The scope ended (or was dropped).
    closed: Cell<bool>,
    /// The scope, waiting for the children.
    waker: RefCell<Option<Waker>>,
}

impl Inner {
    fn reserve(&self) -> usize {
        self.live.set(self.live.get() + 1);
        match self.free.borrow_mut().pop() {
            Some(slot) => slot,
            None => {
                let mut children = self.children.borrow_mut();
                children.push(None);
                children.len() - 1
            }
        }
    }

    fn release(&self, slot: usize) {
        // The `TaskRef` is dropped outside the borrow (it may free a task).
        let gone = self.children.borrow_mut()[slot].take();
        drop(gone);
        self.free.borrow_mut().push(slot);
        self.live.set(self.live.get() - 1);
        if self.live.get() == 0 {
            if let Some(w) = self.waker.borrow_mut().take() {
                w.wake();
            }
        }
    }

    /// Cancels every child.
    fn abort(&self) {
        self.aborting.set(true);
        let children: Vec<TaskRef> = self.children.borrow().iter().flatten().cloned().collect();
        for child in children {
            child.cancel();
        }
    }

    /// `TaskGroup::cancel`: the children and the body are cancelled; the
    /// body's through the owner, a request taken back when the scope ends.
    /// Idempotent: each part happens once (as after a failure).
    fn cancel(&self) {
        if self.closed.get() {
            return;
        }
        if !self.aborting.get() {
            self.abort();
        }
        if !self.exiting.get() && !self.parent_cancel_requested.get() {
            if let Some(owner) = &self.owner {
                self.parent_cancel_requested.set(true);
                owner.cancel_in(self.body_scope);
            }
        }
    }

    /// A child failed.
    fn fail(&self, failure: Failure) {
        if self.closed.get() {
            // The scope is gone (its owner dropped it): nobody will read
            // the group's error, so the loop's handler hears of it.
            if let Some(sched) = sched::current() {
                sched.report(ExceptionContext {
                    message: format!("a TaskGroup child failed after its scope was dropped: {failure}"),
                    panic: failure.panic_message().map(str::to_string),
                    task: None,
                });
            }
            return;
        }
        self.failures.borrow_mut().push(failure);
        if !self.aborting.get() && !self.parent_cancel_requested.get() {
            self.abort();
            if !self.exiting.get() {
                // The body is still running: cancel it (through its task).
                if let Some(owner) = &self.owner {
                    self.parent_cancel_requested.set(true);
                    owner.cancel_in(self.body_scope);
                }
            }
        }
    }
}

/// Cancels the children of a scope dropped before it finished.
struct CloseOnDrop(Rc<Inner>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if !self.0.closed.get() {
            self.0.closed.set(true);
            self.0.abort();
            if self.0.parent_cancel_requested.replace(false) {
                if let Some(owner) = &self.0.owner {
                    // The group asked to cancel its owner (a failure, or
                    // `TaskGroup::cancel`) and is dropped before it could
                    // take that back (a `select!`'s losing branch): taken
                    // back now, as the scope's end does; with no request
                    // left, the cancellation it caused goes with it, so
                    // that a group that is gone cancels nothing.
                    if owner.core().uncancel() == 0 && sched::current_raw() == Some(owner.raw()) {
                        owner.core().consume_delivered();
                    }
                }
            }
        }
    }
}

/// The scope's wait for its children.
struct WaitChildren<'a>(&'a Inner);

impl Future for WaitChildren<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.live.get() == 0 {
            return Poll::Ready(());
        }
        *self.0.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

pin_project! {
    /// A child's future: the user's, recording its failure in the group.
    struct Child<F> {
        #[pin]
        fut: F,
        group: Rc<Inner>,
        // Dropped after `fut` (fields drop in order): the group hears the
        // child is gone once its cleanup ran.
        _member: Membership,
    }
}

struct Membership {
    group: Rc<Inner>,
    slot: usize,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.group.release(self.slot);
    }
}

impl<F> Future for Child<F>
where
    F: Future,
    F::Output: TaskResult,
{
    type Output = Result<<F::Output as TaskResult>::Ok, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let id = || sched::current_raw().map(|t| t.core().id());
        match catch_unwind(AssertUnwindSafe(|| this.fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => match out.into_result() {
                Ok(v) => Poll::Ready(Ok(v)),
                // A caught cancellation, re-raised: the child ends
                // cancelled, which is no failure.
                Err(e) if is_cancellation(&e) => Poll::Ready(Err(JoinError::cancelled())),
                Err(e) => {
                    let message = e.to_string();
                    this.group.fail(Failure::from_error(id(), e));
                    Poll::Ready(Err(JoinError::failed(message)))
                }
            },
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                // The group reports it; the loop does not again.
                sched::with_current_task(|core| core.mark_panic_reported());
                this.group.fail(Failure::from_panic(id(), payload));
                Poll::Ready(Err(JoinError::panicked(Box::new(message))))
            }
        }
    }
}

pin_project! {
    /// The body, with its panic caught as a value.
    struct CatchPanic<F> {
        #[pin]
        inner: Option<F>,
    }
}

impl<F> CatchPanic<F> {
    fn new(inner: F) -> CatchPanic<F> {
        CatchPanic { inner: Some(inner) }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("CatchPanic polled after completion");
        };
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => {
                this.inner.set(None);
                Poll::Ready(Ok(v))
            }
            Err(payload) => {
                // What is left of the body is dropped now; a panic in its
                // destructors is lost to the first one.
                let _ = catch_unwind(AssertUnwindSafe(|| this.inner.set(None)));
                Poll::Ready(Err(payload))
            }
        }
    }
}
