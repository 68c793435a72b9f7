//! The default executor: the blocking thread pool behind
//! [`spawn_blocking`] and [`EventLoop::run_in_executor`].
//!
//! Jobs go through a `crossbeam-channel` queue to worker threads that are
//! started lazily, one per job that finds no idle worker, up to a maximum
//! (default `min(32, cores + 4)`, Python's `ThreadPoolExecutor` default).
//! A job's result comes back through a one-shot slot shared with the
//! awaiting future; storing it wakes that future's task from the worker
//! thread, through the loop's thread-safe queue. A job that panics hands the
//! panic to its awaiter as a [`JoinError`]; the worker survives.
//!
//! Shutdown ([`EventLoop::shutdown_default_executor`], close step 3)
//! disconnects the queue, lets the workers finish what is queued, and waits
//! for them up to a timeout (default 5 minutes) while the loop keeps
//! running; past it, it reports a warning naming the timeout and leaves the
//! remaining threads detached.
//!
//! A loop's `ExecutorSlot` holds its pool (made on the first job) and the
//! pools it replaced; the loop makes it the thread's current one while it
//! runs, where [`spawn_blocking`] finds it. This module uses `runtime` (a
//! worker that exits wakes the loop) and `task` (for [`JoinError`]).
//!
//! [`EventLoop::run_in_executor`]: crate::EventLoop::run_in_executor
//! [`EventLoop::shutdown_default_executor`]: crate::EventLoop::shutdown_default_executor

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::runtime::LoopHandle;
use crate::task::JoinError;

/// The default timeout of [`EventLoop::shutdown_default_executor`], as
/// asyncio's `THREAD_JOIN_TIMEOUT`.
///
/// [`EventLoop::shutdown_default_executor`]: crate::EventLoop::shutdown_default_executor
pub const DEFAULT_EXECUTOR_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(300);

/// The default maximum number of executor threads: `min(32, cores + 4)`.
/// The number of cores is read once per process (on Linux it reads cgroup
/// files: a score of system calls), when the first pool is made.
pub fn default_max_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        (cores + 4).min(32)
    })
}

/// A loop's default executor: the pool (made on the first job), the pools
/// it replaced, and the configuration.
pub(crate) struct ExecutorSlot {
    handle: LoopHandle,
    current: RefCell<Option<Arc<Executor>>>,
    /// Pools replaced by `set_default_executor`: they take no new jobs, and
    /// are joined with the current one at shutdown.
    retired: RefCell<Vec<Arc<Executor>>>,
    shut_down: Cell<bool>,
    /// `None`: [`default_max_threads`], read when the pool is made.
    max_threads: Cell<Option<usize>>,
    pub(crate) shutdown_timeout: Duration,
}

impl ExecutorSlot {
    pub(crate) fn new(handle: LoopHandle, max_threads: Option<usize>, shutdown_timeout: Duration) -> Rc<ExecutorSlot> {
        Rc::new(ExecutorSlot {
            handle,
            current: RefCell::new(None),
            retired: RefCell::new(Vec::new()),
            shut_down: Cell::new(false),
            max_threads: Cell::new(max_threads),
            shutdown_timeout,
        })
    }

