//! The OS poller under the reactor: register descriptors, wait for events,
//! wake a waiting thread from another one.
//!
//! On Linux this is epoll, called directly through rustix's safe wrappers
//! (rustix is what `polling` itself is built on). The reason is measured:
//! `polling`'s `wait` makes five system calls where one suffices
//! (`timerfd_settime`, two `epoll_ctl` re-arms of its timer and notifier,
//! and a `read` of the notifier, around the `epoll_wait`), and the echo
//! benchmark waits once for every few round trips. Here a wait is one
//! system call, and the notifier (an eventfd, edge-triggered) is read only
//! when it fired.
//!
//! Timeouts keep their sub-millisecond part, so that timers fire on time
//! rather than up to a millisecond late: a wait with a timeout is an
//! `epoll_pwait2` (Linux 5.11, nanoseconds), made with a raw system call
//! because rustix uses it only when built for 5.11 and newer, in which
//! case it would fail on older kernels, and asked for the timeout less
//! the kernel's timer slack (`less_slack`). Where the kernel does not have
//! it (`ENOSYS`, remembered for the process), a timerfd in the epoll set
//! is armed to the exact timeout instead (a timerfd has no slack) when
//! the timeout has a sub-millisecond part; a wait without a timeout, with
//! a zero one, or there with whole milliseconds, is an `epoll_pwait`.
//!
//! Elsewhere (macOS, the BSDs: kqueue) it is the `polling` crate.

/// One readiness event: the key the descriptor was registered with and
/// what it is ready for (errors and hang-ups count as both).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ev {
    pub(crate) key: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The read side will not block again: the peer shut down its writing
    /// (or both), or the socket failed. Where the poller cannot tell, true.
    pub(crate) read_closed: bool,
    /// The write side will not block again (hang-up or error); where the
    /// poller cannot tell, true.
    pub(crate) write_closed: bool,
}

/// How a registration reports readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Once per change (epoll's `EPOLLET`): sockets, which keep their own
    /// readiness flags.
    Edge,
    /// At every wait while ready: `add_reader`/`add_writer` callbacks.
    Level,
}

#[cfg(all(target_os = "linux", not(feature = "portable-poller")))]
pub(crate) use linux::{Events, Poller};
// Elsewhere; and on Linux with the `portable-poller` feature, so that CI
// runs the socket tests on this backend too.
#[cfg(any(not(target_os = "linux"), feature = "portable-poller"))]
pub(crate) use portable::{Events, Poller};

#[cfg(target_os = "linux")]
#[cfg_attr(feature = "portable-poller", allow(dead_code))]
mod linux {
    use super::{Ev, Mode};
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::time::Duration;

    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::OnceLock;

    use rustix::buffer::spare_capacity;
    use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
    use rustix::event::{eventfd, EventfdFlags, Timespec};
    use rustix::time::{timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags};

    /// The notifier's key; no table slot reaches it.
    const NOTIFY: u64 = u64::MAX;
    /// The timerfd's key (kernels without `epoll_pwait2`).
    const TIMER: u64 = u64::MAX - 1;

    /// Whether the kernel has `epoll_pwait2`, once known.
    static PWAIT2: AtomicU8 = AtomicU8::new(UNKNOWN);
    const UNKNOWN: u8 = 0;
    const SUPPORTED: u8 = 1;
    const UNSUPPORTED: u8 = 2;

    /// Waits longer than this are in whole milliseconds anyway (the
    /// fraction does not matter, and `epoll_pwait` takes them).
    const MAX_WAIT: Duration = Duration::from_secs(3600);

    /// A thread's timer slack when nobody changed it (`prctl(2)`,
    /// `PR_SET_TIMERSLACK`).
    const DEFAULT_TIMER_SLACK: Duration = Duration::from_micros(50);
    /// The most slack the kernel gives a wait (its `MAX_SLACK`).
    const MAX_SLACK: Duration = Duration::from_millis(100);

