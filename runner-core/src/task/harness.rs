//! Spawning: one async-task allocation per task, and the future around the
//! user's future that delivers cancellations.
//!
//! async-task lays a task out in a single allocation: its header (state,
//! the awaiter's waker, a vtable), the [`TaskCore`] as the task's
//! metadata, the schedule function, and the future or its output. Its
//! `Runnable` is what the loop runs; its `Task` is inside the
//! [`JoinHandle`].
//!
//! The future async-task polls is a [`TaskFuture`]: it makes the task the
//! current one (for `cancellable`, `shield`, `current_task` and context
//! variables), delivers a pending cancellation as the [module
//! docs](super) describe, catches panics, and turns the result into
//! `Result<T, JoinError>`.
//!
//! # Scheduling
//!
//! A wake on the loop's thread while the loop runs pushes the `Runnable` on
//! the loop's ready queue (no lock, no atomic beyond async-task's own
//! state). A wake from anywhere else goes through the loop's remote queue
//! as an opaque pointer ([`RemoteTask`]), turned back into the `Runnable`
//! on the loop's thread: a task's future is only ever polled and dropped
//! there.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use async_task::Runnable;
use pin_project_lite::pin_project;

use super::core::{Outcome, Suspended, TaskCore};
use super::handle::{JoinError, JoinHandle};
use super::sched::{self, Scheduler};
use crate::context::{self, Context, Map};
use crate::runtime::{Remote, RemoteTask};

/// How a task's context relates to its map: its own copy (most tasks), or
/// a shared [`Context`] it runs in itself (a runner's main task).
pub(crate) trait ContextMode {
    /// Before a poll: the task's map is the shared context's.
    fn load(&self, core: &TaskCore);
    /// After a poll: what the task set goes back to the shared context.
    fn store(&self, core: &TaskCore);
}

/// The task runs in its own copy of its spawner's context.
pub(crate) struct OwnContext;

impl ContextMode for OwnContext {
    #[inline]
    fn load(&self, _: &TaskCore) {}
    #[inline]
    fn store(&self, _: &TaskCore) {}
}

impl ContextMode for Context {
    fn load(&self, core: &TaskCore) {
        core.ctx.replace(self.map());
    }

    fn store(&self, core: &TaskCore) {
        self.set_map(core.ctx.replace(Map::default()));
    }
}

pin_project! {
    /// The future async-task polls: the user's, wrapped. The task's core is
    /// the one the scheduler made current for the poll (`Scheduler::run_task`).
    struct TaskFuture<F, C> {
        ctx: C,
        #[pin]
        fut: Option<F>,
    }
}

impl<F: Future, C: ContextMode> Future for TaskFuture<F, C> {
    type Output = Result<F::Output, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        sched::with_current_task(|core| {
            this.ctx.load(core);
            let result = poll_delivering_cancellation(core, this.fut, cx);
            this.ctx.store(core);
            if let Poll::Ready(outcome) = &result {
                // Nothing of the task's context outlives its future: the
                // rest of the allocation may be freed on another thread (by
                // the last waker), and context values are `!Send`.
                drop(core.ctx.replace(Map::default()));
                core.set_awaiting(None);
                if let Err(e) = outcome {
                    sched::report_panic_if_owed(core, e);
                }
            }
            result
        })
        .expect("invariant: a task is polled by Scheduler::run_task, which makes it current")
    }
}

