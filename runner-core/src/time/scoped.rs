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
//! [`scoped_timeout_with`] shares the deadline's state (its instant, its
//! timer entry, whether it fired) with a [`TimeoutHandle`] that moves it:
//! asyncio's `Timeout` object. The others keep that state inline.
//!
//! This module uses `task` (the current task, `cancellable`) and `driver`
//! (the loop's timers).

use std::cell::Cell;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use pin_project_lite::pin_project;

use super::driver::{self, TimerEntry, TimerKey};
use super::{later, sleep_until, Elapsed, Sleep};
use crate::task::raw::TaskRef;
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
/// `uncancel` withdraws a cancellation never delivered). Dropped before
/// it returns (a `select!`'s losing branch) after its deadline fired, it
/// takes its request back, as asyncio's `__aexit__` does whatever ends the
/// block. Polled outside a task (no cancellation to deliver), it drops
/// `fut` at the deadline, as `timeout` does.
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
    ScopedTimeout::new(Some(later(deadline, duration)), Some(duration), None, fut.into_future())
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
    ScopedTimeout::new(Some(deadline), None, None, fut.into_future())
}

/// A [`scoped_timeout_at`] whose code inside holds a [`TimeoutHandle`]
/// that reads and moves the deadline, as asyncio's
/// `async with asyncio.timeout_at(when) as cm:` gives `cm.when()`,
/// `cm.reschedule(when)` and `cm.expired()`. `deadline: None` starts with
/// none (asyncio's `timeout(None)`): the code runs until the handle sets
/// one.
///
/// `body` is called at once with the handle; the future it returns runs
/// under the deadline, with `scoped_timeout`'s rules. The handle is one
/// allocation; [`scoped_timeout`] and [`scoped_timeout_at`] make none.
///
/// ```
/// use std::time::Duration;
/// use runner_core::{get_running_loop, scoped_timeout_with, sleep};
///
/// runner_core::run(async {
///     let now = || get_running_loop().unwrap().time();
///     // An idle timeout: each piece of work that arrives moves it on.
///     let r = scoped_timeout_with(None, |deadline| async move {
///         for _ in 0..3 {
///             deadline.reschedule(Some(now() + Duration::from_millis(50))).unwrap();
///             sleep(Duration::from_millis(10)).await; // work that arrives in time
///         }
///         deadline.reschedule(Some(now() + Duration::from_millis(5))).unwrap();
///         sleep(Duration::from_secs(60)).await; // nothing more arrives
///     })
///     .await;
///     assert!(r.is_err(), "the last deadline passed");
/// })
/// .unwrap();
/// ```
pub fn scoped_timeout_with<B, F>(deadline: Option<Instant>, body: B) -> ScopedTimeout<F::IntoFuture>
where
    B: FnOnce(TimeoutHandle) -> F,
    F: IntoFuture,
{
    let shared = Rc::new(Handled {
        slot: Slot::new(deadline),
        task: Cell::new(None),
    });
    let fut = body(TimeoutHandle { shared: shared.clone() });
    ScopedTimeout::new(deadline, None, Some(shared), fut.into_future())
}

/// The deadline of a [`scoped_timeout_with`], in the hands of the code it
/// bounds (or of any code on its loop's thread it is cloned to): asyncio's
/// `Timeout` object.
#[derive(Clone)]
pub struct TimeoutHandle {
    shared: Rc<Handled>,
}

impl TimeoutHandle {
    /// The deadline, on the loop's clock; `None` when there is none
    /// (asyncio's `when()`).
    pub fn when(&self) -> Option<Instant> {
        self.shared.slot.when.get()
    }

    /// Whether the deadline fired: the code inside was cancelled by it
    /// (asyncio's `expired()`). Stays `true` after the timeout returned.
    pub fn expired(&self) -> bool {
        self.shared.slot.sync_fired();
        self.shared.slot.fired()
    }

    /// Moves the deadline to `when` (`None`: no deadline), on the loop's
    /// clock (asyncio's `reschedule(when)`). A deadline already passed
    /// cancels the code inside at its next suspension, as asyncio's does
    /// on the loop's next turn.
    ///
    /// # Errors
    ///
    /// [`RescheduleError`] when the deadline can no longer move: the
    /// timeout was not polled yet, its deadline already fired (the
    /// cancellation is on its way), or it returned; or the call came from
    /// outside the timeout's loop (while none runs, or inside another).
    pub fn reschedule(&self, when: Option<Instant>) -> Result<(), RescheduleError> {
        self.shared.reschedule(when)
    }
}

