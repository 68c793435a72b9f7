//! A task's memory: one allocation, laid out here, and the only `unsafe`
//! of the task layer, with its child module `words`: the one-word forms
//! of a task pointer the loop keeps ([`TaskOrRc`] for the ready queue,
//! [`Slot`] for the registry) and the one-word slot for whoever awaits a
//! task's handle ([`JoinSlot`]).
//!
//! ```text
//! Prefix (the same for every task; wakers point at it)
//!   Header    refs, remote_queued, vtable and spawn location    any thread
//!             (one pointer: `meta`), the loop's Shared
//!             + in what would be padding: the stage's tag        loop thread
//!               (others may read it) and `local_refs`
//!   join      who awaits the JoinHandle: one word (`JoinSlot`)  loop thread
//!   core      TaskCore: cancellation, context, flags             loop thread
//! stage       a union: the future (and its context mode), then its output,
//!             then nothing                                       loop thread
//! ```
//!
//! # Why not async-task
//!
//! async-task (smol's) is where this started: one allocation, well
//! tested. But every state transition of an async-task task is an atomic
//! read-modify-write, because any thread may run its `Runnable`: three per
//! wake-and-poll, and a `yield_now` cost 36 ns where tokio's costs 38. A
//! runner task is only ever polled on its loop's thread, so its scheduling
//! state can be plain cells; atomics are left for what other threads do
//! (waking from afar, holding and dropping wakers). A local wake and poll
//! make no atomic operation at all: a `yield_now` went to 16 ns, spawn +
//! join of a task that returns at once from 119 to 81 ns (criterion, one
//! run each; docs/benchmarks.md has the tables). References taken and
//! released on the loop's thread while the task runs (a waker cloned into
//! a channel, then dropped by the wake) make none either: see below.
//!
//! Miri checks this module through `runner-core/tests/task_memory.rs`
//! (no sockets, no signals): `cargo +nightly miri test -p runner-core
//! --test task_memory`. Its leak check is on: a task never freed fails it.
//!
//! # References
//!
//! A task is referenced by: the loop's registry (one, while the task is
//! alive: not finished), the [`JoinHandle`](super::JoinHandle), every
//! waker clone, [`TaskRef`]s, and a wake in the loop's remote queue. The
//! ready queue holds none: a queued task is alive, so the registry's
//! reference covers it. The one exception — a task that woke itself in
//! its last poll is queued and finished — keeps the registry's reference
//! until it is popped (`RELEASE_ON_POP`).
//!
//! They are counted in two places (biased reference counting, after Choi,
//! Shull and Torrellas, PACT 2018): while the task runs (its stage is
//! `RUNNING`), the thread running its loop counts in `local_refs`, a plain
//! cell; any other thread, and that one once the task finished, counts in
//! `refs`, atomically. A reference is a reference wherever it was taken:
//! one cloned on the loop and dropped elsewhere adds one here and takes one
//! there, so either count alone may be negative; only their sum means
//! anything. The registry's reference keeps that sum above zero until the
//! task finishes, and as it finishes (`Scheduler::complete`, on the loop's
//! thread) `local_refs` is folded into `refs` with the `MERGED` bit, in one
//! atomic operation that also releases the registry's reference. Only
//! then may `refs` reach zero: the allocation is freed by whoever drops
//! the last reference, on whatever thread. A waker cloned into a channel
//! and dropped by the wake, on the loop's thread, so costs no atomic
//! operation (a ping-pong over a `Mutex` baton went from 115 to 99 ns
//! per round trip, criterion).
//!
//! When the task is freed nothing `!Send` is left in it: the future is
//! dropped when the task finishes, its context map emptied, and its output
//! taken or dropped by the handle (on the loop's thread: a `JoinHandle` is
//! `!Send`).
//!
//! # Threads
//!
//! Another thread touches only the `Header` (atomics, and the `Shared` set
//! before the task was shared), but its `local_refs`. Everything after it
//! is touched only on the loop's thread: by the loop, by `!Send` handles,
//! and by wakers, which check that they run on the thread of the task's
//! loop, while it runs, before they look (`sched::push_local`,
//! `sched::runs_here`).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::{Cell, UnsafeCell};
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::Location;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

mod meta;
mod words;

use meta::Meta;
pub(crate) use words::{JoinSlot, Slot, TaskOrRc, Unpacked};

use super::core::TaskCore;
use super::handle::JoinError;
use super::harness::{self, ContextMode, Settle};
use super::sched;
use crate::runtime::{Remote, RemoteTask, Shared};