    /// The timeout to ask `epoll_pwait2` for, so that it returns on time.
    ///
    /// The kernel lets a wait's timer fire late by up to its "slack", so
    /// that nearby wake-ups can share one interrupt: 0.1% of the timeout,
    /// at least the thread's timer slack, at most 100 ms
    /// (`select_estimate_accuracy`); the timer fires at the end of that
    /// range unless another interrupt comes first. Unasked, a 1 ms sleep would end ~50 µs late and a 1 s
    /// one ~1 ms late (tokio's and asyncio's do). Asking for the timeout
    /// less the slack makes the range end on time; a wake-up before it
    /// (another interrupt came first) finds no timer due, and the loop
    /// waits again for what is left: at most the slack, which it asks for
    /// whole. A thread with a smaller slack (real-time, or set by
    /// `prctl`) may so wake once more; one with a larger slack asked for
    /// lateness.
    pub(super) fn less_slack(timeout: Duration) -> Duration {
        let slack = (timeout / 1000).clamp(DEFAULT_TIMER_SLACK, MAX_SLACK);
        if timeout > 2 * slack {
            timeout - slack
        } else {
            timeout
        }
    }

    pub(crate) struct Poller {
        epoll: OwnedFd,
        notifier: OwnedFd,
        /// Made on first need, on kernels without `epoll_pwait2`.
        timer: OnceLock<OwnedFd>,
    }

    pub(crate) struct Events {
        list: Vec<epoll::Event>,
    }

    impl Events {
        pub(crate) fn new() -> Events {
            Events {
                list: Vec::with_capacity(1024),
            }
        }

