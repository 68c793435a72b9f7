//! [`scoped_timeout`]: asyncio's `async with asyncio.timeout(..)`, a
//! deadline that cancels the code inside in place, so that its cleanup
//! (async cleanup and task groups included) runs before the timeout
//! returns.
//!
//! When the deadline passes, a loop timer cancels the task that polls the
//! timeout (a counted request, as asyncio's timeout calls `task.cancel()`),
//! and the cancellation is delivered where the task is suspended: to the
//! innermost `cancellable` inside (a task group's scope, the user's own
//! cleanup), or to the timeout's own scope around the future. Once it
//! comes back out, the timeout takes its request back (`uncancel`) and, if
//! no request is outstanding beyond those the task had when it entered the
//! timeout, answers `Err(Elapsed)`; a cancellation from elsewhere goes on
//! as one.
//!
//! This module uses `task` (the current task, `cancellable`) and `driver`
//! (the loop's timers).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::driver::{self, TimerEntry, TimerKey};
use super::{later, sleep_until, Elapsed, Sleep};
use crate::task::sched;
use crate::task::{cancellable, Cancellable, Cancelled, WatchFlight};

/// Runs `fut` for at most `duration`, cancelling it *in place* when the
/// time is up, as asyncio's `async with asyncio.timeout(duration):` does:
/// the cancellation is delivered where `fut` is suspended, so its
/// [`cancellable`](crate::cancellable) cleanup (with `.await`s) runs, a
/// [`task_group`](crate::task_group) inside cancels its children and waits
/// for their cleanup, and only then does this return `Err(Elapsed)`.
///
/// [`timeout`](super::timeout) instead drops `fut` at the deadline (its
/// destructors run; async cleanup cannot). Use `scoped_timeout` where the
/// code inside must finish its cleanup first.
///
/// The rules are asyncio's: if `fut` catches the cancellation and finishes
/// with an output anyway, that output is returned; if the task was also
/// cancelled by something else (its [`cancelling`](crate::CurrentTask::cancelling)
/// count stays above what it was), the cancellation goes on as the task's,
/// not as `Elapsed`. A `fut` that never suspends is never interrupted.
/// Inside a [`shield`](crate::shield) the deadline waits for the shield to
/// end, as any cancellation does, and lands at the next suspension; if
/// `fut` finishes first, its output stands (asyncio 3.13: the timeout's
/// `uncancel` withdraws a cancellation never delivered). Polled
/// outside a task (no cancellation to deliver), it drops `fut` at the
/// deadline, as `timeout` does.
///
/// No allocation: the deadline is an entry in the loop's timers that
/// cancels the task when it fires.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{cancellable, scoped_timeout, sleep, task_group, BoxError};
///
/// let log = runner_core::run(async {
///     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
///     let l = log.clone();
///     let r = scoped_timeout(Duration::from_millis(10), task_group(|tg| async move {
///         tg.spawn(async move {
///             if let Err(cancelled) = cancellable(sleep(Duration::from_secs(3600))).await {
///                 sleep(Duration::from_millis(5)).await; // async cleanup
///                 l.borrow_mut().push("child cleaned up");
///                 return Err::<(), BoxError>(cancelled.into());
///             }
///             Ok(())
///         });
///         Ok::<_, BoxError>(())
///     }))
///     .await;
///     assert!(r.is_err(), "timed out");
///     log.take()
/// })
/// .unwrap();
/// // The child's cleanup ran before scoped_timeout returned.
/// assert_eq!(log, ["child cleaned up"]);
/// ```
pub fn scoped_timeout<F: IntoFuture>(duration: Duration, fut: F) -> ScopedTimeout<F::IntoFuture> {
    let deadline = driver::with_current(|d| d.now()).unwrap_or_else(Instant::now);
    ScopedTimeout::new(later(deadline, duration), Some(duration), fut.into_future())
}

