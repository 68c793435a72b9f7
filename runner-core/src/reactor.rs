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
//! A source is a registered file descriptor with, per direction, a cached
//! readiness flag and a list of wakers. Sources are registered once, for
//! both directions, in `polling`'s edge-triggered mode (epoll's `EPOLLET`),
//! so waiting never costs a system call to re-arm:
//!
//! - a direction starts out *ready*, and an I/O call is tried while it is;
//! - an I/O call that returns `WouldBlock` clears the flag, and the task
//!   adds its waker;
//! - an event sets the flag and wakes the direction's waiters.
//!
//! No wake-up is lost: the flag is cleared only right after the system
//! call said `WouldBlock`, on the loop's thread, and events are read only
//! between task polls; anything that arrives after that call makes a new
//! edge, hence a new event. A task that polls again while the flag is clear
//! gets `Pending` without a system call.
//!
//! The source holds the I/O object (an `Rc<dyn AsFd>`), so its file
//! descriptor stays open until the source is deleted from the poller: the
//! condition `Poller::add` asks of its callers.
//!
//! The poller is held in an `Arc` so that other threads can notify it through
//! a `Weak`: closing the loop drops the `Arc`, which releases the poller's
//! file descriptors even while wakers elsewhere still point at the loop.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

/// Which readiness a task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

/// A registered file descriptor: per direction, whether it is (believed)
/// ready and who waits on it.
pub(crate) struct Source {
    key: usize,
    io: Rc<dyn AsFd>,
    read: Readiness,
    write: Readiness,
}

struct Readiness {
    ready: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Readiness {
    fn new() -> Readiness {
        Readiness {
            ready: Cell::new(true),
            waiters: RefCell::default(),
        }
    }

    /// Sets the flag and wakes the waiters. The list is taken out while
    /// waking (a waker may run foreign code) and its buffer put back.
    fn fire(&self) {
        self.ready.set(true);
        let mut woken = std::mem::take(&mut *self.waiters.borrow_mut());
        for w in woken.drain(..) {
            w.wake();
        }
        let mut list = self.waiters.borrow_mut();
        if list.is_empty() {
            *list = woken;
        }
    }
}

impl Source {
    fn dir(&self, dir: Direction) -> &Readiness {
        match dir {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        }
    }

    /// Whether the direction is believed ready (an I/O call is worth trying).
    pub(crate) fn is_ready(&self, dir: Direction) -> bool {
        self.dir(dir).ready.get()
    }

    /// Records that an I/O call in this direction returned `WouldBlock`.
    pub(crate) fn clear_ready(&self, dir: Direction) {
        self.dir(dir).ready.set(false);
    }

    /// Adds `waker` to the direction's waiters (once).
    pub(crate) fn add_waiter(&self, dir: Direction, waker: &Waker) {
        let mut list = self.dir(dir).waiters.borrow_mut();
        if !list.iter().any(|w| w.will_wake(waker)) {
            list.push(waker.clone());
        }
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

    /// Registers `io` for both directions, edge-triggered.
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
        let added = unsafe { self.poller.add_with_mode(fd, Event::all(key), PollMode::Edge) };
        if let Err(e) = added {
            self.free.push(key);
            return Err(e);
        }
        let source = Rc::new(Source {
            key,
            io,
            read: Readiness::new(),
            write: Readiness::new(),
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

    /// Blocks until an event, a notification, or the timeout (`None`: no
    /// timeout), then marks the ready directions of every source that had an event and
    /// wakes their waiters. An
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
            if ev.readable {
                source.read.fire();
            }
            if ev.writable {
                source.write.fire();
            }
        }
        Ok(n)
    }
}
