//! The reactor: where the loop blocks when it has nothing to run, and where
//! sockets report readiness.
//!
//! It owns the poller ([`crate::poll`]: epoll on Linux, `polling`'s kqueue
//! elsewhere), its event buffer and a table of registered [`Source`]s and
//! watched descriptors (`add_reader`/`add_writer`, level-triggered). The
//! loop blocks in [`Reactor::wait`] with a timeout computed from its next
//! timer; other threads interrupt that wait with `Poller::notify` (see
//! `event_loop::Shared`).
//!
//! # Sources
//!
//! A source is a registered file descriptor with, per direction, a cached
//! readiness flag and a list of wakers. Sources are registered once, for
//! both directions, edge-triggered (epoll's `EPOLLET`),
//! so waiting never costs a system call to re-arm:
//!
//! - a direction starts out *ready*, and an I/O call is tried while it is;
//! - an I/O call that returns `WouldBlock` clears the flag, and the task
//!   adds its waker;
//! - an event sets the flag and wakes the direction's waiters.
//!
//! Beside that optimistic flag, each direction keeps whether readiness was
//! *reported*: set only by an event, cleared with the flag. An I/O call
//! tries its luck on the first flag (a fresh socket is tried at once, which
//! saves a wait); `readable()`/`writable()` answer on the second, so that,
//! as with tokio's `AsyncFd` and smol's `Async`, readiness means an event
//! came (a freshly wrapped empty pipe is not readable).
//!
//! No wake-up is lost: the flag is cleared only right after the system
//! call said `WouldBlock`, on the loop's thread, and events are read only
//! between task polls; anything that arrives after that call makes a new
//! edge, hence a new event. A task that polls again while the flag is clear
//! gets `Pending` without a system call.
//!
//! The source holds the I/O object (an `Rc<dyn AsFd>`), and a watch the
//! objects it was given, so a registered descriptor stays open until it is
//! deleted from the poller (the condition `polling::Poller::add` asks of
//! its callers; on Linux, a descriptor closed while registered would leave
//! its registration behind in epoll).
//!
//! The poller is held in an `Arc` so that other threads can notify it through
//! a `Weak`: closing the loop drops the `Arc`, which releases the poller's
//! file descriptors even while wakers elsewhere still point at the loop.
//!
//! # Created when needed
//!
//! A loop's [`ReactorDriver`] makes the reactor (and so the poller's file
//! descriptors) only when a descriptor is registered or the loop has to
//! block: a run that never waits costs no system call for it. The loop
//! makes its driver the thread's current one while it runs ([`enter`]);
//! `net` finds it there. This module uses `poll`, `context` and `runtime`.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use crate::poll::{Events, Mode, Poller};
use crate::runtime::Shared;
use crate::task::sched::Callback;

/// A loop's reactor, made on first need (see the module docs).
pub(crate) struct ReactorDriver {
    reactor: RefCell<Option<Reactor>>,
    /// Told about the poller when it is made, so that other threads can
    /// wake the loop out of it.
    shared: Arc<Shared>,
    closed: Cell<bool>,
}

impl ReactorDriver {
    pub(crate) fn new(shared: Arc<Shared>) -> Rc<ReactorDriver> {
        Rc::new(ReactorDriver {
            reactor: RefCell::new(None),
            shared,
            closed: Cell::new(false),
        })
    }

    /// The reactor, made now if needed. Fails when the loop is closed or
    /// the OS refuses the poller (out of file descriptors, say).
    pub(crate) fn get(&self) -> io::Result<RefMut<'_, Reactor>> {
        if self.closed.get() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the event loop is closed: create sockets and watches on an open loop",
            ));
        }
        let mut slot = self.reactor.borrow_mut();
        if slot.is_none() {
            let reactor = Reactor::new()?;
            self.shared.set_poller(reactor.poller());
            *slot = Some(reactor);
        }
        Ok(RefMut::map(slot, |r| r.as_mut().expect("made above")))
    }

    /// The reactor, if it was made (and the loop is open).
    pub(crate) fn existing(&self) -> Option<RefMut<'_, Reactor>> {
        RefMut::filter_map(self.reactor.borrow_mut(), Option::as_mut).ok()
    }

    /// As [`existing`](Self::existing), but `None` (rather than a panic)
    /// when the reactor is borrowed right now: what a socket's destructor
    /// uses, since it may run while the reactor wakes its waiters.
    pub(crate) fn try_existing(&self) -> Option<RefMut<'_, Reactor>> {
        RefMut::filter_map(self.reactor.try_borrow_mut().ok()?, Option::as_mut).ok()
    }

    /// Whether any file-descriptor source is registered.
    pub(crate) fn has_sources(&self) -> bool {
        self.reactor.borrow().as_ref().is_some_and(Reactor::has_sources)
    }

    /// How many file-descriptor sources are registered.
    pub(crate) fn source_count(&self) -> usize {
        self.reactor.borrow().as_ref().map_or(0, Reactor::source_count)
    }

    /// Releases the reactor and its poller; nothing can be registered
    /// afterwards.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        let reactor = self.reactor.borrow_mut().take();
        drop(reactor);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<ReactorDriver>>> = const { RefCell::new(None) };
    /// `CURRENT`'s address (null: none), for the cheapest test of "this
    /// source's loop runs here", made at every wait.
    static RUNNING: Cell<*const ReactorDriver> = const { Cell::new(std::ptr::null()) };
}

