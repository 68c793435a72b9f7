//! Tasks: spawned futures, their handles, and cancellation.
//!
//! A task is one `Rc` allocation holding the boxed future (or, once done, its
//! outcome) and a `TaskCore` of plain `Cell`s: the loop thread is the only
//! one that ever touches a task, so no field needs a lock or an atomic. The
//! one part other threads see is the [`Waker`], an `Arc<Header>` holding
//! only the task's slot number and the loop's thread-safe queue. Waking on
//! the loop thread pushes onto the loop's ready queue directly; waking from
//! any other thread sends the slot number through the loop's remote queue
//! and wakes the poller (see `event_loop`).
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
//! The scopes learn where they are by recording themselves in the current
//! task's core during the poll (a depth counter and the innermost scope that
//! returned `Pending`). Cancellation requests are counted: `cancelling()`
//! says how many are outstanding and `uncancel()` takes one back, as in
//! Python 3.11; the runner uses this to tell Ctrl-C from other cancellations.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use sync_wrapper::SyncWrapper;

use crate::context::{self, ContextHolder, Map};
use crate::event_loop::{self, LoopCore, Shared};
use crate::Context;

/// A task's unique number (unique across all loops of the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

static NEXT_TASK_ID: AtomicU64 = AtomicU64::new(1);

/// The thread-safe part of a task: what its [`Waker`] holds.
pub(crate) struct Header {
    pub(crate) key: usize,
    pub(crate) shared: Arc<Shared>,
    /// Whether the task is in the loop's ready queue. Only the loop thread
    /// reads or writes it (relaxed loads and stores, no read-modify-write);
    /// it lives here so a local wake needs no lookup of the task.
    pub(crate) scheduled: AtomicBool,
    /// Set while a remote wake is queued, so that a thread waking a task many
    /// times sends one message.
    pub(crate) remote_queued: AtomicBool,
}

impl Wake for Header {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if event_loop::schedule_local(self) {
            return;
        }
        if !self.remote_queued.swap(true, Ordering::AcqRel) {
            self.shared.send_wake(self.clone());
        }
    }
}

/// Where the task was suspended during its last poll, for cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suspended {
    /// Outside any `cancellable` or `shield` (or never polled).
    Bare,
    /// Inside the `cancellable` scope with this id (the innermost one).
    Catch(u64),
    /// Inside a `shield`.
    Shielded,
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Running,
    Completed,
    Cancelled,
    Panicked,
}

/// What a task's context is: its own copy, or a shared [`Context`]
/// (the runner's, for the main task).
enum TaskCtx {
    Own(RefCell<Map>),
    Shared(Context),
}

/// The type-independent state of a task. Only touched on the loop thread.
pub(crate) struct TaskCore {
    pub(crate) id: TaskId,
    pub(crate) header: Arc<Header>,
    pub(crate) waker: Waker,
    /// Whether the future was ever polled (for debug reports).
    pub(crate) polled: Cell<bool>,
    outcome: Cell<Outcome>,
    cancel_requests: Cell<u32>,
    cancel_pending: Cell<bool>,
    suspended: Cell<Suspended>,
    deliver_to: Cell<Option<u64>>,
    next_scope: Cell<u64>,
    depth: Cell<u32>,
    innermost_catch: Cell<Option<(u64, u32)>>,
    shield_pending: Cell<bool>,
    join_waker: RefCell<Option<Waker>>,
    detached: Cell<bool>,
    name: RefCell<Option<String>>,
    pub(crate) spawned_at: &'static Location<'static>,
    ctx: TaskCtx,
    awaiting: RefCell<Option<Rc<dyn RawTask>>>,
    pub(crate) event_loop: Weak<LoopCore>,
}

impl TaskCore {
    pub(crate) fn is_done(&self) -> bool {
        self.outcome.get() != Outcome::Running
    }

    pub(crate) fn outcome(&self) -> Outcome {
        self.outcome.get()
    }