impl fmt::Debug for TimeoutHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.shared.slot.sync_fired();
        f.debug_struct("TimeoutHandle")
            .field("when", &self.when())
            .field("phase", &self.shared.slot.phase.get())
            .finish()
    }
}

/// Why [`TimeoutHandle::reschedule`] could not move the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RescheduleError {
    why: Why,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    NotEntered,
    Expiring,
    Exited,
    OtherLoop,
}

impl fmt::Display for RescheduleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.why {
            Why::NotEntered => {
                "cannot reschedule a timeout that has not started: await the scoped_timeout_with first \
                 (the code it runs may reschedule it)"
            }
            Why::Expiring => {
                "cannot reschedule a timeout whose deadline already fired: its cancellation is on its way \
                 (check expired() first, or start a new scoped_timeout)"
            }
            Why::Exited => "cannot reschedule a timeout that has returned: start a new scoped_timeout",
            Why::OtherLoop => {
                "cannot reschedule a timeout outside its event loop (none runs, or another one does): \
                 call reschedule from code that runs on the timeout's loop"
            }
        })
    }
}

impl std::error::Error for RescheduleError {}

/// Where a timeout stands (asyncio's `_State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not polled yet.
    Created,
    /// Polled: the deadline is armed (or there is none).
    Entered,
    /// The deadline fired: its cancellation is on its way.
    Expiring,
    /// It returned after its deadline fired.
    Expired,
    /// It returned (or was dropped) before its deadline.
    Exited,
}

/// A scoped timeout's deadline and its place in a loop's timers: inline in
/// the future (kept small: it is moved with it), or shared with a
/// [`TimeoutHandle`] ([`Handled`]).
struct Slot {
    when: Cell<Option<Instant>>,
    /// The deadline's entry in the timers of a loop (by its id), until it
    /// fires or is taken off.
    timer: Cell<Option<(u64, TimerKey)>>,
    phase: Cell<Phase>,
    /// The timeout's own `cancellable` scope, which its deadline's
    /// cancellation is meant for (given when it is entered in a task).
    scope: Cell<u32>,
}

/// The slot of a [`scoped_timeout_with`], and what its handle needs to
/// arm the deadline again.
struct Handled {
    slot: Slot,
    /// The task the deadline cancels, and its loop's id: set when the
    /// timeout is entered in a task (not when it is polled outside one,
    /// where it waits on a plain timer that follows `when` at its polls).
    task: Cell<Option<(u64, TaskRef)>>,
}

impl Slot {
    fn new(when: Option<Instant>) -> Slot {
        Slot {
            when: Cell::new(when),
            timer: Cell::new(None),
            phase: Cell::new(Phase::Created),
            scope: Cell::new(0),
        }
    }

    /// Puts the deadline in the current loop's timers, to cancel `task`.
    #[inline]
    fn arm(&self, when: Instant, task: TaskRef) {
        self.timer.set(driver::with_current(|d| {
            let key = d
                .timers
                .borrow_mut()
                .insert(when, TimerEntry::Cancel(task, self.scope.get()));
            (d.id, key)
        }));
    }

    /// Whether the deadline fired (and cancelled the task).
    fn fired(&self) -> bool {
        matches!(self.phase.get(), Phase::Expiring | Phase::Expired)
    }

    /// The deadline fired.
    fn expire(&self) {
        if self.phase.get() == Phase::Entered {
            self.phase.set(Phase::Expiring);
        }
    }

    /// Takes the deadline off its loop's timers; if it is no longer there,
    /// it fired: the phase says so from then on. (From another loop, or with
    /// none running, it cannot be reached: it stays, and cancels its task
    /// when it fires, if that task still runs.)
    #[inline]
    fn disarm(&self) {
        if let Some((loop_id, key)) = self.timer.take() {
            let entry =
                driver::with_current(|d| (d.id == loop_id).then(|| d.timers.borrow_mut().remove(&key))).flatten();
            match entry {
                Some(None) => self.expire(),
                // Dropped (with its task reference) outside the borrow of
                // the timers.
                Some(Some(entry)) => drop(entry),
                None => {}
            }
        }
    }

    /// Notes whether the deadline fired, without taking it off.
    fn sync_fired(&self) {
        if let Some((loop_id, key)) = self.timer.get() {
            let waiting = driver::with_current(|d| (d.id == loop_id).then(|| d.timers.borrow().contains(&key)));
            if waiting == Some(Some(false)) {
                self.timer.set(None);
                self.expire();
            }
        }
    }