/// Like [`scoped_timeout`], with an absolute deadline on the loop's clock
/// (asyncio's `asyncio.timeout_at`).
///
/// ```
/// use std::time::Duration;
/// use runner_core::{get_running_loop, scoped_timeout_at, sleep};
///
/// runner_core::run(async {
///     let deadline = get_running_loop().unwrap().time() + Duration::from_millis(5);
///     assert!(scoped_timeout_at(deadline, sleep(Duration::from_secs(60))).await.is_err());
/// })
/// .unwrap();
/// ```
pub fn scoped_timeout_at<F: IntoFuture>(deadline: Instant, fut: F) -> ScopedTimeout<F::IntoFuture> {
    ScopedTimeout::new(deadline, None, fut.into_future())
}

/// What the future inside ended with: its output, or the cancellation
/// caught around it; and whether a cancellation in flight came out of it
/// ([`WatchFlight`]).
type Finished<T> = (Result<T, Cancelled>, bool);

/// Where a scoped timeout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not polled yet.
    Idle,
    /// In a task: its deadline is a loop timer that cancels the task.
    Armed,
    /// Polled outside a task: it waits on a plain timer and drops the
    /// future at the deadline.
    Detached,
    /// It handed on a cancellation that was not its own; polled again, it
    /// has nothing left to give.
    Resumed,
}

pin_project! {
    /// The future of [`scoped_timeout`] and [`scoped_timeout_at`].
    #[must_use = "futures do nothing unless awaited"]
    #[project = Projection]
    pub struct ScopedTimeout<F> {
        #[pin]
        inner: WatchFlight<Cancellable<F>>,
        deadline: Instant,
        duration: Option<Duration>,
        state: State,
        // The deadline's place in the timers of a loop (by its id), until
        // it fires or is taken off.
        timer: Option<(u64, TimerKey)>,
        // The task's outstanding cancellation requests when the timeout
        // was entered (its first poll; asyncio's `_cancelling`).
        entered_with: u32,
        // The deadline cancelled the task.
        fired: bool,
        // The plain timer of a timeout polled outside a task.
        sleep: Option<Pin<Box<Sleep>>>,
    }

    impl<F> PinnedDrop for ScopedTimeout<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            disarm(this.timer, this.fired);
        }
    }
}

impl<F: Future> ScopedTimeout<F> {
    fn new(deadline: Instant, duration: Option<Duration>, fut: F) -> ScopedTimeout<F> {
        ScopedTimeout {
            inner: WatchFlight::new(cancellable(fut)),
            deadline,
            duration,
            state: State::Idle,
            timer: None,
            entered_with: 0,
            fired: false,
            sleep: None,
        }
    }
}

/// Takes the deadline off its loop's timers; if it is no longer there, it
/// fired: `fired` says so from then on. (From another loop, or with none
/// running, it cannot be reached: it stays, and cancels its task when it
/// fires, if that task still runs.)
fn disarm(timer: &mut Option<(u64, TimerKey)>, fired: &mut bool) {
    if let Some((loop_id, key)) = timer.take() {
        let entry = driver::with_current(|d| (d.id == loop_id).then(|| d.timers.borrow_mut().remove(&key))).flatten();
        match entry {
            Some(None) => *fired = true,
            // Dropped (with its task reference) outside the borrow of the
            // timers.
            Some(Some(entry)) => drop(entry),
            None => {}
        }
    }
}

