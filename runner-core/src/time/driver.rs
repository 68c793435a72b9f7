//! A loop's time: its clock (real or virtual) and its timer queue, and the
//! thread's current one.
//!
//! Timers live in [`Timers`]: a binary heap ordered by `(deadline,
//! sequence number)` over a slab of slots, so the first is the next to
//! fire, equal deadlines fire in the order they were registered (FIFO),
//! and removing a timer (a dropped `Sleep`, a cancelled `TimerHandle`) is
//! O(log n) with nothing left behind, so timeouts that are almost always
//! cancelled do not pile up. The slab keeps its room after a burst while
//! any timer waits (a key names its slot); once none is left, the loop
//! gives the room back before it blocks.
//!
//! The loop owns a [`TimeDriver`] and makes it the thread's current one
//! while it runs ([`enter`]); [`super::sleep`] and the rest find it there.

use std::cell::RefCell;
use std::rc::Rc;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::task::raw::TaskRef;
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

/// A timer's place in the queue: its slot and the slot's generation, so a
/// stale key (its timer fired or was removed) never reaches a reused slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    generation: u32,
}

pub(crate) enum TimerEntry {
    Waker(Waker),
    /// A loop callback (`call_later`, `call_at`).
    Callback(Rc<Callback>),
    /// A [`scoped_timeout`](super::scoped_timeout)'s deadline: the loop
    /// cancels the task when it fires (asyncio's timeout handle calling
    /// `task.cancel()`), before the task's next poll; the cancellation is
    /// meant for the timeout's `cancellable` scope (the `u32`).
    Cancel(TaskRef, u32),
}

/// One timer: when it fires, its place in the heap, what it wakes.
struct Node {
    when: Instant,
    /// Registration order: equal deadlines fire first-in, first-out.
    seq: u64,
    /// Its index in `heap`.
    pos: u32,
    generation: u32,
    /// `None`: the slot is free.
    entry: Option<TimerEntry>,
}

/// The loop's timer queue: a binary heap of slot numbers ordered by
/// `(deadline, registration order)`, over a slab of nodes that know their
/// heap position. Inserting, and removing a timer before it fires (the
/// common fate of a timeout), are O(log n) with no allocation once the
/// vectors have grown: the insert-then-cancel of a per-request timeout
/// costs a few dozen comparisons, where a `BTreeMap` allocated nodes.
#[derive(Default)]
pub(crate) struct Timers {
    nodes: Vec<Node>,
    free: Vec<u32>,
    heap: Vec<u32>,
    seq: u64,
    /// The generation new slots start at: above every generation before
    /// the last [`trim`](Self::trim), so that no key from then matches.
    fresh_generation: u32,
}

/// How many timers' room the queue keeps when it gives back the rest
/// ([`Timers::trim`]).
pub(crate) const KEEP_TIMERS: usize = 1024;

impl Timers {
    pub(crate) fn insert(&mut self, when: Instant, entry: TimerEntry) -> TimerKey {
        self.seq += 1;
        let pos = u32::try_from(self.heap.len()).expect("fewer than 4 billion timers");
        let slot = match self.free.pop() {
            Some(slot) => {
                let node = &mut self.nodes[slot as usize];
                node.when = when;
                node.seq = self.seq;
                node.pos = pos;
                node.entry = Some(entry);
                slot
            }
            None => {
                self.nodes.push(Node {
                    when,
                    seq: self.seq,
                    pos,
                    generation: self.fresh_generation,
                    entry: Some(entry),
                });
                u32::try_from(self.nodes.len() - 1).expect("fewer than 4 billion timers")
            }
        };
        self.heap.push(slot);
        self.sift_up(pos as usize);
        TimerKey {
            slot,
            generation: self.nodes[slot as usize].generation,
        }
    }

    /// Gives back the room of a burst of timers once none is left (the
    /// loop calls it before it blocks): a million sleeps leave no 64 MB
    /// of slots behind. Keys from before stay stale: the slots made after
    /// start at a generation none of them has.
    pub(crate) fn trim(&mut self) {
        if !self.heap.is_empty() || self.nodes.len() <= KEEP_TIMERS {
            return;
        }
        let newest = self.nodes.iter().map(|n| n.generation).max().unwrap_or(0);
        self.fresh_generation = newest.wrapping_add(1);
        self.nodes.clear();
        self.nodes.shrink_to(KEEP_TIMERS);
        self.free.clear();
        self.free.shrink_to(KEEP_TIMERS);
        self.heap.shrink_to(KEEP_TIMERS);
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.nodes.capacity()
    }

