//! The event loop: a ready queue, timers, a reactor, and the tasks on them.
//!
//! An [`EventLoop`] belongs to the thread that created it (it is `!Send`);
//! everything on the same-thread path is `Cell`/`RefCell`, with no lock and
//! no atomic read-modify-write. The part other threads may touch is
//! `Shared` (behind an `Arc`): a lock-free queue of wake-ups and callbacks
//! (`crossbeam-channel`) and a `Weak` to the poller so they can interrupt
//! its wait. A [`LoopHandle`] wraps it for user code.
//!
//! # One iteration
//!
//! 1. Decide how long the reactor may block: not at all when something is
//!    ready or a stop is pending, else until the next timer, else forever.
//! 2. Block in the reactor (skipped when the timeout is zero, except every
//!    `REACTOR_INTERVAL` iterations when file descriptors are registered,
//!    so I/O is never starved by busy tasks), then take what other threads
//!    sent.
//! 3. Move every expired timer to the ready queue.
//! 4. Run the ready items that were queued when the batch started; what they
//!    schedule runs in the next iteration, as in asyncio.
//!
//! To block, the loop raises `Shared::sleeping` and checks the remote queue
//! once more; a sender pushes first and then looks at `sleeping`. Both use
//! `SeqCst`, so either the loop sees the message or the sender sees the loop
//! asleep and notifies the poller: a wake-up is never lost, and a busy loop
//! costs senders no system call.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe, Location};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::context::{self, ContextHolder, Map};
use crate::executor::{self, Blocking, Executor, DEFAULT_EXECUTOR_SHUTDOWN_TIMEOUT};
use crate::poll::Poller;
use crate::reactor::{Direction, FdCallback, Reactor};
use crate::task::{self, Header, JoinHandle, RawTask, RunResult, TaskInfo};
use crate::time::{Clock, TimerEntry, TimerHandle, Timers};
use crate::{Context, Error};

/// How many iterations may skip the reactor while tasks keep the loop busy.
pub(crate) const REACTOR_INTERVAL: u32 = 61;

/// The environment variable that turns debug mode on by default (set and
/// non-empty), like Python's `PYTHONASYNCIODEBUG`.
pub const DEBUG_ENV: &str = "RUNNER_DEBUG";

/// The default [`EventLoop::slow_callback_duration`].
pub const DEFAULT_SLOW_CALLBACK_DURATION: Duration = Duration::from_millis(100);

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn env_debug() -> bool {
    std::env::var_os(DEBUG_ENV).is_some_and(|v| !v.is_empty())
}

/// What other threads send to the loop.
pub(crate) enum Remote {
    /// Schedule this task.
    Wake(Arc<Header>),
    /// Run this callback on the loop thread.
    Call(Box<dyn FnOnce() + Send>),
}

/// The thread-safe part of a loop.
pub(crate) struct Shared {
    pub(crate) loop_id: u64,
    tx: Sender<Remote>,
    rx: Receiver<Remote>,
    poller: std::sync::Weak<Poller>,
    /// Raised by senders after pushing; lets the busy loop skip the channel
    /// with one relaxed load when nothing was sent.
    pending: AtomicBool,
    sleeping: AtomicBool,
    closed: AtomicBool,
}

impl Shared {
    fn send(&self, msg: Remote) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::LoopClosed);
        }
        // The receiver lives in `self`, so the channel cannot be disconnected.
        let _ = self.tx.send(msg);
        self.pending.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            if let Some(poller) = self.poller.upgrade() {
                let _ = poller.notify();
            }
        }
        Ok(())
    }

    pub(crate) fn send_wake(&self, header: Arc<Header>) {
        let _ = self.send(Remote::Wake(header));
    }
}

/// An item of the ready queue.
enum Ready {
    Task(usize),
    Callback(Rc<CallbackCell>),
    /// An `add_reader`/`add_writer` callback whose descriptor is ready.
    Fd(Rc<FdCallback>),
}

/// A callback scheduled on the loop, with the context it runs in.
pub(crate) struct CallbackCell {
    context_id: u64,
    f: RefCell<Option<Box<dyn FnOnce()>>>,
    cancelled: Cell<bool>,
    ctx: RefCell<Map>,
}

impl CallbackCell {
    fn new(f: Box<dyn FnOnce()>) -> Rc<CallbackCell> {
        Rc::new(CallbackCell {
            context_id: context::new_context_id(),
            f: RefCell::new(Some(f)),
            cancelled: Cell::new(false),
            ctx: RefCell::new(context::current_map()),
        })
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.set(true);
        self.f.borrow_mut().take();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.get()
    }
}

impl ContextHolder for CallbackCell {
    fn map_cell(&self) -> &RefCell<Map> {
        &self.ctx
    }

    fn context_id(&self) -> u64 {
        self.context_id
    }
}

/// A callback scheduled with [`EventLoop::call_soon`]; [`cancel`](Self::cancel)
/// unschedules it (asyncio's `Handle`).
pub struct CallbackHandle {
    cell: Rc<CallbackCell>,
}

impl CallbackHandle {
    /// Unschedules the callback if it has not run yet.
    pub fn cancel(&self) {
        self.cell.cancel();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }
}

impl fmt::Debug for CallbackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackHandle")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// The slot table of live tasks: their index is what wakers carry.
#[derive(Default)]
struct Slab {
    entries: Vec<Option<Rc<dyn RawTask>>>,
    free: Vec<usize>,
    len: usize,
}

impl Slab {
    fn vacant_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.entries.len())
    }

    fn insert(&mut self, task: Rc<dyn RawTask>) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(key) => {
                self.entries[key] = Some(task);
                key
            }
            None => {
                self.entries.push(Some(task));
                self.entries.len() - 1
            }
        }
    }

    fn get(&self, key: usize) -> Option<&Rc<dyn RawTask>> {
        self.entries.get(key).and_then(|e| e.as_ref())
    }

    fn remove(&mut self, key: usize) -> Option<Rc<dyn RawTask>> {
        let task = self.entries.get_mut(key)?.take()?;
        self.free.push(key);
        self.len -= 1;
        Some(task)
    }

    fn drain(&mut self) -> Vec<Rc<dyn RawTask>> {
        self.free.clear();
        self.len = 0;
        std::mem::take(&mut self.entries).into_iter().flatten().collect()
    }

    fn iter(&self) -> impl Iterator<Item = &Rc<dyn RawTask>> {
        self.entries.iter().flatten()
    }
}

/// The loop's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Running,
    Closed,
}

type ExceptionHandler = Rc<dyn Fn(&EventLoop, &ExceptionContext)>;

/// Everything a report to the exception handler says (asyncio's
/// exception-handler `context` dict).
#[derive(Debug, Clone)]
pub struct ExceptionContext {
    /// What happened.
    pub message: String,
    /// The panic message, when a panic is being reported.
    pub panic: Option<String>,
    /// The task concerned, if any.
    pub task: Option<TaskInfo>,
}

impl ExceptionContext {
    /// A report with just a message.
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            panic: None,
            task: None,
        }
    }
}

impl fmt::Display for ExceptionContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(task) = &self.task {
            write!(f, "\n  {task}")?;
        }
        if let Some(panic) = &self.panic {
            write!(f, "\n  panic: {panic}")?;
        }
        Ok(())
    }
}

