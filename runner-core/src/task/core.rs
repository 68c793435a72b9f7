//! A task's own state: scheduling, cancellation, context, flags.
//!
//! Everything here is touched only on the loop's thread, so it is plain
//! `Cell`s: no lock, no atomic. It is packed: the task's whole allocation
//! (`raw`'s header, this, the future or its output) is one block, and its
//! size is what a spawn costs in memory.
//!
//! Cancellation state, as the [module docs](super) describe it: the number
//! of requests (`cancelling`), whether one waits for delivery, and where
//! the task was suspended during its last poll (outside any scope, inside
//! the `cancellable` scope with a given id, or inside a `shield`), which
//! the scopes record while they are polled (a depth counter and the
//! innermost `cancellable` that returned `Pending`), and, for a task
//! suspended in several branches at once, where a cancellation meant for
//! one scope goes (`branches`, whose per-poll record lives here).

use std::cell::Cell;
use std::panic::Location;

use super::branches::{self, Aim};
use super::raw::{RawTask, TaskRef};
use crate::context::{Map, TaskContext};
use crate::runtime::{TaskId, TaskInfo};

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Outcome {
    Running,
    Completed,
    Cancelled,
    Panicked,
    /// A `TaskGroup` child that returned an error.
    Failed,
}

/// What a cancellation request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requested {
    /// The task is done: nothing to cancel.
    Done,
    /// Pending: delivered at the task's next scheduling.
    Pending,
    /// Handed to the task this one awaits; this one waits for it to end.
    Forwarded,
}

/// `suspended` values besides a `cancellable` scope's id.
const BARE: u32 = 0;
const SHIELDED: u32 = u32::MAX;

/// Flags.
const POLLED: u8 = 1;
const DETACHED: u8 = 1 << 1;
const CANCEL_PENDING: u8 = 1 << 2;
const FORCE_DROP: u8 = 1 << 3;
const NAMED: u8 = 1 << 4;
const PANIC_REPORTED: u8 = 1 << 5;
const OUTPUT_TAKEN: u8 = 1 << 6;
/// A runner's main task: its name is "main" (without the name table).
const MAIN: u8 = 1 << 7;

/// The `state` byte. Scheduling (it changes at every wake and poll): the
/// task is in the ready queue.
const SCHEDULED: u8 = 1;
/// It finished while queued: the queue entry holds the registry's
/// reference, released when the entry is popped.
const RELEASE_ON_POP: u8 = 1 << 1;
/// The cancellation was handed to the task this one awaits (asyncio's
/// `fut_waiter.cancel()`): this one waits for that one to end and is
/// cancelled itself only if that one ended cancelled.
const FORWARDED: u8 = 1 << 2;
/// The pending cancellation lands at the task's next suspension only: a
/// task that finishes first keeps its output (a `TaskGroup` handing on a
/// cancellation from outside together with its failures, which must not
/// be lost). Any other reason to cancel clears it.
const AT_SUSPENSION: u8 = 1 << 3;
/// The pending cancellation is one already delivered and handed on (a
/// caught one resumed, a task group's scope letting its owner's go on,
/// the awaited task's ending cancelled): Python's `CancelledError` in
/// flight, which `uncancel` does not withdraw, where a request never
/// delivered (`_must_cancel`) is.
const IN_FLIGHT: u8 = 1 << 4;
/// The [`Outcome`] is in the high bits (five values: three bits).
const OUTCOME_SHIFT: u8 = 5;

/// Where the task was suspended during its last poll, for cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Suspended {
    /// Outside any `cancellable` or `shield` (or never polled).
    Bare,
    /// Inside the `cancellable` scope with this id (the innermost one).
    Catch(u32),
    /// Inside a `shield`.
    Shielded,
}

/// The type-independent state of a task: 40 bytes.
pub(crate) struct TaskCore {
    /// The task's context; its id is the task's id.
    pub(crate) ctx: TaskContext,
    /// The task whose `JoinHandle` this one awaits (asyncio cancels the
    /// awaited task with the awaiting one).
    awaiting: Cell<Option<TaskRef>>,
    /// The slot in the loop's registry.
    index: Cell<u32>,
    /// `BARE`, `SHIELDED`, or the id of the innermost `cancellable` scope.
    suspended: Cell<u32>,
    next_scope: Cell<u32>,
    /// Saturating: 65,535 outstanding requests is as good as infinite.
    cancel_requests: Cell<u16>,
    flags: Cell<u8>,
    /// Scheduling bits, the forwarded-cancellation bit, and the outcome
    /// (`OUTCOME_SHIFT`): one byte, so that the core stays 40 bytes.
    state: Cell<u8>,
}

