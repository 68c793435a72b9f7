//! What the loop does with signal deliveries: the runner's interrupts
//! (Ctrl-C and the signals acting as it), and the callbacks of
//! [`EventLoop::add_signal_handler`] (asyncio's), also as a stream
//! ([`SignalStream`]).
//!
//! The handler counts each delivery (see [`crate::signal`]); the
//! loop takes them, in order per signal, before its next task step and
//! whenever a signal woke it (a loop that listens publishes its poller's
//! wake-up descriptor when it blocks). No thread is involved.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::core::LoopCore;
use super::EventLoop;
use crate::signal::{self, Signal};
use crate::task::raw::TaskRef;
use crate::task::sched::Callback;
use crate::Error;

/// A run's (or a close's) Ctrl-C state, shared by the runner and its loop.
///
/// The first interrupt of a run cancels the main task (*soft*); any later
/// one, one that finds the main task done, and any during closing is
/// *final*: the loop stops at once.
///
/// The loop keeps one, reset for each run or close that takes the
/// signals: a run allocates nothing for it.
#[derive(Default)]
pub(crate) struct Interrupts {
    /// The signals that act as Ctrl-C (SIGINT, and the shutdown signals a
    /// runner opts into), with the deliveries of each taken.
    signals: [(Cell<i32>, Cell<u32>); MAX_INTERRUPT_SIGNALS],
    len: Cell<usize>,
    /// The main task the first interrupt cancels (`None` while closing).
    target: RefCell<Option<TaskRef>>,
    /// How many interrupts this run (close) took.
    taken: Cell<u32>,
    /// The signal that cancelled the main task.
    soft: Cell<Option<i32>>,
    /// The signal of a final interrupt.
    hard: Cell<Option<i32>>,
    /// Ends the process if a later interrupt is not taken (library
    /// programs only; `#[main]` ends it in the handler).
    watchdog: RefCell<Option<signal::Watchdog>>,
}

/// How many signals may act as Ctrl-C at once.
pub(crate) const MAX_INTERRUPT_SIGNALS: usize = 8;

/// What a run's interrupts came to, kept by the runner for its close.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The signal that cancelled the main task.
    pub(crate) soft: Option<i32>,
    /// The signal of a final interrupt.
    pub(crate) hard: Option<i32>,
    /// The stuck-loop watchdog a Ctrl-C started (library programs).
    pub(crate) watchdog: Option<signal::Watchdog>,
}

impl Interrupts {
    /// Starts over for a run (`target`: its main task) or a close, with no
    /// signal yet ([`add_signal`](Self::add_signal)), and `watchdog` carried
    /// over from the run before.
    pub(crate) fn reset(&self, target: Option<TaskRef>, watchdog: Option<signal::Watchdog>) {
        self.len.set(0);
        *self.target.borrow_mut() = target;
        self.taken.set(0);
        self.soft.set(None);
        self.hard.set(None);
        *self.watchdog.borrow_mut() = watchdog;
    }

    /// What the run (or close) came to; the state is emptied.
    pub(crate) fn take_outcome(&self) -> Outcome {
        self.len.set(0);
        self.target.borrow_mut().take();
        Outcome {
            soft: self.soft.take(),
            hard: self.hard.take(),
            watchdog: self.watchdog.borrow_mut().take(),
        }
    }

