//! A loop's task scheduling state, and the thread's current one.
//!
//! [`Scheduler`] owns the ready queue (tasks and the loop's callbacks, in
//! one FIFO, as asyncio's loop has one), the registry of live tasks (what
//! a close cancels, what debug mode lists), and task names. The loop makes
//! its scheduler the thread's current one while it runs ([`enter`]); a
//! task's wake on that thread pushes onto it directly.
//!
//! The registry holds a reference to each live task (see `raw`); the
//! ready queue holds none, as a queued task is alive, except a task that
//! finished while queued: its entry takes over the registry's reference.
//! A task is queued at most once: `SCHEDULED` in its core says it is.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::core::TaskCore;
use super::handle::JoinError;
use super::raw::{self, RawTask, Slot, TaskOrRc, TaskRef, Unpacked};
use crate::context::{ContextHolder, Map};
use crate::runtime::{log_report, ExceptionContext, RemoteTask, Reporter, Shared, TaskInfo};

/// An item of the ready queue (stored as one word, a [`TaskOrRc`]).
pub(crate) enum Ready {
    Task(RawTask),
    Callback(Rc<Callback>),
}

/// A loop callback (`call_soon`, timers, `call_soon_threadsafe`, fd
/// watches): a closure and the context it runs in.
pub(crate) struct Callback {
    context_id: u64,
    ctx: Cell<Map>,
    f: RefCell<CallbackFn>,
    cancelled: Cell<bool>,
    /// What its panic is reported as.
    what: &'static str,
}

enum CallbackFn {
    /// Runs once (`call_soon`, timers).
    Once(Option<Box<dyn FnOnce()>>),
    /// Runs at every readiness (`add_reader`, `add_writer`).
    Repeat(Box<dyn FnMut()>),
}

impl Callback {
    /// A callback run once, in a copy of the current context.
    pub(crate) fn once(f: Box<dyn FnOnce()>, what: &'static str) -> Rc<Callback> {
        Callback::new(CallbackFn::Once(Some(f)), what)
    }

    /// A callback run every time it is queued, in a copy of the current
    /// context.
    pub(crate) fn repeat(f: Box<dyn FnMut()>, what: &'static str) -> Rc<Callback> {
        Callback::new(CallbackFn::Repeat(f), what)
    }

    fn new(f: CallbackFn, what: &'static str) -> Rc<Callback> {
        Rc::new(Callback {
            context_id: crate::context::new_context_id(),
            ctx: Cell::new(crate::context::current_map()),
            f: RefCell::new(f),
            cancelled: Cell::new(false),
            what,
        })
    }

    /// Runs it (not re-entrantly: a callback somehow run from inside
    /// itself is skipped). The caller enters its context and catches a
    /// panic.
    pub(crate) fn call(&self) {
        let Ok(mut f) = self.f.try_borrow_mut() else {
            return;
        };
        match &mut *f {
            CallbackFn::Once(once) => {
                let once = once.take();
                drop(f);
                if let Some(once) = once {
                    once();
                }
            }
            CallbackFn::Repeat(repeat) => repeat(),
        }
    }

    /// Unschedules it: it will not run.
    pub(crate) fn cancel(&self) {
        self.cancelled.set(true);
        if let Ok(mut f) = self.f.try_borrow_mut() {
            if let CallbackFn::Once(once) = &mut *f {
                once.take();
            }
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }

    /// What its panic is reported as.
    pub(crate) fn what(&self) -> &'static str {
        self.what
    }
}

impl ContextHolder for Callback {
    fn map_cell(&self) -> &Cell<Map> {
        &self.ctx
    }

    fn context_id(&self) -> u64 {
        self.context_id
    }
}

/// The message a panic nobody retrieved is reported with.
const UNRETRIEVED: &str = "a task panicked and its JoinHandle was dropped without awaiting it";

/// The live tasks: a slab of one word per slot ([`Slot`]: a task, or a
/// free slot chained to the next free one), 8 bytes a task.
#[derive(Default)]
struct Registry {
    slots: Vec<Slot>,
    /// The first free slot.
    free: Option<u32>,
    len: usize,
}

/// How many entries of room the ready queue keeps when the loop goes idle
/// ([`Scheduler::trim_ready`]): 8 KiB, more than most loops ever queue.
pub(crate) const KEEP_READY: usize = 1024;