/// What [`TaskCore::enter_catch`] gives back to
/// [`leave_catch`](TaskCore::leave_catch).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entered {
    depth: u16,
    branches: u32,
}

/// What a poll records as it goes (the scopes it passes through), reset
/// before each step of a task (a poll, or a drop of its future). Polls do
/// not nest, so one per thread, not one per task: the core keeps only what
/// must survive between polls.
struct Scratch {
    /// The scope a pending cancellation is delivered to during this poll.
    deliver_to: Cell<u32>,
    /// How many `cancellable` scopes enclose the code being polled.
    depth: Cell<u16>,
    /// The innermost `cancellable` that returned `Pending` in this poll.
    catch_scope: Cell<u32>,
    catch_depth: Cell<u16>,
    /// A `shield` returned `Pending`.
    shielded: Cell<bool>,
    /// How many `shield`s enclose the code being polled.
    shields: Cell<u16>,
    /// The branches the poll passes through (`branches`).
    branches: branches::Record,
    /// The task's own code made a cancellation of it pending during this
    /// poll (a branch of a `join!` cancelled the task, or handed on one it
    /// caught): a delivery to a scope later in the same poll is the
    /// earlier one's, and leaves this one pending (see
    /// [`TaskCore::consume_delivered`]).
    pended: Cell<bool>,
}

thread_local! {
    static SCRATCH: Scratch = const {
        Scratch {
            deliver_to: Cell::new(0),
            depth: Cell::new(0),
            catch_scope: Cell::new(0),
            catch_depth: Cell::new(0),
            shielded: Cell::new(false),
            shields: Cell::new(0),
            branches: branches::Record::new(),
            pended: Cell::new(false),
        }
    };
}

/// Resets the record of a poll for a step of a task: a poll (`deliver_to`
/// its delivery) or a drop of its future.
fn begin_step(deliver_to: u32) {
    SCRATCH.with(|s| {
        s.deliver_to.set(deliver_to);
        s.depth.set(0);
        s.catch_scope.set(0);
        s.shielded.set(false);
        s.shields.set(0);
        s.pended.set(false);
        branches::begin_poll(&s.branches);
    });
}

impl TaskCore {
    pub(crate) fn new(id: u64, map: Map) -> TaskCore {
        TaskCore {
            ctx: TaskContext::new(id, map),
            awaiting: Cell::new(None),
            index: Cell::new(u32::MAX),
            suspended: Cell::new(BARE),
            next_scope: Cell::new(1),
            cancel_requests: Cell::new(0),
            flags: Cell::new(0),
            state: Cell::new((Outcome::Running as u8) << OUTCOME_SHIFT),
        }
    }

    pub(crate) fn id(&self) -> TaskId {
        TaskId(self.ctx.id())
    }

    fn flag(&self, f: u8) -> bool {
        self.flags.get() & f != 0
    }

    fn set_flag(&self, f: u8, on: bool) {
        let flags = self.flags.get();
        self.flags.set(if on { flags | f } else { flags & !f });
    }

    pub(crate) fn is_done(&self) -> bool {
        self.outcome() != Outcome::Running
    }

    pub(crate) fn outcome(&self) -> Outcome {
        match self.state.get() >> OUTCOME_SHIFT {
            0 => Outcome::Running,
            1 => Outcome::Completed,
            2 => Outcome::Cancelled,
            3 => Outcome::Panicked,
            _ => Outcome::Failed,
        }
    }

    pub(crate) fn set_outcome(&self, outcome: Outcome) {
        let bits = self.state.get() & !(0xff << OUTCOME_SHIFT);
        self.state.set(bits | (outcome as u8) << OUTCOME_SHIFT);
    }

    fn state_bit(&self, bit: u8) -> bool {
        self.state.get() & bit != 0
    }

    fn set_state_bit(&self, bit: u8, on: bool) {
        let s = self.state.get();
        self.state.set(if on { s | bit } else { s & !bit });
    }

    pub(crate) fn was_polled(&self) -> bool {
        self.flag(POLLED)
    }