    /// Runs `f` on the pool (made now if needed); a refused job's future
    /// gives a cancelled `JoinError`.
    pub(crate) fn submit<T, F>(&self, f: F) -> Blocking<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let executor = {
            let mut slot = self.current.borrow_mut();
            if slot.is_none() && !self.shut_down.get() && !self.handle.is_closed() {
                let max = self.max_threads.get().unwrap_or_else(default_max_threads);
                *slot = Some(Executor::new(max, self.handle.clone()));
            }
            slot.clone()
        };
        match executor {
            Some(executor) => submit(&executor, f),
            None => refused(),
        }
    }

    /// How many executor threads run now (the pool and the ones it replaced).
    pub(crate) fn thread_count(&self) -> usize {
        let current = self.current.borrow().as_ref().map_or(0, |e| e.thread_count());
        let retired: usize = self.retired.borrow().iter().map(|e| e.thread_count()).sum();
        current + retired
    }

    /// Jobs queued or running.
    pub(crate) fn jobs_in_flight(&self) -> usize {
        let current = self.current.borrow().as_ref().map_or(0, |e| e.jobs_in_flight());
        let retired: usize = self.retired.borrow().iter().map(|e| e.jobs_in_flight()).sum();
        current + retired
    }

    /// Replaces the pool's configuration; the old pool takes no new jobs.
    pub(crate) fn set_pool(&self, pool: ThreadPool) {
        self.max_threads.set(Some(pool.max_threads()));
        if let Some(old) = self.current.borrow_mut().take() {
            old.begin_shutdown();
            self.retired.borrow_mut().push(old);
        }
    }

    /// Takes every pool out for shutting down; no pool is made afterwards.
    pub(crate) fn take_all(&self) -> Vec<Arc<Executor>> {
        self.shut_down.set(true);
        let mut all = std::mem::take(&mut *self.retired.borrow_mut());
        all.extend(self.current.borrow_mut().take());
        all
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<ExecutorSlot>>> = const { RefCell::new(None) };
}

/// Makes `slot` the thread's current one until the guard drops.
pub(crate) fn enter(slot: &Rc<ExecutorSlot>) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(slot.clone())));
    EnterGuard { prev }
}

/// Restores the previous current executor.
pub(crate) struct EnterGuard {
    prev: Option<Rc<ExecutorSlot>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The configuration of a blocking thread pool, for
/// [`EventLoop::set_default_executor`](crate::EventLoop::set_default_executor)
/// (asyncio's `set_default_executor`).
///
/// ```
/// use runner_core::{executor::ThreadPool, EventLoop};
///
/// let lp = EventLoop::new().unwrap();
/// lp.set_default_executor(ThreadPool::new(2)).unwrap();
/// let n = lp.run_until_complete(lp.run_in_executor(|| 6 * 7)).unwrap().unwrap();
/// assert_eq!(n, 42);
/// assert!(lp.executor_thread_count() <= 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPool {
    max_threads: usize,
}

impl ThreadPool {
    /// A pool of at most `max_threads` threads (at least 1), started lazily.
    pub fn new(max_threads: usize) -> ThreadPool {
        ThreadPool {
            max_threads: max_threads.max(1),
        }
    }

    /// The most threads the pool starts.
    pub fn max_threads(&self) -> usize {
        self.max_threads
    }
}

impl Default for ThreadPool {
    /// `min(32, cores + 4)` threads, Python's default.
    fn default() -> Self {
        ThreadPool::new(default_max_threads())
    }
}

/// A poisoned lock used as is: every write under the crate's locks of
/// this kind is a single assignment, and a job's panic is caught before
/// it can poison anything.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Workers {
    handles: Vec<thread::JoinHandle<()>>,
    alive: usize,
    idle: usize,
}

pub(crate) struct Executor {
    /// Jobs queued or running; the virtual clock does not auto-advance
    /// while any is in flight (their results are real-time events). A job
    /// lowers it *after* waking its awaiter, and the last one nudges the
    /// loop (see `submit`).
    in_flight: Arc<AtomicUsize>,
    tx: Mutex<Option<Sender<Job>>>,
    rx: Receiver<Job>,
    workers: Mutex<Workers>,
    max_threads: usize,
    /// Wakes the loop when a worker exits during shutdown.
    event_loop: LoopHandle,
}

impl Executor {
    pub(crate) fn new(max_threads: usize, event_loop: LoopHandle) -> Arc<Executor> {
        let (tx, rx) = crossbeam_channel::unbounded();
        Arc::new(Executor {
            in_flight: Arc::new(AtomicUsize::new(0)),
            tx: Mutex::new(Some(tx)),
            rx,
            workers: Mutex::new(Workers {
                handles: Vec::new(),
                alive: 0,
                idle: 0,
            }),
            max_threads: max_threads.max(1),
            event_loop,
        })
    }