/// What any thread may touch (but `local_refs`, and `stage` only to read).
#[repr(C)]
struct Header {
    /// The references counted atomically, in steps of [`ONE`]; the low
    /// bit, [`MERGED`], says `local_refs` was folded in (the task
    /// finished): from then on this is the whole count. Before, it may be
    /// negative (references taken on the loop's thread, released on
    /// another).
    refs: AtomicI32,
    /// A wake from afar is in the loop's remote queue (one is enough).
    remote_queued: AtomicBool,
    /// What the task's [`Stage`] holds: `RUNNING`, `FINISHED` or
    /// `CONSUMED`. Here, in what would be padding, so that the stage needs
    /// no tag of its own; written only on the loop's thread, with the
    /// stage. Atomic (relaxed: a plain byte load and store) so that any
    /// thread may look at it first when it counts a reference, before it
    /// asks whether it runs the task's loop.
    stage: AtomicU8,
    /// References taken and released on the loop's thread while the loop
    /// runs and the task has not finished, without an atomic operation
    /// (biased reference counting); may be negative. Also in what would
    /// be padding; touched only on the loop's thread.
    local_refs: Cell<i16>,
    /// The vtable and the spawn location.
    meta: &'static Meta,
    shared: Arc<Shared>,
}

/// The part every task has, whatever its future: what a waker points at.
#[repr(C)]
pub(crate) struct Prefix {
    header: Header,
    /// Who awaits the `JoinHandle`, to wake when the task ends.
    join: JoinSlot,
    core: TaskCore,
}

/// A whole task.
#[repr(C)]
struct Task<F: Future, C, S: Settle<F::Output>> {
    prefix: Prefix,
    stage: UnsafeCell<Stage<F, C, S>>,
}

/// The future (and its context mode) while the task runs, then its
/// output, then nothing (the output was taken or dropped): which one,
/// `Header::stage` says.
union Stage<F: Future, C, S: Settle<F::Output>> {
    running: ManuallyDrop<Running<F, C>>,
    finished: ManuallyDrop<Result<S::Out, JoinError>>,
}

/// One reference in `Header::refs`, whose low bit is [`MERGED`].
const ONE: i32 = 2;
/// `Header::refs`: `local_refs` was folded in.
const MERGED: i32 = 1;

/// `Header::stage` values.
const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const CONSUMED: u8 = 2;

struct Running<F, C> {
    /// Dropped in place, apart from the rest (in the task's context,
    /// before that context is handed back): a task is never freed while
    /// running (the registry's reference is held until it finishes), so it
    /// is never leaked either.
    fut: ManuallyDrop<F>,
    ctx: C,
}

/// What differs with the future's type.
#[derive(Clone, Copy)]
struct Vtable {
    /// Polls once (`harness` delivers cancellations around it); `true`
    /// when the task finished.
    poll: unsafe fn(NonNull<Prefix>, &mut Context<'_>) -> bool,
    /// Moves the output into `*dst`, an `Option<Result<T, JoinError>>`.
    take_output: unsafe fn(NonNull<Prefix>, dst: *mut ()),
    /// Drops the output, if it is still there.
    drop_output: unsafe fn(NonNull<Prefix>),
    dealloc: unsafe fn(NonNull<Prefix>),
}

/// Creates a task: the allocation, with two references (the registry's
/// and the handle's); not yet queued.
#[inline(always)]
pub(crate) fn allocate<F, C, S>(
    shared: Arc<Shared>,
    core: TaskCore,
    fut: F,
    ctx: C,
    spawned_at: &'static Location<'static>,
) -> RawTask
where
    F: Future + 'static,
    C: ContextMode + 'static,
    S: Settle<F::Output>,
{
    let task = Task {
        prefix: Prefix {
            header: Header {
                refs: AtomicI32::new(2 * ONE),
                remote_queued: AtomicBool::new(false),
                stage: AtomicU8::new(RUNNING),
                local_refs: Cell::new(0),
                meta: Meta::of(
                    &Vtable {
                        poll: poll::<F, C, S>,
                        take_output: take_output::<F, C, S>,
                        drop_output: drop_output::<F, C, S>,
                        dealloc: dealloc_task::<F, C, S>,
                    },
                    spawned_at,
                ),
                shared,
            },
            join: JoinSlot::empty(),
            core,
        },
        stage: UnsafeCell::new(Stage {
            running: ManuallyDrop::new(Running {
                fut: ManuallyDrop::new(fut),
                ctx,
            }),
        }),
    };
    let layout = Layout::new::<Task<F, C, S>>();
    // SAFETY: `Task` holds a `Header` (non-zero-sized), so `layout` has a
    // non-zero size, as `alloc` requires; a null result is handled. The
    // write goes into that fresh, properly aligned block.
    #[allow(unsafe_code)]
    let ptr = unsafe {
        let ptr = alloc(layout).cast::<Task<F, C, S>>();
        if ptr.is_null() {
            handle_alloc_error(layout);
        }
        ptr.write(task);
        NonNull::new_unchecked(ptr)
    };
    RawTask { ptr: ptr.cast() }
}

/// A pointer to a task, without a reference of its own: valid while some
/// reference keeps the task alive (the registry's, while the task is
/// registered or queued).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawTask {
    ptr: NonNull<Prefix>,
}

