//! What the loop does with signal deliveries: the runner's interrupts
//! (Ctrl-C and the signals acting as it).
//!
//! The handler counts each delivery (see [`signal`](crate::signal)); the
//! loop takes them, in order per signal, before its next task step and
//! whenever a signal woke it.

use std::cell::{Cell, RefCell};

use super::core::LoopCore;
use crate::signal;
use crate::task::raw::TaskRef;

/// A run's (or a close's) Ctrl-C state, shared by the runner and its loop.
///
/// The first interrupt of a run cancels the main task (*soft*); any later
/// one, one that finds the main task done, and any during closing is
/// *final*: the loop stops at once.
///
/// The loop keeps one, reset for each run or close that takes the
/// signals: a run allocates nothing for it.
#[derive(Default)]
pub(crate) struct Interrupts {
    /// The signals that act as Ctrl-C (SIGINT, and the shutdown signals a
    /// runner opts into), with the deliveries of each taken.
    signals: [(Cell<i32>, Cell<u32>); MAX_INTERRUPT_SIGNALS],
    len: Cell<usize>,
    /// The main task the first interrupt cancels (`None` while closing).
    target: RefCell<Option<TaskRef>>,
    /// How many interrupts this run (close) took.
    taken: Cell<u32>,
    /// The signal that cancelled the main task.
    soft: Cell<Option<i32>>,
    /// The signal of a final interrupt.
    hard: Cell<Option<i32>>,
    /// Ends the process if a later interrupt is not taken (library
    /// programs only; `#[main]` ends it in the handler).
    watchdog: RefCell<Option<signal::Watchdog>>,
}

/// How many signals may act as Ctrl-C at once.
pub(crate) const MAX_INTERRUPT_SIGNALS: usize = 8;

/// What a run's interrupts came to, kept by the runner for its close.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The signal that cancelled the main task.
    pub(crate) soft: Option<i32>,
    /// The signal of a final interrupt.
    pub(crate) hard: Option<i32>,
    /// The stuck-loop watchdog a Ctrl-C started (library programs).
    pub(crate) watchdog: Option<signal::Watchdog>,
}

impl Interrupts {
    /// Starts over for a run (`target`: its main task) or a close, with no
    /// signal yet ([`add_signal`](Self::add_signal)), and `watchdog` carried
    /// over from the run before.
    pub(crate) fn reset(&self, target: Option<TaskRef>, watchdog: Option<signal::Watchdog>) {
        self.len.set(0);
        *self.target.borrow_mut() = target;
        self.taken.set(0);
        self.soft.set(None);
        self.hard.set(None);
        *self.watchdog.borrow_mut() = watchdog;
    }

    /// What the run (or close) came to; the state is emptied.
    pub(crate) fn take_outcome(&self) -> Outcome {
        self.len.set(0);
        self.target.borrow_mut().take();
        Outcome {
            soft: self.soft.take(),
            hard: self.hard.take(),
            watchdog: self.watchdog.borrow_mut().take(),
        }
    }

    /// Takes `sig` as an interrupt, counting from what was delivered so
    /// far; more than [`MAX_INTERRUPT_SIGNALS`] are ignored.
    pub(crate) fn add_signal(&self, sig: i32) {
        let n = self.len.get();
        if let Some((s, seen)) = self.signals.get(n) {
            s.set(sig);
            seen.set(signal::count(sig));
            self.len.set(n + 1);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    fn signals(&self) -> &[(Cell<i32>, Cell<u32>)] {
        &self.signals[..self.len.get()]
    }

    /// The signal of a final interrupt, if one came.
    pub(crate) fn hard(&self) -> Option<i32> {
        self.hard.get()
    }
}

impl LoopCore {
    /// Whether this loop takes interrupt signals now.
    pub(crate) fn set_listening(&self, on: bool) {
        self.listens.set(on);
    }

    /// Takes pending signal deliveries, if this loop listens for them.
    #[inline]
    pub(crate) fn look_at_signals(&self) {
        if self.listens.get() && signal::pending() {
            self.take_signals();
        }
    }

    /// Takes the signal deliveries counted since the last look, in order
    /// per signal. The loop calls it before a task step when a delivery is
    /// pending; the runner once more before a run returns.
    pub(crate) fn take_signals(&self) {
        signal::take_pending();
        if !self.listens.get() {
            return;
        }
        let ints = &self.interrupts;
        // Read first: every delivery it counts has already been counted
        // for its signal too (the handler counts in that order).
        let delivered = signal::interrupts();
        for (sig, seen) in ints.signals() {
            let sig = sig.get();
            let now = signal::count(sig);
            while seen.get() != now {
                seen.set(seen.get().wrapping_add(1));
                self.take_interrupt(ints, sig);
            }
        }
        signal::set_taken(delivered);
    }

    /// One interrupt: the first of a run cancels the main task; any other
    /// is final.
    fn take_interrupt(&self, ints: &Interrupts, sig: i32) {
        let first = ints.taken.get() == 0;
        ints.taken.set(ints.taken.get() + 1);
        let cancelled = first && ints.target.borrow().as_ref().is_some_and(|t| t.cancel());
        if cancelled {
            ints.soft.set(Some(sig));
            if ints.watchdog.borrow().is_none() && !signal::final_in_handler() {
                *ints.watchdog.borrow_mut() = signal::Watchdog::start();
            }
        } else {
            if ints.hard.get().is_none() {
                ints.hard.set(Some(sig));
            }
            self.abort.set(true);
        }
    }
}
