//! Ctrl-C (SIGINT) for `Runner::run`, as asyncio's Runner handles it.
//!
//! The `ctrlc` crate installs one handler per process, for good: it cannot
//! be removed. So the handler is installed on the first `run()` that may
//! take SIGINT (on the main thread, when SIGINT's disposition is the
//! default: `ctrlc::try_set_handler` refuses when SIGINT is ignored or a
//! handler is already there, and leaves that one in charge), and from then
//! on it is *routed*: a process-wide slot names the run that gets Ctrl-C,
//! set when a `run()` starts and cleared when it returns. With the slot
//! empty, the handler does what SIGINT's default would: the process dies by
//! SIGINT.
//!
//! "Restore only what is still ours", as CPython does: a handler the user
//! installs after ours replaces it in the kernel, and may call ours after
//! itself (signal-hook and tokio chain to the previous handler). So the
//! address of ctrlc's handler is recorded at installation, and both the
//! start of a run and the no-run fallback first check that SIGINT's
//! disposition still is that address; when it is not, the user's handler is
//! in charge and ours does nothing.
//!
//! What a Ctrl-C does while a run is active (the handler runs on ctrlc's
//! own thread, so it may lock and allocate):
//!
//! 1. The first one is counted and sent to the loop (waking it if it
//!    blocks in the poller); on the loop thread it cancels the main task.
//!    When that cancellation escapes the main task, `run()` returns
//!    `Error::KeyboardInterrupt` (or `Error::Cancelled` when the main task
//!    was also cancelled by something else: its cancel count does not drop
//!    to zero).
//! 2. Any later one makes `run()` return `Error::KeyboardInterrupt` without
//!    waiting for the main task. If the loop does not take the message
//!    within [`STUCK_LOOP_GRACE`] (its thread is stuck in code that never
//!    yields), the process prints `KeyboardInterrupt` and dies by SIGINT, as
//!    Python's second Ctrl-C breaks out of a tight loop.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::event_loop::{EventLoop, LoopHandle};

/// How long a second Ctrl-C waits for the loop before ending the process.
pub const STUCK_LOOP_GRACE: Duration = Duration::from_millis(250);

/// The run that gets Ctrl-C now, shared with ctrlc's thread.
pub(crate) struct Interrupts {
    handle: LoopHandle,
    /// Ctrl-Cs received during this run.
    count: AtomicU32,
    /// How many of them the loop has taken.
    taken: AtomicU32,
    /// Set by the loop on a second Ctrl-C (or a first one with the main
    /// task already done): `run()` returns KeyboardInterrupt at once.
    hard: AtomicBool,
}

impl Interrupts {
    /// How many Ctrl-Cs this run received.
    pub(crate) fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    /// Whether `run()` must return KeyboardInterrupt without waiting.
    pub(crate) fn is_hard(&self) -> bool {
        self.hard.load(Ordering::Acquire)
    }
}

#[derive(PartialEq, Eq)]
enum Install {
    NotYet,
    /// Installed; SIGINT's handler address right after installation.
    Installed(usize),
}

static INSTALL: Mutex<Install> = Mutex::new(Install::NotYet);
static ROUTE: Mutex<Option<Arc<Interrupts>>> = Mutex::new(None);

/// While alive, Ctrl-C goes to this run; dropping it clears the route.
pub(crate) struct SigintGuard {
    interrupts: Arc<Interrupts>,
}

impl SigintGuard {
    pub(crate) fn interrupts(&self) -> &Interrupts {
        &self.interrupts
    }
}

impl Drop for SigintGuard {
    fn drop(&mut self) {
        let mut route = ROUTE.lock().unwrap_or_else(PoisonError::into_inner);
        if route.as_ref().is_some_and(|r| Arc::ptr_eq(r, &self.interrupts)) {
            *route = None;
        }
    }
}