    pub(crate) fn name(&self) -> Option<String> {
        self.name.borrow().clone()
    }

    pub(crate) fn info(&self) -> TaskInfo {
        TaskInfo {
            id: self.id,
            name: self.name(),
            spawned_at: self.spawned_at,
        }
    }

    /// Requests cancellation; `false` when the task is already done.
    pub(crate) fn cancel(&self) -> bool {
        if self.is_done() {
            return false;
        }
        self.cancel_requests.set(self.cancel_requests.get() + 1);
        self.cancel_pending.set(true);
        // A task awaiting another task's handle cancels that task too, as
        // asyncio cancels the future a task waits on.
        let awaited = self.awaiting.borrow().clone();
        if let Some(awaited) = awaited {
            awaited.core().cancel();
        }
        self.waker.wake_by_ref();
        true
    }

    pub(crate) fn uncancel(&self) -> u32 {
        let n = self.cancel_requests.get().saturating_sub(1);
        self.cancel_requests.set(n);
        n
    }

    pub(crate) fn cancelling(&self) -> u32 {
        self.cancel_requests.get()
    }
}

/// A spawned task, type-erased for the loop.
pub(crate) trait RawTask: ContextHolder {
    fn core(&self) -> &TaskCore;
    /// Polls the future once (catching a panic); `true` when it finished.
    fn poll_future(&self) -> bool;
    /// Drops the future (catching a panic from its destructors) and records
    /// the task as cancelled, or as panicked if a destructor panicked.
    fn drop_future(&self);
    /// Takes the panic message of a panicked task whose outcome nobody
    /// retrieved, so it can be reported once.
    fn take_unretrieved_panic(&self) -> Option<String>;
}

enum Stage<T> {
    Running(Pin<Box<dyn Future<Output = T>>>),
    Finished(Result<T, JoinError>),
    Consumed,
}

struct Task<T> {
    core: TaskCore,
    stage: RefCell<Stage<T>>,
}

impl<T> ContextHolder for Task<T> {
    fn map_cell(&self) -> &RefCell<Map> {
        match &self.core.ctx {
            TaskCtx::Own(map) => map,
            TaskCtx::Shared(ctx) => ctx.map_cell(),
        }
    }

    fn context_id(&self) -> u64 {
        match &self.core.ctx {
            TaskCtx::Own(_) => self.core.id.0,
            TaskCtx::Shared(ctx) => ctx.context_id(),
        }
    }
}

impl<T: 'static> RawTask for Task<T> {
    fn core(&self) -> &TaskCore {
        &self.core
    }

    fn poll_future(&self) -> bool {
        let mut stage = self.stage.borrow_mut();
        let Stage::Running(fut) = &mut *stage else {
            return true;
        };
        let mut cx = TaskContext::from_waker(&self.core.waker);
        let result = match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => return false,
            Ok(Poll::Ready(value)) => Ok(value),
            Err(payload) => Err(JoinError::panicked(payload)),
        };
        let old = std::mem::replace(&mut *stage, Stage::Consumed);
        drop(stage);
        // The finished future is dropped outside the borrow: its destructors
        // may look at this task (e.g. through a handle).
        let drop_panic = catch_unwind(AssertUnwindSafe(|| drop(old))).err();
        let result = match (result, drop_panic) {
            (Ok(_), Some(payload)) => Err(JoinError::panicked(payload)),
            (result, _) => result,
        };
        let outcome = match &result {
            Ok(_) => Outcome::Completed,
            Err(e) if e.is_panic() => Outcome::Panicked,
            Err(_) => Outcome::Cancelled,
        };
        *self.stage.borrow_mut() = Stage::Finished(result);
        self.core.outcome.set(outcome);
        true
    }

    fn drop_future(&self) {
        let old = std::mem::replace(&mut *self.stage.borrow_mut(), Stage::Consumed);
        let result = match catch_unwind(AssertUnwindSafe(|| drop(old))) {
            Ok(()) => (Outcome::Cancelled, JoinError::cancelled()),
            Err(payload) => (Outcome::Panicked, JoinError::panicked(payload)),
        };
        *self.stage.borrow_mut() = Stage::Finished(Err(result.1));
        self.core.outcome.set(result.0);
    }

    fn take_unretrieved_panic(&self) -> Option<String> {
        let mut stage = self.stage.borrow_mut();
        match &*stage {
            Stage::Finished(Err(e)) if e.is_panic() => {}
            _ => return None,
        }
        match std::mem::replace(&mut *stage, Stage::Consumed) {
            Stage::Finished(Err(e)) => Some(e.panic_message().unwrap_or_default()),
            _ => None,
        }
    }
}

