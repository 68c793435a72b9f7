//! The stuck-loop watchdog of library programs: a thread that ends the
//! process when a Ctrl-C stays untaken (the loop's thread never yields).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use super::{die_by, interrupt_message, Phase, INTERRUPTS, LAST_INTERRUPT, PHASE, STUCK_LOOP_GRACE, TAKEN};

/// Ends the process when an interrupt stays untaken for
/// [`STUCK_LOOP_GRACE`]: the loop that took a Ctrl-C is stuck in code that
/// never yields, and a later Ctrl-C must still end the program. Started by
/// the loop when it takes a first Ctrl-C in a library program; joined when
/// dropped.
pub(crate) struct Watchdog {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    pub(crate) fn start() -> Option<Watchdog> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let s = stop.clone();
        let thread = thread::Builder::new()
            .name("runner-ctrl-c-watchdog".into())
            .spawn(move || watch(&s))
            .ok()?;
        Some(Watchdog {
            stop,
            thread: Some(thread),
        })
    }
}

fn watch(stop: &(Mutex<bool>, Condvar)) {
    let (stopped, cv) = stop;
    let mut untaken_since: Option<(u32, Instant)> = None;
    let mut guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
    while !*guard {
        let delivered = INTERRUPTS.load(Ordering::Acquire);
        let taken = TAKEN.load(Ordering::Acquire);
        let idle = PHASE.load(Ordering::Acquire) == Phase::Idle as u8;
        untaken_since = match untaken_since {
            _ if delivered == taken || idle => None,
            Some((n, since)) if n == delivered => {
                if since.elapsed() >= STUCK_LOOP_GRACE {
                    let sig = LAST_INTERRUPT.load(Ordering::Acquire);
                    die_by(sig, Some(interrupt_message(sig)));
                }
                Some((n, since))
            }
            _ => Some((delivered, Instant::now())),
        };
        guard = cv
            .wait_timeout(guard, Duration::from_millis(10))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let (stopped, cv) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for Watchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watchdog").finish_non_exhaustive()
    }
}