    /// The timeout returned or was dropped.
    #[inline]
    fn exit(&self) {
        match self.phase.get() {
            Phase::Expired | Phase::Exited => {}
            _ => {
                self.disarm();
                self.phase
                    .set(if self.fired() { Phase::Expired } else { Phase::Exited });
            }
        }
    }
}

impl Handled {
    fn reschedule(&self, when: Option<Instant>) -> Result<(), RescheduleError> {
        let refuse = |why| Err(RescheduleError { why });
        let slot = &self.slot;
        slot.sync_fired();
        match slot.phase.get() {
            Phase::Created => return refuse(Why::NotEntered),
            Phase::Expiring => return refuse(Why::Expiring),
            Phase::Expired | Phase::Exited => return refuse(Why::Exited),
            Phase::Entered => {}
        }
        let Some((loop_id, task)) = self.task.take() else {
            // Entered outside a task: its plain timer moves at the
            // future's next poll.
            slot.when.set(when);
            return Ok(());
        };
        let here = driver::with_current(|d| d.id) == Some(loop_id);
        if here {
            slot.disarm();
            slot.when.set(when);
            if let Some(when) = when {
                // One already passed fires on the loop's next turn.
                slot.arm(when, task.clone());
            }
        }
        self.task.set(Some((loop_id, task)));
        if here {
            Ok(())
        } else {
            refuse(Why::OtherLoop)
        }
    }
}

/// What the future inside ended with: its output, or the cancellation
/// caught around it; and whether a cancellation in flight came out of it
/// ([`WatchFlight`]).
type Finished<T> = (Result<T, Cancelled>, bool);

/// The deadline's [`Slot`]: the future's own, or one shared with a
/// [`TimeoutHandle`].
enum Holder {
    Own(Slot),
    Shared(Rc<Handled>),
}

impl Holder {
    #[inline]
    fn get(&self) -> &Slot {
        match self {
            Holder::Own(slot) => slot,
            Holder::Shared(shared) => &shared.slot,
        }
    }

    /// The timeout returned or was dropped.
    #[inline]
    fn exit(&self) {
        self.get().exit();
        if let Holder::Shared(shared) = self {
            drop(shared.task.take());
        }
    }
}

pin_project! {
    /// The future of [`scoped_timeout`], [`scoped_timeout_at`] and
    /// [`scoped_timeout_with`].
    #[must_use = "futures do nothing unless awaited"]
    #[project = Projection]
    pub struct ScopedTimeout<F> {
        #[pin]
        inner: WatchFlight<Cancellable<F>>,
        duration: Option<Duration>,
        // Polled outside a task: it waits on a plain timer (`sleep`) and
        // drops the future at the deadline, instead of a loop timer that
        // cancels the task.
        detached: bool,
        slot: Holder,
        // The task's outstanding cancellation requests when the timeout
        // was entered (its first poll; asyncio's `_cancelling`).
        entered_with: u32,
        // The plain timer of a timeout polled outside a task.
        sleep: Option<Pin<Box<Sleep>>>,
    }

    impl<F> PinnedDrop for ScopedTimeout<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            let slot = this.slot.get();
            let unreturned = matches!(slot.phase.get(), Phase::Entered | Phase::Expiring);
            this.slot.exit();
            if unreturned && !*this.detached && slot.fired() {
                // Dropped (a `select!`'s losing branch) after its deadline
                // cancelled the task, before it returned: its request is
                // taken back, as asyncio's `__aexit__` does whatever ends
                // the block; and, with no request left beyond those the
                // task had on entering, the cancellation it caused (not
                // delivered yet, or come back out of a task it awaited)
                // goes with it, as `step` would have caught it.
                let entered_with = *this.entered_with;
                sched::with_current_task(|core| {
                    if core.uncancel() <= entered_with {
                        core.consume_delivered();
                    }
                });
            }
        }
    }
}

impl<F: Future> ScopedTimeout<F> {
    fn new(
        deadline: Option<Instant>,
        duration: Option<Duration>,
        shared: Option<Rc<Handled>>,
        fut: F,
    ) -> ScopedTimeout<F> {
        ScopedTimeout {
            inner: WatchFlight::new(cancellable(fut)),
            duration,
            detached: false,
            slot: match shared {
                Some(shared) => Holder::Shared(shared),
                None => Holder::Own(Slot::new(deadline)),
            },
            entered_with: 0,
            sleep: None,
        }
    }
}

impl<F> fmt::Debug for ScopedTimeout<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.slot.get();
        f.debug_struct("ScopedTimeout")
            .field("deadline", &slot.when.get())
            .field("expired", &slot.fired())
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for ScopedTimeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let out = step(&mut this, cx);
        if out.is_ready() {
            this.slot.exit();
        }
        out
    }
}