impl<T: 'static> Task<T> {
    fn poll_join(&self, cx: &mut TaskContext<'_>) -> Poll<Result<T, JoinError>> {
        if !self.core.is_done() {
            let mut slot = self.core.join_waker.borrow_mut();
            match &*slot {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *slot = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        match std::mem::replace(&mut *self.stage.borrow_mut(), Stage::Consumed) {
            Stage::Finished(result) => Poll::Ready(result),
            _ => panic!("JoinHandle polled after it returned the task's outcome"),
        }
    }
}

/// Creates a task; the loop gives it its slot and schedules it.
pub(crate) fn new_task<F>(
    fut: F,
    key: usize,
    shared: &Arc<Shared>,
    event_loop: Weak<LoopCore>,
    ctx: Option<Context>,
    spawned_at: &'static Location<'static>,
) -> (Rc<dyn RawTask>, JoinHandle<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
{
    let header = Arc::new(Header {
        key,
        shared: shared.clone(),
        remote_queued: AtomicBool::new(false),
        scheduled: AtomicBool::new(false),
    });
    let ctx = match ctx {
        Some(ctx) => TaskCtx::Shared(ctx),
        None => TaskCtx::Own(RefCell::new(context::current_map().for_spawn())),
    };
    let task = Rc::new(Task {
        core: TaskCore {
            id: TaskId(NEXT_TASK_ID.fetch_add(1, Ordering::Relaxed)),
            waker: Waker::from(header.clone()),
            header,
            polled: Cell::new(false),
            outcome: Cell::new(Outcome::Running),
            cancel_requests: Cell::new(0),
            cancel_pending: Cell::new(false),
            suspended: Cell::new(Suspended::Bare),
            deliver_to: Cell::new(None),
            next_scope: Cell::new(1),
            depth: Cell::new(0),
            innermost_catch: Cell::new(None),
            shield_pending: Cell::new(false),
            join_waker: RefCell::new(None),
            detached: Cell::new(false),
            name: RefCell::new(None),
            spawned_at,
            ctx,
            awaiting: RefCell::new(None),
            event_loop,
        },
        stage: RefCell::new(Stage::Running(Box::pin(fut))),
    });
    let handle = JoinHandle { task: task.clone() };
    (task, handle)
}

/// Runs `f` with `task` as the current task of `lp` (and so its context as
/// the current context: the running loop sets the context slot to
/// [`Slot::Task`] for the whole run). No drop guard: `f` is a poll or a drop
/// of the future, both of which catch panics, so nothing unwinds through
/// here.
fn with_current<R>(lp: &LoopCore, task: &Rc<dyn RawTask>, f: impl FnOnce() -> R) -> R {
    let prev = lp.current_task.replace(Some(task.clone()));
    let result = f();
    *lp.current_task.borrow_mut() = prev;
    result
}

/// Drops the task's future now, as the task (its destructors see it as
/// the current task), recording it as cancelled (or panicked).
pub(crate) fn drop_now(lp: &LoopCore, task: &Rc<dyn RawTask>) {
    with_current(lp, task, || task.drop_future());
}

/// Calls `f` with the current task as a context holder (`None` outside
/// tasks).
pub(crate) fn with_current_holder<R>(f: impl FnOnce(Option<&dyn ContextHolder>) -> R) -> R {
    let mut f = Some(f);
    let done =
        event_loop::with_current_task(|task| (f.take().expect("called once"))(Some(&**task as &dyn ContextHolder)));
    match done {
        Some(r) => r,
        None => (f.take().expect("not called yet"))(None),
    }
}

fn current_core<R>(f: impl FnOnce(&TaskCore) -> R) -> Option<R> {
    event_loop::with_current_task(|task| f(task.core()))
}

/// What [`run`] did with the task.
pub(crate) enum RunResult {
    Pending,
    Finished,
}

/// Runs one scheduling of `task`: delivers a pending cancellation or polls.
pub(crate) fn run(lp: &LoopCore, task: &Rc<dyn RawTask>) -> RunResult {
    let core = task.core();
    core.header.scheduled.store(false, Ordering::Relaxed);
    if core.is_done() {
        return RunResult::Finished;
    }
    if core.cancel_pending.get() {
        match core.suspended.get() {
            Suspended::Bare => {
                core.cancel_pending.set(false);
                with_current(lp, task, || task.drop_future());
                return RunResult::Finished;
            }
            Suspended::Catch(scope) => core.deliver_to.set(Some(scope)),
            Suspended::Shielded => {}
        }
    }
    core.awaiting.borrow_mut().take();
    core.depth.set(0);
    core.innermost_catch.set(None);
    core.shield_pending.set(false);

    core.polled.set(true);
    let finished = with_current(lp, task, || task.poll_future());
    core.deliver_to.set(None);
    if finished {
        if core.cancel_pending.replace(false) && core.outcome() == Outcome::Completed {
            // Cancelled right before it finished (say, inside a shield):
            // the task ends cancelled, as an asyncio task does.
            task.drop_future();
        }
        return RunResult::Finished;
    }
    let suspended = if core.shield_pending.get() {
        Suspended::Shielded
    } else if let Some((scope, _)) = core.innermost_catch.get() {
        Suspended::Catch(scope)
    } else {
        Suspended::Bare
    };
    core.suspended.set(suspended);
    if core.cancel_pending.get() && suspended != Suspended::Shielded {
        // Not delivered yet (the task was shielded, or the scope it was
        // aimed at was not reached): deliver at the next scheduling.
        core.waker.wake_by_ref();
    }
    RunResult::Pending
}

/// Reports the outcome of a finished task whose handle is gone, if it
/// panicked.
pub(crate) fn report_if_unretrieved(task: &dyn RawTask) {
    let core = task.core();
    if !core.detached.get() || core.outcome() != Outcome::Panicked {
        return;
    }
    if let Some(message) = task.take_unretrieved_panic() {
        if let Some(lp) = core.event_loop.upgrade() {
            lp.report(crate::ExceptionContext {
                message: lp.unretrieved_panic_message().into(),
                panic: Some(message),
                task: Some(core.info()),
            });
        }
    }
}

/// Wakes whoever awaits the task's handle.
pub(crate) fn wake_joiner(core: &TaskCore) {
    let waker = core.join_waker.borrow_mut().take();
    if let Some(w) = waker {
        w.wake();
    }
}

/// Takes the panic of a task whose handle is gone (marks it retrieved):
/// what the loop reports when it drops such a task at close.
pub(crate) fn take_detached_panic(task: &dyn RawTask) -> Option<String> {
    if task.core().detached.get() {
        take_shutdown_panic(task)
    } else {
        None
    }
}

/// Takes the panic of a finished task for the shutdown report (marks it
/// retrieved).
pub(crate) fn take_shutdown_panic(task: &dyn RawTask) -> Option<String> {
    if task.core().outcome() == Outcome::Panicked {
        task.take_unretrieved_panic()
    } else {
        None
    }
}

/// Who a task is, for reports and debug output.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// The task's name, if one was given.
    pub name: Option<String>,
    /// Where the task was spawned.
    pub spawned_at: &'static Location<'static>,
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {}", self.id)?;
        if let Some(name) = &self.name {
            write!(f, " '{name}'")?;
        }
        write!(f, " spawned at {}", self.spawned_at)
    }
}

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
    task: Rc<Task<T>>,
}