        pub(crate) fn iter(&self) -> impl Iterator<Item = Ev> + '_ {
            self.list.iter().filter_map(|e| {
                let key = e.data.u64();
                if key == NOTIFY || key == TIMER {
                    return None;
                }
                let flags = e.flags;
                let failed = flags.intersects(EventFlags::ERR | EventFlags::HUP);
                Some(Ev {
                    key: key as usize,
                    readable: failed || flags.intersects(EventFlags::IN | EventFlags::RDHUP | EventFlags::PRI),
                    writable: failed || flags.contains(EventFlags::OUT),
                    read_closed: failed || flags.contains(EventFlags::RDHUP),
                    write_closed: failed,
                })
            })
        }
    }

    fn flags(readable: bool, writable: bool, mode: Mode) -> EventFlags {
        let mut f = EventFlags::empty();
        if readable {
            f |= EventFlags::IN | EventFlags::RDHUP;
        }
        if writable {
            f |= EventFlags::OUT;
        }
        if mode == Mode::Edge {
            f |= EventFlags::ET;
        }
        f
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            let epoll = epoll::create(CreateFlags::CLOEXEC)?;
            let notifier = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
            epoll::add(
                &epoll,
                &notifier,
                EventData::new_u64(NOTIFY),
                EventFlags::IN | EventFlags::ET,
            )?;
            Ok(Poller {
                epoll,
                notifier,
                timer: OnceLock::new(),
            })
        }

        pub(crate) fn add(&self, fd: BorrowedFd<'_>, key: usize, r: bool, w: bool, mode: Mode) -> io::Result<()> {
            Ok(epoll::add(
                &self.epoll,
                fd,
                EventData::new_u64(key as u64),
                flags(r, w, mode),
            )?)
        }

        pub(crate) fn modify(&self, fd: BorrowedFd<'_>, key: usize, r: bool, w: bool, mode: Mode) -> io::Result<()> {
            Ok(epoll::modify(
                &self.epoll,
                fd,
                EventData::new_u64(key as u64),
                flags(r, w, mode),
            )?)
        }

        pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            Ok(epoll::delete(&self.epoll, fd)?)
        }

        pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
            events.list.clear();
            // Where the kernel lacks `epoll_pwait2`, the timerfd costs a
            // system call more: only for a timeout with a sub-millisecond
            // part.
            let precise =
                |t: Duration| t.subsec_nanos() % 1_000_000 != 0 || PWAIT2.load(Ordering::Relaxed) != UNSUPPORTED;
            match timeout {
                Some(t) if !t.is_zero() && t < MAX_WAIT && precise(t) => self.wait_precise(events, t)?,
                _ => {
                    // None, zero, an hour or more, or whole milliseconds
                    // on a kernel without `epoll_pwait2` (capped where
                    // `epoll_pwait` stops taking them).
                    let timeout = timeout.map(|t| {
                        let ms = t.as_millis().min(i32::MAX as u128) as i64;
                        Timespec {
                            tv_sec: ms / 1000,
                            tv_nsec: (ms % 1000) * 1_000_000,
                        }
                    });
                    epoll::wait(&self.epoll, spare_capacity(&mut events.list), timeout.as_ref())?;
                }
            }
            let drain = |fd: &OwnedFd| {
                // Reset the counter; a notification racing with this read
                // makes a new edge, so it is seen by the next wait.
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(fd, &mut buf);
            };
            if events.list.iter().any(|e| e.data.u64() == NOTIFY) {
                drain(&self.notifier);
            }
            if let Some(timer) = self.timer.get() {
                if events.list.iter().any(|e| e.data.u64() == TIMER) {
                    drain(timer);
                }
            }
            Ok(events.list.len())
        }

        /// A wait with a timeout, to the nanosecond.
        fn wait_precise(&self, events: &mut Events, timeout: Duration) -> io::Result<()> {
            if PWAIT2.load(Ordering::Relaxed) != UNSUPPORTED {
                match self.epoll_pwait2(events, less_slack(timeout)) {
                    Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => PWAIT2.store(UNSUPPORTED, Ordering::Relaxed),
                    other => return other,
                }
            }
            // An older kernel: a timerfd, armed to the exact timeout, in
            // the epoll set (made on first use).
            let timer = match self.timer.get() {
                Some(timer) => timer,
                None => {
                    let timer = timerfd_create(
                        TimerfdClockId::Monotonic,
                        TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
                    )?;
                    epoll::add(&self.epoll, &timer, EventData::new_u64(TIMER), EventFlags::IN)?;
                    let _ = self.timer.set(timer);
                    self.timer.get().expect("set above")
                }
            };
            let at = Itimerspec {
                it_interval: Timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: Timespec {
                    tv_sec: timeout.as_secs() as i64,
                    tv_nsec: i64::from(timeout.subsec_nanos()),
                },
            };
            timerfd_settime(timer, TimerfdTimerFlags::empty(), &at)?;
            epoll::wait(&self.epoll, spare_capacity(&mut events.list), None)?;
            Ok(())
        }

        /// Makes this process wait as on a kernel without `epoll_pwait2`
        /// (tests of the timerfd path).
        #[cfg(test)]
        pub(crate) fn use_timerfd_for_tests() {
            PWAIT2.store(UNSUPPORTED, Ordering::Relaxed);
        }

        /// `epoll_pwait2(2)`: a wait with a nanosecond timeout.
        #[allow(unsafe_code)]
        fn epoll_pwait2(&self, events: &mut Events, timeout: Duration) -> io::Result<()> {
            let ts = libc::timespec {
                tv_sec: timeout.as_secs() as libc::time_t,
                tv_nsec: timeout.subsec_nanos() as libc::c_long,
            };
            let room = events.list.capacity();
            // SAFETY: the arguments are what epoll_pwait2(2) takes: our
            // epoll descriptor; a buffer of `room` events that the kernel
            // fills from its start (`list` is empty and has that capacity;
            // rustix's `Event` is laid out as the kernel's `epoll_event` on
            // every target, packed where the kernel's is); a live timespec;
            // no signal mask (so the mask size is not read). The kernel
            // writes at most `room` events and returns how many; only then
            // are that many marked initialised.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.epoll.as_raw_fd(),
                    events.list.as_mut_ptr(),
                    room as libc::c_int,
                    &ts as *const libc::timespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                return Err(e);
            }
            PWAIT2.store(SUPPORTED, Ordering::Relaxed);
            let n = (n as usize).min(room);
            // SAFETY: the kernel initialised the first `n` events (and
            // `n <= room`, the capacity).
            unsafe { events.list.set_len(n) };
            Ok(())
        }

        /// The notifier's descriptor, for a signal handler to write an
        /// 8-byte 1 to (what `notify` does, without a Rust call).
        pub(crate) fn wake_fd(&self) -> std::os::fd::RawFd {
            use std::os::fd::AsRawFd;
            self.notifier.as_raw_fd()
        }

        /// Wakes the thread blocked in [`wait`](Self::wait), or makes the
        /// next wait return at once. Callable from any thread.
        pub(crate) fn notify(&self) -> io::Result<()> {
            match rustix::io::write(self.notifier.as_fd(), &1u64.to_ne_bytes()) {
                // The counter is saturated: a wake-up is pending anyway.
                Ok(_) | Err(rustix::io::Errno::AGAIN) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}

// Built everywhere (and unused on Linux by default) so that CI, which runs
// on Linux, still compiles and tests it.
#[cfg_attr(all(target_os = "linux", not(feature = "portable-poller")), allow(dead_code))]
mod portable {
    use super::{Ev, Mode};
    use std::io;
    use std::os::fd::{AsRawFd, BorrowedFd};
    use std::time::Duration;

    use std::io::Read;
    use std::os::fd::{AsFd, RawFd};
    use std::os::unix::net::UnixStream;

    use polling::{Event, PollMode};

    /// The key of the signal wake-up pipe; no table slot reaches it
    /// (`polling` keeps `usize::MAX` for its own notifier).
    const WAKE: usize = usize::MAX - 1;

    /// `polling`'s poller, plus a pipe a signal handler can write to
    /// (`polling`'s own notifier is reached only through a Rust call).
    pub(crate) struct Poller {
        poller: polling::Poller,
        wake_read: UnixStream,
        wake_write: UnixStream,
    }

    pub(crate) struct Events(polling::Events);

    impl Events {
        pub(crate) fn new() -> Events {
            Events(polling::Events::new())
        }

        /// What `polling` can tell. It reports neither EPOLLRDHUP nor
        /// kqueue's EV_EOF, so a read side that reached end of stream
        /// cannot be told from one that is merely drained: `read_closed` is
        /// always set (a short read then leaves the readiness alone and
        /// the next read finds out, at the cost of that call), or a stream
        /// whose data and end arrived in one edge would wait forever. The
        /// write side needs no such guess: a short write shows the socket
        /// was open, and any later failure makes a new edge; it is closed
        /// only when the poller says so (hang-up, error).
        pub(crate) fn iter(&self) -> impl Iterator<Item = Ev> + '_ {
            self.0.iter().filter(|e| e.key != WAKE).map(|e| {
                let failed = e.is_interrupt() || e.is_err().unwrap_or(false);
                Ev {
                    key: e.key,
                    readable: e.readable,
                    writable: e.writable,
                    read_closed: true,
                    write_closed: failed,
                }
            })
        }
    }

    fn mode(m: Mode) -> PollMode {
        match m {
            Mode::Edge => PollMode::Edge,
            Mode::Level => PollMode::Level,
        }
    }

    impl Poller {
        pub(crate) fn new() -> io::Result<Poller> {
            let (wake_read, wake_write) = UnixStream::pair()?;
            wake_read.set_nonblocking(true)?;
            wake_write.set_nonblocking(true)?;
            let poller = Poller {
                poller: polling::Poller::new()?,
                wake_read,
                wake_write,
            };
            poller.add(poller.wake_read.as_fd(), WAKE, true, false, Mode::Edge)?;
            Ok(poller)
        }

        #[allow(unsafe_code)]
        pub(crate) fn add(&self, fd: BorrowedFd<'_>, key: usize, r: bool, w: bool, m: Mode) -> io::Result<()> {
            let event = Event::new(key, r, w).with_interrupt();
            // SAFETY: `Poller::add` requires the descriptor to be deleted
            // from the poller before it is closed. The reactor only adds
            // descriptors of objects its table slot owns, deletes them
            // before dropping the slot, and drops the poller (ending every
            // registration) before the table when it is dropped itself;
            // the wake-up pipe lives exactly as long as this poller.
            unsafe { self.poller.add_with_mode(fd.as_raw_fd(), event, mode(m)) }
        }

        pub(crate) fn modify(&self, fd: BorrowedFd<'_>, key: usize, r: bool, w: bool, m: Mode) -> io::Result<()> {
            self.poller
                .modify_with_mode(fd, Event::new(key, r, w).with_interrupt(), mode(m))
        }

        pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
            self.poller.delete(fd)
        }

        pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
            events.0.clear();
            let n = self.poller.wait(&mut events.0, timeout)?;
            if events.0.iter().any(|e| e.key == WAKE) {
                let mut buf = [0u8; 64];
                while matches!((&self.wake_read).read(&mut buf), Ok(n) if n > 0) {}
            }
            Ok(n)
        }

        /// The descriptor a signal handler writes to, to wake the wait.
        pub(crate) fn wake_fd(&self) -> RawFd {
            self.wake_write.as_raw_fd()
        }

        pub(crate) fn notify(&self) -> io::Result<()> {
            self.poller.notify()
        }
    }
}

