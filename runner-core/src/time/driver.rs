//! A loop's time: its clock (real or virtual) and its timer queue
//! ([`Timers`], in `timers`), and the thread's current one.
//!
//! The loop owns a [`TimeDriver`] and makes it the thread's current one
//! while it runs ([`enter`]); [`super::sleep`] and the rest find it there.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub(crate) use super::timers::{TimerEntry, TimerKey, Timers};

/// A loop's clock and timers.
pub(crate) struct TimeDriver {
    /// The loop's id (a `Sleep` remembers which loop its timer is on).
    pub(crate) id: u64,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) clock: Clock,
}

impl TimeDriver {
    pub(crate) fn new(id: u64) -> Rc<TimeDriver> {
        Rc::new(TimeDriver {
            id,
            timers: RefCell::default(),
            clock: Clock::default(),
        })
    }

    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<TimeDriver>>> = const { RefCell::new(None) };
}

/// Makes `driver` the thread's current one until the guard drops.
pub(crate) fn enter(driver: &Rc<TimeDriver>) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(driver.clone())));
    EnterGuard { prev }
}

/// Restores the previous current time driver.
pub(crate) struct EnterGuard {
    prev: Option<Rc<TimeDriver>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

/// The time driver of the loop running on this thread.
pub(crate) fn current() -> Option<Rc<TimeDriver>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Calls `f` with the time driver of the loop running on this thread,
/// without counting a reference (a sleep's and a timeout's polls); `None`
/// when no loop runs. `f` must not enter or leave a loop.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&TimeDriver) -> R) -> Option<R> {
    CURRENT.try_with(|c| c.borrow().as_deref().map(f)).ok().flatten()
}

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

    /// Moves virtual time forward (by at most about 30 years at once, as
    /// `later` saturates); `false` on a real clock.
    pub(crate) fn advance(&self, by: Duration) -> bool {
        match self.virtual_.get() {
            Some(mut v) => {
                v.now = super::later(v.now, by);
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