impl<T: 'static> JoinHandle<T> {
    /// Requests the task's cancellation (asyncio's `Task.cancel()`); `false`
    /// when the task is already done. See the [module docs](crate::task) for
    /// where the cancellation lands.
    pub fn cancel(&self) -> bool {
        self.task.core.cancel()
    }

    /// Whether the task finished (with an output, cancelled or panicked).
    pub fn is_done(&self) -> bool {
        self.task.core.is_done()
    }

    /// Whether the task ended cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.task.core.outcome() == Outcome::Cancelled
    }

    /// Whether the task ended by panicking.
    pub fn is_panicked(&self) -> bool {
        self.task.core.outcome() == Outcome::Panicked
    }

    /// How many cancellation requests are outstanding (Python's
    /// `Task.cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.task.core.cancelling()
    }

    /// Takes back one cancellation request and returns how many remain
    /// (Python's `Task.uncancel()`).
    pub fn uncancel(&self) -> u32 {
        self.task.core.uncancel()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.core.id
    }

    /// The task's name, if one was set.
    pub fn name(&self) -> Option<String> {
        self.task.core.name()
    }

    /// Names the task; the name appears in reports and debug output.
    pub fn set_name(&self, name: impl Into<String>) {
        *self.task.core.name.borrow_mut() = Some(name.into());
    }

    /// Where the task was spawned.
    pub fn spawned_at(&self) -> &'static Location<'static> {
        self.task.core.spawned_at
    }

    /// The task, type-erased, for the loop's bookkeeping.
    pub(crate) fn raw(&self) -> Rc<dyn RawTask> {
        self.task.clone()
    }

    /// The outcome of a finished task, without a waker; `None` while it runs.
    pub(crate) fn take_outcome(&mut self) -> Option<Result<T, JoinError>> {
        let waker = Waker::noop();
        match self.task.poll_join(&mut TaskContext::from_waker(waker)) {
            Poll::Ready(outcome) => Some(outcome),
            Poll::Pending => None,
        }
    }
}

