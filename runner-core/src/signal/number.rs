//! Signal numbers: the public [`Signal`] type, the conventional names,
//! and which signals runner can take (and why not). Pure data: no handler,
//! no disposition.

use super::slot;

/// A Unix signal, by number, for [`Builder::shutdown_signals`],
/// [`EventLoop::add_signal_handler`] and [`signal_stream`](crate::signal_stream).
///
/// ```
/// use runner_core::signal::Signal;
/// assert_eq!(Signal::SIGTERM.to_string(), "SIGTERM");
/// assert_eq!(Signal::from_raw(libc_sigterm()), Signal::SIGTERM);
/// # fn libc_sigterm() -> i32 { 15 }
/// ```
///
/// [`Builder::shutdown_signals`]: crate::Builder::shutdown_signals
/// [`EventLoop::add_signal_handler`]: crate::EventLoop::add_signal_handler
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signal(i32);

impl Signal {
    /// Ctrl-C.
    pub const SIGINT: Signal = Signal(libc::SIGINT);
    /// What `kill`, `docker stop`, systemd and Kubernetes send to stop a
    /// process.
    pub const SIGTERM: Signal = Signal(libc::SIGTERM);
    /// The controlling terminal went away; daemons take it as "reload".
    pub const SIGHUP: Signal = Signal(libc::SIGHUP);
    /// Ctrl-\.
    pub const SIGQUIT: Signal = Signal(libc::SIGQUIT);
    /// User-defined.
    pub const SIGUSR1: Signal = Signal(libc::SIGUSR1);
    /// User-defined.
    pub const SIGUSR2: Signal = Signal(libc::SIGUSR2);
    /// A timer (`alarm(2)`).
    pub const SIGALRM: Signal = Signal(libc::SIGALRM);
    /// The terminal's size changed.
    pub const SIGWINCH: Signal = Signal(libc::SIGWINCH);
    /// A child process stopped or ended.
    pub const SIGCHLD: Signal = Signal(libc::SIGCHLD);

    /// The signal with this number (`libc::SIGTERM`, ...). Whether it can
    /// be used is checked where it is used, with an error that says why.
    pub const fn from_raw(number: i32) -> Signal {
        Signal(number)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&name(self.0))
    }
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&name(self.0))
    }
}

/// Why `sig` cannot be taken by runner (for callbacks, or as a shutdown
/// signal when `shutdown` is set); `None` when it can.
pub(crate) fn unsupported(sig: i32, shutdown: bool) -> Option<&'static str> {
    if slot(sig).is_none() {
        return Some("it is not a signal number: use the constants of runner_core::signal::Signal");
    }
    let faults = [
        libc::SIGSEGV,
        libc::SIGBUS,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGTRAP,
        libc::SIGSYS,
    ];
    if sig == libc::SIGKILL || sig == libc::SIGSTOP {
        return Some("SIGKILL and SIGSTOP cannot be caught");
    }
    if faults.contains(&sig) {
        return Some("it reports a fault, which must be handled where it happens, not later on a loop");
    }
    let ignored_by_default = [
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGWINCH,
        libc::SIGURG,
        libc::SIGTSTP,
    ];
    if shutdown && ignored_by_default.contains(&sig) {
        return Some(
            "its default is not to end the process, so it cannot act as Ctrl-C (handle it with \
             EventLoop::add_signal_handler instead)",
        );
    }
    None
}

/// The conventional name of a signal, for messages.
pub(crate) fn name(sig: i32) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGCHLD, "SIGCHLD"),
        (libc::SIGCONT, "SIGCONT"),
        (libc::SIGSTOP, "SIGSTOP"),
        (libc::SIGTSTP, "SIGTSTP"),
        (libc::SIGWINCH, "SIGWINCH"),
    ];
    known
        .iter()
        .find(|(n, _)| *n == sig)
        .map_or_else(|| format!("signal {sig}"), |(_, name)| (*name).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_names_are_the_conventional_ones() {
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(name(libc::SIGINT), "SIGINT");
        assert_eq!(name(40), "signal 40");
    }
}