    /// Queues `job`, starting a worker if none is idle and the maximum is
    /// not reached. `false` when the executor was shut down.
    fn submit(self: &Arc<Self>, job: Job) -> bool {
        let Some(tx) = lock(&self.tx).clone() else {
            return false;
        };
        let mut workers = lock(&self.workers);
        if workers.idle == 0 && workers.alive < self.max_threads {
            let me = self.clone();
            let n = workers.handles.len();
            let spawned = thread::Builder::new()
                .name(format!("runner-blocking-{n}"))
                .spawn(move || me.work());
            match spawned {
                Ok(handle) => {
                    workers.handles.push(handle);
                    workers.alive += 1;
                }
                // No thread could be started: the queued job waits for an
                // existing worker. With none at all, it would wait forever,
                // so refuse it instead.
                Err(_) if workers.alive == 0 => return false,
                Err(_) => {}
            }
        }
        drop(workers);
        tx.send(job).is_ok()
    }

    pub(crate) fn jobs_in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn work(&self) {
        loop {
            lock(&self.workers).idle += 1;
            let job = self.rx.recv();
            lock(&self.workers).idle -= 1;
            match job {
                Ok(job) => job(),
                Err(_) => break,
            }
        }
        let mut workers = lock(&self.workers);
        workers.alive -= 1;
        drop(workers);
        let _ = self.event_loop.call_soon_threadsafe(|| {});
    }

    pub(crate) fn thread_count(&self) -> usize {
        lock(&self.workers).alive
    }

    /// Stops taking jobs; workers exit once the queue is empty.
    pub(crate) fn begin_shutdown(&self) {
        lock(&self.tx).take();
    }

    pub(crate) fn all_exited(&self) -> bool {
        lock(&self.workers).alive == 0
    }

    /// Joins the threads that are done. Once every worker has said it is
    /// exiting (`all_exited`), joins them all: each is past its last job and
    /// only returning, so the join is short, and no thread is left behind.
    pub(crate) fn join_exited(&self) {
        let handles: Vec<_> = {
            let mut workers = lock(&self.workers);
            let all = workers.alive == 0;
            let (done, running): (Vec<_>, Vec<_>) = workers.handles.drain(..).partition(|h| all || h.is_finished());
            workers.handles = running;
            done
        };
        for h in handles {
            let _ = h.join();
        }
    }
}

/// A result handed over once from one thread to another: a worker (or a
/// task) fills it, a future takes it. A job's [`Blocking`] and the
/// `Submitted` of a task spawned from another thread
/// (`event_loop::threadsafe`) are such futures.
pub(crate) struct OneShot<T> {
    state: Mutex<OneShotState<T>>,
}

struct OneShotState<T> {
    result: Option<Result<T, JoinError>>,
    /// The result was taken by the future.
    taken: bool,
    waker: Option<Waker>,
}

impl<T> OneShot<T> {
    pub(crate) fn new() -> OneShot<T> {
        OneShot {
            state: Mutex::new(OneShotState {
                result: None,
                taken: false,
                waker: None,
            }),
        }
    }

    /// Fills it, once (a later fill changes nothing), and gives back the
    /// waker of the future waiting for it: the caller wakes it when its
    /// own bookkeeping is done (a worker counts the job done first).
    #[must_use = "wake the waker, or the future waits on"]
    pub(crate) fn fill(&self, result: Result<T, JoinError>) -> Option<Waker> {
        let mut state = lock(&self.state);
        if state.result.is_some() || state.taken {
            return None;
        }
        state.result = Some(result);
        state.waker.take()
    }

    /// Whether it was filled (its result may have been taken since).
    pub(crate) fn is_filled(&self) -> bool {
        let state = lock(&self.state);
        state.result.is_some() || state.taken
    }