    fn node(&self, key: &TimerKey) -> Option<&Node> {
        self.nodes
            .get(key.slot as usize)
            .filter(|n| n.generation == key.generation && n.entry.is_some())
    }

    pub(crate) fn remove(&mut self, key: &TimerKey) -> Option<TimerEntry> {
        let pos = self.node(key)?.pos as usize;
        Some(self.remove_at(pos))
    }

    /// Removes the timer at heap position `pos`; its slot becomes free.
    fn remove_at(&mut self, pos: usize) -> TimerEntry {
        let slot = self.heap.swap_remove(pos);
        if pos < self.heap.len() {
            // The last timer moved into the hole: restore the heap order.
            self.nodes[self.heap[pos] as usize].pos = pos as u32;
            self.sift_down(pos);
            self.sift_up(pos);
        }
        let node = &mut self.nodes[slot as usize];
        node.generation = node.generation.wrapping_add(1);
        self.free.push(slot);
        node.entry.take().expect("invariant: a timer in the heap has an entry")
    }

    /// Whether `a` fires before `b` (deadline, then registration order).
    fn before(&self, a: u32, b: u32) -> bool {
        let (a, b) = (&self.nodes[a as usize], &self.nodes[b as usize]);
        (a.when, a.seq) < (b.when, b.seq)
    }

