//! Signals, process-wide: the one handler runner installs, what it records,
//! and how it wakes the loop.
//!
//! This module owns the process's signal dispositions that runner changed,
//! and nothing of any loop: the event loop reads what the handler recorded
//! (`event_loop`'s signal dispatch), the runner decides what a Ctrl-C does
//! (`runner`). It uses no other module of the crate.
//!
//! # The handler
//!
//! Runner installs one function, `on_signal`, with `sigaction(2)` for
//! every signal it takes. It does only async-signal-safe work, all of it on
//! atomics:
//!
//! - it counts the delivery **in the handler itself**, so a signal belongs
//!   to the run that was active when it was delivered: a run reads the
//!   counters before it returns, and a signal raised by the loop thread
//!   itself is counted before `kill(2)` returns, hence seen before the next
//!   task step;
//! - it raises a pending mark (one relaxed load per task step tells the loop
//!   to look) and writes to the listening loop's wake-up descriptor (the
//!   poller's notifier), so a loop blocked in the poller wakes at once;
//! - for an *interrupt* signal (SIGINT, and the shutdown signals a runner
//!   opts into) that is final — a second one, or one during closing — it
//!   ends the process itself when the program asked for that (`#[main]`) or
//!   when the loop has not even taken the previous one (its thread is
//!   stuck): `KeyboardInterrupt` on stderr, then death by the signal, as
//!   its default disposition would. With no run active, an interrupt signal
//!   does what its default does: the process dies by it.
//!
//! No thread is involved. One helper thread exists only in a library
//! program (not `#[main]`) after a loop took a Ctrl-C: it ends the process
//! if a later Ctrl-C is not taken within [`STUCK_LOOP_GRACE`] (the loop's
//! thread is stuck in code that never yields); the runner joins it when it
//! closes.
//!
//! # Why not a crate
//!
//! `ctrlc` handles the signal on a thread of its own, later than the
//! delivery: a signal could be counted after the run it was delivered in
//! had returned, and one raised by the loop thread itself was seen only
//! after further task steps. `signal-hook`'s registry keeps its handler
//! installed for the life of the process once a signal is registered, even
//! after every action is removed, so SIGINT could never go back to its
//! default disposition between runs, `remove_signal_handler` could not
//! restore what was there before, and a handler the user installs later
//! through it could not be told apart from runner's. So the handler is
//! installed with `sigaction` directly: the `unsafe` here is FFI only,
//! each block with its reason.
//!
//! # Whose handler is in charge
//!
//! As CPython restores "only what is still ours": runner installs its
//! handler for an interrupt signal only when the signal's disposition is
//! the default (an ignored signal and a handler of the user's stay in
//! charge). A handler the user installs later replaces runner's in the
//! kernel; when it calls runner's after itself (signal-hook and tokio
//! chain to the previous handler), `on_signal` sees that the disposition
//! is no longer its own and does nothing.
//!
//! # Parts
//!
//! This file: the recorded state, the handler and the dispositions (FFI),
//! taking and giving back signals. `number`: the [`Signal`] type, names,
//! which signals can be taken. `watchdog`: the stuck-loop watchdog thread.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

mod number;
mod watchdog;

pub use self::number::Signal;
pub(crate) use self::number::{name, unsupported};
pub(crate) use self::watchdog::Watchdog;

/// How long a Ctrl-C may wait for a loop that already took one before the
/// process ends (the loop's thread is stuck in code that never yields).
pub const STUCK_LOOP_GRACE: Duration = Duration::from_millis(250);

/// Signal numbers the table covers (Linux has 64; other Unixes fewer).
const NSIG: usize = 65;

/// What a signal is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Role {
    /// Not taken (runner's handler is not installed, or was restored).
    Free = 0,
    /// Acts as Ctrl-C for the runner.
    Interrupt = 1,
    /// Delivered to callbacks on the loop (`add_signal_handler`).
    Handler = 2,
}

/// One signal's process-wide state. Read by the handler; written by the
/// thread that installs, under `INSTALL`.
struct Slot {
    /// Deliveries counted by the handler as interrupts, ever (wrapping).
    count: AtomicU32,
    /// Deliveries counted for callbacks (`Role::Handler`), ever (wrapping):
    /// apart, so a delivery is taken for one role only.
    handled: AtomicU32,
    role: AtomicU8,
}

