//! What a task does: spawning, one poll (delivering cancellations around
//! the user's future, catching its panics), and how it ends.
//!
//! `raw` lays the task out and owns its memory; this module is the
//! behaviour, in safe code: [`poll_task`] is called by `raw` with the
//! future pinned in the task's allocation, [`finish`] once that future was
//! dropped. The task is the thread's current one during both (the
//! scheduler makes it so), for `cancellable`, `shield`, `current_task` and
//! context variables.
//!
//! # Scheduling
//!
//! A wake on the loop's thread while the loop runs pushes the task on the
//! loop's ready queue: no lock, no atomic operation. A wake from anywhere
//! else goes through the loop's remote queue as an opaque pointer
//! ([`RemoteTask`](crate::runtime::RemoteTask)), turned back into the task
//! on the loop's thread: a task's future is only ever polled and dropped
//! there.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};

use super::core::{Outcome, Requested, Suspended, TaskCore};
use super::handle::{JoinError, JoinHandle};
use super::raw::{self, RawTask, TaskRef};
use super::sched::{self, Scheduler};
use crate::context::{self, Context, Map};

/// Which context a task's polls run in: its own copy of its spawner's
/// (most tasks), or a shared [`Context`] (a runner's main task, a task
/// spawned with `spawn_in_context`), which the task then reads and writes
/// in place: `ctx.run(..)` or `ctx.get(..)` inside the task see what it
/// set, as asyncio's task and `Context.run` share one context.
pub(crate) trait ContextMode {
    /// Makes the polled task's context this mode's shared one, if it has
    /// one, until the guard drops (the scheduler entered the task's own).
    fn enter(&self) -> Option<context::TaskGuard<'_>>;
}

/// The task runs in its own copy of its spawner's context.
pub(crate) struct OwnContext;

impl ContextMode for OwnContext {
    #[inline]
    fn enter(&self) -> Option<context::TaskGuard<'_>> {
        None
    }
}

impl ContextMode for Context {
    fn enter(&self) -> Option<context::TaskGuard<'_>> {
        Some(context::enter_task(self.state()))
    }
}

/// What a task's output is, from its future's: the future's own output
/// ([`AsIs`]), or, for a future that decides itself how its task ends (a
/// `TaskGroup` child, whose error goes to its group), its `Ok` with its
/// `Err` as the task's error ([`Flatten`]).
pub(crate) trait Settle<T>: 'static {
    type Out: 'static;
    fn settle(outcome: Result<T, JoinError>) -> Result<Self::Out, JoinError>;
}

/// The task's output is its future's.
pub(crate) struct AsIs;

impl<T: 'static> Settle<T> for AsIs {
    type Out = T;
    #[inline]
    fn settle(outcome: Result<T, JoinError>) -> Result<T, JoinError> {
        outcome
    }
}

/// The future's `Result<T, JoinError>` is the task's.
pub(crate) struct Flatten;

impl<T: 'static> Settle<Result<T, JoinError>> for Flatten {
    type Out = T;
    fn settle(outcome: Result<Result<T, JoinError>, JoinError>) -> Result<T, JoinError> {
        outcome.and_then(|r| r)
    }
}

/// One poll of the user's future, as the module docs of `task` describe:
/// `Ready` when the task is over (it finished, or a cancellation or a
/// close ends it: then `raw` drops the future, and [`finish`] settles the
/// outcome).
pub(crate) fn poll_task<F: Future>(
    core: &TaskCore,
    fut: Pin<&mut F>,
    cx: &mut TaskContext<'_>,
) -> Poll<Result<F::Output, JoinError>> {
    if core.is_forwarded() {
        core.settle_forwarded();
    }
    let mut deliver_to = None;
    if core.cancel_pending() {
        match core.suspended() {
            Suspended::Catch(scope) if !core.is_forced() => deliver_to = Some(scope),
            Suspended::Shielded if !core.is_forced() => {}
            _ => {
                // Dropped unpolled (by the caller, next): what the future's
                // destructors do sees a fresh record, not the last poll's.
                core.begin_drop();
                return Poll::Ready(Err(JoinError::cancelled()));
            }
        }
    }
    core.begin_poll(deliver_to);
    match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Pending) => {
            let suspended = core.end_poll();
            if core.cancel_pending() && suspended != Suspended::Shielded && !core.forward_pending() {
                // Not delivered yet (the scope it was aimed at was not
                // reached): deliver at the next scheduling.
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
        Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
        Err(payload) => Poll::Ready(Err(JoinError::panicked(payload))),
    }
}

