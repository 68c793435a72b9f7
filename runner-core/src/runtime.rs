//! What every layer shares with the loop: who the loop is, how other
//! threads reach it, and what it reports.
//!
//! This module sits below all the others but `poll` (whose notifier wakes
//! a blocked loop) and uses nothing else of the crate:
//!
//! - [`Shared`], the thread-safe part of a loop: its id, the queue other
//!   threads send wake-ups and callbacks through, and the flags that let a
//!   busy loop skip that queue and a blocked loop be woken;
//! - [`LoopHandle`], the `Send + Sync` handle user code gets to it;
//! - [`TaskId`], [`TaskInfo`] and [`ExceptionContext`]: what reports say,
//!   for the task layer and the loop alike.
//!
//! # Never losing a wake-up
//!
//! To block, the loop raises `sleeping` and checks `pending` once more; a
//! sender pushes first, then raises `pending`, then looks at `sleeping`.
//! All `SeqCst`: either the loop sees the message, or the sender sees the
//! loop asleep and notifies the poller. A busy loop costs senders no system
//! call.

use std::fmt;
use std::panic::Location;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use crossbeam_channel::{Receiver, Sender};

use crate::poll::Poller;

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

/// A task turned into a pointer (with a reference of its own, see
/// `task::raw`) to cross to the loop's thread.
///
/// Only the task layer makes one and only the loop turns it back, on its
/// own thread; in between it is never dereferenced. One left in a queue
/// that is dropped is leaked, never dropped on a foreign thread.
pub(crate) struct RemoteTask(NonNull<()>);

// SAFETY: the pointer is an opaque token while it crosses threads: nothing
// reads or drops what it points to until the loop's thread turns it back
// into a task (`task::raw::from_remote`).
#[allow(unsafe_code)]
unsafe impl Send for RemoteTask {}

impl RemoteTask {
    pub(crate) fn new(ptr: NonNull<()>) -> RemoteTask {
        RemoteTask(ptr)
    }

    pub(crate) fn into_ptr(self) -> NonNull<()> {
        self.0
    }
}

/// What other threads send to the loop.
pub(crate) enum Remote {
    /// Schedule this task.
    Wake(RemoteTask),
    /// Run this callback on the loop thread.
    Call(Box<dyn FnOnce() + Send>),
}

/// The thread-safe part of a loop.
pub(crate) struct Shared {
    pub(crate) loop_id: u64,
    /// Made by the first sender: most loops never hear from another
    /// thread, and a fresh loop should cost no allocation for it.
    channel: OnceLock<(Sender<Remote>, Receiver<Remote>)>,
    /// Set when the loop first creates its poller (it does so lazily).
    poller: OnceLock<Weak<Poller>>,
    /// Raised by senders after pushing; lets the busy loop skip the channel
    /// with one relaxed load when nothing was sent.
    pending: AtomicBool,
    sleeping: AtomicBool,
    closed: AtomicBool,
}

/// Sending to a closed loop.
pub(crate) struct Closed<T>(pub(crate) T);

impl Shared {
    pub(crate) fn new() -> Arc<Shared> {
        Arc::new(Shared {
            loop_id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
            channel: OnceLock::new(),
            poller: OnceLock::new(),
            pending: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    /// Queues `msg` for the loop and wakes it if it is blocked.
    pub(crate) fn send(&self, msg: Remote) -> Result<(), Closed<Remote>> {
        if self.is_closed() {
            return Err(Closed(msg));
        }
        // The receiver lives in `self`, so the channel cannot be disconnected.
        let _ = self.channel.get_or_init(crossbeam_channel::unbounded).0.send(msg);
        self.nudge();
        Ok(())
    }

    /// Raises the pending flag and wakes the loop if it is blocked: it
    /// takes what was sent, or (with nothing sent) looks at its state again
    /// (a blocking job ended: a paused clock may move).
    pub(crate) fn nudge(&self) {
        self.pending.store(true, Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            if let Some(poller) = self.poller.get().and_then(Weak::upgrade) {
                let _ = poller.notify();
            }
        }
    }

    /// Records the loop's poller, for senders to notify.
    pub(crate) fn set_poller(&self, poller: &Arc<Poller>) {
        let _ = self.poller.set(Arc::downgrade(poller));
    }

    /// Whether a sender pushed since [`take_pending`](Self::take_pending).
    /// Every access to `pending` is `SeqCst`, the handshake with `sleeping`
    /// included: mixing orderings on one location is where reasoning (and
    /// Miri's weak-memory emulation, which found a wake-up lost that way)
    /// goes wrong. A `SeqCst` load is a plain load on x86.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }

    /// Lowers the pending flag; `true` when it was raised. The load first
    /// keeps the busy loop from a locked instruction per iteration; the
    /// swap acquires the push of every sender whose raise it consumes, so
    /// a drain after it sees their messages.
    pub(crate) fn take_pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst) && self.pending.swap(false, Ordering::SeqCst)
    }

    /// The next message, if any.
    pub(crate) fn try_recv(&self) -> Option<Remote> {
        self.channel.get()?.1.try_recv().ok()
    }

    /// Marks the loop as about to block; `false` when a message is pending
    /// (then the loop must not block). See the module docs.
    pub(crate) fn begin_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        !self.pending.load(Ordering::SeqCst)
    }

    pub(crate) fn end_sleep(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A `Send + Sync` handle to an [`EventLoop`](crate::EventLoop), for other
/// threads.
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
    pub(crate) shared: Arc<Shared>,
}

impl LoopHandle {
    /// Schedules `f` to run on the loop thread, waking the loop if it is
    /// blocked. Fails with [`Error::LoopClosed`](crate::Error::LoopClosed)
    /// once the loop is closed.
    ///
    /// `f` runs in a copy of the context current on the loop's thread when
    /// the loop takes it in: the calling thread's context variables do not
    /// cross (their values need not be `Send`); move what `f` needs into
    /// it.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<(), crate::Error> {
        self.shared
            .send(Remote::Call(Box::new(f)))
            .map_err(|_| crate::Error::LoopClosed)
    }

    /// Whether the loop was closed.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
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

/// A task's unique number (unique across all loops of the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub(crate) u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
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

/// The message reported for a task that panicked while it was being
/// cancelled at shutdown (re-exported as
/// `runners::SHUTDOWN_ERROR_MESSAGE`).
pub(crate) const SHUTDOWN_ERROR_MESSAGE: &str = "unhandled error during runner shutdown";

/// Where a layer sends a report: the loop (to its exception handler).
/// Held weakly, so that the layers keep no loop alive.
pub(crate) trait Report {
    fn report(self: std::rc::Rc<Self>, ctx: ExceptionContext);
}

/// A weak reference to where reports go.
pub(crate) type Reporter = std::rc::Weak<dyn Report>;

/// What the default exception handler does with a report: the `log`
/// facade (target `runner`; error level for panics, warning otherwise)
/// when the application installed a logger, else standard error.
pub(crate) fn log_report(ctx: &ExceptionContext) {
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