#[allow(unsafe_code)]
impl RawTask {
    fn prefix(&self) -> &Prefix {
        // SAFETY: a `RawTask` is only used while a reference keeps the
        // allocation (see the type's docs); `Prefix` is at its start.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn core(&self) -> &TaskCore {
        &self.prefix().core
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.prefix().header.shared
    }

    /// Where the task was spawned.
    pub(crate) fn spawned_at(&self) -> &'static Location<'static> {
        self.prefix().header.meta.spawned_at
    }

    /// Polls the task once, on its loop's thread; `true` when it finished.
    pub(crate) fn poll(&self) -> bool {
        // A waker borrowed for the poll: it takes no reference (the
        // registry's covers the task while it runs); a clone takes one.
        let waker = ManuallyDrop::new(
            // SAFETY: the data pointer is this task's prefix, and `VTABLE`
            // treats it as such; `ManuallyDrop` keeps the borrowed waker
            // from releasing a reference it does not hold.
            unsafe { Waker::from_raw(RawWaker::new(self.ptr.as_ptr().cast(), &VTABLE)) },
        );
        let mut cx = Context::from_waker(&waker);
        // SAFETY: `poll` belongs to this task's vtable, for its own type.
        unsafe { (self.prefix().header.meta.vtable.poll)(self.ptr, &mut cx) }
    }

    /// Moves the output of a finished task into `dst`.
    ///
    /// # Safety
    /// `T` must be the task's output type (the future's, or what its
    /// `Settle` makes of it).
    pub(crate) unsafe fn take_output<T>(&self, dst: &mut Option<Result<T, JoinError>>) {
        // SAFETY: the caller vouches for `T`; `take_output` writes an
        // `Option<Result<T, JoinError>>` there.
        unsafe { (self.prefix().header.meta.vtable.take_output)(self.ptr, (dst as *mut Option<_>).cast()) }
    }

    /// Drops the output of a finished task, if it is there.
    pub(crate) fn drop_output(&self) {
        // SAFETY: `drop_output` belongs to this task's vtable.
        unsafe { (self.prefix().header.meta.vtable.drop_output)(self.ptr) }
    }

    /// Whether this thread counts the task's references in `local_refs`:
    /// it runs the task's loop now (no other thread can), and the task has
    /// not finished (then `local_refs` is merged into `refs`, or is about
    /// to be: meanwhile references are counted in `refs`, which cannot
    /// free the task before the merge).
    #[inline]
    fn counts_locally(&self) -> bool {
        // A task that finished counts atomically, whatever the thread (the
        // stage, as read by another thread, may be old: it then asks
        // `runs_here`, which says no).
        self.prefix().header.stage.load(Ordering::Relaxed) == RUNNING && sched::runs_here(self.shared())
    }

    /// Takes a reference.
    #[inline]
    pub(crate) fn retain(&self) {
        let header = &self.prefix().header;
        if self.counts_locally() {
            let n = header.local_refs.get();
            if n < i16::MAX {
                header.local_refs.set(n + 1);
                return;
            }
        }
        let old = header.refs.fetch_add(ONE, Ordering::Relaxed);
        if old > i32::MAX / 2 {
            // As `Arc`: a count this high means clones are leaking.
            std::process::abort();
        }
    }