/// Settles how a task ended, once its future was dropped (`dropped`: how
/// that went; its destructors are the task's `finally`), and lets go of
/// what must not outlive it on another thread.
pub(crate) fn finish<T>(
    task: RawTask,
    outcome: Result<T, JoinError>,
    dropped: Result<(), Box<dyn Any + Send>>,
) -> Result<T, JoinError> {
    let core = task.core();
    let outcome = match (outcome, dropped) {
        // A destructor panicked: the task panicked (a panic of the poll
        // itself comes first).
        (Err(e), Err(_)) if e.is_panic() => Err(e),
        (_, Err(payload)) => Err(JoinError::panicked(payload)),
        (Ok(value), Ok(())) if core.cancels_output() => {
            // Cancelled right before it finished (say, inside a shield):
            // the task ends cancelled, as an asyncio task does.
            drop(value);
            Err(JoinError::cancelled())
        }
        (outcome, Ok(())) => outcome,
    };
    core.set_cancel_pending(false);
    core.set_outcome(match &outcome {
        Ok(_) => Outcome::Completed,
        Err(e) if e.is_panic() => Outcome::Panicked,
        Err(e) if e.is_failed() => Outcome::Failed,
        Err(_) => Outcome::Cancelled,
    });
    // Nothing of the task's context outlives its future: the rest of the
    // allocation may be freed on another thread (by the last waker), and
    // context values are `!Send`.
    drop(core.ctx.replace(Map::default()));
    core.set_awaiting(None);
    core.forget_branches();
    if let Err(e) = &outcome {
        sched::report_panic_if_owed(task, e);
    }
    outcome
}

impl RawTask {
    /// Requests the task's cancellation; `false` when it is done.
    pub(crate) fn cancel(&self) -> bool {
        let polled_now = sched::current_raw() == Some(*self);
        self.requested(self.core().request_cancel(), polled_now)
    }

    /// Requests the task's cancellation, meant for its `cancellable` scope
    /// `target` (see `branches`): in a task suspended in several branches
    /// at once, it goes to the branch inside that scope. `false` when the
    /// task is done.
    pub(crate) fn cancel_in(&self, target: u32) -> bool {
        let polled_now = sched::current_raw() == Some(*self);
        self.requested(self.core().request_cancel_in(target, polled_now), polled_now)
    }

    /// What a request did: a pending one schedules the task to deliver it
    /// (`polled_now`: the task asked it of itself, during its poll).
    fn requested(&self, requested: Requested, polled_now: bool) -> bool {
        match requested {
            Requested::Done => false,
            // The awaited task wakes this one when it ends.
            Requested::Forwarded => true,
            Requested::Pending => {
                if polled_now {
                    TaskCore::mark_pended();
                }
                self.wake();
                true
            }
        }
    }

    /// Makes the task's next poll drop its future, whatever its scopes say
    /// (a close giving up on it, a closing loop).
    pub(crate) fn force_drop(&self) {
        if self.core().request_force_drop() {
            self.wake();
        }
    }
}

impl TaskRef {
    /// See [`RawTask::cancel`].
    pub(crate) fn cancel(&self) -> bool {
        self.raw().cancel()
    }

    /// See [`RawTask::cancel_in`].
    pub(crate) fn cancel_in(&self, target: u32) -> bool {
        self.raw().cancel_in(target)
    }

    /// See [`RawTask::force_drop`].
    pub(crate) fn force_drop(&self) {
        self.raw().force_drop();
    }
}

/// Creates a task on `sched` and schedules it: in a copy of the current
/// context, or in `shared_ctx` itself.
pub(crate) fn spawn<F>(
    sched: &Rc<Scheduler>,
    fut: F,
    shared_ctx: Option<Context>,
    spawned_at: &'static Location<'static>,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    spawn_settled::<F, AsIs>(sched, fut, shared_ctx, spawned_at)
}

/// Spawns a future that decides how its task ends: its `Err` is the
/// task's error (a `TaskGroup` child), in a copy of the current context
/// or in `shared_ctx` itself.
pub(crate) fn spawn_flat<F, T>(
    sched: &Rc<Scheduler>,
    fut: F,
    shared_ctx: Option<Context>,
    spawned_at: &'static Location<'static>,
) -> JoinHandle<T>
where
    F: Future<Output = Result<T, JoinError>> + 'static,
    T: 'static,
{
    spawn_settled::<F, Flatten>(sched, fut, shared_ctx, spawned_at)
}

/// [`spawn`] and [`spawn_flat`]: the context mode chosen here, how the
/// task ends by `S`.
fn spawn_settled<F, S>(
    sched: &Rc<Scheduler>,
    fut: F,
    shared_ctx: Option<Context>,
    spawned_at: &'static Location<'static>,
) -> JoinHandle<S::Out>
where
    F: Future + 'static,
    S: Settle<F::Output>,
{
    match shared_ctx {
        None => {
            let map = context::current_map().for_spawn();
            spawn_with::<F, OwnContext, S>(sched, fut, map, OwnContext, spawned_at)
        }
        Some(ctx) => spawn_with::<F, Context, S>(sched, fut, Map::default(), ctx, spawned_at),
    }
}

fn spawn_with<F, C, S>(
    sched: &Rc<Scheduler>,
    fut: F,
    map: Map,
    ctx: C,
    spawned_at: &'static Location<'static>,
) -> JoinHandle<S::Out>
where
    F: Future + 'static,
    C: ContextMode + 'static,
    S: Settle<F::Output>,
{
    let core = TaskCore::new(sched::next_task_id(), map);
    // Two references: the registry's and the handle's.
    let task = raw::allocate::<F, C, S>(sched.shared.clone(), core, fut, ctx, spawned_at);
    sched.register(task);
    if sched.is_closed() {
        // A closed loop: the future is dropped without being polled.
        task.core().request_force_drop();
        sched.run_task(task);
    } else {
        sched.schedule(task);
    }
    JoinHandle::new(task)
}
