//! The reactor: where the loop blocks when it has nothing to run, and where
//! sockets report readiness.
//!
//! It owns the `polling::Poller` (epoll on Linux, kqueue on BSDs/macOS, IOCP
//! on Windows), its event buffer and a table of registered [`Source`]s. The
//! loop blocks in [`Reactor::wait`] with a timeout computed from its next
//! timer; other threads interrupt that wait with `Poller::notify` (see
//! `event_loop::Shared`).
//!
//! # Sources
//!
//! A source is a registered file descriptor with a list of wakers per
//! direction. Registration uses `polling`'s oneshot, level-triggered mode:
//! a task whose I/O call returned `WouldBlock` adds its waker and *arms*
//! the source (`Poller::modify` with the directions somebody waits for).
//! Arming is level-triggered, so readiness that arrived between the
//! `WouldBlock` and the arming is reported at once: no wake-up is lost.
//! When an event comes, the wakers of the ready directions are woken and
//! the source is re-armed if a direction still has waiters.
//!
//! The source holds the I/O object (an `Rc<dyn AsFd>`), so its file
//! descriptor stays open until the source is deleted from the poller: the
//! condition `Poller::add` asks of its callers.
//!
//! The poller is held in an `Arc` so that other threads can notify it through
//! a `Weak`: closing the loop drops the `Arc`, which releases the poller's
//! file descriptors even while wakers elsewhere still point at the loop.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use polling::{Event, Events, Poller};

/// Which readiness a task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// A registered file descriptor and who waits on it.
pub(crate) struct Source {
    key: usize,
    io: Rc<dyn AsFd>,
    readers: RefCell<Vec<Waker>>,
    writers: RefCell<Vec<Waker>>,
}

impl Source {
    fn waiters(&self, dir: Direction) -> &RefCell<Vec<Waker>> {
        match dir {
            Direction::Read => &self.readers,
            Direction::Write => &self.writers,
        }
    }

    /// Adds `waker` to the direction's waiters (once).
    pub(crate) fn add_waiter(&self, dir: Direction, waker: &Waker) {
        let mut list = self.waiters(dir).borrow_mut();
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
    }

    fn interest(&self) -> Event {
        Event::new(
            self.key,
            !self.readers.borrow().is_empty(),
            !self.writers.borrow().is_empty(),
        )
    }
}

pub(crate) struct Reactor {
    poller: Arc<Poller>,
    events: Events,
    table: Vec<Option<Rc<Source>>>,
    free: Vec<usize>,
    /// How many sources are registered. While it is zero, a zero-timeout
    /// poll cannot find anything (cross-thread wake-ups have their own
    /// flag), so the busy loop skips that system call.
    sources: usize,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Arc::new(Poller::new()?),
            events: Events::new(),
            table: Vec::new(),
            free: Vec::new(),
            sources: 0,
        })
    }

    pub(crate) fn poller(&self) -> &Arc<Poller> {
        &self.poller
    }

    /// Whether any file-descriptor source is registered.
    pub(crate) fn has_sources(&self) -> bool {
        self.sources > 0
    }

    /// How many file-descriptor sources are registered.
    pub(crate) fn source_count(&self) -> usize {
        self.sources
    }

    /// Registers `io` with no interest yet.
    #[allow(unsafe_code)]
    pub(crate) fn register(&mut self, io: Rc<dyn AsFd>) -> io::Result<Rc<Source>> {
        let key = self.free.pop().unwrap_or(self.table.len());
        let fd = io.as_fd().as_raw_fd();
        // SAFETY: `Poller::add` requires the descriptor to be deleted from
        // the poller before it is closed. The source created here owns `io`
        // (an `Rc`), so the descriptor stays open while the source is in the
        // table; `deregister` deletes it from the poller before dropping the
        // source, and if the reactor itself is dropped first, the poller is
        // closed with it, which ends every registration.
        let added = unsafe { self.poller.add(fd, Event::none(key)) };
        if let Err(e) = added {
            self.free.push(key);
            return Err(e);
        }
        let source = Rc::new(Source {
            key,
            io,
            readers: RefCell::new(Vec::new()),
            writers: RefCell::new(Vec::new()),
        });
        if key == self.table.len() {
            self.table.push(Some(source.clone()));
        } else {
            self.table[key] = Some(source.clone());
        }
        self.sources += 1;
        Ok(source)
    }

    /// Deletes the source from the poller (its descriptor still open) and
    /// forgets it.
    pub(crate) fn deregister(&mut self, source: &Source) {
        let _ = self.poller.delete(source.io.as_fd());
        if let Some(slot) = self.table.get_mut(source.key) {
            if slot.as_ref().is_some_and(|s| std::ptr::eq(&**s, source)) {
                *slot = None;
                self.free.push(source.key);
                self.sources -= 1;
            }
        }
    }

    /// Arms the source for the directions that have waiters.
    pub(crate) fn arm(&self, source: &Source) -> io::Result<()> {
        self.poller.modify(source.io.as_fd(), source.interest())
    }

    /// Blocks until an event, a notification, or the timeout (`None`: no
    /// timeout), then wakes the waiters of every ready source. An
    /// interrupted wait (EINTR, e.g. by a signal) is not an error: the loop
    /// simply goes round again.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.events.clear();
        let n = match self.poller.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        for ev in self.events.iter() {
            let Some(source) = self.table.get(ev.key).and_then(|s| s.clone()) else {
                continue;
            };
            let mut woken = Vec::new();
            if ev.readable {
                woken.append(&mut source.readers.borrow_mut());
            }
            if ev.writable {
                woken.append(&mut source.writers.borrow_mut());
            }
            // Oneshot: the event disarmed the source; re-arm it for the
            // directions that still have waiters.
            let interest = source.interest();
            if interest.readable || interest.writable {
                let _ = self.poller.modify(source.io.as_fd(), interest);
            }
            for w in woken {
                w.wake();
            }
        }
        Ok(n)
    }
}