pub(crate) struct LoopCore {
    id: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) reactor: RefCell<Option<Reactor>>,
    ready: RefCell<VecDeque<Ready>>,
    tasks: RefCell<Slab>,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) clock: Clock,
    /// A real-time bound on the reactor's wait (used by the executor
    /// shutdown, whose timeout is real time even on a virtual clock).
    real_deadline: Cell<Option<Instant>>,
    state: Cell<State>,
    stopping: Cell<bool>,
    tick: Cell<u32>,
    debug: Cell<bool>,
    slow_callback_duration: Cell<Duration>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    /// Set while close step 1 drives the cancelled tasks: their panics are
    /// reported as shutdown errors.
    shutting_down: Cell<bool>,
    executor: RefCell<Option<Arc<Executor>>>,
    /// Pools replaced by `set_default_executor`: they take no new jobs, and
    /// are joined with the current one at shutdown.
    retired_executors: RefCell<Vec<Arc<Executor>>>,
    executor_shut_down: Cell<bool>,
    max_blocking_threads: Cell<usize>,
    executor_shutdown_timeout: Duration,
    asyncgens: RefCell<Vec<Weak<dyn AsyncGenFinalizer>>>,
    asyncgens_shut_down: Cell<bool>,
    /// The task being polled. Kept here rather than in a thread-local: only
    /// this loop polls its tasks, and the loop is found through `RUNNING`.
    pub(crate) current_task: RefCell<Option<Rc<dyn RawTask>>>,
    /// What the runner's interrupt signals (Ctrl-C) do, while a
    /// `Runner::run` or close on the main thread takes them.
    pub(crate) interrupts: RefCell<Option<Rc<Interrupts>>>,
    /// Whether deliveries of signals concern this loop (it takes
    /// interrupts): then it looks at them before every task step.
    listens: Cell<bool>,
    /// Set by a final interrupt: the current run returns at once.
    abort: Cell<bool>,
}

/// A run's (or a close's) Ctrl-C state, shared by the runner and its loop.
///
/// The handler counts each delivery (see [`signal`](crate::signal)); the
/// loop takes them in order before its next task step: the first of a run
/// cancels the main task (*soft*); any later one, one that finds the main
/// task done, and any during closing is *final*: the loop stops at once.
pub(crate) struct Interrupts {
    /// The signals that act as Ctrl-C, with the deliveries of each taken.
    signals: Vec<(i32, Cell<u32>)>,
    /// The main task the first interrupt cancels (`None` while closing).
    target: Option<Rc<dyn RawTask>>,
    /// How many interrupts this run (close) took.
    taken: Cell<u32>,
    /// The signal that cancelled the main task.
    soft: Cell<Option<i32>>,
    /// The signal of a final interrupt.
    hard: Cell<Option<i32>>,
    /// Ends the process if a later interrupt is not taken (library
    /// programs only; `#[main]` ends it in the handler).
    watchdog: RefCell<Option<crate::signal::Watchdog>>,
}

impl Interrupts {
    /// Interrupt state for `signals`, starting from what was delivered so far.
    pub(crate) fn new(signals: &[i32], target: Option<Rc<dyn RawTask>>) -> Interrupts {
        Interrupts {
            signals: signals
                .iter()
                .map(|&s| (s, Cell::new(crate::signal::count(s))))
                .collect(),
            target,
            taken: Cell::new(0),
            soft: Cell::new(None),
            hard: Cell::new(None),
            watchdog: RefCell::new(None),
        }
    }

    /// The signal that cancelled the main task, if one did.
    pub(crate) fn soft(&self) -> Option<i32> {
        self.soft.get()
    }

    /// The signal of a final interrupt, if one came.
    pub(crate) fn hard(&self) -> Option<i32> {
        self.hard.get()
    }

    /// Carries the watchdog of a run over to its close.
    pub(crate) fn take_watchdog_from(&self, run: &Interrupts) {
        *self.watchdog.borrow_mut() = run.watchdog.borrow_mut().take();
    }
}

/// An async generator that was started and not finished: what
/// [`EventLoop::shutdown_asyncgens`] closes. The generator type registers
/// itself with [`LoopCore::track_asyncgen`] when first polled.
pub(crate) trait AsyncGenFinalizer {
    /// Whether the generator already finished (nothing to close).
    fn is_finished(&self) -> bool;
    /// Closes the generator, running its cleanup (async cleanup included).
    fn aclose(self: Rc<Self>) -> std::pin::Pin<Box<dyn Future<Output = ()>>>;
}

thread_local! {
    /// The loop running on this thread.
    static RUNNING: RefCell<Option<Rc<LoopCore>>> = const { RefCell::new(None) };
    /// The loop set with `set_event_loop`.
    static THREAD_LOOP: RefCell<Option<EventLoop>> = const { RefCell::new(None) };
}

/// Calls `f` with the task being polled by the loop running on this thread.
pub(crate) fn with_current_task<R>(f: impl FnOnce(&Rc<dyn RawTask>) -> R) -> Option<R> {
    RUNNING
        .try_with(|r| {
            let running = r.borrow();
            let task = running.as_ref()?.current_task.borrow();
            task.as_ref().map(f)
        })
        .ok()
        .flatten()
}

/// Schedules the task of `header` if its loop is running on this thread;
/// `false` means the caller must go through the remote queue.
pub(crate) fn schedule_local(header: &Header) -> bool {
    RUNNING
        .try_with(|r| match &*r.borrow() {
            Some(core) if core.id == header.shared.loop_id => {
                core.schedule(header);
                true
            }
            _ => false,
        })
        .unwrap_or(false)
}

impl LoopCore {
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    fn schedule(&self, header: &Header) {
        if !header.scheduled.load(Ordering::Relaxed) {
            header.scheduled.store(true, Ordering::Relaxed);
            self.ready.borrow_mut().push_back(Ready::Task(header.key));
        }
    }

    fn is_closed(&self) -> bool {
        self.state.get() == State::Closed
    }

    /// The current and the retired executors, taken from the loop.
    fn take_executors(&self) -> Vec<Arc<Executor>> {
        let mut all = std::mem::take(&mut *self.retired_executors.borrow_mut());
        all.extend(self.executor.borrow_mut().take());
        all
    }