#[allow(clippy::declare_interior_mutable_const)] // a template for the array below
const SLOT: Slot = Slot {
    count: AtomicU32::new(0),
    handled: AtomicU32::new(0),
    role: AtomicU8::new(Role::Free as u8),
};
static SLOTS: [Slot; NSIG] = [SLOT; NSIG];

/// The dispositions runner replaced, by signal (to restore them).
struct Installed {
    previous: [Option<Disposition>; NSIG],
    /// What a signal was taken for before a loop took it for callbacks
    /// (given back when the callback is removed).
    role_before_handler: [Role; NSIG],
}

static INSTALL: Mutex<Installed> = Mutex::new(Installed {
    previous: [None; NSIG],
    role_before_handler: [Role::Free; NSIG],
});

/// Where the runner of the main thread is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Phase {
    /// No run or close is active: an interrupt signal does its default.
    Idle = 0,
    /// A `run` is active: the first interrupt cancels the main task.
    Running = 1,
    /// A close is active: any interrupt is final.
    Closing = 2,
}

static PHASE: AtomicU8 = AtomicU8::new(Phase::Idle as u8);
/// Interrupt deliveries, ever, and how many of them a loop has taken.
static INTERRUPTS: AtomicU32 = AtomicU32::new(0);
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// `INTERRUPTS` when the current run began: the first interrupt after it
/// is the run's first Ctrl-C.
static RUN_BASE: AtomicU32 = AtomicU32::new(0);
/// Set by `#[main]`: a final interrupt ends the process in the handler.
static FINAL_IN_HANDLER: AtomicBool = AtomicBool::new(false);
/// Some delivery was counted that a loop has not looked at yet.
static PENDING: AtomicBool = AtomicBool::new(false);
/// The signal of the last interrupt delivery (for the watchdog's exit).
static LAST_INTERRUPT: AtomicI32 = AtomicI32::new(libc::SIGINT);
/// The listening loop's wake-up descriptor (-1: none).
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// How many handlers are running now: whoever changes what a handler
/// reads (the phase, the wake-up descriptor) waits until it drops to zero,
/// so no handler acts on the old value afterwards (see [`quiesce`]).
static BUSY: AtomicU32 = AtomicU32::new(0);

/// Whether a delivery is waiting for a loop to look at it. One relaxed
/// load: the loop calls it before every task step.
#[inline]
pub(crate) fn pending() -> bool {
    PENDING.load(Ordering::Relaxed)
}

/// Takes the pending mark; `true` when there was one.
pub(crate) fn take_pending() -> bool {
    PENDING.swap(false, Ordering::AcqRel)
}

/// Deliveries of `sig` counted as interrupts so far (wrapping).
pub(crate) fn count(sig: i32) -> u32 {
    slot(sig).map_or(0, |s| s.count.load(Ordering::Acquire))
}

/// Deliveries of `sig` counted for callbacks so far (wrapping).
pub(crate) fn handled(sig: i32) -> u32 {
    slot(sig).map_or(0, |s| s.handled.load(Ordering::Acquire))
}

/// Interrupt deliveries counted so far (wrapping), of any signal.
pub(crate) fn interrupts() -> u32 {
    INTERRUPTS.load(Ordering::Acquire)
}

/// Records that a loop took the interrupts up to `n`.
pub(crate) fn set_taken(n: u32) {
    TAKEN.store(n, Ordering::Release);
}

fn slot(sig: i32) -> Option<&'static Slot> {
    usize::try_from(sig).ok().filter(|&s| s > 0).and_then(|s| SLOTS.get(s))
}

/// The role `sig` is taken for now.
pub(crate) fn role(sig: i32) -> Role {
    match slot(sig).map(|s| s.role.load(Ordering::Acquire)) {
        Some(1) => Role::Interrupt,
        Some(2) => Role::Handler,
        _ => Role::Free,
    }
}

/// Makes a final interrupt end the process inside the handler (what
/// `#[main]` wants: nothing of the program runs after it anyway).
pub(crate) fn set_final_in_handler() {
    FINAL_IN_HANDLER.store(true, Ordering::Release);
}

/// Whether [`set_final_in_handler`] was called.
pub(crate) fn final_in_handler() -> bool {
    FINAL_IN_HANDLER.load(Ordering::Acquire)
}

