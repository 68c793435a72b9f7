//! The loop's state and one iteration of it.
//!
//! [`LoopCore`] owns what the layers below keep per loop (the task
//! scheduler, the time driver, the reactor, the executor slot) and the
//! loop's own flags; [`LoopCore::run_once`] is one iteration, as the
//! [module docs](super) describe it, and [`LoopCore::enter`] makes the loop
//! the thread's running one (each layer's current state, the context
//! slot), undone by its guard.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::signals::Interrupts;
use super::{EventLoop, ExceptionHandler, State};
use crate::context::{self, ContextHolder};
use crate::executor::{self, ExecutorSlot};
use crate::reactor::{self, ReactorDriver};
use crate::runtime::{ExceptionContext, Remote, Report, Shared, TaskInfo};
use crate::signal;
use crate::task::sched::{self, Ready, Scheduler};
use crate::time::driver::{self as time, TimeDriver, TimerEntry};

/// How many iterations may skip the reactor while tasks keep the loop busy.
pub(crate) const REACTOR_INTERVAL: u32 = 61;

/// An async generator that was started and not finished: what
/// [`EventLoop::shutdown_asyncgens`] closes. The generator type registers
/// itself with [`LoopCore::track_asyncgen`] when first polled.
pub(crate) trait AsyncGenFinalizer {
    /// Whether the generator already finished (nothing to close).
    fn is_finished(&self) -> bool;
    /// Closes the generator, running its cleanup (async cleanup included).
    fn aclose(self: Rc<Self>) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;
}

pub(crate) struct LoopCore {
    pub(crate) shared: Arc<Shared>,
    pub(crate) sched: Rc<Scheduler>,
    pub(crate) time: Rc<TimeDriver>,
    pub(crate) reactor: Rc<ReactorDriver>,
    pub(crate) executor: Rc<ExecutorSlot>,
    /// A real-time bound on the reactor's wait (the deadlines of closing
    /// are real time even on a virtual clock).
    pub(crate) real_deadline: Cell<Option<Instant>>,
    pub(crate) state: Cell<State>,
    pub(crate) stopping: Cell<bool>,
    pub(crate) tick: Cell<u32>,
    pub(crate) debug: Cell<bool>,
    pub(crate) slow_callback_duration: Cell<Duration>,
    pub(crate) exception_handler: RefCell<Option<ExceptionHandler>>,
    pub(crate) asyncgens: RefCell<Vec<Weak<dyn AsyncGenFinalizer>>>,
    pub(crate) asyncgens_shut_down: Cell<bool>,
    /// What the runner's interrupt signals (Ctrl-C) did, while a
    /// `Runner::run` or close on the main thread takes them (`listens`).
    pub(crate) interrupts: Interrupts,
    /// Whether deliveries of signals concern this loop (a runner takes
    /// interrupts on it, or it has signal handlers): then it looks at them
    /// before every task step.
    pub(crate) listens: Cell<bool>,
    /// A runner takes interrupts on this loop now.
    pub(crate) runner_listens: Cell<bool>,
    /// `add_signal_handler`'s callbacks.
    pub(crate) signal_handlers: RefCell<Vec<super::signals::SignalHandler>>,
    /// Set by a final interrupt: the current run returns at once.
    pub(crate) abort: Cell<bool>,
    /// Signal deliveries wake this loop's poller while it runs (published
    /// when the loop first has to block).
    pub(crate) listening: RefCell<Option<signal::Listening>>,
}

/// Restores the thread's running loop, each layer's current state and the
/// context slot when a run ends, also by panic.
pub(crate) struct RunningGuard<'a> {
    core: &'a LoopCore,
    prev: Option<Rc<LoopCore>>,
    prev_slot: Option<context::Slot>,
    _sched: sched::EnterGuard,
    _time: time::EnterGuard,
    _reactor: reactor::EnterGuard,
    _executor: executor::EnterGuard,
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.core.abort.set(false);
        drop(self.core.listening.borrow_mut().take());
        let prev = self.prev.take();
        let _ = super::RUNNING.try_with(|r| *r.borrow_mut() = prev);
        if let Some(slot) = self.prev_slot.take() {
            context::restore_slot(slot);
        }
        if self.core.state.get() == State::Running {
            self.core.state.set(State::Idle);
        }
        self.core.stopping.set(false);
    }
}