/// Takes Ctrl-C for a run on `event_loop`, if this thread may: `None` off
/// the main thread, when SIGINT is ignored or handled by someone else, or
/// when the handler could not be installed (the run simply goes on without).
pub(crate) fn take_sigint(event_loop: &EventLoop) -> Option<SigintGuard> {
    if !is_main_thread() || !ensure_installed() || !still_ours() {
        return None;
    }
    let interrupts = Arc::new(Interrupts {
        handle: event_loop.handle(),
        count: AtomicU32::new(0),
        taken: AtomicU32::new(0),
        hard: AtomicBool::new(false),
    });
    *ROUTE.lock().unwrap_or_else(PoisonError::into_inner) = Some(interrupts.clone());
    Some(SigintGuard { interrupts })
}

fn ensure_installed() -> bool {
    let mut install = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    if matches!(*install, Install::Installed(_)) {
        return true;
    }
    // Refused (SIGINT ignored, or a handler already set): try again at the
    // next run, in case the disposition went back to the default.
    if ctrlc::try_set_handler(on_sigint).is_ok() {
        *install = Install::Installed(sigint_handler().unwrap_or(0));
        true
    } else {
        false
    }
}

/// Whether SIGINT's handler is still the one we installed.
fn still_ours() -> bool {
    let install = INSTALL.lock().unwrap_or_else(PoisonError::into_inner);
    match *install {
        Install::Installed(ours) => sigint_handler().is_none_or(|now| now == ours),
        Install::NotYet => false,
    }
}

/// The address of SIGINT's current handler (or `SIG_DFL`/`SIG_IGN`'s
/// value), read without changing anything.
#[cfg(unix)]
#[allow(unsafe_code)]
fn sigint_handler() -> Option<usize> {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null `act`, sigaction(2) only reads the disposition
    // into `oldact`, which points to a zeroed, properly sized and aligned
    // `sigaction` owned by this frame. It is async-signal-safe and has no
    // other effect.
    let rc = unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), current.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: sigaction returned 0, so it filled `current` (and a zeroed
    // `sigaction` is a valid value anyway: plain integers and pointers).
    let current = unsafe { current.assume_init() };
    Some(current.sa_sigaction)
}

#[cfg(not(unix))]
fn sigint_handler() -> Option<usize> {
    None
}

/// ctrlc's handler (on its own thread).
fn on_sigint() {
    if !still_ours() {
        // Another handler took SIGINT over and merely chained to ours: it
        // is in charge now, during a run or not.
        return;
    }
    let target = ROUTE.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let Some(target) = target else {
        // No run is active: behave as SIGINT's default.
        die_by_sigint();
    };
    let n = target.count.fetch_add(1, Ordering::AcqRel) + 1;
    let on_loop = target.clone();
    let sent = target.handle.call_soon_threadsafe(move || deliver(&on_loop, n)).is_ok();
    if n >= 2 || !sent {
        let deadline = Instant::now() + STUCK_LOOP_GRACE;
        while target.taken.load(Ordering::Acquire) < n {
            if Instant::now() >= deadline {
                eprintln!("KeyboardInterrupt");
                die_by_sigint();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// On the loop thread: what Ctrl-C number `n` does.
fn deliver(interrupts: &Interrupts, n: u32) {
    let cancelled = n == 1
        && EventLoop::running().is_some_and(|lp| {
            let main = lp.core().interrupt_target.borrow().clone();
            main.is_some_and(|task| task.core().cancel())
        });
    if !cancelled {
        interrupts.hard.store(true, Ordering::Release);
    }
    interrupts.taken.fetch_max(n, Ordering::AcqRel);
}

fn die_by_sigint() -> ! {
    crate::__private::exit_by_sigint()
}

/// Whether this is the process's main thread (the one signals are
/// delivered to by a terminal).
fn is_main_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        // /proc/thread-self -> "<pid>/task/<tid>"; the main thread's tid is
        // the pid.
        if let Ok(link) = std::fs::read_link("/proc/thread-self") {
            let mut parts = link.to_str().unwrap_or_default().split('/');
            let pid = parts.next();
            let tid = parts.nth(1);
            if let (Some(pid), Some(tid)) = (pid, tid) {
                return pid == tid;
            }
        }
    }
    // Elsewhere: Rust names the main thread "main".
    std::thread::current().name() == Some("main")
}