#[cfg(test)]
mod tests {
    //! Both backends (the portable one runs on Linux too, over `polling`'s
    //! epoll), through the same checks.
    use super::{Ev, Mode};
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    macro_rules! backend_tests {
        ($name:ident, $poller:ty, $events:ty) => {
            mod $name {
                use super::*;

                fn wait(p: &$poller, timeout: Option<Duration>) -> Vec<Ev> {
                    let mut events = <$events>::new();
                    p.wait(&mut events, timeout).unwrap();
                    events.iter().collect()
                }

                #[test]
                fn edge_events_report_readiness_with_their_key() {
                    let p = <$poller>::new().unwrap();
                    let (a, mut b) = UnixStream::pair().unwrap();
                    a.set_nonblocking(true).unwrap();
                    p.add(a.as_fd(), 7, true, true, Mode::Edge).unwrap();
                    // A fresh socket is writable at once.
                    let evs = wait(&p, Some(Duration::from_secs(5)));
                    assert!(evs.iter().any(|e| e.key == 7 && e.writable), "{evs:?}");
                    b.write_all(b"x").unwrap();
                    let evs = wait(&p, Some(Duration::from_secs(5)));
                    assert!(evs.iter().any(|e| e.key == 7 && e.readable), "{evs:?}");
                    // Edge-triggered: unread data is not reported again.
                    let evs = wait(&p, Some(Duration::from_millis(20)));
                    assert!(!evs.iter().any(|e| e.readable), "{evs:?}");
                    let mut buf = [0u8; 1];
                    (&a).read_exact(&mut buf).unwrap();
                    drop(b);
                    let evs = wait(&p, Some(Duration::from_secs(5)));
                    assert!(
                        evs.iter().any(|e| e.key == 7 && e.readable && e.read_closed),
                        "{evs:?}"
                    );
                    p.delete(a.as_fd()).unwrap();
                }

                #[test]
                fn level_events_repeat_until_read_and_modify_changes_interest() {
                    let p = <$poller>::new().unwrap();
                    let (a, mut b) = UnixStream::pair().unwrap();
                    p.add(a.as_fd(), 3, true, false, Mode::Level).unwrap();
                    b.write_all(b"x").unwrap();
                    for _ in 0..3 {
                        let evs = wait(&p, Some(Duration::from_secs(5)));
                        assert!(evs.iter().any(|e| e.key == 3 && e.readable), "{evs:?}");
                    }
                    p.modify(a.as_fd(), 3, false, false, Mode::Level).unwrap();
                    let evs = wait(&p, Some(Duration::from_millis(20)));
                    assert!(evs.is_empty(), "no interest, no events: {evs:?}");
                    p.delete(a.as_fd()).unwrap();
                }

                #[test]
                fn notify_wakes_a_wait_from_another_thread_and_timeouts_are_not_early() {
                    let p = std::sync::Arc::new(<$poller>::new().unwrap());
                    let q = p.clone();
                    let t = std::thread::spawn(move || {
                        std::thread::sleep(Duration::from_millis(30));
                        q.notify().unwrap();
                    });
                    let started = Instant::now();
                    let evs = wait(&p, Some(Duration::from_secs(10)));
                    assert!(started.elapsed() < Duration::from_secs(5), "woken by notify");
                    assert!(evs.is_empty(), "the notification is not an event: {evs:?}");
                    t.join().unwrap();
                    // A notification before the wait makes it return at once.
                    p.notify().unwrap();
                    let started = Instant::now();
                    wait(&p, Some(Duration::from_secs(10)));
                    assert!(started.elapsed() < Duration::from_secs(5));
                    // And once consumed, a timeout runs its full length.
                    let started = Instant::now();
                    wait(&p, Some(Duration::from_micros(1500)));
                    assert!(
                        started.elapsed() >= Duration::from_micros(1500),
                        "{:?}",
                        started.elapsed()
                    );
                }
            }
        };
    }