    /// What a panic nobody retrieved is reported as.
    pub(crate) fn unretrieved_panic_message(&self) -> &'static str {
        if self.shutting_down.get() {
            crate::runner::SHUTDOWN_ERROR_MESSAGE
        } else {
            "a task panicked and its JoinHandle was dropped without awaiting it"
        }
    }

    /// Registers a started async generator for `shutdown_asyncgens`.
    /// `false` when that shutdown already ran (the generator will not be
    /// finalized by the loop).
    pub(crate) fn track_asyncgen(&self, generator: Weak<dyn AsyncGenFinalizer>) -> bool {
        if self.asyncgens_shut_down.get() || self.is_closed() {
            return false;
        }
        let mut gens = self.asyncgens.borrow_mut();
        gens.retain(|g| g.strong_count() > 0);
        gens.push(generator);
        true
    }

    /// Sends a report to the exception handler (or the default one).
    pub(crate) fn report(self: &Rc<Self>, ctx: ExceptionContext) {
        let handler = self.exception_handler.borrow().clone();
        let lp = EventLoop { core: self.clone() };
        match handler {
            None => lp.default_exception_handler(&ctx),
            Some(handler) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(&lp, &ctx))) {
                    lp.default_exception_handler(&ExceptionContext {
                        message: "the exception handler panicked while handling a report".into(),
                        panic: Some(task::panic_message(payload.as_ref())),
                        task: None,
                    });
                    lp.default_exception_handler(&ctx);
                }
            }
        }
    }

    fn drain_remote(&self) {
        // Senders raise the flag after pushing. A flag missed by the relaxed
        // load is seen at the next iteration, and before blocking (`wait`).
        // Lowering it must be a read-modify-write: it acquires the push of
        // every sender whose raise it consumes, so the drain below sees it.
        if !self.shared.pending.load(Ordering::Relaxed) {
            return;
        }
        if !self.shared.pending.swap(false, Ordering::AcqRel) {
            return;
        }
        while let Ok(msg) = self.shared.rx.try_recv() {
            match msg {
                Remote::Wake(header) => {
                    header.remote_queued.store(false, Ordering::Release);
                    let live = self
                        .tasks
                        .borrow()
                        .get(header.key)
                        .is_some_and(|t| Arc::ptr_eq(&t.core().header, &header));
                    if live {
                        self.schedule(&header);
                    }
                }
                Remote::Call(f) => {
                    let cell = CallbackCell::new(f);
                    self.ready.borrow_mut().push_back(Ready::Callback(cell));
                }
            }
        }
    }

    /// Sets (or clears) what interrupt signals do on this loop.
    pub(crate) fn set_interrupts(&self, interrupts: Option<Rc<Interrupts>>) {
        self.listens.set(interrupts.is_some());
        *self.interrupts.borrow_mut() = interrupts;
    }

    /// Takes the signal deliveries counted since the last look, in order
    /// per signal (see [`Interrupts`]). The loop calls it before a task
    /// step when a delivery is pending; the runner once more before a run
    /// returns.
    pub(crate) fn take_signals(&self) {
        crate::signal::take_pending();
        let Some(ints) = self.interrupts.borrow().clone() else {
            return;
        };
        // Read first: every delivery it counts has already been counted
        // for its signal too (the handler counts in that order).
        let delivered = crate::signal::interrupts();
        for (sig, seen) in &ints.signals {
            let now = crate::signal::count(*sig);
            while seen.get() != now {
                seen.set(seen.get().wrapping_add(1));
                self.take_interrupt(&ints, *sig);
            }
        }
        crate::signal::set_taken(delivered);
    }

    /// Takes pending signal deliveries, if this loop listens for them.
    #[inline]
    fn look_at_signals(&self) {
        if self.listens.get() && crate::signal::pending() {
            self.take_signals();
        }
    }

    /// One interrupt: the first of a run cancels the main task; any other
    /// is final.
    fn take_interrupt(&self, ints: &Interrupts, sig: i32) {
        let first = ints.taken.get() == 0;
        ints.taken.set(ints.taken.get() + 1);
        let cancelled = first && ints.target.as_ref().is_some_and(|t| t.core().cancel());
        if cancelled {
            ints.soft.set(Some(sig));
            if ints.watchdog.borrow().is_none() && !crate::signal::final_in_handler() {
                *ints.watchdog.borrow_mut() = crate::signal::Watchdog::start();
            }
        } else {
            if ints.hard.get().is_none() {
                ints.hard.set(Some(sig));
            }
            self.abort.set(true);
        }
    }

    fn fire_timers(&self, now: Instant) {
        loop {
            let entry = self.timers.borrow_mut().pop_expired(now);
            match entry {
                None => break,
                Some(TimerEntry::Waker(w)) => w.wake(),
                Some(TimerEntry::Callback(cell)) => {
                    if !cell.is_cancelled() {
                        self.ready.borrow_mut().push_back(Ready::Callback(cell));
                    }
                }
            }
        }
    }

    /// Blocks in the reactor for at most `timeout` (see the module docs for
    /// the `sleeping` handshake).
    fn wait(self: &Rc<Self>, mut timeout: Option<Duration>) {
        let mut slot = self.reactor.borrow_mut();
        let Some(reactor) = slot.as_mut() else {
            return;
        };
        let blocking = timeout != Some(Duration::ZERO);
        if blocking {
            self.shared.sleeping.store(true, Ordering::SeqCst);
            if self.shared.pending.load(Ordering::SeqCst) {
                timeout = Some(Duration::ZERO);
            }
        }
        let result = reactor.wait(timeout);
        if blocking {
            self.shared.sleeping.store(false, Ordering::SeqCst);
        }
        let fired = reactor.take_fired();
        if !fired.is_empty() {
            let mut ready = self.ready.borrow_mut();
            ready.extend(fired.into_iter().map(Ready::Fd));
        }
        if let Err(e) = result {
            // The poller itself failed (not a timeout, not EINTR): report and
            // go on; the next iteration tries again.
            drop(slot);
            self.report(ExceptionContext::new(format!("the reactor's poll failed: {e}")));
        }
    }

    fn has_io_sources(&self) -> bool {
        self.reactor.borrow().as_ref().is_some_and(Reactor::has_sources)
    }

    /// Blocking-pool jobs queued or running.
    pub(crate) fn blocking_jobs_in_flight(&self) -> usize {
        let current = self.executor.borrow().as_ref().map_or(0, |e| e.jobs_in_flight());
        let retired: usize = self.retired_executors.borrow().iter().map(|e| e.jobs_in_flight()).sum();
        current + retired
    }

    /// How long the reactor may block when nothing is ready: until the next
    /// timer on a real clock; on a virtual clock with auto-advance, not at
    /// all (the clock jumps to the deadline instead), unless real events
    /// are awaited (blocking jobs in flight), in which case, as with
    /// auto-advance paused, until a real wake-up.
    fn idle_timeout(self: &Rc<Self>) -> Option<Duration> {
        let next = self.timers.borrow().next_deadline();
        let timeout = match (self.clock.get_virtual(), next) {
            (_, None) => None,
            (None, Some(when)) => Some(when.saturating_duration_since(Instant::now())),
            (Some(v), Some(when)) => {
                let may_jump = v.auto_advance && self.blocking_jobs_in_flight() == 0;
                if may_jump && self.has_io_sources() {
                    // Only jump when I/O has nothing either: look first.
                    self.wait(Some(Duration::ZERO));
                }
                let quiet = self.ready.borrow().is_empty() && !self.shared.pending.load(Ordering::SeqCst);
                if may_jump && quiet {
                    self.clock.advance_to(when);
                }
                if may_jump {
                    Some(Duration::ZERO)
                } else {
                    None
                }
            }
        };
        match self.real_deadline.get() {
            Some(deadline) => {
                let cap = deadline.saturating_duration_since(Instant::now());
                Some(timeout.map_or(cap, |t| t.min(cap)))
            }
            None => timeout,
        }
    }

    /// One more iteration that does not block: what asyncio's loop runs
    /// after the done-callback of the future it waits for called `stop()`.
    fn run_final_iteration(self: &Rc<Self>) {
        let stopping = self.stopping.replace(true);
        self.run_once();
        self.stopping.set(stopping);
    }

    fn run_once(self: &Rc<Self>) {
        let idle = self.ready.borrow().is_empty() && !self.stopping.get();
        let timeout = if idle {
            self.idle_timeout()
        } else {
            Some(Duration::ZERO)
        };
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        let blocking = timeout != Some(Duration::ZERO);
        let io_turn = tick % REACTOR_INTERVAL == 0 && self.has_io_sources();
        if blocking || io_turn {
            self.wait(timeout);
        }
        self.drain_remote();
        if self.timers.borrow().next_deadline().is_some() {
            self.fire_timers(self.clock.now());
        }

        let batch = self.ready.borrow().len();
        let debug = self.debug.get();
        if batch == 0 {
            // Woken by a signal, perhaps, with nothing else to run.
            self.look_at_signals();
        }
        for _ in 0..batch {
            // A signal raised by the previous step (even by this thread)
            // is seen before the next one.
            self.look_at_signals();
            if self.abort.get() {
                return;
            }
            let Some(item) = self.ready.borrow_mut().pop_front() else {
                break;
            };
            let started = debug.then(Instant::now);
            match item {
                Ready::Task(key) => {
                    let task = self.tasks.borrow().get(key).cloned();
                    if let Some(task) = task {
                        if let RunResult::Finished = task::run(self, &task) {
                            self.finish_task(key, &task);
                        }
                        if let Some(started) = started {
                            self.check_slow(started, Some(&*task));
                        }
                    }
                }
                Ready::Callback(cell) => {
                    self.run_callback(&cell);
                    if let Some(started) = started {
                        self.check_slow(started, None);
                    }
                }
                Ready::Fd(cb) => {
                    self.call_in_context(
                        cb.clone(),
                        || cb.call(),
                        "an add_reader/add_writer callback panicked (it stays registered)",
                    );
                    if let Some(started) = started {
                        self.check_slow(started, None);
                    }
                }
            }
        }
    }

    fn run_callback(self: &Rc<Self>, cell: &Rc<CallbackCell>) {
        let f = cell.f.borrow_mut().take();
        let Some(f) = f else { return };
        self.call_in_context(cell.clone(), f, "a callback scheduled on the loop panicked");
    }

    /// Calls `f` in `holder`'s context; a panic is reported as `what`.
    fn call_in_context(self: &Rc<Self>, holder: Rc<dyn ContextHolder>, f: impl FnOnce(), what: &str) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| context::enter(holder, f))) {
            self.report(ExceptionContext {
                message: what.into(),
                panic: Some(task::panic_message(payload.as_ref())),
                task: None,
            });
        }
    }

    fn check_slow(self: &Rc<Self>, started: Instant, task: Option<&dyn RawTask>) {
        let took = started.elapsed();
        if took >= self.slow_callback_duration.get() {
            let what = match task {
                Some(_) => "a task's poll",
                None => "a callback",
            };
            self.report(ExceptionContext {
                message: format!(
                    "{what} blocked the event loop for {took:?} (slow_callback_duration is {:?}); \
                     move blocking work to a thread or yield more often",
                    self.slow_callback_duration.get()
                ),
                panic: None,
                task: task.map(|t| t.core().info()),
            });
        }
    }

    fn finish_task(self: &Rc<Self>, key: usize, task: &Rc<dyn RawTask>) {
        {
            let mut tasks = self.tasks.borrow_mut();
            if tasks.get(key).is_some_and(|t| Rc::ptr_eq(t, task)) {
                tasks.remove(key);
            }
        }
        task::wake_joiner(task.core());
        task::report_if_unretrieved(&**task);
    }

    /// Drops everything the loop holds; the close of [`EventLoop::close`]
    /// without its checks.
    /// Returns the reports it owes: tasks whose future panicked as it was
    /// dropped, with nobody left to await them.
    fn release(&self) -> Vec<ExceptionContext> {
        self.state.set(State::Closed);
        self.shared.closed.store(true, Ordering::Release);
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        drop(ready);
        let tasks = self.tasks.borrow_mut().drain();
        let mut reports = Vec::new();
        for task in &tasks {
            if !task.core().is_done() {
                task.drop_future();
            }
            task::wake_joiner(task.core());
            if let Some(panic) = task::take_detached_panic(&**task) {
                reports.push(ExceptionContext {
                    message: "a task panicked when the closing loop dropped it (EventLoop::close drops the \
                              tasks still alive; Runner::close cancels and drives them first)"
                        .into(),
                    panic: Some(panic),
                    task: Some(task.core().info()),
                });
            }
        }
        drop(tasks);
        let timers = self.timers.borrow_mut().clear();
        drop(timers);
        self.asyncgens.borrow_mut().clear();
        while self.shared.rx.try_recv().is_ok() {}
        // As asyncio's close: stop the executors without waiting for them.
        let executors = self.take_executors();
        for executor in executors {
            executor.begin_shutdown();
            executor.join_exited();
        }
        self.reactor.borrow_mut().take();
        reports
    }
}

