//! [`interval`]: ticks at a fixed period on the loop's clock, with a
//! chosen behaviour for ticks missed while the task was busy (tokio's
//! `MissedTickBehavior` is the model).

use std::fmt;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::{driver, later, sleep_until, Sleep};

/// What an [`Interval`] does when ticks were missed (the task awaited
/// `tick` later than a tick was due).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// The missed ticks come at once, one per `tick()`, until the interval
    /// caught up; the schedule stays on its grid (`start + n × period`).
    #[default]
    Burst,
    /// The next tick is one period after the late one: the schedule shifts
    /// by the delay.
    Delay,
    /// Missed ticks are dropped: the next tick is the next one on the grid
    /// still in the future.
    Skip,
}

/// Ticks every `period`, the first at once (tokio's `interval`). On the
/// loop's clock, so a paused clock ticks at exact virtual times.
///
/// ```
/// use std::time::Duration;
/// use runner_core::time::interval;
///
/// let lp = runner_core::EventLoop::builder().start_paused(true).build().unwrap();
/// let offsets = lp
///     .run_until_complete(async {
///         let mut every = interval(Duration::from_millis(100));
///         let start = every.tick().await;
///         let mut offsets = Vec::new();
///         for _ in 0..3 {
///             offsets.push(every.tick().await - start);
///         }
///         offsets
///     })
///     .unwrap();
/// assert_eq!(offsets, [100, 200, 300].map(Duration::from_millis));
/// ```
///
/// A zero period ticks at every turn of the loop: each tick first lets
/// the other ready tasks run once, as `sleep(Duration::ZERO)` does (tokio
/// panics on it instead). A period too large for the clock ticks once,
/// then about 30 years later.
///
/// # Panics
/// When `tick` is awaited outside a running loop, as
/// [`sleep`](crate::sleep) does.
pub fn interval(period: Duration) -> Interval {
    Interval {
        period,
        start: None,
        next: None,
        sleep: None,
        behavior: MissedTickBehavior::Burst,
    }
}

/// Ticks every `period`, the first at `start` (on the loop's clock).
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    let mut i = interval(period);
    i.start = Some(start);
    i
}

/// The schedule of [`interval`].
pub struct Interval {
    period: Duration,
    /// The first tick's time, when given (`interval_at`).
    start: Option<Instant>,
    /// When the next tick is due; `None` before the first `tick`.
    next: Option<Instant>,
    sleep: Option<Sleep>,
    behavior: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick; returns the time it was due (on the loop's
    /// clock), which with [`MissedTickBehavior::Burst`] may be in the past.
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// The poll behind [`tick`](Self::tick).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let now = driver::current()
            .expect("Interval::tick must be awaited inside a running event loop")
            .now();
        let due = *self.next.get_or_insert(self.start.unwrap_or(now));
        // A zero period goes through the (already due) sleep too: it
        // suspends once, so a loop over ticks lets the others run.
        if due > now || self.period.is_zero() {
            let sleep = self.sleep.get_or_insert_with(|| sleep_until(due));
            if Pin::new(sleep).poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.sleep = None;
        self.next = Some(self.after(due, now));
        Poll::Ready(due)
    }

    /// The tick after the one due at `due`, taken at `now`.
    fn after(&self, due: Instant, now: Instant) -> Instant {
        if self.period.is_zero() {
            // Nothing can be missed: the next tick is due at once.
            return now;
        }
        let next = later(due, self.period);
        if next > now {
            return next;
        }
        match self.behavior {
            MissedTickBehavior::Burst => next,
            MissedTickBehavior::Delay => later(now, self.period),
            MissedTickBehavior::Skip => {
                let behind = now.duration_since(due);
                let periods = behind.as_nanos() / self.period.as_nanos() + 1;
                let skip = u32::try_from(periods).unwrap_or(u32::MAX);
                later(due, self.period.saturating_mul(skip))
            }
        }
    }

    /// Chooses what happens to missed ticks (by default
    /// [`Burst`](MissedTickBehavior::Burst), as in tokio).
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.behavior = behavior;
    }

    /// The missed-tick behaviour.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.behavior
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Starts the schedule over: the next tick is one period from now.
    pub fn reset(&mut self) {
        if let Some(now) = driver::current().map(|d| d.now()) {
            self.next = Some(later(now, self.period));
            self.sleep = None;
        }
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period", &self.period)
            .field("next", &self.next)
            .field("missed_tick_behavior", &self.behavior)
            .finish()
    }
}