    /// The result, taken out once it is there; `Ready(None)` when it was
    /// taken before.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<Result<T, JoinError>>> {
        let mut state = lock(&self.state);
        if let Some(result) = state.result.take() {
            state.taken = true;
            return Poll::Ready(Some(result));
        }
        if state.taken {
            return Poll::Ready(None);
        }
        match &state.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// The future of [`spawn_blocking`]: the job's output, or a [`JoinError`]
/// when the job panicked or could not be queued (executor shut down).
///
/// ```
/// use runner_core::spawn_blocking;
///
/// runner_core::run(async {
///     // A blocking call runs on the pool; the loop goes on meanwhile.
///     let job = spawn_blocking(|| std::fs::read_to_string("/proc/self/status").map(|s| s.len()));
///     assert!(job.await.unwrap().unwrap() > 0);
///     // A panic in the job is an error of its future, not of the loop.
///     let e = spawn_blocking(|| -> u32 { panic!("in the job") }).await.unwrap_err();
///     assert_eq!(e.panic_message().as_deref(), Some("in the job"));
/// })
/// .unwrap();
/// ```
#[must_use = "the job runs anyway; await this to get its result"]
pub struct Blocking<T> {
    slot: Arc<OneShot<T>>,
}

impl<T> Future for Blocking<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.slot.poll_take(cx) {
            Poll::Ready(Some(result)) => Poll::Ready(result),
            // Polled again after it gave its result: nothing more comes.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("done", &self.slot.is_filled())
            .finish()
    }
}

pub(crate) fn submit<T, F>(executor: &Arc<Executor>, f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(OneShot::new());
    let job_slot = slot.clone();
    let in_flight = executor.in_flight.clone();
    in_flight.fetch_add(1, Ordering::AcqRel);
    let job_in_flight = in_flight.clone();
    let event_loop = executor.event_loop.clone();
    let accepted = executor.submit(Box::new(move || {
        let result = catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::panicked);
        let waker = job_slot.fill(result);
        // The awaiter's wake first, then the job counted done: a loop on a
        // paused clock that sees no job in flight then also sees the wake
        // (the count's release publishes it), so it never jumps its clock
        // past a result still on its way. (The other order let it jump an
        // hour-long timeout while the result was in transit.)
        if let Some(w) = waker {
            w.wake();
        }
        if job_in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            // A loop that saw this job in flight may have blocked for a real
            // wake-up instead of moving its clock: it decides again now.
            event_loop.shared.nudge();
        }
    }));
    if !accepted {
        in_flight.fetch_sub(1, Ordering::AcqRel);
        return refused();
    }
    Blocking { slot }
}

/// A future for a job that was not accepted (executor shut down).
pub(crate) fn refused<T>() -> Blocking<T> {
    let slot = OneShot::new();
    // Nobody waits yet: no waker to wake.
    let _ = slot.fill(Err(JoinError::cancelled()));
    Blocking { slot: Arc::new(slot) }
}

/// Runs the blocking function `f` on the running loop's default executor and
/// returns a future of its result (asyncio's `run_in_executor(None, f)`,
/// tokio's `spawn_blocking`). As `run_in_executor` (and unlike
/// `asyncio.to_thread`), `f` does not run in the caller's context: context
/// variables' values need not be `Send`, so read what `f` needs before and
/// move it in.
///
/// ```
/// let sum = runner_core::run(async {
///     runner_core::spawn_blocking(|| (1..=10u64).sum::<u64>()).await
/// })
/// .unwrap();
/// assert_eq!(sum.unwrap(), 55);
/// ```
///
/// # Panics
/// When no loop is running on this thread; use
/// [`EventLoop::run_in_executor`](crate::EventLoop::run_in_executor) to
/// submit to a given loop.
pub fn spawn_blocking<T, F>(f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = CURRENT.try_with(|c| c.borrow().clone()).ok().flatten();
    match slot {
        Some(slot) => slot.submit(f),
        None => panic!(
            "runner_core::spawn_blocking called outside a running event loop: call it from async code inside \
             runner_core::run(..), or use EventLoop::run_in_executor"
        ),
    }
}