impl<T: 'static> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let me = self.task.core.id;
        let awaiter_is_me = current_core(|c| c.id == me).unwrap_or(false);
        assert!(
            !awaiter_is_me,
            "task {me} awaited its own JoinHandle, which can never complete; await the handle from another task"
        );
        let poll = self.task.poll_join(cx);
        if poll.is_pending() {
            let target: Rc<dyn RawTask> = self.task.clone();
            current_core(|c| *c.awaiting.borrow_mut() = Some(target));
        }
        poll
    }
}

impl<T: 'static> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.task.core.detached.set(true);
        report_if_unretrieved(&*self.task);
    }
}

impl<T: 'static> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("id", &self.task.core.id)
            .field("name", &self.task.core.name.borrow())
            .field("outcome", &self.task.core.outcome())
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
    repr: JoinRepr,
}

enum JoinRepr {
    Cancelled,
    Panicked {
        /// Read when reporting; taken from the payload when it was caught.
        message: String,
        payload: SyncWrapper<Box<dyn Any + Send + 'static>>,
    },
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: JoinRepr::Cancelled,
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: JoinRepr::Panicked {
                message: panic_message(payload.as_ref()),
                payload: SyncWrapper::new(payload),
            },
        }
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, JoinRepr::Cancelled)
    }

    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, JoinRepr::Panicked { .. })
    }

    /// The panic's message, when the task panicked (with a string; other
    /// payloads give a placeholder).
    pub fn panic_message(&self) -> Option<String> {
        match &self.repr {
            JoinRepr::Panicked { message, .. } => Some(message.clone()),
            JoinRepr::Cancelled => None,
        }
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
        match self.repr {
            JoinRepr::Panicked { payload, .. } => Ok(payload.into_inner()),
            JoinRepr::Cancelled => Err(self),
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
        match &self.repr {
            JoinRepr::Cancelled => f.write_str("JoinError::Cancelled"),
            JoinRepr::Panicked { message, .. } => write!(f, "JoinError::Panicked({message:?})"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            JoinRepr::Cancelled => f.write_str("the task was cancelled before it produced its output"),
            JoinRepr::Panicked { message, .. } => write!(f, "the task panicked: {message}"),
        }
    }
}

impl std::error::Error for JoinError {}

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
        inner: Some(Box::pin(fut.into_future())),
        scope: 0,
    }
}

