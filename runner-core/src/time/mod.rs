//! Time: [`sleep`], [`interval`](fn@interval), [`timeout`],
//! [`scoped_timeout`] (and [`scoped_timeout_with`], whose deadline moves),
//! [`wait_for`], [`yield_now`], and the virtual clock's controls, on the
//! loop's timer queue (`driver`).
//!
//! A `Sleep` registers its waker on first poll and removes its entry when
//! dropped; the loop fires every expired entry at the start of an
//! iteration. This module uses `task` (for [`wait_for`] and
//! [`scoped_timeout`]) and nothing of
//! the loop above it: it finds the running loop's timers through the
//! thread's current `TimeDriver` (`driver`).
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

pub(crate) mod driver;
mod interval;
mod scoped;
mod timers;

pub use self::interval::{interval, interval_at, Interval, MissedTickBehavior};
pub use self::scoped::{
    scoped_timeout, scoped_timeout_at, scoped_timeout_with, RescheduleError, ScopedTimeout, TimeoutHandle,
};

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use self::driver::{TimerEntry, TimerKey};
use crate::task::{JoinError, JoinHandle};
use crate::Error;

/// How far off "too late for the clock" is put: about 30 years, never in
/// practice (tokio's far future is the same).
const FAR_FUTURE: Duration = Duration::from_secs(86400 * 365 * 30);

/// `at + by` on a loop's clock; a sum the clock cannot represent (a
/// `Duration::MAX` sleep, say) is [`FAR_FUTURE`] from `at` instead, so
/// that every too-large delay means "never", never an overflow panic.
pub(crate) fn later(at: Instant, by: Duration) -> Instant {
    at.checked_add(by).or_else(|| at.checked_add(FAR_FUTURE)).unwrap_or(at)
}