impl Drop for LoopCore {
    fn drop(&mut self) {
        if self.state.get() != State::Closed {
            // No handle to the loop is left, so no handler of its either.
            for report in self.release() {
                log_report(&report);
            }
        }
    }
}

/// Options for a new [`EventLoop`]; what a `loop_factory` uses to configure
/// the loop.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{EventLoop, Runner};
///
/// let runner = Runner::builder()
///     .loop_factory(|| {
///         EventLoop::builder()
///             .slow_callback_duration(Duration::from_millis(20))
///             .build()
///     })
///     .build();
/// let lp = runner.get_loop().unwrap();
/// assert_eq!(lp.slow_callback_duration(), Duration::from_millis(20));
/// ```
#[derive(Debug, Clone, Default)]
pub struct LoopBuilder {
    debug: Option<bool>,
    slow_callback_duration: Option<Duration>,
    max_blocking_threads: Option<usize>,
    executor_shutdown_timeout: Option<Duration>,
    start_paused: bool,
}

impl LoopBuilder {
    /// Debug mode on or off; by default it follows [`RUNNER_DEBUG`](DEBUG_ENV).
    pub fn debug(mut self, on: bool) -> Self {
        self.debug = Some(on);
        self
    }

    /// How long one poll or callback may block before debug mode warns.
    pub fn slow_callback_duration(mut self, d: Duration) -> Self {
        self.slow_callback_duration = Some(d);
        self
    }

    /// The most threads the default executor starts (default
    /// `min(32, cores + 4)`; at least 1).
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking_threads = Some(n.max(1));
        self
    }

    /// How long closing waits for the default executor's threads (default 5
    /// minutes) before it warns and leaves them detached.
    pub fn executor_shutdown_timeout(mut self, d: Duration) -> Self {
        self.executor_shutdown_timeout = Some(d);
        self
    }

    /// Starts the loop on a virtual clock with auto-advance on (see
    /// [`time`](crate::time)): timers fire in deadline order without
    /// waiting, so tests of long timeouts take no wall time.
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.start_paused = paused;
        self
    }

    /// Creates the loop. Fails only when the OS refuses the poller (for
    /// example, out of file descriptors).
    pub fn build(self) -> io::Result<EventLoop> {
        let reactor = Reactor::new()?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let id = NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(Shared {
            loop_id: id,
            tx,
            rx,
            poller: Arc::downgrade(reactor.poller()),
            pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let lp = EventLoop {
            core: Rc::new(LoopCore {
                id,
                shared,
                reactor: RefCell::new(Some(reactor)),
                ready: RefCell::new(VecDeque::new()),
                tasks: RefCell::new(Slab::default()),
                timers: RefCell::new(Timers::default()),
                clock: Clock::default(),
                real_deadline: Cell::new(None),
                state: Cell::new(State::Idle),
                stopping: Cell::new(false),
                tick: Cell::new(0),
                debug: Cell::new(self.debug.unwrap_or_else(env_debug)),
                slow_callback_duration: Cell::new(
                    self.slow_callback_duration.unwrap_or(DEFAULT_SLOW_CALLBACK_DURATION),
                ),
                exception_handler: RefCell::new(None),
                shutting_down: Cell::new(false),
                executor: RefCell::new(None),
                retired_executors: RefCell::new(Vec::new()),
                executor_shut_down: Cell::new(false),
                max_blocking_threads: Cell::new(
                    self.max_blocking_threads.unwrap_or_else(executor::default_max_threads),
                ),
                executor_shutdown_timeout: self
                    .executor_shutdown_timeout
                    .unwrap_or(DEFAULT_EXECUTOR_SHUTDOWN_TIMEOUT),
                asyncgens: RefCell::new(Vec::new()),
                asyncgens_shut_down: Cell::new(false),
                current_task: RefCell::new(None),
                interrupts: RefCell::new(None),
                listens: Cell::new(false),
                abort: Cell::new(false),
            }),
        };
        if self.start_paused {
            lp.core.clock.pause();
        }
        Ok(lp)
    }
}

/// A single-threaded event loop (asyncio's `AbstractEventLoop`).
///
/// Cloning gives another handle to the same loop. The loop is `!Send`: it
/// runs on the thread that created it; other threads reach it through a
/// [`LoopHandle`]. Most programs never touch it directly and use
/// [`run`](crate::run) or [`Runner`](crate::Runner).
///
/// ```
/// use runner_core::EventLoop;
///
/// let lp = EventLoop::new().unwrap();
/// let task = lp.spawn(async { 1 + 1 });
/// assert_eq!(lp.run_until_complete(task).unwrap().unwrap(), 2);
/// lp.close().unwrap();
/// assert!(lp.is_closed());
/// ```
#[derive(Clone)]
pub struct EventLoop {
    core: Rc<LoopCore>,
}

/// Restores the thread's running-loop and context slots when a run ends,
/// also by panic.
struct RunningGuard<'a> {
    core: &'a LoopCore,
    prev: Option<Rc<LoopCore>>,
    prev_slot: Option<context::Slot>,
    /// Signal deliveries wake this loop while it runs (main thread only).
    _listening: Option<crate::signal::Listening>,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.core.abort.set(false);
        let prev = self.prev.take();
        let _ = RUNNING.try_with(|r| *r.borrow_mut() = prev);
        if let Some(slot) = self.prev_slot.take() {
            context::restore_slot(slot);
        }
        if self.core.state.get() == State::Running {
            self.core.state.set(State::Idle);
        }
        self.core.stopping.set(false);
    }
}

