//! Async generators: Python's `async def` with `yield`, as a `Stream`.
//!
//! [`asyncgen`] takes a closure that receives a [`Yielder`] and returns the
//! body future. The body hands out values with `y.yield_(v).await`; the
//! consumer pulls them with [`AsyncGen::next`] or through `Stream`.
//!
//! Closing early is the part a plain `Stream` lacks. [`AsyncGen::aclose`]
//! makes the pending `yield_` return `Err(Closing)` (Python throws
//! `GeneratorExit` there), so the body can run its cleanup, `.await`s
//! included, and return. If the close begins while the body is between two
//! yields (its consumer was dropped mid-step), the step finishes and the
//! close lands at the next `yield_`; a consumer still waiting on that step
//! (one generator inside another's step, both closed by the loop) waits
//! for the closer to finish and then gets `None`. A body that yields again
//! while closing is dropped and the mistake reported, as Python raises
//! "async generator ignored GeneratorExit". A started generator dropped without being closed is
//! closed by a task spawned on the running loop (Python's async-generator
//! finalizer hook), so its async cleanup still runs; with no loop running,
//! the body is dropped and only its destructors run.
//!
//! The loop tracks every generator that was started and not finished (a
//! weak reference, registered on first poll): close step 2
//! ([`EventLoop::shutdown_asyncgens`](crate::EventLoop::shutdown_asyncgens))
//! closes each of them after the remaining tasks were cancelled, so those
//! tasks could still use them.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::event_loop::core::AsyncGenFinalizer;
use crate::event_loop::EventLoop;

/// Returned by [`Yielder::yield_`] when the consumer closed the generator:
/// run your cleanup and return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing;

impl fmt::Display for Closing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the async generator is being closed; run cleanup and return without yielding again")
    }
}

impl std::error::Error for Closing {}

/// What the body and the generator share.
struct Shared<T> {
    slot: RefCell<Option<T>>,
    closing: Cell<bool>,
    /// A `yield_` returned `Err(Closing)`: the close was delivered.
    close_delivered: Cell<bool>,
    /// The body yielded again after the close was delivered.
    yielded_while_closing: Cell<bool>,
}

/// The body's handle for yielding values.
pub struct Yielder<T> {
    shared: Rc<Shared<T>>,
}

impl<T> Yielder<T> {
    /// Hands `value` to the consumer and waits until it asks for the next
    /// one. `Err(Closing)` means the generator is being closed: clean up
    /// (you may `.await`) and return.
    pub fn yield_(&mut self, value: T) -> YieldFuture<'_, T> {
        YieldFuture {
            shared: &self.shared,
            value: Some(value),
        }
    }

    /// Whether the consumer asked the generator to close.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.get()
    }
}

impl<T> fmt::Debug for Yielder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder")
            .field("closing", &self.shared.closing.get())
            .finish()
    }
}

/// The future of [`Yielder::yield_`].
#[must_use = "a value is only yielded when the future is awaited"]
pub struct YieldFuture<'a, T> {
    shared: &'a Shared<T>,
    value: Option<T>,
}

impl<T> Unpin for YieldFuture<'_, T> {}

impl<T> Future for YieldFuture<'_, T> {
    type Output = Result<(), Closing>;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let shared = self.shared;
        if shared.closing.get() {
            if shared.close_delivered.get() && self.value.is_some() {
                // Yielding again after `Err(Closing)`: suspend for good; the
                // closer sees the flag and drops the body.
                shared.yielded_while_closing.set(true);
                return Poll::Pending;
            }
            // The first yield reached since the close began (the one the
            // body was suspended at, or the next one if the close began
            // mid-step) is where the close lands.
            shared.close_delivered.set(true);
            self.value = None;
            return Poll::Ready(Err(Closing));
        }
        match self.value.take() {
            Some(value) => {
                *shared.slot.borrow_mut() = Some(value);
                // Suspend: the generator hands the value out and polls the
                // body again when the next one is wanted.
                Poll::Pending
            }
            None => Poll::Ready(Ok(())),
        }
    }
}

impl<T> fmt::Debug for YieldFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("YieldFuture")
            .field("pending_value", &self.value.is_some())
            .finish()
    }
}

/// The generator's state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Created, body not polled yet.
    Fresh,
    /// Started and not finished: the loop tracks it.
    Running,
    /// `aclose` is driving the body to its end.
    Closing,
    /// The body returned, was dropped, or was closed.
    Finished,
}

struct Inner<T> {
    shared: Rc<Shared<T>>,
    body: RefCell<Option<Pin<Box<dyn Future<Output = ()>>>>>,
    state: Cell<State>,
    /// Closers waiting for the one at work to finish.
    waiters: RefCell<Vec<std::task::Waker>>,
    /// The consumer waiting for the body's next value (its waker is also
    /// somewhere in the body): a closer that takes the body over wakes it
    /// when done, as it would no longer be woken by the body.
    consumer: RefCell<Option<std::task::Waker>>,
}

