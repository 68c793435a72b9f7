//! A loop's time: its clock (real or virtual) and its timer queue, and the
//! thread's current one.
//!
//! Timers live in a `BTreeMap` keyed by `(deadline, sequence number)`: the
//! first entry is the next to fire, equal deadlines fire in the order they
//! were registered (FIFO), and removing a timer (a dropped `Sleep`, a
//! cancelled `TimerHandle`) is O(log n) with nothing left behind, so
//! timeouts that are almost always cancelled do not pile up.
//!
//! The loop owns a [`TimeDriver`] and makes it the thread's current one
//! while it runs ([`enter`]); [`super::sleep`] and the rest find it there.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::task::sched::Callback;

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
    /// A loop callback (`call_later`, `call_at`).
    Callback(Rc<Callback>),
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
        if self.map.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut self.map).into_values().collect()
    }
}