    fn swap(&mut self, i: usize, j: usize) {
        self.heap.swap(i, j);
        self.nodes[self.heap[i] as usize].pos = i as u32;
        self.nodes[self.heap[j] as usize].pos = j as u32;
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.before(self.heap[pos], self.heap[parent]) {
                break;
            }
            self.swap(pos, parent);
            pos = parent;
        }
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let (left, right) = (2 * pos + 1, 2 * pos + 2);
            let mut first = pos;
            if left < self.heap.len() && self.before(self.heap[left], self.heap[first]) {
                first = left;
            }
            if right < self.heap.len() && self.before(self.heap[right], self.heap[first]) {
                first = right;
            }
            if first == pos {
                break;
            }
            self.swap(pos, first);
            pos = first;
        }
    }

    /// Whether the timer is still waiting (it has not fired nor been
    /// removed); if so, it wakes `waker` from now on. One lookup: a
    /// sleep's every poll after the first.
    pub(crate) fn still_waiting(&mut self, key: &TimerKey, waker: &Waker) -> bool {
        let Some(node) = self.nodes.get_mut(key.slot as usize) else {
            return false;
        };
        if node.generation != key.generation {
            return false;
        }
        match &mut node.entry {
            Some(TimerEntry::Waker(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            Some(TimerEntry::Callback(_) | TimerEntry::Cancel(..)) => true,
            None => false,
        }
    }

    pub(crate) fn contains(&self, key: &TimerKey) -> bool {
        self.node(key).is_some()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|&slot| self.nodes[slot as usize].when)
    }

    /// Removes and returns the first entry whose deadline is at or before
    /// `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.next_deadline() {
            Some(when) if when <= now => Some(self.remove_at(0)),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(crate) fn clear(&mut self) -> Vec<TimerEntry> {
        if self.heap.is_empty() {
            return Vec::new();
        }
        self.heap.clear();
        self.free.clear();
        std::mem::take(&mut self.nodes)
            .into_iter()
            .filter_map(|n| n.entry)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fired(t: &mut Timers, now: Instant) -> usize {
        let mut n = 0;
        while t.pop_expired(now).is_some() {
            n += 1;
        }
        n
    }

    #[test]
    fn timers_fire_in_deadline_order_then_registration_order() {
        let base = Instant::now();
        let mut t = Timers::default();
        let mut keys = Vec::new();
        // Deadlines out of order, with ties.
        for (i, ms) in [5u64, 1, 3, 1, 4, 3, 2].iter().enumerate() {
            let key = t.insert(
                base + Duration::from_millis(*ms),
                TimerEntry::Waker(Waker::noop().clone()),
            );
            keys.push((*ms, i, key));
        }
        let mut order = Vec::new();
        for ms in 0..=5u64 {
            let now = base + Duration::from_millis(ms);
            while t.next_deadline().is_some_and(|d| d <= now) {
                let when = t.next_deadline().unwrap();
                let (_, i, key) = keys
                    .iter()
                    .filter(|(m, _, k)| base + Duration::from_millis(*m) == when && t.contains(k))
                    .min_by_key(|(_, i, _)| *i)
                    .unwrap();
                assert!(t.pop_expired(now).is_some());
                assert!(!t.contains(key), "the key of a fired timer is stale");
                order.push(*i);
            }
        }
        // 1 ms: #1 then #3; 2 ms: #6; 3 ms: #2 then #5; 4 ms: #4; 5 ms: #0.
        assert_eq!(order, [1, 3, 6, 2, 5, 4, 0]);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn removing_timers_anywhere_keeps_the_heap_in_order_and_slots_are_reused() {
        let base = Instant::now();
        let mut t = Timers::default();
        let keys: Vec<TimerKey> = (0..1000u64)
            .map(|i| {
                let ms = (i * 7919) % 1000;
                t.insert(
                    base + Duration::from_millis(ms),
                    TimerEntry::Waker(Waker::noop().clone()),
                )
            })
            .collect();
        // Remove every third timer (the insert-then-cancel of timeouts).
        for key in keys.iter().step_by(3) {
            assert!(t.remove(key).is_some());
            assert!(t.remove(key).is_none(), "removing twice finds nothing");
        }
        assert_eq!(t.len(), 1000 - 334);
        let mut last = base;
        let mut n = 0;
        while let Some(when) = t.next_deadline() {
            assert!(when >= last, "deadlines come out in order");
            last = when;
            t.pop_expired(when).unwrap();
            n += 1;
        }
        assert_eq!(n, 666);
        // Freed slots are reused, and old keys do not reach the new timers.
        let fresh = t.insert(base, TimerEntry::Waker(Waker::noop().clone()));
        assert!(t.contains(&fresh));
        assert!(keys.iter().all(|k| !t.contains(k)));
        assert!(t.still_waiting(&fresh, Waker::noop()));
        assert!(keys.iter().all(|k| !t.still_waiting(k, Waker::noop())));
        assert_eq!(fired(&mut t, base), 1);
    }

    #[test]
    fn a_burst_of_timers_gives_back_its_room_once_none_is_left_and_old_keys_stay_stale() {
        let base = Instant::now();
        let mut t = Timers::default();
        let keys: Vec<TimerKey> = (0..5000u64)
            .map(|i| {
                t.insert(
                    base + Duration::from_millis(i % 10),
                    TimerEntry::Waker(Waker::noop().clone()),
                )
            })
            .collect();
        t.trim();
        assert!(t.capacity() >= 5000, "timers that wait keep their room");
        // The keys' timers, fired or removed, with slots' generations
        // moved on by a second use of some of them.
        for key in keys.iter().step_by(2) {
            assert!(t.remove(key).is_some());
        }
        let again = t.insert(base, TimerEntry::Waker(Waker::noop().clone()));
        assert_eq!(fired(&mut t, base + Duration::from_millis(10)), 2501);
        assert!(!t.contains(&again));
        t.trim();
        assert!(t.capacity() <= KEEP_TIMERS, "{} slots kept", t.capacity());
        // New timers take the old slots: no key from before reaches them.
        let fresh: Vec<TimerKey> = (0..5000u64)
            .map(|_| t.insert(base, TimerEntry::Waker(Waker::noop().clone())))
            .collect();
        for old in keys.iter().chain([&again]) {
            assert!(!t.contains(old));
            assert!(!t.still_waiting(old, Waker::noop()));
            assert!(
                t.remove(old).is_none(),
                "a key from before the trim removed a new timer"
            );
        }
        assert!(fresh.iter().all(|k| t.contains(k)));
        assert_eq!(fired(&mut t, base), 5000);
    }
}