/// The future of [`cancellable`].
#[must_use = "futures do nothing unless awaited"]
pub struct Cancellable<F> {
    inner: Option<Pin<Box<F>>>,
    scope: u64,
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

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            panic!("Cancellable polled after completion");
        };
        let entered = current_core(|core| {
            if this.scope == 0 {
                this.scope = core.next_scope.get();
                core.next_scope.set(this.scope + 1);
            }
            if core.deliver_to.get() == Some(this.scope) {
                core.deliver_to.set(None);
                core.cancel_pending.set(false);
                return None;
            }
            let depth = core.depth.get();
            core.depth.set(depth + 1);
            Some(depth)
        });
        match entered {
            // Outside a task: nothing can cancel us.
            None => inner.as_mut().poll(cx).map(Ok),
            Some(None) => {
                this.inner = None;
                Poll::Ready(Err(Cancelled))
            }
            Some(Some(depth)) => {
                let poll = inner.as_mut().poll(cx);
                let scope = this.scope;
                current_core(|core| {
                    core.depth.set(depth);
                    if poll.is_pending() {
                        let deeper = match core.innermost_catch.get() {
                            Some((_, d)) => depth >= d,
                            None => true,
                        };
                        if deeper {
                            core.innermost_catch.set(Some((scope, depth)));
                        }
                    }
                });
                if poll.is_ready() {
                    this.inner = None;
                }
                poll.map(Ok)
            }
        }
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
        inner: Box::pin(fut.into_future()),
    }
}

/// The future of [`shield`].
#[must_use = "futures do nothing unless awaited"]
pub struct Shield<F> {
    inner: Pin<Box<F>>,
}

impl<F> fmt::Debug for Shield<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shield").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Shield<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let poll = self.inner.as_mut().poll(cx);
        if poll.is_pending() {
            current_core(|core| core.shield_pending.set(true));
        }
        poll
    }
}

/// A handle on the task that is running now, from inside it.
#[derive(Clone)]
pub struct CurrentTask {
    task: Rc<dyn RawTask>,
}

impl CurrentTask {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.core().id
    }

    /// The task's name, if one was set.
    pub fn name(&self) -> Option<String> {
        self.task.core().name()
    }

    /// Names the task.
    pub fn set_name(&self, name: impl Into<String>) {
        *self.task.core().name.borrow_mut() = Some(name.into());
    }

    /// Requests the task's own cancellation; it lands at its next suspension.
    pub fn cancel(&self) -> bool {
        self.task.core().cancel()
    }

    /// Outstanding cancellation requests (Python's `Task.cancelling()`).
    pub fn cancelling(&self) -> u32 {
        self.task.core().cancelling()
    }

    /// Takes back one cancellation request; returns how many remain.
    pub fn uncancel(&self) -> u32 {
        self.task.core().uncancel()
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

/// The task being polled right now, or `None` outside of tasks (Python's
/// `asyncio.current_task()`).
pub fn current_task() -> Option<CurrentTask> {
    event_loop::with_current_task(|task| CurrentTask { task: task.clone() })
}