/// Finishes the generator when its body panics while polled (a body that
/// panicked is never polled again, as a Python generator that raised is
/// exhausted; its closers stop waiting). Defused with `mem::forget` when
/// the poll returns.
struct FinishOnPanic<'a, T: 'static>(&'a Inner<T>);

impl<T: 'static> Drop for FinishOnPanic<'_, T> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

/// Ends a close whose future is dropped half-way (the task driving it was
/// cancelled): the body is dropped where its cleanup stands, as Python's
/// cancellation reaches the cleanup and ends the generator, and the
/// generator is finished, so that no later closer waits for this one.
struct AbandonedClose<'a, T: 'static>(&'a Inner<T>);

impl<T: 'static> Drop for AbandonedClose<'_, T> {
    fn drop(&mut self) {
        if self.0.state.get() == State::Closing {
            let body = self.0.body.try_borrow_mut().ok().and_then(|mut body| body.take());
            drop(body);
            self.0.finish();
        }
    }
}

impl<T: 'static> Inner<T> {
    /// Marks the body finished and wakes the closers waiting for that.
    fn finish(&self) {
        self.state.set(State::Finished);
        if let Ok(mut waiters) = self.waiters.try_borrow_mut() {
            for waker in waiters.drain(..) {
                waker.wake();
            }
        }
    }

    /// Polls the body once, finishing the generator if the poll panics.
    fn poll_body(&self, fut: &mut Pin<Box<dyn Future<Output = ()>>>, cx: &mut Context<'_>) -> Poll<()> {
        let guard = FinishOnPanic(self);
        let poll = fut.as_mut().poll(cx);
        std::mem::forget(guard);
        poll
    }

    /// Polls the body once: a value, the end, or not yet.
    fn resume(self: &Rc<Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.state.get() {
            State::Fresh => {
                self.state.set(State::Running);
                if let Some(lp) = EventLoop::running() {
                    let me: Rc<dyn AsyncGenFinalizer> = self.clone();
                    lp.core().track_asyncgen(Rc::downgrade(&me));
                }
            }
            // Returned, closed, or panicked: nothing more comes.
            State::Finished => return Poll::Ready(None),
            // A closer drives the body (the loop's close, an `aclose`
            // elsewhere): the consumer, a body that was suspended in this
            // generator's step, waits for it to finish, and then nothing
            // more comes. Polling the body too would make two drivers of
            // it, and the one whose waker the body kept would be the only
            // one woken.
            State::Closing => {
                let mut waiters = self.waiters.borrow_mut();
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
                return Poll::Pending;
            }
            State::Running => {}
        }
        let mut body = self.body.borrow_mut();
        let Some(fut) = body.as_mut() else {
            return Poll::Ready(None);
        };
        let poll = self.poll_body(fut, cx);
        if let Some(value) = self.shared.slot.borrow_mut().take() {
            self.consumer.take();
            return Poll::Ready(Some(value));
        }
        match poll {
            Poll::Ready(()) => {
                body.take();
                self.consumer.take();
                self.state.set(State::Finished);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let mut consumer = self.consumer.borrow_mut();
                if !consumer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *consumer = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    async fn close(self: Rc<Self>) {
        match self.state.get() {
            State::Fresh => {
                // Never started: nothing ran, nothing to clean up.
                self.body.borrow_mut().take();
                self.state.set(State::Finished);
                return;
            }
            State::Finished => return,
            State::Closing => {
                // Another closer is at work: wait for it.
                std::future::poll_fn(|cx| {
                    if self.state.get() == State::Finished {
                        return Poll::Ready(());
                    }
                    self.waiters.borrow_mut().push(cx.waker().clone());
                    Poll::Pending
                })
                .await;
                return;
            }
            State::Running => {}
        }
        self.state.set(State::Closing);
        self.shared.closing.set(true);
        // A consumer suspended in the step this closer takes over waits
        // for it to finish (see `resume`).
        if let Some(consumer) = self.consumer.take() {
            self.waiters.borrow_mut().push(consumer);
        }
        let _abandoned = AbandonedClose(&*self);
        std::future::poll_fn(|cx| {
            let mut body = self.body.borrow_mut();
            let Some(fut) = body.as_mut() else {
                return Poll::Ready(());
            };
            let poll = self.poll_body(fut, cx);
            if self.shared.yielded_while_closing.get() || poll.is_ready() {
                body.take();
                return Poll::Ready(());
            }
            Poll::Pending
        })
        .await;
        self.finish();
        if self.shared.yielded_while_closing.get() {
            if let Some(lp) = EventLoop::running() {
                lp.call_exception_handler(&crate::ExceptionContext::new(
                    "an async generator yielded a value after it was asked to close (Python: \"async generator \
                     ignored GeneratorExit\"); it was dropped: return after `yield_` gives Err(Closing)",
                ));
            }
        }
    }
}

impl<T: 'static> AsyncGenFinalizer for Inner<T> {
    fn is_finished(&self) -> bool {
        self.state.get() == State::Finished
    }

    fn aclose(self: Rc<Self>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(self.close())
    }
}

/// An async generator: a `Stream` whose body yields values and can run
/// async cleanup when closed early. Made by [`asyncgen`].
///
/// ```
/// use std::{cell::RefCell, rc::Rc};
/// use runner_core::asyncgen;
///
/// let log = Rc::new(RefCell::new(Vec::new()));
/// let l = log.clone();
/// runner_core::run(async move {
///     let mut numbers = asyncgen(move |mut y| async move {
///         for i in 1.. {
///             if y.yield_(i).await.is_err() {
///                 // Closed early: async cleanup is allowed here.
///                 runner_core::yield_now().await;
///                 l.borrow_mut().push("cleaned up");
///                 return;
///             }
///         }
///     });
///     assert_eq!(numbers.next().await, Some(1));
///     assert_eq!(numbers.next().await, Some(2));
///     numbers.aclose().await;
/// })
/// .unwrap();
/// assert_eq!(*log.borrow(), ["cleaned up"]);
/// ```
pub struct AsyncGen<T: 'static> {
    inner: Rc<Inner<T>>,
}

/// Makes an async generator from `body`, which receives the [`Yielder`]
/// (Python's `async def` with `yield`). Nothing runs until the first value
/// is asked for.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{asyncgen, sleep};
///
/// let ticks = runner_core::run(async {
///     // async def ticks(): for i in range(3): await asyncio.sleep(0.001); yield i
///     let mut ticks = asyncgen(|mut y| async move {
///         for i in 0..3 {
///             sleep(Duration::from_millis(1)).await;
///             if y.yield_(i).await.is_err() {
///                 return;
///             }
///         }
///     });
///     let mut seen = Vec::new();
///     while let Some(i) = ticks.next().await {
///         seen.push(i);
///     }
///     seen
/// })
/// .unwrap();
/// assert_eq!(ticks, [0, 1, 2]);
/// ```
pub fn asyncgen<T, F, Fut>(body: F) -> AsyncGen<T>
where
    T: 'static,
    F: FnOnce(Yielder<T>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let shared = Rc::new(Shared {
        slot: RefCell::new(None),
        closing: Cell::new(false),
        close_delivered: Cell::new(false),
        yielded_while_closing: Cell::new(false),
    });
    let fut = body(Yielder { shared: shared.clone() });
    AsyncGen {
        inner: Rc::new(Inner {
            shared,
            body: RefCell::new(Some(Box::pin(fut))),
            state: Cell::new(State::Fresh),
            waiters: RefCell::new(Vec::new()),
            consumer: RefCell::new(None),
        }),
    }
}

impl<T: 'static> AsyncGen<T> {
    /// The next value, or `None` when the body returned or the generator
    /// was closed.
    pub async fn next(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.inner.resume(cx)).await
    }

    /// Closes the generator: a pending `yield_` in the body returns
    /// `Err(Closing)`, and the body runs to its end (its async cleanup
    /// included). Closing a generator that never started, or finished, does
    /// nothing.
    ///
    /// A body that panics (while it yields values or in its cleanup) is
    /// finished: it is never polled again, and later `next`s give `None`,
    /// as a Python generator that raised is exhausted. A close whose task
    /// is cancelled half-way drops the body where its cleanup stands (its
    /// destructors run: Python's cancellation reaches the cleanup) and the
    /// generator is finished.
    pub async fn aclose(&mut self) {
        self.inner.clone().close().await
    }

    /// Whether the body finished (returned, or was closed).
    pub fn is_finished(&self) -> bool {
        self.inner.state.get() == State::Finished
    }
}

impl<T: 'static> Drop for AsyncGen<T> {
    fn drop(&mut self) {
        // Started, not finished, and nobody else is closing it: close it on
        // the loop so its async cleanup runs (asyncio's finalizer hook).
        if self.inner.state.get() == State::Running && Rc::strong_count(&self.inner) == 1 {
            if let Some(lp) = EventLoop::running() {
                drop(lp.spawn(self.inner.clone().close()));
            }
        }
    }
}

impl<T: 'static> Stream for AsyncGen<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.inner.resume(cx)
    }
}

impl<T: 'static> fmt::Debug for AsyncGen<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncGen")
            .field("state", &self.inner.state.get())
            .field("closing", &self.inner.shared.closing.get())
            .finish()
    }
}