    #[cfg(target_os = "linux")]
    backend_tests!(linux_epoll, super::super::linux::Poller, super::super::linux::Events);

    /// Timers fire on time, not up to a millisecond late: the median of 15
    /// waits of 300 µs stays under a millisecond (a timeout rounded up to
    /// whole milliseconds would take at least one), and no wait is early by
    /// more than the slack `epoll_pwait2` is asked less for (the loop then
    /// waits again; a timerfd is exact). `timerfd` forces the path of
    /// kernels without `epoll_pwait2` first.
    #[cfg(target_os = "linux")]
    fn sub_millisecond_timeouts(timerfd: bool) {
        use super::linux::{Events, Poller};
        if timerfd {
            Poller::use_timerfd_for_tests();
        }
        let p = Poller::new().unwrap();
        let mut events = Events::new();
        let mut took: Vec<Duration> = (0..15)
            .map(|_| {
                let started = Instant::now();
                p.wait(&mut events, Some(Duration::from_micros(300))).unwrap();
                started.elapsed()
            })
            .collect();
        took.sort();
        let earliest = if timerfd { 300 } else { 250 };
        assert!(took[0] >= Duration::from_micros(earliest), "too early: {took:?}");
        assert!(
            took[7] < Duration::from_millis(1),
            "the median is not rounded up to 1 ms: {took:?}"
        );
    }