/// Makes `driver` the thread's current one until the guard drops.
pub(crate) fn enter(driver: &Rc<ReactorDriver>) -> EnterGuard {
    let prev = CURRENT.with(|c| c.replace(Some(driver.clone())));
    RUNNING.with(|r| r.set(Rc::as_ptr(driver)));
    EnterGuard { prev }
}

/// Restores the previous current reactor.
pub(crate) struct EnterGuard {
    prev: Option<Rc<ReactorDriver>>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.prev.take();
        let _ = RUNNING.try_with(|r| r.set(prev.as_ref().map_or(std::ptr::null(), Rc::as_ptr)));
        let _ = CURRENT.try_with(|c| *c.borrow_mut() = prev);
    }
}

/// The reactor driver of the loop running on this thread.
pub(crate) fn current() -> Option<Rc<ReactorDriver>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Which loop runs on this thread, seen from a source registered with
/// `driver`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Running {
    /// The source's own: it is open, and its events will be dispatched.
    Its,
    /// Another one: the source's cannot run (nor be woken) until that
    /// run ends.
    Another,
    /// None.
    Nothing,
}

/// See [`Running`]. (The address cannot be another driver's: the `Weak`
/// keeps the allocation.)
#[inline]
pub(crate) fn running(driver: &Weak<ReactorDriver>) -> Running {
    let here = RUNNING.try_with(Cell::get).unwrap_or(std::ptr::null());
    if std::ptr::eq(here, driver.as_ptr()) {
        Running::Its
    } else if here.is_null() {
        Running::Nothing
    } else {
        Running::Another
    }
}

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
    read: Readiness,
    write: Readiness,
}

/// One direction of a source. The usual single waiter is kept inline (no
/// allocation per connection); more tasks waiting on one socket and
/// direction go to `more`, boxed, so that a direction without them costs
/// one word: a source is 72 bytes (an 88-byte block with its `Rc`), where
/// `RefCell`s made it 136.
struct Readiness {
    ready: Cell<bool>,
    /// An event reported this direction ready, and no `WouldBlock` (or
    /// short transfer) said otherwise since.
    reported: Cell<bool>,
    /// An event said this side will not block again (end of stream,
    /// hang-up, error): sticky, so a short read does not wait for an edge
    /// that already came.
    closed: Cell<bool>,
    /// Taken out and put back around each use (no borrow flag).
    first: Cell<Option<Waker>>,
    /// Boxed on purpose: one word where a `Vec` is three, for a list
    /// almost no socket ever has.
    #[allow(clippy::box_collection)]
    more: Cell<Option<Box<Vec<Waker>>>>,
}

impl Readiness {
    fn new() -> Readiness {
        Readiness {
            ready: Cell::new(true),
            reported: Cell::new(false),
            closed: Cell::new(false),
            first: Cell::new(None),
            more: Cell::new(None),
        }
    }

    /// Adds `waker` (once).
    fn add(&self, waker: &Waker) {
        match self.first.take() {
            None => self.first.set(Some(waker.clone())),
            Some(first) => {
                if !first.will_wake(waker) {
                    let mut more = self.more.take().unwrap_or_default();
                    if !more.iter().any(|w| w.will_wake(waker)) {
                        more.push(waker.clone());
                    }
                    self.more.set(Some(more));
                }
                self.first.set(Some(first));
            }
        }
    }