    /// Folds `local_refs` into `refs` as the task finishes (on the loop's
    /// thread, its stage no longer `RUNNING`, before the registry lets go
    /// of it): every reference is counted atomically from then on, so
    /// that the last one, on whatever thread, frees the task. With
    /// `release`, the registry's reference is released in the same
    /// operation.
    ///
    /// # Safety
    /// Called once per task; with `release`, the caller owns the
    /// registry's reference and uses this `RawTask` no more.
    pub(crate) unsafe fn merge_refs(self, release: bool) {
        let header = &self.prefix().header;
        let local = i32::from(header.local_refs.replace(0));
        let delta = local * ONE + MERGED - if release { ONE } else { 0 };
        let old = header.refs.fetch_add(delta, Ordering::Release);
        debug_assert_eq!(old & MERGED, 0, "a task's references are merged once");
        if release && old + delta == MERGED {
            fence(Ordering::Acquire);
            // SAFETY: that was the last reference (see `release`).
            unsafe { (header.meta.vtable.dealloc)(self.ptr) }
        }
    }

    /// Releases a reference; the last one frees the task.
    ///
    /// # Safety
    /// The caller owns a reference, and uses this `RawTask` no more.
    #[inline]
    pub(crate) unsafe fn release(self) {
        let header = &self.prefix().header;
        if self.counts_locally() {
            let n = header.local_refs.get();
            if n > i16::MIN {
                // Not the last reference: the registry's is still held
                // (the task has not finished).
                header.local_refs.set(n - 1);
                return;
            }
        }
        // Before the merge the low bit is clear and the count never
        // reaches `ONE + MERGED`: a task is freed only after it finished.
        if header.refs.fetch_sub(ONE, Ordering::Release) == ONE + MERGED {
            fence(Ordering::Acquire);
            // SAFETY: that was the last reference: nobody else can reach
            // the task; `dealloc` belongs to its vtable.
            unsafe { (self.prefix().header.meta.vtable.dealloc)(self.ptr) }
        }
    }

    /// Whether `waker` is this task's own (the one its polls are given), as
    /// opposed to a combinator's waker for one of its parts.
    pub(crate) fn is_own_waker(&self, waker: &Waker) -> bool {
        std::ptr::eq(waker.data(), self.ptr.as_ptr().cast()) && std::ptr::eq(waker.vtable(), &VTABLE)
    }

    /// Who awaits the task's handle.
    pub(crate) fn join_slot(&self) -> &JoinSlot {
        &self.prefix().join
    }

    /// Schedules the task: on its loop's ready queue when this is the
    /// loop's thread and the loop runs, else through the remote queue.
    pub(crate) fn wake(&self) {
        if sched::push_local(*self) {
            return;
        }
        let header = &self.prefix().header;
        if header.remote_queued.swap(true, Ordering::AcqRel) {
            // Already on its way.
            return;
        }
        // The message holds a reference until the loop takes it.
        self.retain();
        if let Err(closed) = header.shared.send(Remote::Wake(RemoteTask::new(self.ptr.cast()))) {
            // A closed loop: its tasks' futures are gone. Give the
            // reference back (never the last one here: the waker holds one).
            drop(closed);
            header.remote_queued.store(false, Ordering::Release);
            // SAFETY: the reference taken above.
            unsafe { self.release() };
        }
    }

    /// A counted reference.
    pub(crate) fn task_ref(&self) -> TaskRef {
        self.retain();
        TaskRef {
            raw: *self,
            _not_send: PhantomData,
        }
    }
}

/// What the loop's thread does with a wake that came through the remote
/// queue: the task, and the reference the message held.
///
/// # Safety
/// `task` must come from [`RawTask::wake`], received once, on the loop's
/// thread.
#[allow(unsafe_code)]
pub(crate) unsafe fn from_remote(task: RemoteTask) -> RemoteWake {
    let raw = RawTask {
        ptr: task.into_ptr().cast(),
    };
    // A wake after this point sends again. A read-modify-write: it reads
    // the flag as the last sender left it, so what that sender did before
    // waking is visible here even when its wake found the flag raised.
    raw.prefix().header.remote_queued.swap(false, Ordering::AcqRel);
    RemoteWake { raw }
}

/// A wake taken from the remote queue: schedule it, then it releases the
/// reference the message held.
pub(crate) struct RemoteWake {
    raw: RawTask,
}

impl RemoteWake {
    pub(crate) fn task(&self) -> RawTask {
        self.raw
    }
}

impl Drop for RemoteWake {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the reference the remote queue's message held.
        unsafe { self.raw.release() }
    }
}

