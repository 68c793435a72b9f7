//! What the loop does with signal deliveries: the runner's interrupts
//! (Ctrl-C and the signals acting as it).
//!
//! The handler counts each delivery (see [`signal`](crate::signal)); the
//! loop takes them, in order per signal, before its next task step and
//! whenever a signal woke it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::core::LoopCore;
use crate::signal;
use crate::task::core::TaskRef;

/// A run's (or a close's) Ctrl-C state, shared by the runner and its loop.
///
/// The first interrupt of a run cancels the main task (*soft*); any later
/// one, one that finds the main task done, and any during closing is
/// *final*: the loop stops at once.
pub(crate) struct Interrupts {
    /// The signals that act as Ctrl-C, with the deliveries of each taken.
    signals: Vec<(i32, Cell<u32>)>,
    /// The main task the first interrupt cancels (`None` while closing).
    target: Option<TaskRef>,
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

impl Interrupts {
    /// Interrupt state for `signals`, starting from what was delivered so far.
    pub(crate) fn new(signals: &[i32], target: Option<TaskRef>) -> Interrupts {
        Interrupts {
            signals: signals.iter().map(|&s| (s, Cell::new(signal::count(s)))).collect(),
            target,
            taken: Cell::new(0),
            soft: Cell::new(None),
            hard: Cell::new(None),
            watchdog: RefCell::new(None),
        }
    }

    /// The signal that cancelled the main task, if one did.
    pub(crate) fn soft(&self) -> Option<i32> {
        self.soft.get()
    }

    /// The signal of a final interrupt, if one came.
    pub(crate) fn hard(&self) -> Option<i32> {
        self.hard.get()
    }

    /// Carries the watchdog of a run over to its close.
    pub(crate) fn take_watchdog_from(&self, run: &Interrupts) {
        *self.watchdog.borrow_mut() = run.watchdog.borrow_mut().take();
    }
}

impl LoopCore {
    /// Sets (or clears) what interrupt signals do on this loop.
    pub(crate) fn set_interrupts(&self, interrupts: Option<Rc<Interrupts>>) {
        self.listens.set(interrupts.is_some());
        *self.interrupts.borrow_mut() = interrupts;
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
        let Some(ints) = self.interrupts.borrow().clone() else {
            return;
        };
        // Read first: every delivery it counts has already been counted
        // for its signal too (the handler counts in that order).
        let delivered = signal::interrupts();
        for (sig, seen) in &ints.signals {
            let now = signal::count(*sig);
            while seen.get() != now {
                seen.set(seen.get().wrapping_add(1));
                self.take_interrupt(&ints, *sig);
            }
        }
        signal::set_taken(delivered);
    }

    /// One interrupt: the first of a run cancels the main task; any other
    /// is final.
    fn take_interrupt(&self, ints: &Interrupts, sig: i32) {
        let first = ints.taken.get() == 0;
        ints.taken.set(ints.taken.get() + 1);
        let cancelled = first && ints.target.as_ref().is_some_and(|t| t.core().cancel());
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