/// One poll of the user's future, as the module docs of `task` describe.
fn poll_delivering_cancellation<F: Future>(
    core: &TaskCore,
    mut fut: Pin<&mut Option<F>>,
    cx: &mut TaskContext<'_>,
) -> Poll<Result<F::Output, JoinError>> {
    let mut deliver_to = None;
    if core.cancel_pending() {
        match core.suspended() {
            _ if core.is_forced() => return Poll::Ready(drop_cancelled(core, fut)),
            Suspended::Bare => return Poll::Ready(drop_cancelled(core, fut)),
            Suspended::Catch(scope) => deliver_to = Some(scope),
            Suspended::Shielded => {}
        }
    }
    core.begin_poll(deliver_to);
    let Some(inner) = fut.as_mut().as_pin_mut() else {
        return Poll::Ready(Err(JoinError::cancelled()));
    };
    let polled = catch_unwind(AssertUnwindSafe(|| inner.poll(cx)));
    match polled {
        Ok(Poll::Pending) => {
            let suspended = core.end_poll();
            if core.cancel_pending() && suspended != Suspended::Shielded {
                // Not delivered yet (the scope it was aimed at was not
                // reached): deliver at the next scheduling.
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
        Ok(Poll::Ready(value)) => {
            // The finished future is dropped now: its destructors may look
            // at this task.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| fut.set(None))) {
                core.set_outcome(Outcome::Panicked);
                return Poll::Ready(Err(JoinError::panicked(payload)));
            }
            if core.cancel_pending() {
                // Cancelled right before it finished (say, inside a
                // shield): the task ends cancelled, as an asyncio task does.
                core.set_cancel_pending(false);
                drop(value);
                core.set_outcome(Outcome::Cancelled);
                return Poll::Ready(Err(JoinError::cancelled()));
            }
            core.set_outcome(Outcome::Completed);
            Poll::Ready(Ok(value))
        }
        Err(payload) => {
            let _ = catch_unwind(AssertUnwindSafe(|| fut.set(None)));
            core.set_outcome(Outcome::Panicked);
            Poll::Ready(Err(JoinError::panicked(payload)))
        }
    }
}

/// Drops the future as the delivery of a cancellation (its destructors are
/// the task's `finally`): cancelled, or panicked if a destructor panicked.
fn drop_cancelled<T>(core: &TaskCore, mut fut: Pin<&mut Option<impl Future<Output = T>>>) -> Result<T, JoinError> {
    core.set_cancel_pending(false);
    match catch_unwind(AssertUnwindSafe(|| fut.set(None))) {
        Ok(()) => {
            core.set_outcome(Outcome::Cancelled);
            Err(JoinError::cancelled())
        }
        Err(payload) => {
            core.set_outcome(Outcome::Panicked);
            Err(JoinError::panicked(payload))
        }
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
    match shared_ctx {
        None => {
            let map = context::current_map().for_spawn();
            spawn_with(sched, fut, map, OwnContext, spawned_at)
        }
        Some(ctx) => spawn_with(sched, fut, Map::default(), ctx, spawned_at),
    }
}

#[allow(unsafe_code)]
fn spawn_with<F, C>(
    sched: &Rc<Scheduler>,
    fut: F,
    map: Map,
    ctx: C,
    spawned_at: &'static Location<'static>,
) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
    C: ContextMode + 'static,
{
    let core = TaskCore::new(sched.shared.clone(), sched::next_task_id(), map, spawned_at);
    let (runnable, task) = unsafe {
        async_task::Builder::new()
            .metadata(core)
            .spawn_unchecked(move |_: &TaskCore| TaskFuture { ctx, fut: Some(fut) }, schedule)
    };
    let core = runnable.metadata();
    core.set_waker(runnable.waker());
    sched.register(core);
    if sched.is_closed() {
        // A closed loop: the future is dropped without being polled.
        core.force_drop();
        sched.run_task(runnable);
    } else {
        sched.push(sched::Ready::Task(runnable));
    }
    JoinHandle::new(task, Rc::downgrade(sched))
}

/// The schedule function of every task: zero-sized (it captures nothing),
/// so async-task calls it without the guard waker it otherwise makes (two
/// atomic operations per schedule). It finds the task's loop in the task's
/// core: `remote` is written before the task exists for anyone else and
/// never changed, so reading it from another thread races with nothing.
fn schedule(runnable: Runnable<TaskCore>) {
    let remote = Arc::as_ptr(&runnable.metadata().remote);
    if let Err(runnable) = sched::push_local(remote, runnable) {
        // Another thread, or this one while the loop is not running:
        // through the remote queue, as a pointer.
        let remote = runnable.metadata().remote.clone();
        if let Err(closed) = remote.send(Remote::Wake(RemoteTask::new(runnable.into_raw()))) {
            // A closed loop (its tasks' futures are gone): the task is
            // leaked rather than touched off its thread.
            std::mem::forget(closed);
        }
    }
}

/// Turns what [`spawn`]'s schedule function sent through the remote queue
/// back into the task's `Runnable`, on the loop's thread.
#[allow(unsafe_code)]
pub(crate) fn from_remote(task: RemoteTask) -> Runnable<TaskCore> {
    // SAFETY: every `RemoteTask` comes from `Runnable::<TaskCore>::into_raw`
    // in `spawn`'s schedule function, is sent once, and is received once
    // (the channel moves it), here, on the loop's thread.
    unsafe { Runnable::from_raw(task.into_ptr()) }
}