    /// Sets the flag and wakes the waiters. They are taken out before
    /// waking (a waker may run foreign code); the overflow list's buffer is
    /// put back unless a waker added waiters meanwhile.
    fn fire(&self) {
        self.ready.set(true);
        self.reported.set(true);
        if let Some(w) = self.first.take() {
            w.wake();
        }
        let Some(mut woken) = self.more.take() else {
            return;
        };
        for w in woken.drain(..) {
            w.wake();
        }
        let added = self.more.take();
        self.more.set(added.or(Some(woken)));
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

    /// Whether an event reported the direction ready (and nothing said
    /// otherwise since): what `readable()`/`writable()` wait for.
    pub(crate) fn is_reported(&self, dir: Direction) -> bool {
        self.dir(dir).reported.get()
    }

    /// Records that an I/O call in this direction returned `WouldBlock`.
    pub(crate) fn clear_ready(&self, dir: Direction) {
        let d = self.dir(dir);
        d.ready.set(false);
        d.reported.set(false);
    }

    /// Records that a stream read (write) came back short, so the buffer
    /// is (probably) drained (full): cleared unless the side is closed, in
    /// which case the next call returns at once (end of stream or error)
    /// and no new edge would come to wake a waiter.
    pub(crate) fn clear_ready_after_short(&self, dir: Direction) {
        let d = self.dir(dir);
        if !d.closed.get() {
            d.ready.set(false);
            d.reported.set(false);
        }
    }

    /// Adds `waker` to the direction's waiters (once).
    pub(crate) fn add_waiter(&self, dir: Direction, waker: &Waker) {
        self.dir(dir).add(waker);
    }
}

/// A file descriptor watched by callbacks, level-triggered (asyncio's
/// `add_reader`/`add_writer`: the callback runs at every iteration while
/// the descriptor stays ready).
struct Watch {
    /// What keeps the descriptor open (all of one descriptor; the first
    /// one is used to name it to the poller); dropped only after the
    /// descriptor has been deleted from the poller.
    holders: Vec<Box<dyn AsFd>>,
    reader: Option<Rc<Callback>>,
    writer: Option<Rc<Callback>>,
}

enum Slot {
    Source(Rc<Source>),
    Watch(Watch),
}

pub(crate) struct Reactor {
    poller: Arc<Poller>,
    events: Events,
    table: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// How many sources and watches are registered. While it is zero, a
    /// zero-timeout poll cannot find anything (cross-thread wake-ups have
    /// their own flag), so the busy loop skips that system call.
    sources: usize,
    /// Watched descriptors and their keys in `table`.
    watches: HashMap<RawFd, usize>,
    /// Callbacks whose descriptors were found ready by the last wait.
    fired: Vec<Rc<Callback>>,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Arc::new(Poller::new()?),
            events: Events::new(),
            table: Vec::new(),
            free: Vec::new(),
            sources: 0,
            watches: HashMap::new(),
            fired: Vec::new(),
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

    /// The key the next slot gets.
    fn next_key(&self) -> usize {
        self.free.last().copied().unwrap_or(self.table.len())
    }

    /// Puts a slot (whose descriptor was just added to the poller under
    /// [`next_key`](Self::next_key)) in the table. The slot owns what keeps
    /// its descriptor open until it is deleted from the poller.
    fn put(&mut self, slot: Slot) -> usize {
        let key = self.free.pop().unwrap_or(self.table.len());
        if key == self.table.len() {
            self.table.push(Some(slot));
        } else {
            self.table[key] = Some(slot);
        }
        self.sources += 1;
        key
    }

    /// Empties a slot whose descriptor was deleted from the poller.
    fn release(&mut self, key: usize) -> Option<Slot> {
        let slot = self.table.get_mut(key)?.take()?;
        self.free.push(key);
        self.sources -= 1;
        Some(slot)
    }

    /// Registers `fd` for both directions, edge-triggered. The caller
    /// keeps it open until [`deregister`](Self::deregister) (or until the
    /// reactor is gone).
    pub(crate) fn register(&mut self, fd: BorrowedFd<'_>) -> io::Result<Rc<Source>> {
        let key = self.next_key();
        self.poller.add(fd, key, true, true, Mode::Edge)?;
        let source = Rc::new(Source {
            key,
            read: Readiness::new(),
            write: Readiness::new(),
        });
        self.put(Slot::Source(source.clone()));
        Ok(source)
    }

    /// Deletes the source, whose descriptor is `fd` (still open), from
    /// the poller and forgets it.
    pub(crate) fn deregister(&mut self, source: &Source, fd: BorrowedFd<'_>) {
        let ours = matches!(
            self.table.get(source.key),
            Some(Some(Slot::Source(s))) if std::ptr::eq(&**s, source)
        );
        if ours {
            let _ = self.poller.delete(fd);
            self.release(source.key);
        }
    }