    pub(crate) fn is_detached(&self) -> bool {
        self.flag(DETACHED)
    }

    pub(crate) fn mark_detached(&self) {
        self.set_flag(DETACHED, true);
    }

    /// Whether a name was set (names live in the loop's side table, keyed
    /// by task id, so that unnamed tasks pay nothing for them).
    pub(crate) fn is_named(&self) -> bool {
        self.flag(NAMED)
    }

    pub(crate) fn mark_named(&self) {
        self.set_flag(NAMED, true);
    }

    /// Whether this is a runner's main task (named "main").
    pub(crate) fn is_main(&self) -> bool {
        self.flag(MAIN)
    }

    pub(crate) fn mark_main(&self) {
        self.set_flag(MAIN, true);
    }

    /// Whether the task's panic was reported already (by a close).
    pub(crate) fn panic_reported(&self) -> bool {
        self.flag(PANIC_REPORTED)
    }

    pub(crate) fn mark_panic_reported(&self) {
        self.set_flag(PANIC_REPORTED, true);
    }

    /// Whether the task's output was taken through its handle.
    pub(crate) fn output_taken(&self) -> bool {
        self.flag(OUTPUT_TAKEN)
    }

    pub(crate) fn mark_output_taken(&self) {
        self.set_flag(OUTPUT_TAKEN, true);
    }

    pub(crate) fn index(&self) -> u32 {
        self.index.get()
    }

    pub(crate) fn set_index(&self, index: u32) {
        self.index.set(index);
    }

    // --- scheduling (see `sched`) ---

    pub(crate) fn is_scheduled(&self) -> bool {
        self.state_bit(SCHEDULED)
    }

    pub(crate) fn set_scheduled(&self, on: bool) {
        self.set_state_bit(SCHEDULED, on);
    }

    /// The queue entry of this finished task holds the registry's reference.
    pub(crate) fn set_release_on_pop(&self) {
        self.set_state_bit(RELEASE_ON_POP, true);
    }

    pub(crate) fn take_release_on_pop(&self) -> bool {
        let was = self.state_bit(RELEASE_ON_POP);
        self.set_state_bit(RELEASE_ON_POP, false);
        was
    }

    // --- cancellation ---

    /// Records a cancellation request; `false` when the task is already
    /// done. A task suspended on another task's handle (outside a
    /// `shield`) hands the request to that task, as asyncio cancels the
    /// future a task waits on, and waits for it to end (see
    /// [`settle_forwarded`](Self::settle_forwarded)); otherwise the request
    /// is pending, and the caller schedules the task to deliver it.
    pub(crate) fn request_cancel(&self) -> Requested {
        self.request()
    }

    /// A request meant for scope `target` (see `branches`): `polled_now`
    /// when the task asks it of itself, during its poll.
    pub(crate) fn request_cancel_in(&self, target: u32, polled_now: bool) -> Requested {
        if polled_now {
            SCRATCH.with(|s| branches::aim_now(&s.branches, target));
            return self.request();
        }
        match SCRATCH.with(|s| branches::aim(&s.branches, self.ctx.id(), target)) {
            Some(Aim { leaf, forward_to }) if self.suspended() != Suspended::Shielded && !self.is_done() => {
                self.aim(leaf, forward_to);
                self.request()
            }
            _ => self.request(),
        }
    }

    /// A cancellation is meant for the branch of scope `leaf`: delivered
    /// there, and handed to `forward_to`, a task awaited in that branch,
    /// rather than to one awaited in another.
    fn aim(&self, leaf: u32, forward_to: Option<TaskRef>) {
        self.suspended.set(leaf);
        self.set_awaiting(forward_to);
    }

    fn request(&self) -> Requested {
        if self.is_done() {
            return Requested::Done;
        }
        self.cancel_requests.set(self.cancel_requests.get().saturating_add(1));
        let forwarded = !self.is_forced() && self.suspended() != Suspended::Shielded && self.cancel_awaited();
        if forwarded {
            self.set_state_bit(FORWARDED, true);
            Requested::Forwarded
        } else {
            self.pend();
            Requested::Pending
        }
    }

    /// Whether a cancellation handed to the awaited task is outstanding.
    pub(crate) fn is_forwarded(&self) -> bool {
        self.state_bit(FORWARDED)
    }