impl LoopCore {
    pub(crate) fn id(&self) -> u64 {
        self.shared.loop_id
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.get() == State::Closed
    }

    /// Makes the loop this thread's running one (the caller checked that
    /// none runs): each layer's current state points at this loop's, and
    /// the current context is the polled task's.
    pub(crate) fn enter<'a>(self: &'a Rc<Self>, prev: Option<Rc<LoopCore>>) -> RunningGuard<'a> {
        self.state.set(State::Running);
        RunningGuard {
            core: self,
            prev,
            prev_slot: Some(context::swap_slot(context::Slot::Task)),
            _sched: sched::enter(&self.sched),
            _time: time::enter(&self.time),
            _reactor: reactor::enter(&self.reactor),
            _executor: executor::enter(&self.executor),
        }
    }

    /// Registers a started async generator for `shutdown_asyncgens`.
    /// `false` when that shutdown already ran (the generator will not be
    /// finalized by the loop).
    pub(crate) fn track_asyncgen(&self, generator: Weak<dyn AsyncGenFinalizer>) -> bool {
        if self.asyncgens_shut_down.get() || self.is_closed() {
            return false;
        }
        let mut gens = self.asyncgens.borrow_mut();
        gens.retain(|g| g.strong_count() > 0);
        gens.push(generator);
        true
    }

    /// Sends a report to the exception handler (or the default one).
    pub(crate) fn report(self: &Rc<Self>, ctx: ExceptionContext) {
        let handler = self.exception_handler.borrow().clone();
        let lp = EventLoop { core: self.clone() };
        match handler {
            None => lp.default_exception_handler(&ctx),
            Some(handler) => {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| handler(&lp, &ctx))) {
                    lp.default_exception_handler(&ExceptionContext {
                        message: "the exception handler panicked while handling a report".into(),
                        panic: Some(crate::task::panic_message(payload.as_ref())),
                        task: None,
                    });
                    lp.default_exception_handler(&ctx);
                }
            }
        }
    }

    /// Takes what other threads sent: task wake-ups and callbacks.
    fn drain_remote(&self) {
        if !self.shared.take_pending() {
            return;
        }
        while let Some(msg) = self.shared.try_recv() {
            match msg {
                Remote::Wake(task) => self.sched.schedule_remote(task),
                Remote::Call(f) => self.sched.push_callback(super::callbacks::once(f)),
            }
        }
    }

    fn fire_timers(&self, now: Instant) {
        loop {
            let entry = self.time.timers.borrow_mut().pop_expired(now);
            match entry {
                None => break,
                Some(TimerEntry::Waker(w)) => w.wake(),
                Some(TimerEntry::Callback(cb)) => self.sched.push_callback(cb),
                Some(TimerEntry::Cancel(task, scope)) => {
                    task.cancel_in(scope);
                }
            }
        }
    }

    /// Polls the reactor, blocking for at most `timeout` (see the module
    /// docs of `runtime` for the `sleeping` handshake). A loop that has to
    /// block makes its reactor now, if it had none.
    fn wait(self: &Rc<Self>, mut timeout: Option<Duration>) {
        let blocking = timeout != Some(Duration::ZERO);
        let reactor = if blocking {
            match self.reactor.get() {
                Ok(r) => Some(r),
                Err(e) => {
                    // No poller (out of file descriptors, say): nothing but
                    // other threads and timers can wake the loop; sleep a
                    // little rather than spin.
                    self.report(ExceptionContext::new(format!(
                        "the event loop could not create its poller, so it cannot wait for I/O: {e}; free file \
                         descriptors (the loop retries)"
                    )));
                    std::thread::sleep(
                        timeout
                            .unwrap_or(Duration::from_millis(10))
                            .min(Duration::from_millis(10)),
                    );
                    return;
                }
            }
        } else {
            self.reactor.existing()
        };
        let Some(mut reactor) = reactor else {
            return;
        };
        if blocking {
            if self.listens.get() && self.listening.borrow().is_none() && signal::is_main_thread() {
                let wake_fd = reactor.poller().wake_fd();
                *self.listening.borrow_mut() = Some(signal::Listening::publish(wake_fd));
            }
            let signalled = self.listens.get() && signal::pending();
            if !self.shared.begin_sleep() || signalled {
                timeout = Some(Duration::ZERO);
            }
        }
        let result = reactor.wait(timeout);
        if blocking {
            self.shared.end_sleep();
        }
        let fired = reactor.take_fired();
        drop(reactor);
        for cb in fired {
            self.sched.push_callback(cb);
        }
        if let Err(e) = result {
            // The poller itself failed (not a timeout, not EINTR): report and
            // go on; the next iteration tries again.
            self.report(ExceptionContext::new(format!("the reactor's poll failed: {e}")));
        }
    }

    /// How long the reactor may block when nothing is ready: until the next
    /// timer on a real clock; on a virtual clock with auto-advance, not at
    /// all (the clock jumps to the deadline instead), unless real events
    /// are awaited (blocking jobs in flight), in which case, as with
    /// auto-advance paused, until a real wake-up.
    fn idle_timeout(self: &Rc<Self>) -> Option<Duration> {
        let next = self.time.timers.borrow().next_deadline();
        let timeout = match (self.time.clock.get_virtual(), next) {
            (_, None) => None,
            (None, Some(when)) => Some(when.saturating_duration_since(Instant::now())),
            (Some(v), Some(when)) => {
                let may_jump = v.auto_advance && self.executor.jobs_in_flight() == 0;
                if may_jump && self.reactor.has_sources() {
                    // Only jump when I/O has nothing either: look first.
                    self.wait(Some(Duration::ZERO));
                }
                let quiet = !self.sched.has_ready() && !self.shared.has_pending();
                if may_jump && quiet {
                    self.time.clock.advance_to(when);
                }
                if may_jump {
                    Some(Duration::ZERO)
                } else {
                    None
                }
            }
        };
        match self.real_deadline.get() {
            Some(deadline) => {
                let cap = deadline.saturating_duration_since(Instant::now());
                Some(timeout.map_or(cap, |t| t.min(cap)))
            }
            None => timeout,
        }
    }

    /// One more iteration that does not block: what asyncio's loop runs
    /// after the done-callback of the future it waits for called `stop()`.
    pub(crate) fn run_final_iteration(self: &Rc<Self>) {
        let stopping = self.stopping.replace(true);
        self.run_once();
        self.stopping.set(stopping);
    }

    /// One iteration (see the module docs of `event_loop`).
    pub(crate) fn run_once(self: &Rc<Self>) {
        let idle = !self.sched.has_ready() && !self.stopping.get();
        let timeout = if idle {
            self.idle_timeout()
        } else {
            Some(Duration::ZERO)
        };
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        let blocking = timeout != Some(Duration::ZERO);
        let io_turn = tick % REACTOR_INTERVAL == 0 && self.reactor.has_sources();
        if blocking {
            // What a burst grew, given back while the loop has time.
            self.sched.trim_ready();
            self.sched.trim_registry();
            self.time.timers.borrow_mut().trim();
        }
        if blocking || io_turn {
            self.wait(timeout);
        }
        self.drain_remote();
        if self.time.timers.borrow().next_deadline().is_some() {
            self.fire_timers(self.time.now());
        }

        let batch = self.sched.ready_len();
        if batch == 0 {
            // Woken by a signal, perhaps, with nothing else to run.
            self.look_at_signals();
        }
        let debug = self.debug.get();
        for _ in 0..batch {
            // A signal raised by the previous step (even by this thread)
            // is seen before the next one.
            self.look_at_signals();
            if self.abort.get() {
                return;
            }
            let Some(item) = self.sched.pop() else {
                break;
            };
            let started = debug.then(Instant::now);
            match item {
                Ready::Task(task) => {
                    let info = debug.then(|| self.sched.info(task));
                    self.sched.run_task(task);
                    if let Some(started) = started {
                        self.check_slow(started, info);
                    }
                }
                Ready::Callback(cb) => {
                    let what = cb.what();
                    self.call_in_context(cb.clone(), || cb.call(), what);
                    if let Some(started) = started {
                        self.check_slow(started, None);
                    }
                }
            }
        }
    }

    /// Calls `f` in `holder`'s context; a panic is reported as `what`.
    fn call_in_context(self: &Rc<Self>, holder: Rc<dyn ContextHolder>, f: impl FnOnce(), what: &str) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| context::enter(holder, f))) {
            self.report(ExceptionContext {
                message: what.into(),
                panic: Some(crate::task::panic_message(payload.as_ref())),
                task: None,
            });
        }
    }

    fn check_slow(self: &Rc<Self>, started: Instant, task: Option<TaskInfo>) {
        let took = started.elapsed();
        if took >= self.slow_callback_duration.get() {
            let what = match task {
                Some(_) => "a task's poll",
                None => "a callback",
            };
            self.report(ExceptionContext {
                message: format!(
                    "{what} blocked the event loop for {took:?} (slow_callback_duration is {:?}); \
                     move blocking work to a thread or yield more often",
                    self.slow_callback_duration.get()
                ),
                panic: None,
                task,
            });
        }
    }
}