    /// Sets (or replaces) the callback of one direction of a watched
    /// descriptor, starting the watch if needed. `holder` keeps the
    /// descriptor open until the whole watch ends. On failure the holder is
    /// handed back (when it was not kept), for the caller to drop once it no longer borrows the
    /// reactor (dropping it may deregister runner sockets).
    pub(crate) fn watch(
        &mut self,
        dir: Direction,
        holder: Box<dyn AsFd>,
        cb: Rc<Callback>,
    ) -> Result<(), (io::Error, Option<Box<dyn AsFd>>)> {
        let fd = holder.as_fd().as_raw_fd();
        if let Some(&key) = self.watches.get(&fd) {
            let Some(Some(Slot::Watch(w))) = self.table.get_mut(key) else {
                unreachable!("the watch table points at a watch");
            };
            match dir {
                Direction::Read => w.reader = Some(cb),
                Direction::Write => w.writer = Some(cb),
            }
            w.holders.push(holder);
            let (r, wr) = (w.reader.is_some(), w.writer.is_some());
            return self
                .poller
                .modify(holder_fd(w), key, r, wr, Mode::Level)
                .map_err(|e| (e, None));
        }
        let read = dir == Direction::Read;
        let key = self.next_key();
        if let Err(e) = self.poller.add(holder.as_fd(), key, read, !read, Mode::Level) {
            return Err((e, Some(holder)));
        }
        let key = self.put(Slot::Watch(Watch {
            holders: vec![holder],
            reader: if read { Some(cb.clone()) } else { None },
            writer: if read { None } else { Some(cb) },
        }));
        self.watches.insert(fd, key);
        Ok(())
    }

    /// Stops one direction's callback; ends the watch (deleting the
    /// descriptor from the poller) when neither is left, and then returns
    /// the holders, for the caller to drop once it no longer borrows the
    /// reactor. The flag says whether that direction was watched.
    pub(crate) fn unwatch(&mut self, fd: RawFd, dir: Direction) -> (bool, Vec<Box<dyn AsFd>>) {
        let Some(&key) = self.watches.get(&fd) else {
            return (false, Vec::new());
        };
        let Some(Some(Slot::Watch(w))) = self.table.get_mut(key) else {
            return (false, Vec::new());
        };
        let had = match dir {
            Direction::Read => w.reader.take(),
            Direction::Write => w.writer.take(),
        }
        .is_some();
        if w.reader.is_some() || w.writer.is_some() {
            let (r, wr) = (w.reader.is_some(), w.writer.is_some());
            let _ = self.poller.modify(holder_fd(w), key, r, wr, Mode::Level);
            return (had, Vec::new());
        }
        let _ = self.poller.delete(holder_fd(w));
        self.watches.remove(&fd);
        match self.release(key) {
            Some(Slot::Watch(w)) => (had, w.holders),
            _ => (had, Vec::new()),
        }
    }

    /// The callbacks found ready by the last wait, in event order.
    pub(crate) fn take_fired(&mut self) -> Vec<Rc<Callback>> {
        std::mem::take(&mut self.fired)
    }

    /// Blocks until an event, a notification, or the timeout (`None`: no
    /// timeout), then marks the ready directions of every source that had
    /// an event and wakes their waiters, and collects the callbacks of
    /// ready watched descriptors (run by the loop afterwards). An
    /// interrupted wait (EINTR, e.g. by a signal) is not an error: the loop
    /// simply goes round again.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let n = match self.poller.wait(&mut self.events, timeout) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(0),
            Err(e) => return Err(e),
        };
        for ev in self.events.iter() {
            match self.table.get(ev.key) {
                Some(Some(Slot::Source(source))) => {
                    if ev.read_closed {
                        source.read.closed.set(true);
                    }
                    if ev.write_closed {
                        source.write.closed.set(true);
                    }
                    if ev.readable {
                        source.read.fire();
                    }
                    if ev.writable {
                        source.write.fire();
                    }
                }
                Some(Some(Slot::Watch(w))) => {
                    if ev.readable {
                        self.fired.extend(w.reader.clone());
                    }
                    if ev.writable {
                        self.fired.extend(w.writer.clone());
                    }
                }
                _ => {}
            }
        }
        Ok(n)
    }
}

/// The watched descriptor, borrowed from the holder that keeps it open.
fn holder_fd(w: &Watch) -> BorrowedFd<'_> {
    w.holders[0].as_fd()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    /// What every registered socket costs: one `Rc` block of 88 bytes
    /// (152 with `RefCell`s).
    #[test]
    fn a_source_is_small() {
        assert!(std::mem::size_of::<Source>() <= 72, "{}", std::mem::size_of::<Source>());
    }

    /// Several waiters on one direction are each woken once per event, a
    /// waiter added twice counts once, and waiters added after an event
    /// are woken by the next one.
    #[test]
    fn every_waiter_is_woken_once_per_event() {
        let r = Readiness::new();
        let (a, wa) = counting();
        let (b, wb) = counting();
        let (c, wc) = counting();
        for w in [&wa, &wb, &wa, &wc, &wb] {
            r.add(w);
        }
        r.fire();
        let counts = |x: &Arc<Count>| x.0.load(Ordering::SeqCst);
        assert_eq!((counts(&a), counts(&b), counts(&c)), (1, 1, 1));
        r.fire();
        assert_eq!((counts(&a), counts(&b), counts(&c)), (1, 1, 1), "nobody waits any more");
        r.add(&wc);
        r.add(&wb);
        r.fire();
        assert_eq!((counts(&a), counts(&b), counts(&c)), (1, 2, 2));
    }
}