fn step<F: Future>(this: &mut Projection<'_, F>, cx: &mut Context<'_>) -> Poll<Result<F::Output, Elapsed>> {
    let elapsed = Elapsed {
        duration: *this.duration,
    };
    let poll = match this.slot.get().phase.get() {
        // It handed on a cancellation that was not its own: polled again,
        // it has nothing left to give.
        Phase::Expired | Phase::Exited => return Poll::Ready(Err(elapsed)),
        Phase::Created => match enter(this, cx) {
            Some(poll) => poll,
            None => return Poll::Pending,
        },
        Phase::Entered | Phase::Expiring if *this.detached => {
            // As `timeout`: the deadline wins once the future suspended.
            if follow(this.sleep, this.slot.get(), cx) {
                return Poll::Ready(Err(elapsed));
            }
            let poll = this.inner.as_mut().poll(cx);
            if poll.is_pending() && follow(this.sleep, this.slot.get(), cx) {
                // Moved into the past by the code inside: at the next poll.
                cx.waker().wake_by_ref();
            }
            return poll.map(|(out, _)| out.map_err(|_| elapsed));
        }
        Phase::Entered | Phase::Expiring => this.inner.as_mut().poll(cx),
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
    let slot = this.slot.get();
    slot.disarm();
    if !slot.fired() {
        // The deadline did not fire: the output, or a cancellation from
        // elsewhere, which goes on.
        return match caught {
            Ok(v) => Poll::Ready(Ok(v)),
            Err(Cancelled) => resume(this.slot),
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
            sched::with_current_task(|core| core.consume_delivered());
            Poll::Ready(Err(elapsed))
        }
        // Also cancelled by something else: that goes on.
        Err(Cancelled) => resume(this.slot),
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
    let slot = this.slot.get();
    slot.phase.set(Phase::Entered);
    let Some(task) = sched::current_raw().map(|t| t.task_ref()) else {
        // Nothing to cancel: `timeout`'s way, on a plain timer.
        *this.detached = true;
        if let Poll::Ready(out) = this.inner.as_mut().poll(cx) {
            return Some(Poll::Ready(out));
        }
        // Registers its timer (a sleep suspends at least once).
        follow(this.sleep, slot, cx);
        return None;
    };
    *this.entered_with = task.core().cancelling();
    // The scope is named now, so that the deadline can be meant for it.
    slot.scope.set(task.core().new_scope());
    this.inner.as_mut().inner().set_scope(slot.scope.get());
    let when = slot.when.get();
    let passed = match when {
        Some(when) => driver::with_current(|d| d.now() >= when).unwrap_or(true),
        None => false,
    };
    if let (Some(when), false) = (when, passed) {
        slot.arm(when, task.clone());
    }
    if let (Holder::Shared(shared), Some(loop_id)) = (&*this.slot, driver::with_current(|d| d.id)) {
        // The handle may arm it again.
        shared.task.set(Some((loop_id, task.clone())));
    }
    let poll = this.inner.as_mut().poll(cx);
    // Ready at once: never interrupted (the caller takes the deadline
    // off). Suspended with the deadline passed (and not moved by the code
    // inside): cancelled now.
    if poll.is_pending()
        && passed
        && slot.when.get() == when
        && slot.timer.get().is_none()
        && task.cancel_in(slot.scope.get())
    {
        slot.expire();
    }
    Some(poll)
}

/// A detached timeout's plain timer, kept on the slot's deadline (which a
/// handle may have moved); whether it passed.
fn follow(sleep: &mut Option<Pin<Box<Sleep>>>, slot: &Slot, cx: &mut Context<'_>) -> bool {
    let Some(when) = slot.when.get() else {
        *sleep = None;
        return false;
    };
    let sleep = sleep.get_or_insert_with(|| Box::pin(sleep_until(when)));
    if sleep.deadline() != Some(when) {
        sleep.reset(when);
    }
    let passed = sleep.as_mut().poll(cx).is_ready();
    if passed {
        slot.expire();
    }
    passed
}

/// Hands on a caught cancellation that was not the timeout's (Python's
/// bare `raise`): pending again, delivered where the task suspends. The
/// timeout is over.
fn resume<T>(slot: &Holder) -> Poll<Result<T, Elapsed>> {
    slot.exit();
    if sched::with_current_task(|core| core.resume_cancel()) == Some(true) {
        return Poll::Pending;
    }
    // It cannot go on (inside a shield): nothing better to answer.
    Poll::Ready(Err(Elapsed { duration: None }))
}