/// Waits until `duration` has passed (asyncio's `sleep`).
///
/// Must be awaited inside a running loop; the timer is registered on first
/// poll and removed when the future is dropped. As asyncio's, it always
/// suspends at least once: `sleep(Duration::ZERO)` (or a deadline already
/// past) gives the other ready tasks their turn before it returns, as
/// [`yield_now`] does. A duration too large for the clock
/// (`Duration::MAX`) means about 30 years: never, in practice.
///
/// It never ends early, and on Linux it ends within tens of microseconds
/// of its deadline when the machine is not busy: timeouts keep their
/// sub-millisecond part, and the loop asks the kernel to wake it its
/// timer slack early (see docs/benchmarks.md, "What made the difference").
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
///
/// ```
/// use std::time::Duration;
/// use runner_core::{get_running_loop, sleep_until};
///
/// runner_core::run(async {
///     let lp = get_running_loop().unwrap();
///     let deadline = lp.time() + Duration::from_millis(10);
///     sleep_until(deadline).await;
///     assert!(lp.time() >= deadline);
/// })
/// .unwrap();
/// ```
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
    /// The timer fired: every later poll is ready at once.
    Passed(Instant),
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
    /// The poll, on the running loop's time driver.
    fn poll_on(&mut self, driver: &driver::TimeDriver, cx: &mut Context<'_>) -> Poll<()> {
        let this = self;
        if let Some((key, loop_id)) = this.registered {
            if loop_id == driver.id {
                if driver.timers.borrow_mut().still_waiting(&key, cx.waker()) {
                    return Poll::Pending;
                }
                this.registered = None;
                if let Deadline::At(when) = this.deadline {
                    this.deadline = Deadline::Passed(when);
                }
                return Poll::Ready(());
            }
            // Moved to another loop: the deadline stands, the timer moves.
            this.registered = None;
        }
        let now = driver.now();
        let when = match this.deadline {
            Deadline::Passed(_) => return Poll::Ready(()),
            Deadline::At(when) => when,
            Deadline::After(d) => later(now, d),
        };
        this.deadline = Deadline::At(when);
        // Registered even when already due: the loop fires it at its next
        // iteration, so the task suspends once, as asyncio's sleep does
        // (a loop of zero sleeps cannot starve the others).
        let key = driver
            .timers
            .borrow_mut()
            .insert(when, TimerEntry::Waker(cx.waker().clone()));
        this.registered = Some((key, driver.id));
        Poll::Pending
    }

    /// Moves the deadline to `deadline` on the loop's clock (tokio's
    /// `Sleep::reset`), whether the sleep is waiting, finished or not yet
    /// polled: it completes at the new deadline. A waiting sleep keeps its
    /// timer entry and waker, so the task it wakes need not poll it again
    /// first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use runner_core::{get_running_loop, sleep, EventLoop};
    ///
    /// let lp = EventLoop::builder().start_paused(true).build().unwrap();
    /// let waited = lp
    ///     .run_until_complete(async {
    ///         let lp = get_running_loop().unwrap();
    ///         let start = lp.time();
    ///         let mut nap = sleep(Duration::from_secs(3600));
    ///         nap.reset(start + Duration::from_secs(5));
    ///         nap.await;
    ///         lp.time() - start
    ///     })
    ///     .unwrap();
    /// assert_eq!(waited, Duration::from_secs(5));
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = Deadline::At(deadline);
        let Some((key, loop_id)) = self.registered.take() else {
            return;
        };
        // On its loop's thread, the entry moves with its waker; elsewhere
        // (or while the timers are busy) the old entry fires once, waking
        // nobody who still waits, and the next poll registers anew.
        self.registered = driver::with_current(|driver| {
            let mut timers = driver.timers.try_borrow_mut().ok().filter(|_| driver.id == loop_id)?;
            let entry = timers.remove(&key)?;
            Some((timers.insert(deadline, entry), loop_id))
        })
        .flatten();
    }

    /// Whether the timer was registered (the sleep was polled) or fired.
    fn is_started(&self) -> bool {
        self.registered.is_some() || matches!(self.deadline, Deadline::Passed(_))
    }

    /// The deadline, once the future was first polled (a relative sleep's
    /// deadline is fixed then).
    pub fn deadline(&self) -> Option<Instant> {
        match self.deadline {
            Deadline::At(when) | Deadline::Passed(when) => Some(when),
            Deadline::After(_) => None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        driver::with_current(|driver| this.poll_on(driver, cx))
            .expect("sleep() must be awaited inside a running event loop: await it inside runner_core::run(..)")
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((key, loop_id)) = self.registered.take() {
            // On the loop's thread (the normal case) the timer is removed;
            // elsewhere it fires once, waking nobody who still waits.
            if let Some(driver) = driver::current().filter(|d| d.id == loop_id) {
                if let Ok(mut timers) = driver.timers.try_borrow_mut() {
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
/// As asyncio's `timeout`: a future that is ready on its first poll is
/// never interrupted (even with `Duration::ZERO`); once it has suspended,
/// the deadline wins as soon as its timer fires, even over a wake-up that
/// came in the same turn of the loop, and `fut` is then dropped without
/// being polled again, so nothing it would have taken (a channel's item,
/// say) is lost.
///
/// Around a [`task_group`](crate::task_group), the deadline drops the
/// group: its children are cancelled, and their async cleanup runs after
/// `timeout` returned. For asyncio's order (the children's cleanup first),
/// and wherever the code inside must run async cleanup, use
/// [`scoped_timeout`], which cancels in place.
///
/// The returned [`Timeout`] holds `fut` inline: no allocation per call.
/// Like `fut` itself, it is `Unpin` only when `fut` is; to poll it through
/// `&mut` (in a `select!`, say), pin it first with [`std::pin::pin!`].
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
        inner: fut.into_future(),
        sleep: sleep(duration),
        duration: Some(duration),
    }
}

/// Like [`timeout`], with an absolute deadline on the loop's clock: one
/// deadline for several steps.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{get_running_loop, sleep, timeout_at};
///
/// runner_core::run(async {
///     let deadline = get_running_loop().unwrap().time() + Duration::from_millis(30);
///     // The first step fits; the second would end past the deadline.
///     assert!(timeout_at(deadline, sleep(Duration::from_millis(1))).await.is_ok());
///     assert!(timeout_at(deadline, sleep(Duration::from_secs(60))).await.is_err());
/// })
/// .unwrap();
/// ```
pub fn timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> Timeout<F::IntoFuture> {
    Timeout {
        inner: fut.into_future(),
        sleep: sleep_until(deadline),
        duration: None,
    }
}

pin_project! {
    /// The future of [`timeout`]: the wrapped future inline (no
    /// allocation), and its timer.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Timeout<F> {
        #[pin]
        inner: F,
        sleep: Sleep,
        duration: Option<Duration>,
    }
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let elapsed = Elapsed {
            duration: *this.duration,
        };
        if this.sleep.is_started() {
            // Once the wrapped future has suspended, a deadline whose timer
            // fired wins over an output that came in the meantime, as
            // asyncio's timeout cancels the task when its timer fires,
            // before the task's next step (`timeout(Duration::ZERO,
            // sleep(Duration::ZERO))` times out). The timer is looked at
            // first, so the wrapped future is then dropped without being
            // polled: no output it made is thrown away.
            if Pin::new(&mut *this.sleep).poll(cx).is_ready() {
                return Poll::Ready(Err(elapsed));
            }
            return this.inner.poll(cx).map(Ok);
        }
        // The first poll: a future that is ready at once is never
        // interrupted, whatever the deadline (asyncio's block that never
        // suspends).
        if let Poll::Ready(v) = this.inner.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(elapsed)),
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
///
/// ```
/// use std::cell::RefCell;
/// use std::rc::Rc;
/// use runner_core::{spawn, yield_now};
///
/// let order = runner_core::run(async {
///     let order = Rc::new(RefCell::new(Vec::new()));
///     let o = order.clone();
///     let other = spawn(async move { o.borrow_mut().push("other task") });
///     order.borrow_mut().push("before the yield");
///     yield_now().await; // the spawned task runs now
///     order.borrow_mut().push("after the yield");
///     other.await.unwrap();
///     order.take()
/// })
/// .unwrap();
/// assert_eq!(order, ["before the yield", "other task", "after the yield"]);
/// ```
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
/// let a freshly spawned sleeper run once (`yield_now`) before advancing.
/// A duration too large for the clock moves it about 30 years. Fails with
/// [`Error::ClockNotPaused`] on a real clock, and [`Error::NoRunningLoop`]
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
pub async fn advance(duration: Duration) -> Result<(), Error> {
    let driver = driver::current().ok_or(Error::NoRunningLoop)?;
    if !driver.clock.advance(duration) {
        return Err(Error::ClockNotPaused);
    }
    yield_now().await;
    Ok(())
}

/// Stops the running loop's virtual clock from jumping to the next timer
/// when the loop is idle: it then moves only by [`advance`].
pub fn pause_auto_advance() -> Result<(), Error> {
    set_auto_advance(false)
}

/// Lets the running loop's virtual clock jump to the next timer again when
/// the loop is idle.
pub fn resume_auto_advance() -> Result<(), Error> {
    set_auto_advance(true)
}

fn set_auto_advance(on: bool) -> Result<(), Error> {
    let driver = driver::current().ok_or(Error::NoRunningLoop)?;
    if driver.clock.set_auto_advance(on) {
        Ok(())
    } else {
        Err(Error::ClockNotPaused)
    }
}
