//! Timers: the loop's ordered timer queue and the futures built on it
//! ([`sleep`], [`timeout`], [`yield_now`]).
//!
//! Timers live in a `BTreeMap` keyed by `(deadline, sequence number)`: the
//! first entry is the next to fire, equal deadlines fire in the order they
//! were registered (FIFO), and removing a timer (a dropped `Sleep`, a
//! cancelled [`TimerHandle`]) is O(log n) with nothing left behind, so
//! timeouts that are almost always cancelled do not pile up.
//!
//! A `Sleep` registers its waker on first poll and removes its entry when
//! dropped; the loop fires every expired entry at the start of an iteration.
//!
//! # The clock
//!
//! A loop's clock is real (`Instant::now()`) or *virtual*
//! ([`LoopBuilder::start_paused`](crate::LoopBuilder::start_paused),
//! [`EventLoop::pause_clock`](crate::EventLoop::pause_clock),
//! `#[runner_test(start_paused)]`). Virtual time starts at the real time of
//! the pause and moves only by [`advance`] or, with auto-advance on (the
//! default), when the loop would otherwise sleep: it jumps to the next
//! timer's deadline, so an hour-long timeout takes no wall time. It does not
//! jump while blocking-pool jobs are in flight or while auto-advance is
//! paused ([`pause_auto_advance`]); then the loop waits for real wake-ups
//! (I/O, other threads) as usual.

use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::event_loop::{CallbackCell, EventLoop, LoopCore};
use crate::task::{JoinError, JoinHandle};

/// A virtual clock's state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VirtualClock {
    /// Virtual now.
    pub(crate) now: Instant,
    /// Whether the loop jumps to the next deadline when it would sleep.
    pub(crate) auto_advance: bool,
}

/// The loop's clock: real, or virtual.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    virtual_: std::cell::Cell<Option<VirtualClock>>,
}

impl Clock {
    pub(crate) fn now(&self) -> Instant {
        match self.virtual_.get() {
            Some(v) => v.now,
            None => Instant::now(),
        }
    }

    pub(crate) fn get_virtual(&self) -> Option<VirtualClock> {
        self.virtual_.get()
    }

    /// Switches to virtual time, starting at the real now (no-op when
    /// already virtual).
    pub(crate) fn pause(&self) {
        if self.virtual_.get().is_none() {
            self.virtual_.set(Some(VirtualClock {
                now: Instant::now(),
                auto_advance: true,
            }));
        }
    }

    /// Moves virtual time forward; `false` on a real clock.
    pub(crate) fn advance(&self, by: Duration) -> bool {
        match self.virtual_.get() {
            Some(mut v) => {
                v.now += by;
                self.virtual_.set(Some(v));
                true
            }
            None => false,
        }
    }

    /// Moves virtual time to `when` if it is later.
    pub(crate) fn advance_to(&self, when: Instant) {
        if let Some(mut v) = self.virtual_.get() {
            if when > v.now {
                v.now = when;
                self.virtual_.set(Some(v));
            }
        }
    }

    /// Sets auto-advance; `false` on a real clock.
    pub(crate) fn set_auto_advance(&self, on: bool) -> bool {
        match self.virtual_.get() {
            Some(mut v) => {
                v.auto_advance = on;
                self.virtual_.set(Some(v));
                true
            }
            None => false,
        }
    }
}

/// The key of a timer entry.
pub(crate) type TimerKey = (Instant, u64);

pub(crate) enum TimerEntry {
    Waker(Waker),
    Callback(Rc<CallbackCell>),
}

/// The loop's timer queue.
#[derive(Default)]
pub(crate) struct Timers {
    map: BTreeMap<TimerKey, TimerEntry>,
    seq: u64,
}

impl Timers {
    pub(crate) fn insert(&mut self, when: Instant, entry: TimerEntry) -> TimerKey {
        self.seq += 1;
        let key = (when, self.seq);
        self.map.insert(key, entry);
        key
    }

    pub(crate) fn remove(&mut self, key: &TimerKey) -> Option<TimerEntry> {
        self.map.remove(key)
    }