impl Report for LoopCore {
    fn report(self: Rc<Self>, ctx: ExceptionContext) {
        LoopCore::report(&self, ctx);
    }
}

impl Drop for LoopCore {
    fn drop(&mut self) {
        if self.state.get() != State::Closed {
            // No handle to the loop is left, so no handler of its either:
            // reports go to the default one (see `Scheduler::report`).
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::event_loop::EventLoop;

    /// A burst of ready tasks leaves no queue memory behind once the loop
    /// waits: a server's loop after a spike keeps 8 KiB, not 8 bytes for
    /// every task the spike had ready at once.
    #[test]
    fn the_ready_queue_gives_back_a_bursts_room_when_the_loop_waits() {
        let lp = EventLoop::new().unwrap();
        let queued = lp.clone();
        let during = lp
            .run_until_complete(async move {
                let handles: Vec<_> = (0..20_000u32).map(|i| crate::spawn(async move { i })).collect();
                let during = queued.core().sched.ready_capacity();
                for h in handles {
                    h.await.unwrap();
                }
                // Nothing is ready while this sleeps: the loop blocks.
                crate::sleep(Duration::from_millis(1)).await;
                during
            })
            .unwrap();
        assert!(
            during >= 20_000,
            "the burst was queued at once ({during} entries of room)"
        );
        let after = lp.core().sched.ready_capacity();
        assert!(
            after <= super::sched::KEEP_READY,
            "{after} entries of room kept after the loop waited"
        );
    }

    /// After a burst, the registry's few live tasks move to its front: the
    /// room is given back, and the moved tasks still finish, are listed and
    /// are cancelled as before.
    #[test]
    fn the_registry_gives_back_a_bursts_room_and_its_moved_tasks_go_on() {
        let lp = EventLoop::new().unwrap();
        let inner = lp.clone();
        let (during, after, outputs) = lp
            .run_until_complete(async move {
                let burst: Vec<_> = (0..20_000u32).map(|i| crate::spawn(async move { i })).collect();
                // Spawned last: the highest slots.
                let late: Vec<_> = (0..10u32)
                    .map(|i| {
                        crate::spawn(async move {
                            crate::sleep(Duration::from_millis(20)).await;
                            i
                        })
                    })
                    .collect();
                let stuck = crate::spawn(std::future::pending::<()>());
                let during = inner.core().sched.registry_capacity();
                for h in burst {
                    h.await.unwrap();
                }
                // The loop blocks here: the late tasks are all that is left.
                crate::sleep(Duration::from_millis(2)).await;
                let after = inner.core().sched.registry_capacity();
                assert_eq!(
                    crate::all_tasks().len(),
                    12,
                    "the main task, ten late ones, the stuck one"
                );
                stuck.cancel();
                assert!(stuck.await.unwrap_err().is_cancelled());
                let mut outputs = Vec::new();
                for h in late {
                    outputs.push(h.await.unwrap());
                }
                (during, after, outputs)
            })
            .unwrap();
        assert!(during >= 20_000, "the burst took {during} slots");
        assert!(after <= super::sched::KEEP_SLOTS, "{after} slots kept for 12 tasks");
        assert_eq!(outputs, (0..10).collect::<Vec<_>>());
        assert_eq!(lp.task_count(), 0);
        // A second burst takes slots again.
        let n = lp
            .run_until_complete(async {
                let hs: Vec<_> = (0..3000u32).map(|i| crate::spawn(async move { i })).collect();
                let mut n = 0;
                for h in hs {
                    n += h.await.unwrap();
                }
                n
            })
            .unwrap();
        assert_eq!(n, (0..3000).sum::<u32>());
    }
}