impl EventLoop {
    /// A new loop with default settings (debug mode from
    /// [`RUNNER_DEBUG`](DEBUG_ENV)): asyncio's `new_event_loop()`.
    pub fn new() -> io::Result<EventLoop> {
        LoopBuilder::default().build()
    }

    /// Options for a new loop.
    pub fn builder() -> LoopBuilder {
        LoopBuilder::default()
    }

    pub(crate) fn core(&self) -> &Rc<LoopCore> {
        &self.core
    }

    /// The loop running on this thread, if any.
    pub(crate) fn running() -> Option<EventLoop> {
        RUNNING.with(|r| r.borrow().clone().map(|core| EventLoop { core }))
    }

    /// Whether two handles refer to the same loop.
    pub fn ptr_eq(&self, other: &EventLoop) -> bool {
        Rc::ptr_eq(&self.core, &other.core)
    }

    /// The loop's clock: a monotonic `Instant`; virtual time when the
    /// clock is paused (see [`time`](crate::time)).
    pub fn time(&self) -> Instant {
        self.core.clock.now()
    }

    /// Switches the loop to a virtual clock, starting at the real now, with
    /// auto-advance on (tokio's `time::pause`). Timers already set keep
    /// their deadlines. Calling it again does nothing.
    pub fn pause_clock(&self) {
        self.core.clock.pause();
    }

    /// Whether the loop runs on a virtual clock.
    pub fn is_clock_paused(&self) -> bool {
        self.core.clock.get_virtual().is_some()
    }

    /// Moves the virtual clock forward by `duration`; the timers that come
    /// due fire at the loop's next iteration. Fails with
    /// [`Error::ClockNotPaused`] on a real clock.
    pub fn advance(&self, duration: Duration) -> Result<(), Error> {
        if self.core.clock.advance(duration) {
            Ok(())
        } else {
            Err(Error::ClockNotPaused)
        }
    }

    /// Turns the virtual clock's auto-advance on or off. Fails with
    /// [`Error::ClockNotPaused`] on a real clock.
    pub fn set_auto_advance(&self, on: bool) -> Result<(), Error> {
        if self.core.clock.set_auto_advance(on) {
            Ok(())
        } else {
            Err(Error::ClockNotPaused)
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.core.is_closed() {
            Err(Error::LoopClosed)
        } else {
            Ok(())
        }
    }

    /// Schedules `f` to run in the next iteration, in a copy of the current
    /// context (asyncio's `call_soon`).
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Result<CallbackHandle, Error> {
        self.check_open()?;
        let cell = CallbackCell::new(Box::new(f));
        self.core.ready.borrow_mut().push_back(Ready::Callback(cell.clone()));
        Ok(CallbackHandle { cell })
    }

    /// Calls `callback` whenever `fd` is readable, at every loop iteration
    /// while it stays readable, until [`remove_reader`](Self::remove_reader)
    /// (asyncio's `add_reader`). The callback runs in a copy of the current
    /// context. A second call for the same descriptor replaces the callback.
    ///
    /// The loop keeps `fd` (an `OwnedFd`, a socket, an `Rc` of one, ...)
    /// until the descriptor is no longer watched in either direction, so it
    /// cannot be closed while registered. Fails with an I/O error when the
    /// OS refuses the descriptor (a regular file, say) or when it is
    /// already registered otherwise (wrapped in a [`net`](crate::net)
    /// socket).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use runner_core::EventLoop;
    ///
    /// let lp = EventLoop::new().unwrap();
    /// let (a, mut b) = UnixStream::pair().unwrap();
    /// let a = Rc::new(a);
    /// let fd = a.as_raw_fd();
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let (reader, sink, handle) = (a.clone(), got.clone(), lp.clone());
    /// lp.add_reader(a, move || {
    ///     let mut buf = [0u8; 16];
    ///     let n = (&*reader).read(&mut buf).unwrap();
    ///     sink.borrow_mut().extend_from_slice(&buf[..n]);
    ///     handle.remove_reader(fd);
    ///     handle.stop();
    /// })
    /// .unwrap();
    /// b.write_all(b"ping").unwrap();
    /// lp.run_forever().unwrap();
    /// assert_eq!(&got.borrow()[..], b"ping");
    /// ```
    pub fn add_reader(&self, fd: impl AsFd + 'static, callback: impl FnMut() + 'static) -> Result<(), Error> {
        self.add_watch(Direction::Read, Box::new(fd), Box::new(callback))
    }

    /// Calls `callback` whenever `fd` is writable, until
    /// [`remove_writer`](Self::remove_writer) (asyncio's `add_writer`); as
    /// [`add_reader`](Self::add_reader).
    pub fn add_writer(&self, fd: impl AsFd + 'static, callback: impl FnMut() + 'static) -> Result<(), Error> {
        self.add_watch(Direction::Write, Box::new(fd), Box::new(callback))
    }

    /// Stops calling the reader callback of descriptor `fd`; whether one
    /// was registered (asyncio's `remove_reader`). When no writer callback
    /// is left either, the loop drops what it kept of the descriptor.
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.remove_watch(fd, Direction::Read)
    }