    /// Before a poll of a task whose cancellation was handed to the task
    /// it awaits. Woken because that one ended cancelled, or for any other
    /// reason (it no longer only waits on that task: a timeout around the
    /// handle fired, say): the cancellation is this task's, pending,
    /// delivered now. That one ended otherwise (it caught the cancellation
    /// and returned, or panicked): the request was consumed there, and
    /// this task goes on with that outcome, as in asyncio.
    pub(crate) fn settle_forwarded(&self) {
        let outcome = self.with_awaited(|a| a.core().outcome());
        self.set_state_bit(FORWARDED, false);
        match outcome {
            Some(Outcome::Completed | Outcome::Panicked | Outcome::Failed) => {}
            // It ended cancelled: the cancellation comes out of the await.
            Some(Outcome::Cancelled) => self.pend_in_flight(),
            // Woken for something else: the request was not consumed.
            _ => self.pend(),
        }
    }

    /// After a poll that left a cancellation pending with the task
    /// suspended outside any `shield` on another task's handle (the task
    /// cancelled itself, then awaited): the request is handed to that
    /// task, as asyncio cancels the future a task blocks on; `true` then
    /// (the task waits for that one instead of being scheduled).
    pub(crate) fn forward_pending(&self) -> bool {
        if self.is_forced() || !self.cancel_awaited() {
            return false;
        }
        self.set_flag(CANCEL_PENDING, false);
        self.set_state_bit(FORWARDED, true);
        true
    }

    /// Cancels the task this one awaits, if any; `true` when it took the
    /// request (it was not done).
    fn cancel_awaited(&self) -> bool {
        self.with_awaited(TaskRef::cancel).unwrap_or(false)
    }

    /// `f` of the task this one awaits, if any (the cell is `Cell`: the
    /// reference is taken out for the call and put back).
    fn with_awaited<R>(&self, f: impl FnOnce(&TaskRef) -> R) -> Option<R> {
        let awaited = self.awaiting.take();
        let r = awaited.as_ref().map(f);
        self.awaiting.set(awaited);
        r
    }

    /// Makes the next poll drop the future whatever its scopes say (the
    /// caller schedules the task); `false` when it is already done.
    pub(crate) fn request_force_drop(&self) -> bool {
        if self.is_done() {
            return false;
        }
        self.set_flag(FORCE_DROP, true);
        self.pend();
        true
    }

    pub(crate) fn is_forced(&self) -> bool {
        self.flag(FORCE_DROP)
    }

    /// Takes back one request; the last one taken back also withdraws a
    /// cancellation not delivered yet (asyncio 3.13's `uncancel` clears
    /// `_must_cancel` at zero), but not one in flight ([`IN_FLIGHT`]), nor
    /// one that drops the task whatever its scopes say.
    pub(crate) fn uncancel(&self) -> u32 {
        let n = self.cancel_requests.get().saturating_sub(1);
        self.cancel_requests.set(n);
        if n == 0 && !self.is_forced() && !self.state_bit(IN_FLIGHT) {
            self.set_cancel_pending(false);
        }
        u32::from(n)
    }

    pub(crate) fn cancelling(&self) -> u32 {
        u32::from(self.cancel_requests.get())
    }

    pub(crate) fn cancel_pending(&self) -> bool {
        self.flag(CANCEL_PENDING)
    }

    /// Sets or clears the pending cancellation, which also ends the task
    /// if it finishes before it suspends again (as an asyncio task
    /// cancelled right before its coroutine returns).
    pub(crate) fn set_cancel_pending(&self, on: bool) {
        if on {
            self.pend();
        } else {
            self.set_flag(CANCEL_PENDING, false);
        }
    }

    /// A cancellation pending for the task's next suspension only: if the
    /// task finishes first, its output stands (see [`AT_SUSPENSION`]).
    /// Asked by the task's own code, during its poll (a task group it
    /// owns hands on a cancellation from outside).
    pub(crate) fn pend_at_suspension(&self) {
        Self::mark_pended();
        self.set_flag(CANCEL_PENDING, true);
        self.set_state_bit(AT_SUSPENSION, true);
        self.set_state_bit(IN_FLIGHT, false);
    }

    /// A cancellation that was delivered, handed on: pending again, in
    /// flight (see [`IN_FLIGHT`]).
    pub(crate) fn pend_in_flight(&self) {
        self.set_flag(CANCEL_PENDING, true);
        self.set_state_bit(AT_SUSPENSION, false);
        self.set_state_bit(IN_FLIGHT, true);
    }

