//! A loop's timer queue: [`Timers`], the timers themselves in a binary
//! heap ordered by `(deadline, registration order)`, and a table of slots
//! that [`TimerKey`]s name, each knowing where its timer is in the heap.
//!
//! The first timer is the next to fire; equal deadlines fire in the order
//! they were registered (FIFO). Inserting, and removing a timer before it
//! fires (a dropped `Sleep`, a cancelled `TimerHandle`: the common fate of
//! a timeout), are O(log n) with no allocation once the vectors have
//! grown, and nothing is left behind, so timeouts that are almost always
//! cancelled do not pile up. The heap holds the timers inline, so
//! comparing two of them reads no other memory. A key names its slot, so
//! slots never move: the table of a burst of a million timers (8 bytes a
//! slot) starts again from its first slot once the last of them left, and
//! until then keeps its size. The heap and the table give their room
//! back ([`Timers::trim`], before the loop blocks).
//!
//! Uses `task` (a timeout's entry names its task) and nothing above.

use std::mem::ManuallyDrop;
use std::rc::Rc;
use std::task::Waker;
use std::time::Instant;

use crate::task::raw::TaskRef;
use crate::task::sched::Callback;

/// A timer's place in the queue: its slot and the slot's generation, so a
/// stale key (its timer fired or was removed) never reaches a reused slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    generation: u32,
}

/// What a timer does when it fires.
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

/// One timer, in the heap.
struct Node {
    when: Instant,
    /// Registration order: equal deadlines fire first-in, first-out.
    seq: u64,
    /// The slot its key names.
    slot: u32,
    entry: TimerEntry,
}

/// A slot of the table keys name: the heap position of its timer, or, when
/// free, [`FREE`] with the next free slot in the low bits.
#[derive(Clone, Copy)]
struct Slot {
    place: u32,
    generation: u32,
}

/// [`Slot::place`]: the slot is free.
const FREE: u32 = 1 << 31;
/// The end of the free chain.
const NO_SLOT: u32 = FREE - 1;

/// How much room the queue keeps when it gives back the rest
/// ([`Timers::trim`]), in timers.
pub(crate) const KEEP_TIMERS: usize = 1024;

/// The loop's timer queue (see the module docs).
pub(crate) struct Timers {
    heap: Vec<Node>,
    slots: Vec<Slot>,
    /// The first free slot, or [`NO_SLOT`].
    free: u32,
    seq: u64,
    /// The generation new slots start at: above every generation before
    /// the slots were last cleared, so that no key from then matches.
    fresh_generation: u32,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            heap: Vec::new(),
            slots: Vec::new(),
            free: NO_SLOT,
            seq: 0,
            fresh_generation: 0,
        }
    }
}

impl Timers {
    pub(crate) fn insert(&mut self, when: Instant, entry: TimerEntry) -> TimerKey {
        self.seq += 1;
        let pos = self.heap.len();
        let place = u32::try_from(pos)
            .ok()
            .filter(|&p| p < NO_SLOT)
            .expect("fewer than 2 billion timers");
        let slot = if self.free != NO_SLOT {
            let slot = self.free;
            let s = &mut self.slots[slot as usize];
            self.free = s.place & !FREE;
            s.place = place;
            slot
        } else {
            let slot = u32::try_from(self.slots.len())
                .ok()
                .filter(|&s| s < NO_SLOT)
                .expect("fewer than 2 billion timers");
            self.slots.push(Slot {
                place,
                generation: self.fresh_generation,
            });
            slot
        };
        self.heap.push(Node {
            when,
            seq: self.seq,
            slot,
            entry,
        });
        self.sift_up(pos);
        TimerKey {
            slot,
            generation: self.slots[slot as usize].generation,
        }
    }

    /// The heap position of the key's timer, if it still waits.
    fn position(&self, key: &TimerKey) -> Option<usize> {
        let s = self.slots.get(key.slot as usize)?;
        (s.generation == key.generation && s.place & FREE == 0).then_some(s.place as usize)
    }