    /// Stops calling the writer callback of descriptor `fd`; whether one
    /// was registered (asyncio's `remove_writer`).
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.remove_watch(fd, Direction::Write)
    }

    fn add_watch(&self, dir: Direction, holder: Box<dyn AsFd>, f: Box<dyn FnMut()>) -> Result<(), Error> {
        self.check_open()?;
        let fd = holder.as_fd().as_raw_fd();
        let refused = {
            let mut reactor = self.core.reactor.borrow_mut();
            let reactor = reactor.as_mut().ok_or(Error::LoopClosed)?;
            match reactor.watch(dir, holder, FdCallback::new(f)) {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            }
        };
        // The holder is dropped here, with the reactor no longer borrowed.
        let (e, _holder) = refused;
        let why = match e.raw_os_error() {
            Some(libc::EEXIST) => "it is already registered with this loop (does a runner socket wrap it?)".to_string(),
            Some(libc::EPERM) => "the OS cannot poll this kind of file (regular files are always ready: read them \
                                  directly or in spawn_blocking)"
                .to_string(),
            _ => e.to_string(),
        };
        Err(Error::Io(io::Error::new(
            e.kind(),
            format!("cannot watch file descriptor {fd}: {why}"),
        )))
    }

    fn remove_watch(&self, fd: RawFd, dir: Direction) -> bool {
        let (had, holders) = match self.core.reactor.borrow_mut().as_mut() {
            Some(reactor) => reactor.unwatch(fd, dir),
            None => return false,
        };
        drop(holders);
        had
    }

    /// Schedules `f` to run after `delay` (asyncio's `call_later`).
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> Result<TimerHandle, Error> {
        let when = self.time().checked_add(delay).ok_or(Error::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "call_later delay is too large to be represented on the loop's clock; use a shorter delay",
        )))?;
        self.call_at(when, f)
    }

    /// Schedules `f` to run when the loop's clock reaches `when` (asyncio's
    /// `call_at`). Callbacks due at the same instant run in the order they
    /// were scheduled.
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> Result<TimerHandle, Error> {
        self.check_open()?;
        let cell = CallbackCell::new(Box::new(f));
        let key = self
            .core
            .timers
            .borrow_mut()
            .insert(when, TimerEntry::Callback(cell.clone()));
        Ok(TimerHandle {
            key,
            cell,
            event_loop: Rc::downgrade(&self.core),
        })
    }

    /// Schedules `f` from any thread; it runs on the loop thread in the next
    /// iteration, waking the loop if it is blocked (asyncio's
    /// `call_soon_threadsafe`). To call it from another thread, use
    /// [`handle`](Self::handle).
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        self.core.shared.send(Remote::Call(Box::new(f)))
    }

    /// A `Send + Sync` handle for other threads.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: self.core.shared.clone(),
        }
    }

    /// Spawns `fut` as a task on this loop, in a copy of the current context
    /// (asyncio's `create_task`). It starts running when the loop runs.
    ///
    /// On a closed loop the task is cancelled at once: `fut` is dropped
    /// without being polled and awaiting the handle gives a cancelled
    /// [`JoinError`](crate::JoinError).
    #[track_caller]
    pub fn spawn<F>(&self, fut: F) -> JoinHandle<F::Output>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        self.spawn_at(fut.into_future(), None, Location::caller())
    }

    /// Like [`spawn`](Self::spawn), but the task runs in `ctx` itself (not a
    /// copy): what it sets stays in `ctx`.
    #[track_caller]
    pub fn spawn_in_context<F>(&self, fut: F, ctx: &Context) -> JoinHandle<F::Output>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        self.spawn_at(fut.into_future(), Some(ctx.clone()), Location::caller())
    }

    /// Spawns with an explicit spawn location (the runner's main task is
    /// "spawned" where the user called `run`).
    pub(crate) fn spawn_at<F>(
        &self,
        fut: F,
        ctx: Option<Context>,
        at: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let core = &self.core;
        let mut tasks = core.tasks.borrow_mut();
        let key = tasks.vacant_key();
        let (raw, handle) = task::new_task(fut, key, &core.shared, Rc::downgrade(core), ctx, at);
        if core.is_closed() {
            drop(tasks);
            raw.drop_future();
            return handle;
        }
        tasks.insert(raw.clone());
        drop(tasks);
        core.schedule(&raw.core().header);
        handle
    }

    /// How many tasks are alive on the loop (spawned and not finished).
    pub fn task_count(&self) -> usize {
        self.core.tasks.borrow().len
    }

    /// Cancels every task still alive on the loop and returns how many it
    /// asked.
    pub(crate) fn cancel_all_tasks(&self) -> Vec<Rc<dyn RawTask>> {
        let tasks: Vec<_> = self.core.tasks.borrow().iter().cloned().collect();
        for task in &tasks {
            task.core().cancel();
        }
        tasks
    }

    fn enter(&self) -> Result<RunningGuard<'_>, Error> {
        match self.core.state.get() {
            State::Closed => return Err(Error::LoopClosed),
            State::Running => return Err(Error::LoopRunning),
            State::Idle => {}
        }
        let prev = RUNNING.with(|r| r.borrow_mut().replace(self.core.clone()));
        if prev.is_some() {
            RUNNING.with(|r| *r.borrow_mut() = prev);
            return Err(Error::NestedRun {
                caller: "EventLoop::run_until_complete() / run_forever()",
            });
        }
        self.core.state.set(State::Running);
        // While the loop runs, the current context is the polled task's.
        let prev_slot = Some(context::swap_slot(context::Slot::Task));
        let listening = if self.core.listens.get() {
            self.core
                .reactor
                .borrow()
                .as_ref()
                .map(|r| crate::signal::Listening::publish(r.poller().wake_fd()))
        } else {
            None
        };
        Ok(RunningGuard {
            core: &self.core,
            prev,
            prev_slot,
            _listening: listening,
        })
    }

    /// Runs iterations until `done()` or `stop()`; `true` when `done()`.
    ///
    /// As asyncio's loop stops from the done-callback of the future it
    /// waits for, the iteration after the one that made `done()` true still
    /// runs: what was scheduled by then (a task spawned in a main task's
    /// last step, say) gets its step. A final interrupt ends the run at
    /// once, without it.
    pub(crate) fn run_until(&self, done: impl Fn() -> bool) -> Result<bool, Error> {
        let _guard = self.enter()?;
        loop {
            if self.core.abort.get() {
                return Ok(done());
            }
            if done() {
                self.core.run_final_iteration();
                return Ok(true);
            }
            self.core.run_once();
            if self.core.stopping.get() {
                return Ok(done());
            }
        }
    }

    /// Runs `fut` as a task until it completes and returns its output
    /// (asyncio's `run_until_complete`). A panic of the task is resumed here;
    /// a cancelled task gives [`Error::Cancelled`].
    pub fn run_until_complete<F>(&self, fut: F) -> Result<F::Output, Error>
    where
        F: IntoFuture,
        F::IntoFuture: 'static,
        F::Output: 'static,
    {
        if self.core.is_closed() {
            return Err(Error::LoopClosed);
        }
        let task = self.spawn(fut);
        self.run_task(task)
    }

    /// Runs the loop until `task` is done and turns its outcome into the
    /// run's result.
    pub(crate) fn run_task<T: 'static>(&self, mut task: JoinHandle<T>) -> Result<T, Error> {
        if !self.run_until(|| task.is_done())? {
            return Err(Error::Stopped);
        }
        outcome_into_result(task.take_outcome().expect("invariant: the task is done"))
    }

    /// Runs the loop until [`stop`](Self::stop) is called (asyncio's
    /// `run_forever`).
    pub fn run_forever(&self) -> Result<(), Error> {
        self.run_until(|| false).map(|_| ())
    }

    /// Makes `run_forever` return after the current iteration (and
    /// `run_until_complete` fail with [`Error::Stopped`] if its future is not
    /// done). Called before the loop runs, the next run does one iteration.
    pub fn stop(&self) {
        self.core.stopping.set(true);
    }

    /// Whether the loop is running now.
    pub fn is_running(&self) -> bool {
        self.core.state.get() == State::Running
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Closes the loop: drops pending callbacks, timers and tasks (a task
    /// still alive is dropped, i.e. cancelled without running again),
    /// releases the poller's file descriptors. Closing twice is a no-op;
    /// closing a running loop fails with [`Error::LoopRunning`].
    pub fn close(&self) -> Result<(), Error> {
        match self.core.state.get() {
            State::Running => Err(Error::LoopRunning),
            State::Closed => Ok(()),
            State::Idle => {
                if self.get_debug() {
                    self.report_left_open();
                }
                for report in self.core.release() {
                    self.core.report(report);
                }
                Ok(())
            }
        }
    }

    /// Debug mode, at close: what is still open is reported (tasks still
    /// pending, noting the ones never polled; fd sources still registered).
    fn report_left_open(&self) {
        let pending: Vec<Rc<dyn RawTask>> = self
            .core
            .tasks
            .borrow()
            .iter()
            .filter(|t| !t.core().is_done())
            .cloned()
            .collect();
        for task in pending {
            let never = if task.core().polled.get() {
                "it is pending"
            } else {
                "it was never polled"
            };
            self.core.report(ExceptionContext {
                message: format!(
                    "task was destroyed but {never}: the loop closed before it finished (await or cancel \
                     your tasks before closing; Runner::close does)"
                ),
                panic: None,
                task: Some(task.core().info()),
            });
        }
        let sources = self.core.reactor.borrow().as_ref().map_or(0, Reactor::source_count);
        if sources > 0 {
            self.core.report(ExceptionContext::new(format!(
                "{sources} file descriptor source(s) were still registered when the loop closed; \
                 close sockets and remove readers/writers before closing the loop"
            )));
        }
    }

    /// Runs the blocking function `f` on the loop's default executor (a
    /// thread pool started lazily) and returns a future of its result
    /// (asyncio's `run_in_executor(None, f)`). A panic in `f` comes back as
    /// a [`JoinError`](crate::JoinError); after the executor was shut down
    /// (or the loop closed) the job is refused and the future gives a
    /// cancelled `JoinError`.
    pub fn run_in_executor<T, F>(&self, f: F) -> Blocking<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let executor = {
            let mut slot = self.core.executor.borrow_mut();
            if slot.is_none() && !self.core.executor_shut_down.get() && !self.is_closed() {
                *slot = Some(Executor::new(self.core.max_blocking_threads.get(), self.handle()));
            }
            slot.clone()
        };
        match executor {
            Some(executor) => executor::submit(&executor, f),
            None => executor::refused(),
        }
    }

    /// How many executor threads are running now (the default pool and any
    /// pool it replaced that has not finished yet).
    pub fn executor_thread_count(&self) -> usize {
        let current = self.core.executor.borrow().as_ref().map_or(0, |e| e.thread_count());
        let retired: usize = self
            .core
            .retired_executors
            .borrow()
            .iter()
            .map(|e| e.thread_count())
            .sum();
        current + retired
    }

    /// Shuts the default executor down (close step 3): no new jobs are taken,
    /// queued and running jobs finish, and the loop runs while it waits for
    /// the threads, up to `timeout` (`None`: the loop's configured timeout,
    /// by default 5 minutes). Past it, a warning naming the timeout goes to
    /// the exception handler and the threads are left detached.
    ///
    /// Fails with [`Error::LoopRunning`] when called from inside the running
    /// loop (it would block the loop), [`Error::LoopClosed`] after close.
    pub fn shutdown_default_executor(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let shutdown = self.begin_executor_shutdown(timeout)?;
        if shutdown.is_done() {
            return Ok(());
        }
        // Real time, even on a virtual clock: the reactor's wait is bounded
        // by it, and exiting workers wake the loop.
        let deadline = shutdown.deadline;
        let _ = self.run_until_waking(|| deadline, || shutdown.is_done() || shutdown.is_past_deadline());
        shutdown.finish(self);
        Ok(())
    }

    /// Close step 3's first half: stops the executors taking jobs. The
    /// caller drives the loop until [`ExecutorShutdown::is_done`] (or its
    /// deadline), then calls [`ExecutorShutdown::finish`].
    pub(crate) fn begin_executor_shutdown(&self, timeout: Option<Duration>) -> Result<ExecutorShutdown, Error> {
        self.check_open()?;
        if self.is_running() {
            return Err(Error::LoopRunning);
        }
        self.core.executor_shut_down.set(true);
        let executors = self.core.take_executors();
        for executor in &executors {
            executor.begin_shutdown();
        }
        let timeout = timeout.unwrap_or(self.core.executor_shutdown_timeout);
        Ok(ExecutorShutdown {
            deadline: Instant::now().checked_add(timeout),
            timeout,
            executors,
        })
    }

    /// How many blocking-pool jobs are queued or running.
    pub(crate) fn blocking_jobs_in_flight(&self) -> usize {
        self.core.blocking_jobs_in_flight()
    }

    /// Runs until `done()`, also waking at the real-time instant `wake_at()`
    /// gives (asked again after every iteration), so that `done` can look
    /// at the clock: the deadlines of closing are real time, even on a
    /// virtual clock.
    pub(crate) fn run_until_waking(
        &self,
        wake_at: impl Fn() -> Option<Instant>,
        done: impl Fn() -> bool,
    ) -> Result<bool, Error> {
        let result = self.run_until(|| {
            self.core.real_deadline.set(wake_at());
            done()
        });
        self.core.real_deadline.set(None);
        result
    }

    /// Replaces the default executor with a pool of this configuration
    /// (asyncio's `set_default_executor`). The old pool takes no new jobs;
    /// its running ones finish, and its threads are joined at shutdown with
    /// the new pool's. New jobs go to the new pool, started lazily.
    pub fn set_default_executor(&self, pool: executor::ThreadPool) -> Result<(), Error> {
        self.check_open()?;
        self.core.max_blocking_threads.set(pool.max_threads());
        if let Some(old) = self.core.executor.borrow_mut().take() {
            old.begin_shutdown();
            self.core.retired_executors.borrow_mut().push(old);
        }
        Ok(())
    }

    /// Closes every async generator started on this loop and not finished,
    /// running their cleanup, async cleanup included (close step 2;
    /// asyncio's `shutdown_asyncgens`). Generators started afterwards are not
    /// tracked. Fails with [`Error::LoopRunning`] inside the running loop.
    pub fn shutdown_asyncgens(&self) -> Result<(), Error> {
        let closing = self.begin_asyncgen_shutdown()?;
        if !closing.is_empty() {
            self.run_until(|| closing.iter().all(|h| h.is_done()))?;
        }
        self.finish_asyncgen_shutdown(closing);
        Ok(())
    }

    /// Close step 2's first half: a task closing each async generator
    /// still open. The caller drives the loop until they are done (or it
    /// gives up on them), then calls `finish_asyncgen_shutdown`.
    pub(crate) fn begin_asyncgen_shutdown(&self) -> Result<Vec<JoinHandle<()>>, Error> {
        self.check_open()?;
        if self.is_running() {
            return Err(Error::LoopRunning);
        }
        self.core.asyncgens_shut_down.set(true);
        let gens: Vec<Rc<dyn AsyncGenFinalizer>> = std::mem::take(&mut *self.core.asyncgens.borrow_mut())
            .into_iter()
            .filter_map(|g| g.upgrade())
            .filter(|g| !g.is_finished())
            .collect();
        Ok(gens
            .into_iter()
            .map(|g| {
                let h = self.spawn(g.aclose());
                h.set_name("async generator finalizer");
                h
            })
            .collect())
    }

    /// Reports the generators whose cleanup panicked.
    pub(crate) fn finish_asyncgen_shutdown(&self, closing: Vec<JoinHandle<()>>) {
        for mut h in closing {
            if let Some(Err(e)) = h.take_outcome() {
                if e.is_panic() {
                    self.core.report(ExceptionContext {
                        message: "an error occurred during closing of an asynchronous generator".into(),
                        panic: e.panic_message(),
                        task: None,
                    });
                }
            }
        }
    }

    /// Drops a task's future now, without running it again (its
    /// destructors run, its async cleanup does not): what a close does
    /// with a task that outlived the close timeout.
    pub(crate) fn drop_task(&self, task: &Rc<dyn RawTask>) {
        if task.core().is_done() {
            return;
        }
        task::drop_now(&self.core, task);
        self.core.finish_task(task.core().header.key, task);
    }

    /// Marks the start of close step 1; panics of tasks finishing while the
    /// guard lives are reported as shutdown errors.
    pub(crate) fn enter_shutdown(&self) -> impl Drop + '_ {
        struct Shutdown<'a>(&'a LoopCore);
        impl Drop for Shutdown<'_> {
            fn drop(&mut self) {
                self.0.shutting_down.set(false);
            }
        }
        self.core.shutting_down.set(true);
        Shutdown(&self.core)
    }

    /// Whether debug mode is on.
    pub fn get_debug(&self) -> bool {
        self.core.debug.get()
    }

    /// Turns debug mode on or off.
    pub fn set_debug(&self, on: bool) {
        self.core.debug.set(on);
    }

    /// How long one poll or callback may block before debug mode warns.
    pub fn slow_callback_duration(&self) -> Duration {
        self.core.slow_callback_duration.get()
    }

    /// Sets [`slow_callback_duration`](Self::slow_callback_duration).
    pub fn set_slow_callback_duration(&self, d: Duration) {
        self.core.slow_callback_duration.set(d);
    }

    /// Routes reports (panics nobody retrieved, shutdown errors, debug
    /// warnings) to `handler` instead of the default one.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    ///
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let lp = runner_core::EventLoop::new().unwrap();
    /// let sink = seen.clone();
    /// lp.set_exception_handler(move |_lp, ctx| sink.borrow_mut().push(ctx.message.clone()));
    /// lp.call_exception_handler(&runner_core::ExceptionContext::new("hello"));
    /// assert_eq!(*seen.borrow(), ["hello"]);
    /// ```
    pub fn set_exception_handler(&self, handler: impl Fn(&EventLoop, &ExceptionContext) + 'static) {
        *self.core.exception_handler.borrow_mut() = Some(Rc::new(handler));
    }

    /// Goes back to the default exception handler.
    pub fn clear_exception_handler(&self) {
        self.core.exception_handler.borrow_mut().take();
    }

    /// Sends `ctx` to the exception handler.
    pub fn call_exception_handler(&self, ctx: &ExceptionContext) {
        self.core.report(ctx.clone());
    }

    /// The default handler: the report goes to the `log` facade (target
    /// `runner`; error level for panics, warning otherwise) when the
    /// application installed a logger, else to standard error, so that no
    /// report is lost.
    pub fn default_exception_handler(&self, ctx: &ExceptionContext) {
        log_report(ctx);
    }
}