/// A counted reference to a task (loop thread only: it reaches the core).
pub(crate) struct TaskRef {
    raw: RawTask,
    _not_send: PhantomData<*const ()>,
}

impl TaskRef {
    pub(crate) fn raw(&self) -> RawTask {
        self.raw
    }

    pub(crate) fn core(&self) -> &TaskCore {
        self.raw.core()
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        self.raw.task_ref()
    }
}

impl Drop for TaskRef {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: a `TaskRef` owns one reference.
        unsafe { self.raw.release() }
    }
}

/// A counted reference that may cross threads: it only ever releases its
/// reference there (an atomic operation); the task itself is reached on
/// the loop's thread, through [`SendRef::on_loop_thread`].
pub(crate) struct SendRef {
    raw: RawTask,
}

// SAFETY: a `SendRef` on another thread touches only the header's
// reference count (in `Drop`) and its `Shared` (thread-safe, set before the
// task was shared); `on_loop_thread` gives the rest only on the thread
// whose running loop the task belongs to. The last reference may free the
// task on any thread: what is left in it then is `Send` (module docs).
#[allow(unsafe_code)]
unsafe impl Send for SendRef {}
// SAFETY: as above; `&SendRef` gives nothing more than `SendRef` does.
#[allow(unsafe_code)]
unsafe impl Sync for SendRef {}

impl SendRef {
    pub(crate) fn new(task: &TaskRef) -> SendRef {
        task.raw.retain();
        SendRef { raw: task.raw }
    }

    /// The loop the task belongs to.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        self.raw.shared()
    }

    /// The task, when this thread runs its loop now.
    pub(crate) fn on_loop_thread(&self) -> Option<RawTask> {
        sched::runs_here(self.raw.shared()).then_some(self.raw)
    }
}

impl Clone for SendRef {
    fn clone(&self) -> SendRef {
        self.raw.retain();
        SendRef { raw: self.raw }
    }
}

impl Drop for SendRef {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: a `SendRef` owns one reference.
        unsafe { self.raw.release() }
    }
}

// --- the waker ---

static VTABLE: RawWakerVTable = RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

#[allow(unsafe_code)]
fn raw(data: *const ()) -> RawTask {
    RawTask {
        // SAFETY: a waker's data pointer is a task's prefix (never null).
        ptr: unsafe { NonNull::new_unchecked(data.cast_mut()).cast() },
    }
}

#[allow(unsafe_code)]
unsafe fn waker_clone(data: *const ()) -> RawWaker {
    raw(data).retain();
    RawWaker::new(data, &VTABLE)
}

#[allow(unsafe_code)]
unsafe fn waker_wake(data: *const ()) {
    let task = raw(data);
    task.wake();
    // SAFETY: waking by value consumes the waker's reference.
    unsafe { task.release() }
}

#[allow(unsafe_code)]
unsafe fn waker_wake_by_ref(data: *const ()) {
    raw(data).wake();
}

#[allow(unsafe_code)]
unsafe fn waker_drop(data: *const ()) {
    // SAFETY: a waker owns one reference.
    unsafe { raw(data).release() }
}

// --- the vtable's functions, per future type ---

#[allow(unsafe_code)]
fn task<'a, F: Future, C, S: Settle<F::Output>>(ptr: NonNull<Prefix>) -> &'a Task<F, C, S> {
    // SAFETY: the vtable that calls this was made for `Task<F, C, S>`, whose
    // prefix `ptr` points at (`repr(C)`: the prefix is first); the caller
    // holds a reference.
    unsafe { ptr.cast::<Task<F, C, S>>().as_ref() }
}