    pub(crate) fn remove(&mut self, key: &TimerKey) -> Option<TimerEntry> {
        let pos = self.position(key)?;
        Some(self.remove_at(pos))
    }

    /// Removes the timer at heap position `pos`; its slot becomes free.
    fn remove_at(&mut self, pos: usize) -> TimerEntry {
        let node = self.heap.swap_remove(pos);
        if pos < self.heap.len() {
            // The last timer moved into the hole: restore the heap order.
            self.sift_down(pos);
            self.sift_up(pos);
        }
        if self.heap.is_empty() && self.slots.len() > KEEP_TIMERS {
            // The last timer of a burst: its slots go, so the next timers
            // take the first slots again and `trim` can give the table's
            // room back (O(slots), once per burst that made them).
            self.forget_slots();
            return node.entry;
        }
        let s = &mut self.slots[node.slot as usize];
        s.generation = s.generation.wrapping_add(1);
        s.place = FREE | self.free;
        self.free = node.slot;
        node.entry
    }

    /// Moves the timer at `pos` towards the root while it fires before its
    /// parent. Each level moves the parent down into the hole the timer
    /// left (one move, where a swap is three: a timer is 56 bytes).
    fn sift_up(&mut self, pos: usize) {
        let mut hole = Hole::new(&mut self.heap, &mut self.slots, pos);
        while hole.pos > 0 {
            let parent = (hole.pos - 1) / 2;
            if !hole.fires_before(parent) {
                break;
            }
            hole.move_to(parent);
        }
    }

    /// Moves the timer at `pos` towards the leaves while a child fires
    /// before it, as [`sift_up`](Self::sift_up) does.
    fn sift_down(&mut self, pos: usize) {
        let len = self.heap.len();
        let mut hole = Hole::new(&mut self.heap, &mut self.slots, pos);
        loop {
            let (left, right) = (2 * hole.pos + 1, 2 * hole.pos + 2);
            if left >= len {
                break;
            }
            let child = if right < len && hole.before(right, left) {
                right
            } else {
                left
            };
            if !hole.after(child) {
                break;
            }
            hole.move_to(child);
        }
    }

    /// Whether the timer is still waiting (it has not fired nor been
    /// removed); if so, it wakes `waker` from now on. One lookup: a
    /// sleep's every poll after the first.
    pub(crate) fn still_waiting(&mut self, key: &TimerKey, waker: &Waker) -> bool {
        let Some(pos) = self.position(key) else {
            return false;
        };
        if let TimerEntry::Waker(w) = &mut self.heap[pos].entry {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
        true
    }

    pub(crate) fn contains(&self, key: &TimerKey) -> bool {
        self.position(key).is_some()
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.first().map(|n| n.when)
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

    /// Gives back the room of a burst of timers (the loop calls it before
    /// it blocks): the heap's and the slot table's beyond twice what they
    /// hold, once three quarters of it is empty. The table empties when
    /// the last timer leaves ([`remove_at`](Self::remove_at)); keys from
    /// before stay stale: the slots made after start at a generation none
    /// of them has.
    pub(crate) fn trim(&mut self) {
        let (len, room) = (self.heap.len(), self.heap.capacity());
        if room > KEEP_TIMERS && len.saturating_mul(4) < room {
            self.heap.shrink_to(len.saturating_mul(2).max(KEEP_TIMERS));
        }
        let (used, room) = (self.slots.len(), self.slots.capacity());
        if room > KEEP_TIMERS && used.saturating_mul(4) < room {
            self.slots.shrink_to(used.saturating_mul(2).max(KEEP_TIMERS));
        }
    }

    /// Frees every slot; keys from before never match the slots made next.
    fn forget_slots(&mut self) {
        let newest = self.slots.iter().map(|s| s.generation).max().unwrap_or(0);
        self.fresh_generation = self.fresh_generation.max(newest).wrapping_add(1);
        self.slots.clear();
        self.free = NO_SLOT;
    }

    /// Removes every timer and gives back what they were to do.
    pub(crate) fn clear(&mut self) -> Vec<TimerEntry> {
        if self.heap.is_empty() {
            return Vec::new();
        }
        self.forget_slots();
        std::mem::take(&mut self.heap).into_iter().map(|n| n.entry).collect()
    }

    #[cfg(test)]
    fn room(&self) -> (usize, usize) {
        (self.heap.capacity(), self.slots.capacity())
    }
}

/// A timer taken out of the heap while it moves, and the hole it leaves:
/// what std's `BinaryHeap` does to move each timer it passes once instead
/// of swapping it (three moves). Every timer moved tells its slot where it
/// went; the taken timer goes back into the hole, and tells its slot, when
/// the `Hole` is dropped (also if a caller unwinds), so the heap never
/// holds a timer twice.
struct Hole<'a> {
    heap: &'a mut [Node],
    slots: &'a mut [Slot],
    /// The timer taken out; its place in `heap` is the hole.
    node: ManuallyDrop<Node>,
    pos: usize,
}

#[allow(unsafe_code)]
impl<'a> Hole<'a> {
    fn new(heap: &'a mut [Node], slots: &'a mut [Slot], pos: usize) -> Hole<'a> {
        // SAFETY: `pos` is in bounds (indexing checks it); the timer is
        // read out once, and its place is written back when the `Hole`
        // drops, with nothing reading it meanwhile (`heap` is borrowed by
        // the `Hole` alone).
        let node = unsafe { std::ptr::read(&heap[pos]) };
        Hole {
            heap,
            slots,
            node: ManuallyDrop::new(node),
            pos,
        }
    }