/// What the default exception handler does with a report.
fn log_report(ctx: &ExceptionContext) {
    let level = if ctx.panic.is_some() {
        log::Level::Error
    } else {
        log::Level::Warn
    };
    if log::max_level() >= level {
        log::log!(target: "runner", level, "{ctx}");
    } else {
        eprintln!("runner: {ctx}");
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("id", &self.core.id)
            .field("state", &self.core.state.get())
            .field("debug", &self.core.debug.get())
            .field("tasks", &self.task_count())
            .field("timers", &self.core.timers.borrow().len())
            .finish()
    }
}

/// A `Send + Sync` handle to an [`EventLoop`], for other threads.
///
/// ```
/// let lp = runner_core::EventLoop::new().unwrap();
/// let handle = lp.handle();
/// let (tx, rx) = std::sync::mpsc::channel();
/// std::thread::spawn(move || handle.call_soon_threadsafe(move || tx.send("ran").unwrap()).unwrap());
/// let got = lp
///     .run_until_complete(async move {
///         loop {
///             if let Ok(v) = rx.try_recv() {
///                 return v;
///             }
///             runner_core::sleep(std::time::Duration::from_millis(1)).await;
///         }
///     })
///     .unwrap();
/// assert_eq!(got, "ran");
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    shared: Arc<Shared>,
}