#[allow(unsafe_code)]
unsafe fn poll<F: Future, C: ContextMode, S: Settle<F::Output>>(ptr: NonNull<Prefix>, cx: &mut Context<'_>) -> bool {
    let task = task::<F, C, S>(ptr);
    let core = &task.prefix.core;
    if task.prefix.header.stage.load(Ordering::Relaxed) != RUNNING {
        return true;
    }
    let stage = task.stage.get();
    // SAFETY: the stage holds the future (`RUNNING`); it is touched only
    // on the loop's thread, and nothing else holds a borrow of it while
    // the task is polled (a task's own handle cannot be awaited by it).
    let Running { fut, ctx } = unsafe { &mut *(*stage).running };
    let entered = ctx.enter();
    // SAFETY: the future lives in the task's allocation, which never
    // moves, until it is dropped in place below.
    let pinned = unsafe { Pin::new_unchecked(&mut **fut) };
    let Poll::Ready(outcome) = harness::poll_task(core, pinned, cx) else {
        return false;
    };
    // SAFETY: dropped in place, once: the stage is overwritten right after,
    // and `ManuallyDrop` keeps that from dropping it again (also when a
    // destructor panics).
    let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(fut) }));
    let outcome = harness::finish(RawTask { ptr }, S::settle(outcome), dropped);
    drop(entered);
    // SAFETY: moved out once, after anything that could unwind (so the
    // stage, still `RUNNING`, keeps it for `dealloc_task` to drop then);
    // the stage is overwritten right after.
    let ctx = unsafe { std::ptr::read(ctx) };
    // SAFETY: the borrows of the stage above have ended; the future was
    // dropped and the context mode moved out, so nothing is overwritten
    // that needed dropping.
    unsafe {
        stage.write(Stage {
            finished: ManuallyDrop::new(outcome),
        });
    }
    task.prefix.header.stage.store(FINISHED, Ordering::Relaxed);
    drop(ctx);
    true
}

#[allow(unsafe_code)]
unsafe fn take_output<F: Future, C, S: Settle<F::Output>>(ptr: NonNull<Prefix>, dst: *mut ()) {
    let task = task::<F, C, S>(ptr);
    if task.prefix.header.stage.load(Ordering::Relaxed) != FINISHED {
        return;
    }
    task.prefix.header.stage.store(CONSUMED, Ordering::Relaxed);
    // SAFETY: the stage held the output (`FINISHED`), moved out once
    // (`CONSUMED` now); loop thread, no other borrow of the stage is live.
    let output = unsafe { ManuallyDrop::take(&mut (*task.stage.get()).finished) };
    // SAFETY: the caller (`RawTask::take_output`) passes an
    // `Option<Result<S::Out, JoinError>>`.
    unsafe { *dst.cast::<Option<Result<S::Out, JoinError>>>() = Some(output) };
}

#[allow(unsafe_code)]
unsafe fn drop_output<F: Future, C, S: Settle<F::Output>>(ptr: NonNull<Prefix>) {
    let task = task::<F, C, S>(ptr);
    if task.prefix.header.stage.load(Ordering::Relaxed) != FINISHED {
        return;
    }
    task.prefix.header.stage.store(CONSUMED, Ordering::Relaxed);
    // SAFETY: the stage held the output (`FINISHED`), dropped once
    // (`CONSUMED` now, also if its destructor panics); loop thread.
    unsafe { ManuallyDrop::drop(&mut (*task.stage.get()).finished) };
}

#[allow(unsafe_code)]
unsafe fn dealloc_task<F: Future, C, S: Settle<F::Output>>(ptr: NonNull<Prefix>) {
    let ptr = ptr.cast::<Task<F, C, S>>();
    // SAFETY: the last reference is gone: what the stage still holds is
    // dropped (a union has no drop glue: by `Header::stage`; a running
    // task is never freed, but if it were, its context mode is dropped
    // and its future left, as `Running` says), then the rest of the task
    // (see the module docs), and its block, allocated in `allocate` with
    // this layout, freed.
    unsafe {
        let task = &mut *ptr.as_ptr();
        let stage = task.stage.get_mut();
        match task.prefix.header.stage.load(Ordering::Relaxed) {
            RUNNING => std::ptr::drop_in_place(&mut stage.running.ctx),
            FINISHED => ManuallyDrop::drop(&mut stage.finished),
            _ => {}
        }
        std::ptr::drop_in_place(ptr.as_ptr());
        dealloc(ptr.as_ptr().cast(), Layout::new::<Task<F, C, S>>());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::harness::{AsIs, OwnContext};

    /// What a spawn costs in memory: the whole task, for a future that
    /// holds a `u64` and returns it. smol's (async-task) is 80 bytes for
    /// the same future, tokio's 128 (dhat, docs/benchmarks.md).
    #[test]
    fn a_small_task_is_one_block_of_at_most_88_bytes() {
        fn size_of_task<F: Future>(_: &F) -> usize
        where
            F::Output: 'static,
        {
            std::mem::size_of::<Task<F, OwnContext, AsIs>>()
        }
        let n = 7u64;
        let size = size_of_task(&async move { n });
        assert_eq!(std::mem::size_of::<Prefix>(), 72, "header 24 + join slot 8 + core 40");
        assert!(size <= 88, "a task of a small future takes {size} bytes");
    }
}
