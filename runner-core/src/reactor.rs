//! The reactor: where the loop blocks when it has nothing to run.
//!
//! It owns the `polling::Poller` (epoll on Linux, kqueue on BSDs/macOS, IOCP
//! on Windows) and its event buffer. The loop blocks in [`Reactor::wait`]
//! with a timeout computed from its next timer; other threads interrupt that
//! wait with `Poller::notify` (see `event_loop::Shared`). File-descriptor
//! sources register here too once networking lands; until then the poller's
//! only job is sleeping until the next timer or a cross-thread wake-up.
//!
//! The poller is held in an `Arc` so that other threads can notify it through
//! a `Weak`: closing the loop drops the `Arc`, which releases the poller's
//! file descriptors even while wakers elsewhere still point at the loop.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use polling::{Events, Poller};

pub(crate) struct Reactor {
    poller: Arc<Poller>,
    events: Events,
    /// How many file-descriptor sources are registered. While it is zero, a
    /// zero-timeout poll cannot find anything (cross-thread wake-ups have
    /// their own flag), so the busy loop skips that system call.
    sources: usize,
}

impl Reactor {
    pub(crate) fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poller: Arc::new(Poller::new()?),
            events: Events::new(),
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

    /// Blocks until an event, a notification, or the timeout (`None`: no
    /// timeout). An interrupted wait (EINTR, e.g. by a signal) is not an
    /// error: the loop simply goes round again.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        self.events.clear();
        match self.poller.wait(&mut self.events, timeout) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(e) => Err(e),
        }
    }
}