impl LoopHandle {
    /// Schedules `f` to run on the loop thread, waking the loop if it is
    /// blocked. Fails with [`Error::LoopClosed`] once the loop is closed.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        self.shared.send(Remote::Call(Box::new(f)))
    }

    /// Whether the loop was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("loop_id", &self.shared.loop_id)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The executors being shut down in close step 3.
pub(crate) struct ExecutorShutdown {
    /// Real time; `None` when the timeout is too long to represent.
    pub(crate) deadline: Option<Instant>,
    timeout: Duration,
    executors: Vec<Arc<Executor>>,
}

impl ExecutorShutdown {
    /// Whether every worker thread has exited.
    pub(crate) fn is_done(&self) -> bool {
        self.executors.iter().all(|e| e.all_exited())
    }

    pub(crate) fn is_past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Jobs still queued or running on these executors.
    pub(crate) fn jobs_in_flight(&self) -> usize {
        self.executors.iter().map(|e| e.jobs_in_flight()).sum()
    }

    /// Joins the threads that exited; when some are still running past the
    /// deadline, warns (naming the timeout) and leaves them detached.
    pub(crate) fn finish(self, lp: &EventLoop) {
        for executor in &self.executors {
            executor.join_exited();
        }
        if !self.is_done() && self.is_past_deadline() {
            lp.core.report(ExceptionContext::new(format!(
                "the default executor did not finish joining its threads within {:?}: {} blocking job(s) \
                 (spawn_blocking / run_in_executor) still running; they were left running detached (configure \
                 the timeout with LoopBuilder::executor_shutdown_timeout)",
                Duration::from_millis(self.timeout.as_millis().try_into().unwrap_or(u64::MAX)),
                self.jobs_in_flight()
            )));
        }
    }
}

/// A finished task's outcome as a run's result: a panic is resumed here, a
/// cancellation is [`Error::Cancelled`].
pub(crate) fn outcome_into_result<T>(outcome: Result<T, task::JoinError>) -> Result<T, Error> {
    match outcome {
        Ok(v) => Ok(v),
        Err(e) => match e.try_into_panic() {
            Ok(payload) => resume_unwind(payload),
            Err(_) => Err(Error::Cancelled),
        },
    }
}

/// The loop running on this thread (asyncio's `get_running_loop()`), or
/// [`Error::NoRunningLoop`].
pub fn get_running_loop() -> Result<EventLoop, Error> {
    EventLoop::running().ok_or(Error::NoRunningLoop)
}

/// The running loop, or else the loop set with [`set_event_loop`]
/// (asyncio's `get_event_loop()`, without creating one).
pub fn get_event_loop() -> Option<EventLoop> {
    EventLoop::running().or_else(|| THREAD_LOOP.with(|t| t.borrow().clone()))
}

/// Sets (or, with `None`, unsets) the thread's current loop (asyncio's
/// `set_event_loop`). A `loop_factory` that wants its loop to be the
/// thread's current one calls this, as in asyncio.
pub fn set_event_loop(lp: Option<&EventLoop>) {
    THREAD_LOOP.with(|t| *t.borrow_mut() = lp.cloned());
}

/// Spawns `fut` on the running loop, in a copy of the current context
/// (asyncio's `create_task`).
///
/// # Panics
/// When no loop is running on this thread (as `tokio::spawn` does outside a
/// runtime); use [`EventLoop::spawn`] to spawn onto a loop that is not
/// running yet.
#[track_caller]
pub fn spawn<F>(fut: F) -> JoinHandle<F::Output>
where
    F: IntoFuture,
    F::IntoFuture: 'static,
    F::Output: 'static,
{
    match EventLoop::running() {
        Some(lp) => lp.spawn_at(fut.into_future(), None, Location::caller()),
        None => panic!(
            "runner_core::spawn called outside a running event loop: call it from async code running inside \
             runner_core::run(..), or use EventLoop::spawn"
        ),
    }
}