    /// Notes that the code being polled made a cancellation of its own
    /// task pending (see `Scratch::pended`).
    pub(crate) fn mark_pended() {
        SCRATCH.with(|s| s.pended.set(true));
    }

    /// A cancellation meant for a scope ends there (delivered to it during
    /// this poll and caught, or gone with the scope, dropped before it
    /// returned): it is no longer pending, unless another was made pending
    /// since the poll began (see `Scratch::pended`), which stays pending
    /// for its own delivery.
    pub(crate) fn consume_delivered(&self) {
        if !SCRATCH.with(|s| s.pended.get()) {
            self.set_flag(CANCEL_PENDING, false);
        }
    }

    /// Whether the pending cancellation is one in flight (see
    /// [`IN_FLIGHT`]).
    pub(crate) fn in_flight(&self) -> bool {
        self.cancel_pending() && self.state_bit(IN_FLIGHT)
    }

    /// Whether a task that finishes now ends cancelled: a cancellation is
    /// pending, and not one meant only for its next suspension.
    pub(crate) fn cancels_output(&self) -> bool {
        self.cancel_pending() && !self.state_bit(AT_SUSPENSION)
    }

    /// A new request: pending (one already in flight stays so).
    fn pend(&self) {
        if !self.cancel_pending() {
            self.set_state_bit(IN_FLIGHT, false);
        }
        self.set_flag(CANCEL_PENDING, true);
        self.set_state_bit(AT_SUSPENSION, false);
    }

    pub(crate) fn suspended(&self) -> Suspended {
        match self.suspended.get() {
            BARE => Suspended::Bare,
            SHIELDED => Suspended::Shielded,
            scope => Suspended::Catch(scope),
        }
    }

    pub(crate) fn set_awaiting(&self, awaited: Option<TaskRef>) {
        drop(self.awaiting.replace(awaited));
    }

    /// The task is done: what `branches` kept of it goes.
    pub(crate) fn forget_branches(&self) {
        SCRATCH.with(|s| branches::forget(&s.branches, self.ctx.id()));
    }

    /// The task, being polled, awaits `awaited`'s handle here.
    pub(crate) fn await_task(&self, awaited: TaskRef) {
        SCRATCH.with(|s| branches::note_await(&s.branches, s.depth.get(), awaited.raw()));
        self.set_awaiting(Some(awaited));
    }

    /// The task, being polled, dropped the handle of `awaited` (still
    /// running) that it awaited: a cancellation is no longer handed to
    /// it, but to the handle it awaited before in this poll, if any.
    pub(crate) fn forget_await(&self, awaited: RawTask) {
        let left = SCRATCH.with(|s| branches::forget_await(&s.branches, awaited));
        if self.with_awaited(|a| a.raw() == awaited) == Some(true) {
            self.set_awaiting(left.map(|t| t.task_ref()));
        }
    }

    // --- a poll ---

    /// Prepares a poll: what it records starts empty; `deliver_to` is the
    /// scope a pending cancellation is delivered to in it.
    pub(crate) fn begin_poll(&self, deliver_to: Option<u32>) {
        drop(self.awaiting.take());
        self.set_flag(POLLED, true);
        begin_step(deliver_to.unwrap_or(0));
    }

    /// Prepares a step that drops the future without polling it (a
    /// cancellation nothing catches, a close): the record of a poll is
    /// this thread's, and still holds the last poll's, another task's,
    /// whose awaited tasks may be freed by now. The handles dropped with
    /// the future must find it empty, as at the start of a poll.
    pub(crate) fn begin_drop(&self) {
        begin_step(0);
    }

    /// Records where the poll that just returned `Pending` left the task.
    pub(crate) fn end_poll(&self) -> Suspended {
        let (suspended, recorded) = SCRATCH.with(|s| {
            let suspended = if s.shielded.get() {
                Suspended::Shielded
            } else if s.catch_scope.get() != 0 {
                Suspended::Catch(s.catch_scope.get())
            } else {
                Suspended::Bare
            };
            (suspended, branches::recorded(&s.branches))
        });
        // A cancellation asked for during the poll and meant for one
        // branch goes to that branch's innermost scope.
        let suspended = if recorded {
            self.end_branches(suspended)
        } else {
            suspended
        };
        self.suspended.set(match suspended {
            Suspended::Bare => BARE,
            Suspended::Shielded => SHIELDED,
            Suspended::Catch(scope) => scope,
        });
        suspended
    }