/// Sets the phase of the main thread's runner. When it returns, every
/// handler that still saw the old phase has finished: a delivery is
/// either counted under the old phase (and the caller takes it
/// afterwards) or handled under the new one.
pub(crate) fn set_phase(phase: Phase) {
    if phase == Phase::Running {
        RUN_BASE.store(INTERRUPTS.load(Ordering::Acquire), Ordering::SeqCst);
    }
    PHASE.store(phase as u8, Ordering::SeqCst);
    quiesce();
}

/// Waits until no handler is running (see `BUSY`). Both sides are
/// `SeqCst`: a handler that entered after the caller's store sees the new
/// value; one that entered before is waited for. A handler cannot block
/// this wait: on this thread it runs to completion before the wait goes
/// on, and on another it only touches atomics and makes one `write`.
fn quiesce() {
    while BUSY.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
}

/// Whether the `k`-th interrupt of a run, delivered in `phase`, is final
/// (the rule of the handler, testable without a signal).
fn is_final(k: u32, phase: Phase) -> bool {
    phase == Phase::Closing || k >= 2
}

// ---------------------------------------------------------------------
// The handler and the dispositions (FFI).
// ---------------------------------------------------------------------

/// A disposition as `sigaction(2)` stores it (plain data: integers, a
/// mask, a function pointer).
#[derive(Clone, Copy)]
struct Disposition(libc::sigaction);

fn handler_address() -> usize {
    on_signal as extern "C" fn(libc::c_int) as usize
}