    fn key(node: &Node) -> (Instant, u64) {
        (node.when, node.seq)
    }

    /// Whether the taken timer fires before the one at `at` (not the hole).
    fn fires_before(&self, at: usize) -> bool {
        debug_assert_ne!(at, self.pos);
        Self::key(&self.node) < Self::key(&self.heap[at])
    }

    /// Whether the one at `at` (not the hole) fires before the taken timer.
    fn after(&self, at: usize) -> bool {
        debug_assert_ne!(at, self.pos);
        Self::key(&self.heap[at]) < Self::key(&self.node)
    }

    /// Whether the timer at `a` fires before the one at `b` (neither the
    /// hole).
    fn before(&self, a: usize, b: usize) -> bool {
        debug_assert!(a != self.pos && b != self.pos);
        Self::key(&self.heap[a]) < Self::key(&self.heap[b])
    }

    /// Moves the timer at `at` into the hole, and tells its slot; the hole
    /// is then at `at`.
    #[inline]
    fn move_to(&mut self, at: usize) {
        assert!(at < self.heap.len() && at != self.pos);
        let slot = self.heap[at].slot as usize;
        self.slots[slot].place = self.pos as u32;
        let base = self.heap.as_mut_ptr();
        // SAFETY: both in bounds (asserted; `self.pos` since `new`), and
        // distinct; the hole's own content was read out, so overwriting it
        // drops nothing; `at` becomes the hole, never read until filled.
        unsafe { std::ptr::copy_nonoverlapping(base.add(at), base.add(self.pos), 1) };
        self.pos = at;
    }
}