/// How many slots the registry keeps at least when it gives back room
/// ([`Scheduler::trim_registry`]).
pub(crate) const KEEP_SLOTS: usize = 1024;

/// A loop's task scheduling state (see the module docs).
pub(crate) struct Scheduler {
    pub(crate) shared: Arc<Shared>,
    ready: RefCell<VecDeque<TaskOrRc<Callback>>>,
    registry: RefCell<Registry>,
    /// Names of the tasks that have one (most have none).
    names: RefCell<HashMap<u64, Box<str>>>,
    reporter: RefCell<Option<Reporter>>,
    closed: Cell<bool>,
    /// Set while close step 1 drives the cancelled tasks: their panics are
    /// reported as shutdown errors.
    shutting_down: Cell<bool>,
}

impl Scheduler {
    pub(crate) fn new(shared: Arc<Shared>) -> Rc<Scheduler> {
        let sched = Rc::new(Scheduler {
            shared,
            ready: RefCell::new(VecDeque::new()),
            registry: RefCell::default(),
            names: RefCell::default(),
            reporter: RefCell::new(None),
            closed: Cell::new(false),
            shutting_down: Cell::new(false),
        });
        let _ = LOOPS.try_with(|l| {
            let mut loops = l.borrow_mut();
            loops.retain(|w| w.strong_count() > 0);
            loops.push(Rc::downgrade(&sched));
        });
        sched
    }

    /// Where reports go (the loop's exception handler).
    pub(crate) fn set_reporter(&self, reporter: Reporter) {
        *self.reporter.borrow_mut() = Some(reporter);
    }

    pub(crate) fn report(&self, ctx: ExceptionContext) {
        let reporter = self.reporter.borrow().as_ref().and_then(|r| r.upgrade());
        match reporter {
            Some(r) => r.report(ctx),
            // No loop left to ask (it is being dropped): the default handler.
            None => log_report(&ctx),
        }
    }

    // --- the ready queue ---

    /// Queues a loop callback (tasks are queued by [`schedule`](Self::schedule)).
    pub(crate) fn push_callback(&self, cb: Rc<Callback>) {
        self.ready.borrow_mut().push_back(TaskOrRc::rc(cb));
    }

    pub(crate) fn pop(&self) -> Option<Ready> {
        let word = self.ready.borrow_mut().pop_front()?;
        Some(match word.unpack() {
            Unpacked::Task(task) => Ready::Task(task),
            Unpacked::Rc(cb) => Ready::Callback(cb),
        })
    }

    /// Gives back the ready queue's room beyond [`KEEP_READY`] entries
    /// while it is empty: the loop calls it before it blocks, so that a
    /// burst of ready tasks (a million spawns) does not keep its queue's
    /// memory (8 bytes an entry) for the loop's whole life.
    pub(crate) fn trim_ready(&self) {
        let mut ready = self.ready.borrow_mut();
        if ready.capacity() > KEEP_READY && ready.is_empty() {
            ready.shrink_to(KEEP_READY);
        }
    }

    /// Gives back the registry's room when at most a quarter of it holds
    /// live tasks (and it has more than [`KEEP_SLOTS`] slots): the live
    /// tasks move to the front, in their order, and learn their new
    /// slots. Called before the loop blocks, when no task is being polled;
    /// O(slots), once per shrink of at least three quarters.
    pub(crate) fn trim_registry(&self) {
        let mut reg = self.registry.borrow_mut();
        if reg.slots.len() <= KEEP_SLOTS || reg.len.saturating_mul(4) > reg.slots.len() {
            return;
        }
        let mut dense = 0;
        for i in 0..reg.slots.len() {
            if let Some(task) = reg.slots[i].task() {
                reg.slots[dense] = Slot::used(task);
                task.core().set_index(dense as u32);
                dense += 1;
            }
        }
        debug_assert_eq!(dense, reg.len);
        reg.slots.truncate(dense);
        reg.slots.shrink_to(dense.saturating_mul(2).max(KEEP_SLOTS));
        reg.free = None;
    }

    #[cfg(test)]
    pub(crate) fn registry_capacity(&self) -> usize {
        self.registry.borrow().slots.capacity()
    }