    /// Takes `sig` as an interrupt, counting from what was delivered so
    /// far; more than [`MAX_INTERRUPT_SIGNALS`] are ignored.
    pub(crate) fn add_signal(&self, sig: i32) {
        let n = self.len.get();
        if let Some((s, seen)) = self.signals.get(n) {
            s.set(sig);
            seen.set(signal::count(sig));
            self.len.set(n + 1);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    fn signals(&self) -> &[(Cell<i32>, Cell<u32>)] {
        &self.signals[..self.len.get()]
    }

    /// The signal of a final interrupt, if one came.
    pub(crate) fn hard(&self) -> Option<i32> {
        self.hard.get()
    }
}

/// A callback of `add_signal_handler`, and the deliveries it saw.
pub(crate) struct SignalHandler {
    sig: i32,
    seen: Cell<u32>,
    callback: Rc<Callback>,
    /// Tells a [`SignalStream`] whether the handler is still its own.
    id: u64,
}

const HANDLER_WHAT: &str = "a signal handler";

impl LoopCore {
    /// Whether a runner takes interrupt signals on this loop now.
    pub(crate) fn set_listening(&self, on: bool) {
        self.runner_listens.set(on);
        self.update_listens();
    }

    /// The loop looks at deliveries while a runner takes interrupts on it
    /// or it has signal handlers.
    fn update_listens(&self) {
        self.listens
            .set(self.runner_listens.get() || !self.signal_handlers.borrow().is_empty());
    }

    /// Removes every signal handler (the loop closes).
    pub(crate) fn remove_signal_handlers(&self) {
        let handlers = self.signal_handlers.take();
        for h in &handlers {
            signal::release_handler(h.sig);
            h.callback.cancel();
        }
        self.update_listens();
    }

    /// Takes pending signal deliveries, if this loop listens for them.
    #[inline]
    pub(crate) fn look_at_signals(&self) {
        if self.listens.get() && signal::pending() {
            self.take_signals();
        }
    }

    /// Takes the signal deliveries counted since the last look, in order
    /// per signal. The loop calls it before a task step when a delivery is
    /// pending; the runner once more before a run returns.
    pub(crate) fn take_signals(&self) {
        signal::take_pending();
        if !self.listens.get() {
            return;
        }
        let ints = &self.interrupts;
        // Read first: every delivery it counts has already been counted
        // for its signal too (the handler counts in that order).
        let delivered = signal::interrupts();
        for (sig, seen) in ints.signals() {
            let sig = sig.get();
            let now = signal::count(sig);
            while seen.get() != now {
                seen.set(seen.get().wrapping_add(1));
                self.take_interrupt(ints, sig);
            }
        }
        signal::set_taken(delivered);
        for h in self.signal_handlers.borrow().iter() {
            let now = signal::handled(h.sig);
            while h.seen.get() != now {
                h.seen.set(h.seen.get().wrapping_add(1));
                self.sched.push_callback(h.callback.clone());
            }
        }
    }

    /// One interrupt: the first of a run cancels the main task; any other
    /// is final.
    fn take_interrupt(&self, ints: &Interrupts, sig: i32) {
        let first = ints.taken.get() == 0;
        ints.taken.set(ints.taken.get() + 1);
        let cancelled = first && ints.target.borrow().as_ref().is_some_and(|t| t.cancel());
        if cancelled {
            ints.soft.set(Some(sig));
            if ints.watchdog.borrow().is_none() && !signal::final_in_handler() {
                *ints.watchdog.borrow_mut() = signal::Watchdog::start();
            }
        } else {
            if ints.hard.get().is_none() {
                ints.hard.set(Some(sig));
            }
            self.abort.set(true);
        }
    }
}

impl EventLoop {
    /// Calls `callback` on the loop's thread each time `sig` is delivered
    /// (asyncio's `loop.add_signal_handler`), in a copy of the current
    /// context, until [`remove_signal_handler`](Self::remove_signal_handler)
    /// or the loop closes. A second call for the same signal replaces the
    /// callback. The delivery wakes the loop through its poller: no thread
    /// is involved.
    ///
    /// As in asyncio, only a loop on the main thread can handle signals
    /// (they are process-wide), and the handler is installed whatever was
    /// there before; removing it restores that. A signal that acts as
    /// Ctrl-C for a runner is handled by the callback while it is added.
    ///
    /// Fails with [`Error::UnsupportedSignal`] for a signal that cannot be
    /// handled (SIGKILL, SIGSTOP, faults such as SIGSEGV) or on another
    /// thread than the main one, [`Error::LoopClosed`] after close.
    ///
    /// ```no_run
    /// use runner_core::{get_running_loop, signal::Signal};
    ///
    /// runner_core::run(async {
    ///     let lp = get_running_loop().unwrap();
    ///     lp.add_signal_handler(Signal::SIGHUP, || println!("reloading the configuration"))
    ///         .unwrap();
    ///     // ... serve ...
    /// })
    /// .unwrap();
    /// ```
    pub fn add_signal_handler(&self, sig: Signal, callback: impl FnMut() + 'static) -> Result<(), Error> {
        self.add_handler(sig, Box::new(callback)).map(|_| ())
    }

    fn add_handler(&self, sig: Signal, callback: Box<dyn FnMut()>) -> Result<u64, Error> {
        self.check_open()?;
        let raw = sig.as_raw();
        if let Some(reason) = signal::unsupported(raw, false) {
            return Err(Error::UnsupportedSignal { signal: raw, reason });
        }
        if !signal::is_main_thread() {
            return Err(Error::UnsupportedSignal {
                signal: raw,
                reason: "only a loop on the main thread can handle signals (they are process-wide), as in asyncio",
            });
        }
        signal::take_handler(raw).map_err(Error::Io)?;
        let core = &self.core;
        let id = crate::context::new_context_id();
        let handler = SignalHandler {
            sig: raw,
            seen: Cell::new(signal::handled(raw)),
            callback: Callback::repeat(callback, HANDLER_WHAT),
            id,
        };
        let replaced = {
            let mut handlers = core.signal_handlers.borrow_mut();
            match handlers.iter_mut().find(|h| h.sig == raw) {
                Some(old) => Some(std::mem::replace(old, handler)),
                None => {
                    handlers.push(handler);
                    None
                }
            }
        };
        if let Some(old) = replaced {
            old.callback.cancel();
        }
        core.update_listens();
        Ok(id)
    }

    /// Stops handling `sig` on this loop (asyncio's
    /// `loop.remove_signal_handler`): the disposition runner replaced is
    /// restored (or the signal acts as Ctrl-C again, if it did). Whether a
    /// handler was there.
    pub fn remove_signal_handler(&self, sig: Signal) -> bool {
        self.remove_handler(sig.as_raw(), None)
    }

    /// Removes `sig`'s handler, if it is the one with `id` (any, without).
    fn remove_handler(&self, sig: i32, id: Option<u64>) -> bool {
        let removed = {
            let mut handlers = self.core.signal_handlers.borrow_mut();
            let at = handlers
                .iter()
                .position(|h| h.sig == sig && id.is_none_or(|id| h.id == id));
            at.map(|i| handlers.swap_remove(i))
        };
        let Some(h) = removed else {
            return false;
        };
        h.callback.cancel();
        signal::release_handler(sig);
        self.core.update_listens();
        true
    }

    /// The deliveries of `sig`, as a stream: each [`recv`](SignalStream::recv)
    /// waits for the next one (several deliveries before a `recv` are as
    /// many items). It is the loop's handler of `sig` while it lives (as
    /// [`add_signal_handler`](Self::add_signal_handler); adding another
    /// handler for `sig` ends the stream), and is removed when dropped.
    /// Fails as `add_signal_handler` does.
    ///
    /// ```no_run
    /// use runner_core::{get_running_loop, signal::Signal};
    ///
    /// runner_core::run(async {
    ///     let mut hangups = get_running_loop().unwrap().signal_stream(Signal::SIGHUP).unwrap();
    ///     while hangups.recv().await.is_some() {
    ///         println!("SIGHUP: reloading");
    ///     }
    /// })
    /// .unwrap();
    /// ```
    pub fn signal_stream(&self, sig: Signal) -> Result<SignalStream, Error> {
        let state = Rc::new(StreamState::default());
        let s = state.clone();
        let id = self.add_handler(
            sig,
            Box::new(move || {
                s.pending.set(s.pending.get() + 1);
                if let Some(w) = s.waker.take() {
                    w.wake();
                }
            }),
        )?;
        Ok(SignalStream {
            lp: self.clone(),
            sig: sig.as_raw(),
            id,
            state,
        })
    }
}

#[derive(Default)]
struct StreamState {
    pending: Cell<u64>,
    waker: Cell<Option<Waker>>,
}

/// The deliveries of a signal ([`EventLoop::signal_stream`]). A
/// [`Stream`](futures_core::Stream) of `()`; it ends when its handler was
/// replaced or removed, or the loop closed. Only its own loop delivers
/// its signals: awaited while another loop runs (or none), it ends at
/// once (reported to the running loop's exception handler) instead of
/// waiting for a delivery that cannot come.
pub struct SignalStream {
    lp: EventLoop,
    sig: i32,
    id: u64,
    state: Rc<StreamState>,
}

impl SignalStream {
    /// Waits for the next delivery; `None` once the stream ended.
    pub async fn recv(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Whether this stream is still the loop's handler of its signal.
    fn is_live(&self) -> bool {
        self.lp
            .core
            .signal_handlers
            .borrow()
            .iter()
            .any(|h| h.sig == self.sig && h.id == self.id)
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let n = self.state.pending.get();
        if n > 0 {
            self.state.pending.set(n - 1);
            return Poll::Ready(Some(()));
        }
        if !self.is_live() {
            return Poll::Ready(None);
        }
        let running = EventLoop::running();
        if !running.as_ref().is_some_and(|running| running.ptr_eq(&self.lp)) {
            // Its loop is not the one running, so nothing would deliver a
            // signal to it: end now rather than wait forever, and say why.
            if let Some(running) = running {
                running.call_exception_handler(&crate::ExceptionContext::new(format!(
                    "a SignalStream of {} was awaited while another event loop ran: it ends, since only its \
                     own loop delivers its signals; make the stream on the loop that awaits it",
                    signal::name(self.sig)
                )));
            }
            return Poll::Ready(None);
        }
        self.state.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl futures_core::Stream for SignalStream {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut().poll_recv(cx)
    }
}

impl Drop for SignalStream {
    fn drop(&mut self) {
        self.lp.remove_handler(self.sig, Some(self.id));
    }
}

impl fmt::Debug for SignalStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignalStream")
            .field("signal", &signal::name(self.sig))
            .field("pending", &self.state.pending.get())
            .finish()
    }
}

/// [`EventLoop::signal_stream`] on the running loop.
///
/// # Errors
/// [`Error::NoRunningLoop`] outside a running loop; otherwise as
/// [`EventLoop::add_signal_handler`].
pub fn signal_stream(sig: Signal) -> Result<SignalStream, Error> {
    super::get_running_loop()?.signal_stream(sig)
}