    /// Replaces the waker of a registered `Sleep` (it was polled by another
    /// task or with a new waker).
    pub(crate) fn update_waker(&mut self, key: &TimerKey, waker: &Waker) {
        if let Some(TimerEntry::Waker(w)) = self.map.get_mut(key) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    pub(crate) fn contains(&self, key: &TimerKey) -> bool {
        self.map.contains_key(key)
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.map.first_key_value().map(|((when, _), _)| *when)
    }

    /// Removes and returns the first entry whose deadline is at or before
    /// `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.map.first_key_value() {
            Some(((when, _), _)) if *when <= now => self.map.pop_first().map(|(_, e)| e),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    pub(crate) fn clear(&mut self) -> Vec<TimerEntry> {
        std::mem::take(&mut self.map).into_values().collect()
    }
}

/// A callback scheduled with [`EventLoop::call_later`] or
/// [`EventLoop::call_at`]; [`cancel`](Self::cancel) unschedules it.
pub struct TimerHandle {
    pub(crate) key: TimerKey,
    pub(crate) cell: Rc<CallbackCell>,
    pub(crate) event_loop: Weak<LoopCore>,
}

impl TimerHandle {
    /// Unschedules the callback; it will not run. Calling it after the
    /// callback ran, or twice, does nothing.
    pub fn cancel(&self) {
        self.cell.cancel();
        if let Some(core) = self.event_loop.upgrade() {
            core.timers.borrow_mut().remove(&self.key);
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }

    /// When the callback is (or was) due.
    pub fn when(&self) -> Instant {
        self.key.0
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.key.0)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// Waits until `duration` has passed (asyncio's `sleep`).
///
/// Must be awaited inside a running loop; the timer is registered on first
/// poll and removed when the future is dropped.
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// runner_core::run(runner_core::sleep(Duration::from_millis(20))).unwrap();
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        deadline: Deadline::After(duration),
        registered: None,
    }
}

/// Waits until the loop's clock reaches `deadline`.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline: Deadline::At(deadline),
        registered: None,
    }
}

#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// Relative, resolved against the loop's clock at first poll.
    After(Duration),
    At(Instant),
}

/// The future of [`sleep`] and [`sleep_until`].
///
/// `Send + Sync` (it holds only its deadline, its timer's key and the id of
/// the loop the timer is on), so it fits traits that ask for it, such as
/// hyper's `rt::Timer`; it is polled, like every runner future, on its
/// loop's thread.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Deadline,
    /// The timer entry and the id of the loop it is on; the loop is found
    /// through the thread's running loop (a pending sleep does not keep its
    /// loop alive).
    registered: Option<(TimerKey, u64)>,
}

impl Sleep {
    /// The deadline, once the future was first polled (a relative sleep's
    /// deadline is fixed then).
    pub fn deadline(&self) -> Option<Instant> {
        match self.deadline {
            Deadline::At(when) => Some(when),
            Deadline::After(_) => None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let lp = EventLoop::running()
            .expect("sleep() must be awaited inside a running event loop: await it inside runner_core::run(..)");
        if let Some((key, loop_id)) = this.registered {
            if loop_id == lp.core().id() {
                let mut timers = lp.core().timers.borrow_mut();
                if !timers.contains(&key) {
                    drop(timers);
                    this.registered = None;
                    return Poll::Ready(());
                }
                timers.update_waker(&key, cx.waker());
                return Poll::Pending;
            }
            // Moved to another loop: the deadline stands, the timer moves.
            this.registered = None;
        }
        let now = lp.time();
        let when = match this.deadline {
            Deadline::At(when) => when,
            Deadline::After(d) => now
                .checked_add(d)
                .unwrap_or(now + Duration::from_secs(86400 * 365 * 30)),
        };
        this.deadline = Deadline::At(when);
        if when <= now {
            return Poll::Ready(());
        }
        let key = lp
            .core()
            .timers
            .borrow_mut()
            .insert(when, TimerEntry::Waker(cx.waker().clone()));
        this.registered = Some((key, lp.core().id()));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((key, loop_id)) = self.registered.take() {
            // On the loop's thread (the normal case) the timer is removed;
            // elsewhere it fires once, waking nobody who still waits.
            if let Some(lp) = EventLoop::running().filter(|lp| lp.core().id() == loop_id) {
                if let Ok(mut timers) = lp.core().timers.try_borrow_mut() {
                    timers.remove(&key);
                }
            }
        }
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.registered.is_some())
            .finish()
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    duration: Option<Duration>,
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.duration {
            Some(d) => write!(f, "the operation timed out after {d:?}; it was cancelled"),
            None => f.write_str("the operation's deadline passed; it was cancelled"),
        }
    }
}

impl std::error::Error for Elapsed {}

/// Runs `fut` for at most `duration`: its output, or `Err(Elapsed)` after
/// dropping (cancelling) it when the time is up (asyncio's `wait_for` /
/// `timeout`).
///
/// ```
/// use std::time::Duration;
/// use runner_core::{sleep, timeout};
///
/// let r = runner_core::run(timeout(Duration::from_millis(5), sleep(Duration::from_secs(60)))).unwrap();
/// assert!(r.is_err());
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, fut: F) -> Timeout<F::IntoFuture> {
    Timeout {
        inner: Box::pin(fut.into_future()),
        sleep: sleep(duration),
        duration: Some(duration),
    }
}