    /// What `branches` recorded of the poll that just ended: kept, and
    /// where a cancellation aimed during it goes.
    #[inline(never)]
    fn end_branches(&self, suspended: Suspended) -> Suspended {
        match (
            SCRATCH.with(|s| branches::end_poll(&s.branches, self.ctx.id())),
            suspended,
        ) {
            (Some(Aim { leaf, forward_to }), Suspended::Catch(_)) => {
                self.set_awaiting(forward_to);
                Suspended::Catch(leaf)
            }
            (_, suspended) => suspended,
        }
    }

    /// A new `cancellable` scope id (never 0, no scope, nor `SHIELDED`),
    /// for a scope that must be known before its first poll.
    pub(crate) fn new_scope(&self) -> u32 {
        let scope = self.next_scope.get();
        let next = scope.wrapping_add(1);
        self.next_scope
            .set(if next == 0 || next == SHIELDED { 1 } else { next });
        scope
    }

    /// A `cancellable` scope enters: its id (given on first poll), and
    /// `None` when the pending cancellation is delivered to it now.
    pub(crate) fn enter_catch(&self, scope: &mut u32) -> Option<Entered> {
        if *scope == 0 {
            *scope = self.new_scope();
        }
        SCRATCH.with(|s| {
            if s.deliver_to.get() == *scope {
                s.deliver_to.set(0);
                self.consume_delivered();
                return None;
            }
            let depth = s.depth.get();
            s.depth.set(depth.saturating_add(1));
            Some(Entered {
                depth,
                branches: branches::enter(&s.branches, depth, *scope),
            })
        })
    }

    /// A `cancellable` scope leaves; `pending` when its future was.
    pub(crate) fn leave_catch(&self, scope: u32, entered: Entered, pending: bool) {
        let depth = entered.depth;
        SCRATCH.with(|s| {
            s.depth.set(depth);
            if pending {
                if s.catch_scope.get() == 0 || depth >= s.catch_depth.get() {
                    s.catch_scope.set(scope);
                    s.catch_depth.set(depth);
                }
                branches::leave_pending(&s.branches, depth, scope, entered.branches);
            }
        });
    }

    /// The innermost `cancellable` scope around the code being polled (0:
    /// none): where a cancellation it hands on is meant to go.
    fn enclosing_scope(&self) -> u32 {
        SCRATCH.with(|s| branches::enclosing(&s.branches, s.depth.get()))
    }

    /// A `shield` returned `Pending`.
    pub(crate) fn shield_pending(&self) {
        SCRATCH.with(|s| s.shielded.set(true));
    }

    /// A `shield` polls its section: the code inside cannot resume a
    /// caught cancellation (see [`resume_cancel`](Self::resume_cancel)).
    pub(crate) fn enter_shield(&self) {
        SCRATCH.with(|s| s.shields.set(s.shields.get().saturating_add(1)));
    }

    pub(crate) fn leave_shield(&self) {
        SCRATCH.with(|s| s.shields.set(s.shields.get().saturating_sub(1)));
    }

    /// A caught cancellation goes on (Python's bare `raise` in `except
    /// CancelledError:`): pending again, without a new request, delivered
    /// where the task suspends as any other (one already pending is that
    /// one). `false` when it cannot: the task is done, or the code runs
    /// inside a `shield`, which would hold it forever.
    pub(crate) fn resume_cancel(&self) -> bool {
        if self.is_done() || SCRATCH.with(|s| s.shields.get()) > 0 {
            return false;
        }
        self.pend_in_flight_here();
        true
    }

    /// [`pend_in_flight`](Self::pend_in_flight) by the code being polled
    /// (a scope handing on a cancellation it caught): meant for the scopes
    /// around that code.
    pub(crate) fn pend_in_flight_here(&self) {
        let target = self.enclosing_scope();
        SCRATCH.with(|s| branches::aim_now(&s.branches, target));
        self.pend_in_flight();
        Self::mark_pended();
    }

    /// Who the task is, for reports (`name` from the loop's side table,
    /// `spawned_at` from the task's header).
    pub(crate) fn info(&self, name: Option<String>, spawned_at: &'static Location<'static>) -> TaskInfo {
        TaskInfo {
            id: self.id(),
            name,
            spawned_at,
        }
    }
}