    /// What `epoll_pwait2` is asked for: the timeout less the kernel's
    /// slack for it (0.1%, at least 50 µs, at most 100 ms), so that the
    /// wait ends on time;
    /// whole when the timeout is within twice the slack.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_wait_asks_for_the_timeout_less_the_kernels_slack() {
        use super::linux::less_slack;
        let us = Duration::from_micros;
        assert_eq!(less_slack(Duration::from_secs(1)), Duration::from_millis(999));
        assert_eq!(less_slack(Duration::from_secs(10)), Duration::from_millis(9_990));
        // The kernel's slack stops growing at 100 ms.
        assert_eq!(less_slack(Duration::from_secs(1_000)), Duration::from_millis(999_900));
        assert_eq!(less_slack(Duration::from_millis(20)), us(19_950));
        assert_eq!(less_slack(Duration::from_millis(1)), us(950));
        assert_eq!(less_slack(us(101)), us(51));
        assert_eq!(less_slack(us(100)), us(100));
        assert_eq!(less_slack(us(30)), us(30));
        assert_eq!(less_slack(Duration::from_nanos(1)), Duration::from_nanos(1));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sub_millisecond_timeouts_with_epoll_pwait2_then_with_a_timerfd() {
        // One test, in this order: the second half switches the process to
        // the timerfd path for good.
        sub_millisecond_timeouts(false);
        sub_millisecond_timeouts(true);
    }
    backend_tests!(
        portable_polling,
        super::super::portable::Poller,
        super::super::portable::Events
    );
}
