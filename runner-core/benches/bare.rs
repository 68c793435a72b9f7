//! The least an executor can be, for the channel benchmark's floor: two
//! futures in fixed slots, a waker that is a slot's number (clone, wake
//! and drop touch no memory but the queue), a thread-local queue of
//! numbers. No spawning, no join, no reference counts, no loop: not a
//! peer, a floor. Used by `benches/tasks.rs`; its `unsafe` waker is run
//! under Miri by `tests/bench_floor.rs`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

thread_local! {
    static READY: RefCell<VecDeque<usize>> = const { RefCell::new(VecDeque::new()) };
}

fn push(data: *const ()) {
    READY.with(|r| r.borrow_mut().push_back(data.addr()));
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(|d| RawWaker::new(d, &VTABLE), push, push, |_| {});

/// Polls `a` and `b`, each when woken, until both are done; returns
/// `b`'s output.
pub fn run_two<A: Future<Output = ()>, B: Future<Output = u64>>(a: A, b: B) -> u64 {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut a_done, mut b_out) = (false, None);
    READY.with(|r| r.borrow_mut().extend([0, 1]));
    while let Some(slot) = READY.with(|r| r.borrow_mut().pop_front()) {
        // SAFETY: the vtable's functions never dereference the data
        // pointer (it is a slot number), so any value is valid, on
        // any thread, for as long as anyone holds the waker.
        let waker = unsafe { Waker::from_raw(RawWaker::new(std::ptr::without_provenance(slot), &VTABLE)) };
        let mut cx = Context::from_waker(&waker);
        if slot == 0 && !a_done {
            a_done = a.as_mut().poll(&mut cx).is_ready();
        } else if slot == 1 && b_out.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(&mut cx) {
                b_out = Some(v);
            }
        }
    }
    assert!(a_done, "the bare executor's queue ran dry with a player still waiting");
    b_out.expect("the bare executor's queue ran dry with a player still waiting")
}
