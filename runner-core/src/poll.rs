//! The OS poller under the reactor: register descriptors, wait for events,
//! wake a waiting thread from another one.
//!
//! On Linux this is epoll, called directly through rustix's safe wrappers
//! (rustix is what `polling` itself is built on). The reason is measured:
//! `polling`'s `wait` makes five system calls where one suffices
//! (`timerfd_settime`, two `epoll_ctl` re-arms of its timer and notifier,
//! and a `read` of the notifier, around the `epoll_wait`), and the echo
//! benchmark waits once for every few round trips. Here a wait is one
//! `epoll_wait` (timeouts rounded up to the millisecond), and the notifier
//! (an eventfd, edge-triggered) is read only when it fired.
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

#[cfg(target_os = "linux")]
pub(crate) use linux::{Events, Poller};
#[cfg(not(target_os = "linux"))]
pub(crate) use portable::{Events, Poller};

#[cfg(target_os = "linux")]
mod linux {
    use super::{Ev, Mode};
    use std::io;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::time::Duration;

    use rustix::buffer::spare_capacity;
    use rustix::event::epoll::{self, CreateFlags, EventData, EventFlags};
    use rustix::event::{eventfd, EventfdFlags, Timespec};

    /// The notifier's key; no table slot reaches it.
    const NOTIFY: u64 = u64::MAX;

    pub(crate) struct Poller {
        epoll: OwnedFd,
        notifier: OwnedFd,
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
                if key == NOTIFY {
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
            Ok(Poller { epoll, notifier })
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
            // Whole milliseconds, rounded up (a timer must not fire early),
            // capped where `epoll_pwait` stops taking them.
            let timeout = timeout.map(|t| {
                let ms = t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i64;
                Timespec {
                    tv_sec: ms / 1000,
                    tv_nsec: (ms % 1000) * 1_000_000,
                }
            });
            epoll::wait(&self.epoll, spare_capacity(&mut events.list), timeout.as_ref())?;
            if events.list.iter().any(|e| e.data.u64() == NOTIFY) {
                // Reset the counter; a notification racing with this read
                // makes a new edge, so it is seen by the next wait.
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&self.notifier, &mut buf);
            }
            Ok(events.list.len())
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

// Built everywhere (and unused on Linux) so that CI, which runs on Linux,
// still compiles and tests it.
#[cfg_attr(target_os = "linux", allow(dead_code))]
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

        pub(crate) fn iter(&self) -> impl Iterator<Item = Ev> + '_ {
            self.0.iter().filter(|e| e.key != WAKE).map(|e| Ev {
                key: e.key,
                readable: e.readable,
                writable: e.writable,
                read_closed: true,
                write_closed: true,
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
            // SAFETY: `Poller::add` requires the descriptor to be deleted
            // from the poller before it is closed. The reactor only adds
            // descriptors of objects its table slot owns, deletes them
            // before dropping the slot, and drops the poller (ending every
            // registration) before the table when it is dropped itself;
            // the wake-up pipe lives exactly as long as this poller.
            unsafe {
                self.poller
                    .add_with_mode(fd.as_raw_fd(), Event::new(key, r, w), mode(m))
            }
        }

        pub(crate) fn modify(&self, fd: BorrowedFd<'_>, key: usize, r: bool, w: bool, m: Mode) -> io::Result<()> {
            self.poller.modify_with_mode(fd, Event::new(key, r, w), mode(m))
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
    backend_tests!(
        portable_polling,
        super::super::portable::Poller,
        super::super::portable::Events
    );
}