    #[cfg(test)]
    pub(crate) fn ready_capacity(&self) -> usize {
        self.ready.borrow().capacity()
    }

    pub(crate) fn ready_len(&self) -> usize {
        self.ready.borrow().len()
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }

    // --- the registry ---

    /// Registers a new task, taking over one of its references.
    pub(crate) fn register(&self, task: RawTask) {
        let mut reg = self.registry.borrow_mut();
        let index = match reg.free {
            None => {
                reg.slots.push(Slot::used(task));
                u32::try_from(reg.slots.len() - 1)
                    .ok()
                    .filter(|&i| i < u32::MAX >> 1)
                    .expect("fewer than 2 billion live tasks")
            }
            Some(i) => {
                reg.free = reg.slots[i as usize].next_free();
                reg.slots[i as usize] = Slot::used(task);
                i
            }
        };
        reg.len += 1;
        task.core().set_index(index);
    }

    /// Removes a finished task; the caller takes over the registry's
    /// reference.
    fn deregister(&self, core: &TaskCore) {
        let index = core.index();
        let mut reg = self.registry.borrow_mut();
        reg.slots[index as usize] = Slot::free(reg.free);
        reg.free = Some(index);
        reg.len -= 1;
        core.set_index(u32::MAX);
        drop(reg);
        if core.is_detached() {
            // No handle left to ask for the name.
            self.forget_name(core);
        }
    }

    /// How many tasks are alive (spawned and not finished).
    pub(crate) fn task_count(&self) -> usize {
        self.registry.borrow().len
    }

    /// A counted reference to every live task.
    pub(crate) fn live_tasks(&self) -> Vec<TaskRef> {
        self.registry
            .borrow()
            .slots
            .iter()
            // Alive: the registry holds a reference.
            .filter_map(|slot| slot.task().map(|task| task.task_ref()))
            .collect()
    }

    /// Queues a live task, unless it is queued already.
    pub(crate) fn schedule(&self, task: RawTask) {
        let core = task.core();
        if core.is_done() || core.is_scheduled() {
            return;
        }
        core.set_scheduled(true);
        self.ready.borrow_mut().push_back(TaskOrRc::task(task));
    }

    /// Schedules a task another thread woke, and lets go of the reference
    /// its message held.
    pub(crate) fn schedule_remote(&self, task: RemoteTask) {
        // SAFETY: every `RemoteTask` in the loop's remote queue comes from
        // `RawTask::wake`, and this is the loop's thread taking it, once.
        #[allow(unsafe_code)]
        let wake = unsafe { raw::from_remote(task) };
        self.schedule(wake.task());
    }

    /// Runs one scheduling of a task (popped from the ready queue, or a
    /// task spawned on a closed loop); a task that finishes is
    /// deregistered and wakes whoever awaits its handle.
    pub(crate) fn run_task(&self, task: RawTask) {
        let core = task.core();
        core.set_scheduled(false);
        if core.is_done() {
            if core.take_release_on_pop() {
                // SAFETY: the registry's reference, handed to the queue
                // entry when the task finished while queued (below).
                #[allow(unsafe_code)]
                unsafe {
                    task.release()
                };
            }
            return;
        }
        let finished = {
            let _polled = enter_task(task);
            let _ctx = crate::context::enter_task(&core.ctx);
            task.poll()
        };
        if finished {
            self.complete(task);
        }
    }

