//! Callbacks on the loop: `call_soon`, `call_later`/`call_at` and their
//! handles, `call_soon_threadsafe`, and readiness callbacks on file
//! descriptors (`add_reader`/`add_writer`).
//!
//! A callback runs in a copy of the context it was scheduled in; a panic
//! in it is reported to the exception handler and the loop goes on.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use super::EventLoop;
use crate::reactor::Direction;
use crate::runtime::LoopHandle;
use crate::task::sched::Callback;
use crate::time;
use crate::time::driver::{TimeDriver, TimerEntry, TimerKey};
use crate::Error;

/// What an `add_reader`/`add_writer` callback reports when it panics.
const FD_WHAT: &str = "an add_reader/add_writer callback panicked (it stays registered)";

/// What a callback scheduled on the loop reports when it panics.
const WHAT: &str = "a callback scheduled on the loop panicked";

/// A callback scheduled on the loop, run once.
pub(crate) fn once(f: Box<dyn FnOnce()>) -> Rc<Callback> {
    Callback::once(f, WHAT)
}

/// A callback scheduled with [`EventLoop::call_soon`]; [`cancel`](Self::cancel)
/// unschedules it (asyncio's `Handle`).
pub struct CallbackHandle {
    cell: Rc<Callback>,
}

impl CallbackHandle {
    /// Unschedules the callback if it has not run yet.
    pub fn cancel(&self) {
        self.cell.cancel();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }
}

impl fmt::Debug for CallbackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackHandle")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A callback scheduled with [`EventLoop::call_later`] or
/// [`EventLoop::call_at`]; [`cancel`](Self::cancel) unschedules it.
pub struct TimerHandle {
    key: TimerKey,
    when: Instant,
    cell: Rc<Callback>,
    time: Weak<TimeDriver>,
}

impl TimerHandle {
    /// Unschedules the callback; it will not run. Calling it after the
    /// callback ran, or twice, does nothing.
    pub fn cancel(&self) {
        self.cell.cancel();
        if let Some(time) = self.time.upgrade() {
            time.timers.borrow_mut().remove(&self.key);
        }
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.cell.is_cancelled()
    }