#[allow(unsafe_code)]
impl Drop for Hole<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(slot) = self.slots.get_mut(self.node.slot as usize) {
            slot.place = self.pos as u32;
        }
        // SAFETY: `self.pos` is in bounds and holds no timer (see `new`
        // and `move_to`); the taken timer is written there once, and the
        // `ManuallyDrop` is not used again.
        unsafe {
            let hole = self.heap.as_mut_ptr().add(self.pos);
            std::ptr::copy_nonoverlapping(&*self.node, hole, 1);
        }
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

    /// A burst of more timers than the room kept (fewer under Miri, which
    /// is slow), due `base` plus 0 to `spread - 1` ms.
    fn burst(t: &mut Timers, base: Instant, spread: u64) -> Vec<TimerKey> {
        let n: u64 = if cfg!(miri) { 1_200 } else { 5_000 };
        (0..n)
            .map(|i| {
                t.insert(
                    base + Duration::from_millis(i % spread),
                    TimerEntry::Waker(Waker::noop().clone()),
                )
            })
            .collect()
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
    fn a_burst_of_timers_gives_back_its_room_and_old_keys_stay_stale() {
        let base = Instant::now();
        let mut t = Timers::default();
        let keys = burst(&mut t, base, 10);
        let n = keys.len();
        t.trim();
        assert!(t.room().0 >= n, "timers that wait keep their room");
        // All but the ten latest fire; the heap gives back its room, the
        // slots keep theirs (the ten's keys name slots among them).
        let late: Vec<TimerKey> = (0..10)
            .map(|_| t.insert(base + Duration::from_secs(1), TimerEntry::Waker(Waker::noop().clone())))
            .collect();
        assert_eq!(fired(&mut t, base + Duration::from_millis(10)), n);
        t.trim();
        assert!(t.room().0 <= KEEP_TIMERS, "{} timers' room kept for 10", t.room().0);
        assert!(t.room().1 >= n);
        assert!(late.iter().all(|k| t.contains(k)));
        assert_eq!(t.next_deadline(), Some(base + Duration::from_secs(1)));
        // Some of the ten removed, the others fired: none is left.
        for key in late.iter().step_by(2) {
            assert!(t.remove(key).is_some());
        }
        assert_eq!(fired(&mut t, base + Duration::from_secs(1)), 5);
        t.trim();
        assert!(t.room().1 <= KEEP_TIMERS, "{} slots kept", t.room().1);
        // New timers take the old slots: no key from before reaches them.
        let fresh: Vec<TimerKey> = (0..n)
            .map(|_| t.insert(base, TimerEntry::Waker(Waker::noop().clone())))
            .collect();
        for old in keys.iter().chain(&late) {
            assert!(!t.contains(old));
            assert!(!t.still_waiting(old, Waker::noop()));
            assert!(
                t.remove(old).is_none(),
                "a key from before the trim removed a new timer"
            );
        }
        assert!(fresh.iter().all(|k| t.contains(k)));
        assert_eq!(fired(&mut t, base), n);
    }

    /// The shape of a burst of sleeping tasks awaited by one that then
    /// sleeps once more: the burst's last timer leaves before the next
    /// timer comes and before the loop blocks (and trims).
    #[test]
    fn a_drained_burst_gives_back_its_slots_though_a_new_timer_waits() {
        let base = Instant::now();
        let mut t = Timers::default();
        let keys = burst(&mut t, base, 7);
        let n = keys.len();
        // Half removed (dropped sleeps), the rest fired.
        for key in keys.iter().step_by(2) {
            assert!(t.remove(key).is_some());
        }
        assert_eq!(fired(&mut t, base + Duration::from_millis(7)), n / 2);
        let pause = t.insert(
            base + Duration::from_millis(20),
            TimerEntry::Waker(Waker::noop().clone()),
        );
        t.trim();
        let (heap_room, slot_room) = t.room();
        assert!(
            heap_room <= KEEP_TIMERS && slot_room <= KEEP_TIMERS,
            "room kept: {heap_room}, {slot_room}"
        );
        assert!(keys.iter().all(|k| !t.contains(k) && t.remove(k).is_none()));
        assert!(t.remove(&pause).is_some());
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn cleared_timers_keys_do_not_reach_the_next_ones() {
        let base = Instant::now();
        let mut t = Timers::default();
        let old = t.insert(base, TimerEntry::Waker(Waker::noop().clone()));
        assert_eq!(t.clear().len(), 1);
        assert_eq!(t.len(), 0);
        let new = t.insert(base, TimerEntry::Waker(Waker::noop().clone()));
        assert!(!t.contains(&old) && t.remove(&old).is_none());
        assert!(t.contains(&new));
    }

    /// Random inserts, removals (by fresh and stale keys), firings and
    /// trims, against a model: a sorted map from (deadline, order) to the
    /// timer's number. The queue must fire what the model fires, in the
    /// same order, and answer every key as the model does.
    #[test]
    fn random_operations_agree_with_a_sorted_model() {
        use std::collections::BTreeMap;
        use std::sync::atomic::{AtomicU64, Ordering};
        use std::sync::Arc;
        use std::task::Wake;

        /// A waker that says which timer it belongs to.
        struct Numbered(u64, Arc<AtomicU64>);
        impl Wake for Numbered {
            fn wake(self: Arc<Self>) {
                self.1.store(self.0, Ordering::SeqCst);
            }
        }

        let rounds = if cfg!(miri) { 1_500 } else { 60_000 };
        let base = Instant::now();
        let woken = Arc::new(AtomicU64::new(u64::MAX));
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut t = Timers::default();
        let mut model: BTreeMap<(Instant, u64), u64> = BTreeMap::new();
        // Every key ever made: (key, its timer's number, its model entry).
        let mut keys: Vec<(TimerKey, u64, (Instant, u64))> = Vec::new();
        let mut now = base;
        let (mut most_live, mut trims_with_room, mut restarts) = (0, 0, 0);
        for order in 0..rounds as u64 {
            let slots_before = t.slots.len();
            // Bursts of inserts, then drains, so that the room grows past
            // what is kept and is given back.
            let burst = (order / (rounds as u64 / 6)) % 2 == 0;
            let pick = next() % 10;
            let op = match (burst, pick) {
                (true, 0..=7) | (false, 0..=1) => 0,
                (true, 8) | (false, 2..=3) => 5,
                (false, 4..=7) => 7,
                _ => 9,
            };
            match op {
                // Insert, with deadlines that often tie.
                0..=4 => {
                    let when = now + Duration::from_millis(next() % 50);
                    let waker = Waker::from(Arc::new(Numbered(order, woken.clone())));
                    let key = t.insert(when, TimerEntry::Waker(waker));
                    model.insert((when, order), order);
                    keys.push((key, order, (when, order)));
                }
                // Remove by any key ever made, live or stale.
                5 | 6 if !keys.is_empty() => {
                    let (key, number, entry) = keys[(next() % keys.len() as u64) as usize];
                    let expected = model.remove(&entry);
                    assert_eq!(t.contains(&key), expected.is_some());
                    match t.remove(&key) {
                        Some(TimerEntry::Waker(w)) => {
                            w.wake();
                            assert_eq!(woken.load(Ordering::SeqCst), number);
                            assert_eq!(expected, Some(number));
                        }
                        Some(_) => unreachable!("only wakers here"),
                        None => assert_eq!(expected, None, "a live timer was not found"),
                    }
                }
                // Time moves on; what is due fires in order.
                7 | 8 => {
                    now += Duration::from_millis(next() % 5);
                    while let Some(entry) = t.pop_expired(now) {
                        let (&first, &number) = model.iter().next().expect("the model has it too");
                        assert!(first.0 <= now);
                        model.remove(&first);
                        let TimerEntry::Waker(w) = entry else { unreachable!() };
                        w.wake();
                        assert_eq!(woken.load(Ordering::SeqCst), number, "fired out of order");
                    }
                    assert!(model.keys().next().is_none_or(|k| k.0 > now));
                }
                // The loop about to block.
                _ => {
                    trims_with_room += usize::from(t.room().0 > KEEP_TIMERS);
                    t.trim();
                }
            }
            most_live = most_live.max(model.len());
            // The last timer of a burst left: the slot table starts over.
            restarts += usize::from(slots_before > KEEP_TIMERS && t.slots.is_empty());
            assert_eq!(t.len(), model.len());
            assert_eq!(t.next_deadline(), model.keys().next().map(|k| k.0));
        }
        // Every key answers as the model does at the end.
        for (key, _, entry) in &keys {
            assert_eq!(t.contains(key), model.contains_key(entry));
        }
        if !cfg!(miri) {
            assert!(
                most_live > KEEP_TIMERS,
                "the bursts outgrew the room kept ({most_live})"
            );
            assert!(trims_with_room > 0, "some trims had room to give back");
            assert!(restarts > 0, "no burst drained: the slot table never started over");
        }
    }
}