    fn complete(&self, task: RawTask) {
        let core = task.core();
        self.deregister(core);
        task.join_slot().wake();
        if core.is_detached() {
            // Nobody will take the output: it is dropped here, on the
            // loop's thread (the allocation may be freed on another).
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| task.drop_output())) {
                self.report(ExceptionContext {
                    message: "dropping the output of a detached task panicked".into(),
                    panic: Some(super::panic_message(payload.as_ref())),
                    task: Some(self.info(task)),
                });
            }
        }
        // The references the loop's thread counted in a plain cell while
        // the task ran join the atomic count (`raw`'s module docs).
        if core.is_scheduled() {
            // It woke itself as it finished: the queue entry releases.
            core.set_release_on_pop();
            // SAFETY: once, as the task finishes; nothing released.
            #[allow(unsafe_code)]
            unsafe {
                task.merge_refs(false)
            };
        } else {
            // SAFETY: once, as the task finishes; with the registry's
            // reference, given up by `deregister`.
            #[allow(unsafe_code)]
            unsafe {
                task.merge_refs(true)
            };
        }
    }

    // --- names ---

    pub(crate) fn name(&self, core: &TaskCore) -> Option<String> {
        if !core.is_named() {
            return core.is_main().then(|| "main".to_string());
        }
        self.names.borrow().get(&core.id().0).map(|n| n.to_string())
    }

    pub(crate) fn set_name(&self, core: &TaskCore, name: String) {
        if core.is_done() && core.is_detached() {
            // Finished with no handle left: nothing would remove the name.
            return;
        }
        core.mark_named();
        self.names.borrow_mut().insert(core.id().0, name.into_boxed_str());
    }

    /// Drops the task's name: it finished and its handle is gone (or it
    /// finished detached). A finished task's handle still gives the name,
    /// as asyncio's `get_name()` does.
    pub(crate) fn forget_name(&self, core: &TaskCore) {
        if core.is_named() {
            self.names.borrow_mut().remove(&core.id().0);
        }
    }

    pub(crate) fn info(&self, task: RawTask) -> TaskInfo {
        task.core().info(self.name(task.core()), task.spawned_at())
    }

    // --- shutting down ---

    pub(crate) fn set_shutting_down(&self, on: bool) {
        self.shutting_down.set(on);
    }

    /// What a panic nobody retrieved is reported as.
    pub(crate) fn unretrieved_panic_message(&self) -> &'static str {
        if self.shutting_down.get() {
            crate::runtime::SHUTDOWN_ERROR_MESSAGE
        } else if self.closed.get() {
            "a task panicked when the closing loop dropped it (EventLoop::close drops the tasks still alive; \
             Runner::close cancels and drives them first)"
        } else {
            UNRETRIEVED
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    /// Closes the scheduler: every live task's future is dropped, without
    /// running again (its destructors run; panics of tasks nobody awaits
    /// are reported); callbacks still queued are dropped. Tasks spawned
    /// from then on are dropped at once. Call it with this scheduler
    /// current ([`enter`]).
    pub(crate) fn close(&self) {
        self.closed.set(true);
        if self.task_count() == 0 && !self.has_ready() {
            return;
        }
        // Destructors may spawn or wake; a few rounds settle it.
        for _ in 0..8 {
            let tasks = self.live_tasks();
            if tasks.is_empty() && !self.has_ready() {
                break;
            }
            for t in &tasks {
                t.force_drop();
            }
            drop(tasks);
            while let Some(item) = self.pop() {
                match item {
                    Ready::Task(r) => self.run_task(r),
                    Ready::Callback(c) => drop(c),
                }
            }
        }
    }
}

thread_local! {
    /// The scheduler of the loop running on this thread.
    static CURRENT: RefCell<Option<Rc<Scheduler>>> = const { RefCell::new(None) };
    /// The task being polled.
    static POLLED: Cell<Option<RawTask>> = const { Cell::new(None) };
    /// The shared part of the loop running on this thread (null: none),
    /// for the cheapest test of "this thread runs that task's loop"
    /// (`raw`'s reference counts make it at every waker clone and drop).
    static RUNS_HERE: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
    /// The schedulers of the loops that exist on this thread (created
    /// here: a loop never moves), for handles used while their loop does
    /// not run.
    static LOOPS: RefCell<Vec<Weak<Scheduler>>> = const { RefCell::new(Vec::new()) };
    /// A block of task ids this thread hands out: (next, end).
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Ids are handed to threads in blocks, so a spawn takes one without an
/// atomic operation.
static NEXT_ID_BLOCK: AtomicU64 = AtomicU64::new(1);
const ID_BLOCK: u64 = 1024;

/// A task id unique in the process.
pub(crate) fn next_task_id() -> u64 {
    IDS.with(|ids| {
        let (next, end) = ids.get();
        if next < end {
            ids.set((next + 1, end));
            next
        } else {
            let start = NEXT_ID_BLOCK.fetch_add(ID_BLOCK, Ordering::Relaxed);
            ids.set((start + 1, start + ID_BLOCK));
            start
        }
    })
}

/// Makes `sched` the thread's current scheduler until the guard drops.
pub(crate) fn enter(sched: &Rc<Scheduler>) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(sched.clone())));
    RUNS_HERE.with(|r| r.set(Arc::as_ptr(&sched.shared)));
    EnterGuard { prev }
}