/// The current disposition of `sig`, read without changing it.
#[allow(unsafe_code)]
fn query(sig: i32) -> io::Result<Disposition> {
    let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: with a null `act`, sigaction(2) only writes the disposition
    // into `oldact`, which points to zeroed, properly sized and aligned
    // memory owned by this frame. It is async-signal-safe.
    let rc = unsafe { libc::sigaction(sig, std::ptr::null(), current.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sigaction returned 0, so it filled `current` (and a zeroed
    // `sigaction` is a valid value anyway: integers and a nullable pointer).
    Ok(Disposition(unsafe { current.assume_init() }))
}

/// Sets `sig`'s disposition to `new`; returns the one it replaces.
#[allow(unsafe_code)]
fn set(sig: i32, new: &Disposition) -> io::Result<Disposition> {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: `new` is a fully initialised `sigaction` (built by `ours` or
    // `default_disposition`, or read back by `query`), `old` points to
    // zeroed memory of the right type owned by this frame.
    let rc = unsafe { libc::sigaction(sig, &new.0, old.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as in `query`.
    Ok(Disposition(unsafe { old.assume_init() }))
}

/// A disposition with `handler` (an address, `SIG_DFL` or `SIG_IGN`).
#[allow(unsafe_code)]
fn disposition(handler: usize, flags: libc::c_int) -> Disposition {
    // SAFETY: a zeroed `sigaction` is a valid value (see `query`).
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    act.sa_flags = flags;
    // SAFETY: `sa_mask` is a valid, owned `sigset_t`; sigemptyset only
    // clears it.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    Disposition(act)
}

/// Runner's handler. `SA_RESTART`: the user's blocking calls on other
/// threads are not interrupted by it (the poller's wait always is, which
/// is what wakes the loop when the signal lands on its thread).
fn ours() -> Disposition {
    disposition(handler_address(), libc::SA_RESTART)
}

impl Disposition {
    fn handler(&self) -> usize {
        self.0.sa_sigaction
    }

    fn is_default(&self) -> bool {
        self.handler() == libc::SIG_DFL
    }

    fn is_ours(&self) -> bool {
        self.handler() == handler_address()
    }
}

/// What [`on_signal`] does, on whatever thread the kernel picked. Only
/// async-signal-safe calls: atomics, `sigaction`, `write`, `raise`.
extern "C" fn on_signal(sig: libc::c_int) {
    let saved = errno::get();
    handle(sig);
    errno::set(saved);
}

fn handle(sig: i32) {
    BUSY.fetch_add(1, Ordering::SeqCst);
    handle_counted(sig);
    BUSY.fetch_sub(1, Ordering::SeqCst);
}

fn handle_counted(sig: i32) {
    let Some(slot) = slot(sig) else { return };
    // Called by a handler that replaced ours and chains to it: that one
    // is in charge now.
    if !query(sig).is_ok_and(|d| d.is_ours()) {
        return;
    }
    match role(sig) {
        Role::Interrupt => {
            let phase = PHASE.load(Ordering::SeqCst);
            if phase == Phase::Idle as u8 {
                // No run is active: the signal's default.
                die_by(sig, None);
            }
            LAST_INTERRUPT.store(sig, Ordering::Release);
            slot.count.fetch_add(1, Ordering::AcqRel);
            let n = INTERRUPTS.fetch_add(1, Ordering::AcqRel).wrapping_add(1);
            let k = n.wrapping_sub(RUN_BASE.load(Ordering::Acquire));
            let phase = if phase == Phase::Closing as u8 {
                Phase::Closing
            } else {
                Phase::Running
            };
            if is_final(k, phase) {
                let loop_stuck = TAKEN.load(Ordering::Acquire) != n.wrapping_sub(1);
                if FINAL_IN_HANDLER.load(Ordering::Acquire) || loop_stuck {
                    die_by(sig, Some(interrupt_message(sig)));
                }
            }
        }
        Role::Handler => {
            slot.handled.fetch_add(1, Ordering::AcqRel);
        }
        // Installed but given back: as the default would.
        Role::Free => die_by(sig, None),
    }
    PENDING.store(true, Ordering::SeqCst);
    wake();
}

/// Wakes the listening loop (see [`Listening`] for why the descriptor
/// cannot be closed under this write).
#[allow(unsafe_code)]
fn wake() {
    let fd = WAKE_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        let one = 1u64.to_ne_bytes();
        // SAFETY: write(2) is async-signal-safe; `one` is a live 8-byte
        // buffer. `fd` is the listening loop's notifier, kept open until
        // no handler is running after it was unpublished (`Listening`). A
        // full counter or pipe (EAGAIN) means a wake-up is pending anyway.
        let _ = unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
    }
}

/// What is printed when a final interrupt ends the process.
fn interrupt_message(sig: i32) -> &'static [u8] {
    match sig {
        libc::SIGINT => b"KeyboardInterrupt\n",
        libc::SIGTERM => b"runner: interrupted by SIGTERM\n",
        libc::SIGHUP => b"runner: interrupted by SIGHUP\n",
        libc::SIGQUIT => b"runner: interrupted by SIGQUIT\n",
        _ => b"runner: interrupted by a signal\n",
    }
}

/// Ends the process the way `sig`'s default disposition does (for the
/// signals runner takes: termination by that signal), after writing
/// `message` to standard error. Async-signal-safe.
#[allow(unsafe_code)]
fn die_by(sig: i32, message: Option<&[u8]>) -> ! {
    if let Some(m) = message {
        // SAFETY: write(2) on fd 2 with a live buffer; async-signal-safe.
        let _ = unsafe { libc::write(2, m.as_ptr().cast(), m.len()) };
    }
    let _ = set(sig, &disposition(libc::SIG_DFL, 0));
    // SAFETY: a zeroed `sigset_t` is valid and then initialised by
    // sigemptyset/sigaddset; pthread_sigmask and raise are
    // async-signal-safe. Unblocking lets the raised signal be delivered
    // now (inside a handler it is blocked), with its default action.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
        // Not reached for a terminating signal; the status a shell shows.
        libc::_exit(128 + sig)
    }
}

/// Ends the process as `sig`'s default disposition would, from ordinary
/// code: what `#[main]` does after a KeyboardInterrupt (status 130 in a
/// shell for SIGINT, 143 for SIGTERM).
pub(crate) fn exit_by(sig: i32) -> ! {
    die_by(sig, None)
}

mod errno {
    //! errno, saved and restored around the handler (write(2) may set it,
    //! and the interrupted code may be about to read it).
    #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
    use libc::__errno as location;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    use libc::__errno_location as location;
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    use libc::__error as location;

    #[allow(unsafe_code)]
    pub(super) fn get() -> i32 {
        // SAFETY: the errno location is a valid thread-local int for the
        // life of the thread; reading it is async-signal-safe.
        unsafe { *location() }
    }

    #[allow(unsafe_code)]
    pub(super) fn set(value: i32) {
        // SAFETY: as in `get`.
        unsafe { *location() = value }
    }
}

// ---------------------------------------------------------------------
// Taking signals (from ordinary code).
// ---------------------------------------------------------------------

fn lock_install() -> std::sync::MutexGuard<'static, Installed> {
    INSTALL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes `sig` as an interrupt (Ctrl-C) signal: installs runner's handler
/// if the signal's disposition is the default, and keeps it installed from
/// then on (with no run active it does what the default does). `false`
/// when the signal stays with someone else: ignored, handled by the user,
/// taken for callbacks by a loop, or not installable.
pub(crate) fn take_interrupt(sig: i32) -> bool {
    let Some(slot) = slot(sig) else { return false };
    match role(sig) {
        Role::Interrupt => return true,
        Role::Handler => return false,
        Role::Free => {}
    }
    let mut installed = lock_install();
    match query(sig) {
        Ok(d) if d.is_default() => {}
        _ => return false,
    }
    slot.role.store(Role::Interrupt as u8, Ordering::Release);
    match set(sig, &ours()) {
        Ok(previous) => {
            installed.previous[sig as usize] = Some(previous);
            true
        }
        Err(_) => {
            slot.role.store(Role::Free as u8, Ordering::Release);
            false
        }
    }
}

/// Takes `sig` for callbacks on a loop (`add_signal_handler`): installs
/// runner's handler whatever was there (as asyncio does), remembering it
/// for [`release_handler`]. Deliveries are counted from now on.
pub(crate) fn take_handler(sig: i32) -> io::Result<()> {
    let Some(slot) = slot(sig) else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a signal number"));
    };
    let mut installed = lock_install();
    let before = role(sig);
    if before == Role::Handler {
        return Ok(());
    }
    installed.role_before_handler[sig as usize] = before;
    slot.role.store(Role::Handler as u8, Ordering::Release);
    if before == Role::Free {
        match set(sig, &ours()) {
            Ok(previous) => installed.previous[sig as usize] = Some(previous),
            Err(e) => {
                slot.role.store(Role::Free as u8, Ordering::Release);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Gives `sig` back after [`take_handler`]: to the interrupt role it had,
/// or to the disposition that was there before runner's handler (if
/// runner's is still the one installed).
pub(crate) fn release_handler(sig: i32) {
    let Some(slot) = slot(sig) else { return };
    let mut installed = lock_install();
    if role(sig) != Role::Handler {
        return;
    }
    if installed.role_before_handler[sig as usize] == Role::Interrupt {
        slot.role.store(Role::Interrupt as u8, Ordering::Release);
        return;
    }
    // The disposition first: a delivery in between is still counted (and
    // ignored), never taken for one with no owner.
    if let Some(previous) = installed.previous[sig as usize].take() {
        if query(sig).is_ok_and(|d| d.is_ours()) {
            let _ = set(sig, &previous);
        }
    }
    slot.role.store(Role::Free as u8, Ordering::Release);
}

/// While alive, deliveries wake the loop whose notifier is `fd`.
///
/// Unpublishing must not let the descriptor be closed under a handler
/// that loaded it a moment before: `drop` clears `WAKE_FD` and then waits
/// until no handler is running ([`quiesce`]).
pub(crate) struct Listening {
    _private: (),
}

impl Listening {
    pub(crate) fn publish(fd: i32) -> Listening {
        WAKE_FD.store(fd, Ordering::SeqCst);
        Listening { _private: () }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        WAKE_FD.store(-1, Ordering::SeqCst);
        quiesce();
    }
}

/// Whether this thread is the process's main thread (signals from a
/// terminal go to the process; asyncio handles them on the main thread
/// only). Asked once per thread.
pub(crate) fn is_main_thread() -> bool {
    thread_local! {
        static MAIN: bool = compute_is_main_thread();
    }
    MAIN.with(|m| *m)
}

fn compute_is_main_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::gettid() == rustix::process::getpid()
    }
    #[cfg(not(target_os = "linux"))]
    {
        // Rust names the main thread "main".
        std::thread::current().name() == Some("main")
    }
}

/// Makes a signal already sent to this thread be delivered now: the
/// kernel delivers pending signals on the way back from any system call.
/// A run calls it before it reads the counters for the last time, so a
/// Ctrl-C sent before `run()` returned (by another thread that then told
/// the main task so) is counted by that run, not by the default
/// disposition after it.
pub(crate) fn deliver_pending() {
    let _ = std::process::id();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_interrupt_or_one_while_closing_is_final() {
        assert!(!is_final(1, Phase::Running));
        assert!(is_final(2, Phase::Running));
        assert!(is_final(1, Phase::Closing));
    }
}