    /// When the callback is (or was) due.
    pub fn when(&self) -> Instant {
        self.when
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl EventLoop {
    /// Schedules `f` to run in the next iteration, in a copy of the current
    /// context (asyncio's `call_soon`).
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> Result<CallbackHandle, Error> {
        self.check_open()?;
        let cell = once(Box::new(f));
        self.core.sched.push_callback(cell.clone());
        Ok(CallbackHandle { cell })
    }

    /// Calls `callback` whenever `fd` is readable, at every loop iteration
    /// while it stays readable, until [`remove_reader`](Self::remove_reader)
    /// (asyncio's `add_reader`). The callback runs in a copy of the current
    /// context. A second call for the same descriptor replaces the callback.
    ///
    /// The loop keeps `fd` (an `OwnedFd`, a socket, an `Rc` of one, ...)
    /// until the descriptor is no longer watched in either direction, so it
    /// cannot be closed while registered. Fails with an I/O error when the
    /// OS refuses the descriptor (a regular file, say) or when it is
    /// already registered otherwise (wrapped in a [`net`](crate::net)
    /// socket).
    ///
    /// ```
    /// use std::cell::RefCell;
    /// use std::io::{Read, Write};
    /// use std::os::fd::AsRawFd;
    /// use std::os::unix::net::UnixStream;
    /// use std::rc::Rc;
    /// use runner_core::EventLoop;
    ///
    /// let lp = EventLoop::new().unwrap();
    /// let (a, mut b) = UnixStream::pair().unwrap();
    /// let a = Rc::new(a);
    /// let fd = a.as_raw_fd();
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let (reader, sink, handle) = (a.clone(), got.clone(), lp.clone());
    /// lp.add_reader(a, move || {
    ///     let mut buf = [0u8; 16];
    ///     let n = (&*reader).read(&mut buf).unwrap();
    ///     sink.borrow_mut().extend_from_slice(&buf[..n]);
    ///     handle.remove_reader(fd);
    ///     handle.stop();
    /// })
    /// .unwrap();
    /// b.write_all(b"ping").unwrap();
    /// lp.run_forever().unwrap();
    /// assert_eq!(&got.borrow()[..], b"ping");
    /// ```
    pub fn add_reader(&self, fd: impl AsFd + 'static, callback: impl FnMut() + 'static) -> Result<(), Error> {
        self.add_watch(Direction::Read, Box::new(fd), Box::new(callback))
    }

    /// Calls `callback` whenever `fd` is writable, until
    /// [`remove_writer`](Self::remove_writer) (asyncio's `add_writer`); as
    /// [`add_reader`](Self::add_reader).
    pub fn add_writer(&self, fd: impl AsFd + 'static, callback: impl FnMut() + 'static) -> Result<(), Error> {
        self.add_watch(Direction::Write, Box::new(fd), Box::new(callback))
    }

    /// Stops calling the reader callback of descriptor `fd`; whether one
    /// was registered (asyncio's `remove_reader`). When no writer callback
    /// is left either, the loop drops what it kept of the descriptor.
    pub fn remove_reader(&self, fd: RawFd) -> bool {
        self.remove_watch(fd, Direction::Read)
    }

    /// Stops calling the writer callback of descriptor `fd`; whether one
    /// was registered (asyncio's `remove_writer`).
    pub fn remove_writer(&self, fd: RawFd) -> bool {
        self.remove_watch(fd, Direction::Write)
    }

    fn add_watch(&self, dir: Direction, holder: Box<dyn AsFd>, f: Box<dyn FnMut()>) -> Result<(), Error> {
        self.check_open()?;
        let fd = holder.as_fd().as_raw_fd();
        let refused = {
            let mut reactor = self.core.reactor.get()?;
            match reactor.watch(dir, holder, Callback::repeat(f, FD_WHAT)) {
                Ok(()) => return Ok(()),
                Err(refused) => refused,
            }
        };
        // The holder is dropped here, with the reactor no longer borrowed.
        let (e, _holder) = refused;
        let why = match e.raw_os_error() {
            Some(libc::EEXIST) => "it is already registered with this loop (does a runner socket wrap it?)".to_string(),
            Some(libc::EPERM) => "the OS cannot poll this kind of file (regular files are always ready: read them \
                                  directly or in spawn_blocking)"
                .to_string(),
            _ => e.to_string(),
        };
        Err(Error::Io(io::Error::new(
            e.kind(),
            format!("cannot watch file descriptor {fd}: {why}"),
        )))
    }

    fn remove_watch(&self, fd: RawFd, dir: Direction) -> bool {
        let (had, holders) = match self.core.reactor.existing() {
            Some(mut reactor) => reactor.unwatch(fd, dir),
            None => return false,
        };
        drop(holders);
        had
    }

    /// Schedules `f` to run after `delay` (asyncio's `call_later`). A
    /// delay too large for the clock (`Duration::MAX`) means about 30
    /// years, as for [`sleep`](crate::sleep): never, in practice.
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> Result<TimerHandle, Error> {
        self.call_at(time::later(self.time(), delay), f)
    }

    /// Schedules `f` to run when the loop's clock reaches `when` (asyncio's
    /// `call_at`). Callbacks due at the same instant run in the order they
    /// were scheduled.
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> Result<TimerHandle, Error> {
        self.check_open()?;
        let cell = once(Box::new(f));
        let key = self
            .core
            .time
            .timers
            .borrow_mut()
            .insert(when, TimerEntry::Callback(cell.clone()));
        Ok(TimerHandle {
            key,
            when,
            cell,
            time: Rc::downgrade(&self.core.time),
        })
    }

    /// asyncio's `call_soon_threadsafe`. An `EventLoop` never leaves its
    /// thread, so this is [`call_soon`](Self::call_soon): `f` runs in the
    /// next iteration, in a copy of the current context, in order with the
    /// other callbacks scheduled from this thread. From another thread,
    /// use [`handle`](Self::handle) and
    /// [`LoopHandle::call_soon_threadsafe`], which wakes the loop.
    pub fn call_soon_threadsafe(&self, f: impl FnOnce() + Send + 'static) -> Result<(), Error> {
        self.call_soon(f).map(drop)
    }

    /// A `Send + Sync` handle for other threads.
    pub fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: self.core.shared.clone(),
        }
    }
}