/// Restores the previous current scheduler.
pub(crate) struct EnterGuard {
    prev: Option<Rc<Scheduler>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = RUNS_HERE.try_with(|r| r.set(prev.as_ref().map_or(std::ptr::null(), |s| Arc::as_ptr(&s.shared))));
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

/// Whether the loop whose shared part is `shared` runs on this thread now.
#[inline]
pub(crate) fn runs_here(shared: &Arc<Shared>) -> bool {
    RUNS_HERE
        .try_with(|r| std::ptr::eq(r.get(), Arc::as_ptr(shared)))
        .unwrap_or(false)
}

/// Whether a loop other than the one whose shared part is `shared` runs on
/// this thread now (so that one cannot run until this one's run ends).
pub(crate) fn runs_another_loop(shared: &Arc<Shared>) -> bool {
    RUNS_HERE
        .try_with(|r| {
            let here = r.get();
            !here.is_null() && !std::ptr::eq(here, Arc::as_ptr(shared))
        })
        .unwrap_or(false)
}

/// The scheduler of `task`'s loop, while that loop exists (on this thread:
/// the loop's).
pub(crate) fn of(task: RawTask) -> Option<Rc<Scheduler>> {
    let mine = |s: &Rc<Scheduler>| Arc::ptr_eq(&s.shared, task.shared());
    if let Some(s) = current().filter(mine) {
        return Some(s);
    }
    LOOPS
        .try_with(|l| l.borrow().iter().filter_map(Weak::upgrade).find(mine))
        .ok()
        .flatten()
}

/// The current scheduler, if a loop runs on this thread.
pub(crate) fn current() -> Option<Rc<Scheduler>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Schedules `task` on the loop it belongs to, if that loop runs on this
/// thread; `false` otherwise (the caller goes through the remote queue).
pub(crate) fn push_local(task: RawTask) -> bool {
    CURRENT
        .try_with(|c| match &*c.borrow() {
            // Only the loop's own thread gets here: its scheduler is
            // current nowhere else.
            Some(s) if Arc::ptr_eq(&s.shared, task.shared()) => {
                s.schedule(task);
                true
            }
            _ => false,
        })
        .unwrap_or(false)
}

/// Makes `task` the polled one until the guard drops.
pub(crate) fn enter_task(task: RawTask) -> TaskGuard {
    TaskGuard {
        prev: POLLED.with(|p| p.replace(Some(task))),
    }
}

/// Restores the previously polled task (also when a poll unwinds).
pub(crate) struct TaskGuard {
    prev: Option<RawTask>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let _ = POLLED.try_with(|p| p.set(self.prev));
    }
}

/// The task being polled, if any: alive while it is (the registry holds
/// it), and only this thread touches its core.
pub(crate) fn current_raw() -> Option<RawTask> {
    POLLED.try_with(Cell::get).ok().flatten()
}

/// Calls `f` with the core of the task being polled, if any.
pub(crate) fn with_current_task<R>(f: impl FnOnce(&TaskCore) -> R) -> Option<R> {
    current_raw().map(|task| f(task.core()))
}

/// Reports a task's panic as it finishes (on the loop's thread) when
/// nobody else will: its handle was dropped before, or the loop is closing
/// (close step 1 reports every task that panicked, as asyncio's
/// `asyncio.run` does at shutdown; the handle then does not again).
pub(crate) fn report_panic_if_owed(task: RawTask, e: &JoinError) {
    let core = task.core();
    if !e.is_panic() || core.panic_reported() {
        return;
    }
    let sched = current();
    let closing = sched.as_ref().is_some_and(|s| s.shutting_down.get() || s.closed.get());
    if !core.is_detached() && !closing {
        return;
    }
    core.mark_panic_reported();
    match sched {
        Some(sched) => sched.report(ExceptionContext {
            message: sched.unretrieved_panic_message().into(),
            panic: e.panic_message(),
            task: Some(sched.info(task)),
        }),
        None => log_report(&ExceptionContext {
            message: UNRETRIEVED.into(),
            panic: e.panic_message(),
            task: Some(core.info(None, task.spawned_at())),
        }),
    }
}