impl<F> fmt::Debug for ScopedTimeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedTimeout")
            .field("deadline", &self.deadline)
            .field("expired", &self.fired)
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for ScopedTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let elapsed = Elapsed {
            duration: *this.duration,
        };
        let poll = match *this.state {
            State::Resumed => return Poll::Ready(Err(elapsed)),
            State::Idle => match enter(&mut this, cx) {
                Some(poll) => poll,
                None => return Poll::Pending,
            },
            State::Detached => {
                // As `timeout`: the deadline wins once the future suspended.
                let sleep = this
                    .sleep
                    .as_mut()
                    .expect("invariant: a detached timeout has its timer");
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(elapsed));
                }
                return this.inner.poll(cx).map(|(out, _)| out.map_err(|_| elapsed));
            }
            State::Armed => this.inner.as_mut().poll(cx),
        };
        let caught = match poll {
            Poll::Pending => return Poll::Pending,
            // Finished, but with a cancellation in flight (a task group's
            // scope ends so when it was cancelled): it came back out, as
            // asyncio's CancelledError out of the block, and is caught
            // here. (One never delivered, held by a shield, say, leaves
            // the output standing, as in asyncio.)
            Poll::Ready((Ok(v), true)) => {
                drop(v);
                sched::with_current_task(|core| core.set_cancel_pending(false));
                Err(Cancelled)
            }
            Poll::Ready((out, _)) => out,
        };
        disarm(this.timer, this.fired);
        if !*this.fired {
            // The deadline did not fire: the output, or a cancellation from
            // elsewhere, which goes on.
            return match caught {
                Ok(v) => Poll::Ready(Ok(v)),
                Err(Cancelled) => resume(this.state),
            };
        }
        // The deadline fired: its request is taken back, whatever came of
        // it (asyncio's `__aexit__` uncancels first).
        let remaining = sched::with_current_task(|core| core.uncancel()).unwrap_or(0);
        match caught {
            Ok(v) => Poll::Ready(Ok(v)),
            // No request beyond those the task had on entering: the
            // cancellation was the deadline's, and ends here.
            Err(Cancelled) if remaining <= *this.entered_with => {
                sched::with_current_task(|core| core.set_cancel_pending(false));
                Poll::Ready(Err(elapsed))
            }
            // Also cancelled by something else: that goes on.
            Err(Cancelled) => resume(this.state),
        }
    }
}

/// The first poll: arms the deadline and polls the future once; `None`
/// when the timeout was entered outside a task and waits.
///
/// In a task, the deadline is a loop timer that cancels the task,
/// registered before the future's first poll (as asyncio's timeout
/// schedules its handle on entering: it fires before a timer the code
/// inside sets for the same instant). A future ready at once is never
/// interrupted; one that suspends with its deadline already passed is
/// cancelled at once (asyncio's handle, scheduled with `call_soon`, runs
/// before the task's next step).
fn enter<F: Future>(this: &mut Projection<'_, F>, cx: &mut Context<'_>) -> Option<Poll<Finished<F::Output>>> {
    let Some(task) = sched::current_raw().map(|t| t.task_ref()) else {
        // Nothing to cancel: `timeout`'s way, on a plain timer.
        *this.state = State::Detached;
        if let Poll::Ready(out) = this.inner.as_mut().poll(cx) {
            return Some(Poll::Ready(out));
        }
        let mut sleep = Box::pin(sleep_until(*this.deadline));
        // Registers its timer (a sleep suspends at least once).
        let _ = sleep.as_mut().poll(cx);
        *this.sleep = Some(sleep);
        return None;
    };
    *this.state = State::Armed;
    *this.entered_with = task.core().cancelling();
    let deadline = *this.deadline;
    let passed = driver::with_current(|d| d.now() >= deadline).unwrap_or(true);
    if !passed {
        *this.timer = driver::with_current(|d| {
            let key = d.timers.borrow_mut().insert(deadline, TimerEntry::Cancel(task.clone()));
            (d.id, key)
        });
    }
    let poll = this.inner.as_mut().poll(cx);
    // Ready at once: never interrupted (the caller takes the deadline
    // off). Suspended with the deadline passed: cancelled now.
    if poll.is_pending() && passed && task.cancel() {
        *this.fired = true;
    }
    Some(poll)
}
/// Hands on a caught cancellation that was not the timeout's (Python's
/// bare `raise`): pending again, delivered where the task suspends.
fn resume<T>(state: &mut State) -> Poll<Result<T, Elapsed>> {
    *state = State::Resumed;
    if sched::with_current_task(|core| core.resume_cancel()) == Some(true) {
        return Poll::Pending;
    }
    // It cannot go on (inside a shield): nothing better to answer.
    Poll::Ready(Err(Elapsed { duration: None }))
}