/// Like [`timeout`], with an absolute deadline on the loop's clock.
pub fn timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> Timeout<F::IntoFuture> {
    Timeout {
        inner: Box::pin(fut.into_future()),
        sleep: sleep_until(deadline),
        duration: None,
    }
}

/// The future of [`timeout`].
#[must_use = "futures do nothing unless awaited"]
pub struct Timeout<F> {
    inner: Pin<Box<F>>,
    sleep: Sleep,
    duration: Option<Duration>,
}

impl<F> fmt::Debug for Timeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("sleep", &self.sleep)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed {
                duration: self.duration,
            })),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Waits at most `duration` for a spawned task, and on timeout cancels it
/// (asyncio's `wait_for(task, timeout)`).
///
/// `Ok(outcome)` when the task finished in time, its output or its
/// [`JoinError`]. When the time is up, the task is cancelled and awaited:
/// its cancellation cleanup runs before `wait_for` returns, and the result
/// is `Err(Elapsed)`, unless the task caught the cancellation and still
/// finished with an output (or panicked), which is then returned, as
/// asyncio returns it. A task that ignores its cancellation keeps
/// `wait_for` waiting, as in asyncio.
///
/// [`timeout`] on a `JoinHandle` itself would drop the handle on timeout,
/// which *detaches* the task (it keeps running); on a `&mut` handle it
/// leaves the task alone. `wait_for` is the one that cancels.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{sleep, spawn, wait_for};
///
/// runner_core::run(async {
///     let slow = spawn(sleep(Duration::from_secs(3600)));
///     assert!(wait_for(Duration::from_millis(5), slow).await.is_err());
///     // The task was cancelled, not left running: only the main task is.
///     assert_eq!(runner_core::get_running_loop().unwrap().task_count(), 1);
///
///     let quick = spawn(async { 7 });
///     assert_eq!(wait_for(Duration::from_secs(5), quick).await.unwrap().unwrap(), 7);
/// })
/// .unwrap();
/// ```
pub async fn wait_for<T: 'static>(
    duration: Duration,
    mut task: JoinHandle<T>,
) -> Result<Result<T, JoinError>, Elapsed> {
    match timeout(duration, &mut task).await {
        Ok(outcome) => Ok(outcome),
        Err(elapsed) => {
            task.cancel();
            match (&mut task).await {
                Err(e) if e.is_cancelled() => Err(elapsed),
                outcome => Ok(outcome),
            }
        }
    }
}

/// Gives the other ready tasks a turn: the task is rescheduled at the back
/// of the ready queue (asyncio's `await asyncio.sleep(0)`).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Moves the running loop's virtual clock forward by `duration`, then
/// yields once so the tasks whose timers came due can run (tokio's
/// `time::advance`). A `sleep` fixes its deadline when it is first polled:
/// let a freshly spawned sleeper run once (`yield_now`) before advancing. Fails with [`Error::ClockNotPaused`](crate::Error::ClockNotPaused)
/// on a real clock, and [`Error::NoRunningLoop`](crate::Error::NoRunningLoop)
/// outside a loop.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{time, EventLoop};
///
/// let lp = EventLoop::builder().start_paused(true).build().unwrap();
/// lp.run_until_complete(async {
///     time::pause_auto_advance().unwrap();
///     let start = runner_core::get_running_loop().unwrap().time();
///     let timer = runner_core::spawn(runner_core::sleep(Duration::from_secs(60)));
///     runner_core::yield_now().await; // the sleep fixes its deadline when first polled
///     time::advance(Duration::from_secs(60)).await.unwrap();
///     runner_core::yield_now().await;
///     assert!(timer.is_done());
///     assert_eq!(runner_core::get_running_loop().unwrap().time() - start, Duration::from_secs(60));
/// })
/// .unwrap();
/// ```
pub async fn advance(duration: Duration) -> Result<(), crate::Error> {
    crate::get_running_loop()?.advance(duration)?;
    yield_now().await;
    Ok(())
}

/// Stops the running loop's virtual clock from jumping to the next timer
/// when the loop is idle: it then moves only by [`advance`].
pub fn pause_auto_advance() -> Result<(), crate::Error> {
    crate::get_running_loop()?.set_auto_advance(false)
}

/// Lets the running loop's virtual clock jump to the next timer again when
/// the loop is idle.
pub fn resume_auto_advance() -> Result<(), crate::Error> {
    crate::get_running_loop()?.set_auto_advance(true)
}
