//! The close sequence of a [`Runner`] (the module docs of `runners` list
//! its steps), with its deadline and what a Ctrl-C during it does.

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::{Interrupted, Runner, State, CLOSE_HINT_AFTER, CLOSE_TIMEOUT_MESSAGE};
use crate::event_loop::{self, EventLoop, ExceptionContext};
use crate::signal::{self, Phase};
use crate::task;
use crate::task::raw::TaskRef;
use crate::Error;

/// Absolute (real-time) bounds on a close, set by `#[runner_test(timeout)]`
/// so that a timed-out test's close ends within the grace whatever path
/// closes the runner.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CloseDeadlines {
    /// For steps 1 and 2 (as `close_timeout`).
    pub(crate) tasks: Option<Instant>,
    /// For step 3 (as `executor_shutdown_timeout`).
    pub(crate) executor: Option<Instant>,
}

/// The earlier of two optional instants.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Runner {
    /// Closes the runner: the shutdown sequence of the [module
    /// docs](crate::runners). A second call does nothing. A runner closed
    /// before it was used is closed too: `run` and `get_loop` fail
    /// afterwards.
    ///
    /// After a final Ctrl-C (the last run returned `KeyboardInterrupt`
    /// without waiting for its main task), or on a Ctrl-C during the
    /// close, it does not wait: the remaining tasks are dropped rather than
    /// driven, async generators are not finalized, blocking jobs are left
    /// running, the loop is closed, and the result is
    /// [`Error::KeyboardInterrupt`].
    ///
    /// Fails with [`Error::LoopRunning`], changing nothing, when called from
    /// inside the runner's own running loop.
    pub fn close(&self) -> Result<(), Error> {
        if let State::Initialized { event_loop, .. } = &*self.state.borrow() {
            if event_loop.is_running() {
                return Err(Error::LoopRunning);
            }
        }
        let state = std::mem::replace(&mut *self.state.borrow_mut(), State::Closed);
        let State::Initialized {
            event_loop,
            context,
            set_event_loop,
        } = state
        else {
            return Ok(());
        };
        let last_run = self.last_run.borrow_mut().take();
        let deadlines = self.deadlines.get();
        let closing = Closing {
            runner: self,
            event_loop: &event_loop,
            deadline: earliest(
                self.close_timeout.and_then(|t| Instant::now().checked_add(t)),
                deadlines.tasks,
            ),
            close_timeout: self.close_timeout,
            hard_before: last_run.as_ref().and_then(|r| r.hard),
            last_run: RefCell::new(last_run),
            listening: Cell::new(false),
            hint_at: Cell::new(None),
            hinted: Cell::new(false),
            listened: Cell::new(false),
        };
        let steps: [(&str, &dyn Fn()); 4] = [
            ("cancelling the remaining tasks", &|| closing.cancel_all_tasks()),
            ("finalizing async generators", &|| closing.shutdown_asyncgens()),
            ("shutting down the default executor", &|| {
                let timeout = match deadlines.executor {
                    Some(at) => {
                        let left = at.saturating_duration_since(Instant::now());
                        Some(self.executor_shutdown_timeout.map_or(left, |t| t.min(left)))
                    }
                    None => self.executor_shutdown_timeout,
                };
                closing.shutdown_executor(timeout)
            }),
            ("closing the loop", &|| {
                if set_event_loop {
                    event_loop::set_event_loop(None);
                }
                let _ = event_loop.close();
            }),
        ];
        for (what, step) in steps {
            // A failing step must not skip the next ones.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(step)) {
                event_loop.default_exception_handler(&ExceptionContext {
                    message: format!("runner close: {what} panicked; the remaining steps still ran"),
                    panic: Some(task::panic_message(panic.as_ref())),
                    task: None,
                });
            }
        }
        let aborted_by = closing.aborted_by();
        if closing.listened.get() {
            // Joins the watchdog, if the close had it.
            drop(self.release_interrupts(&event_loop, closing.listening.get()));
        }
        drop(closing);
        drop(context);
        match aborted_by {
            Some(sig) => Err(Error::interrupted_by(sig)),
            None => Ok(()),
        }
    }
}

/// The state of one close: whether a final interrupt came (before or
/// during it), and the one-time hint of what it waits for.
struct Closing<'a> {
    runner: &'a Runner,
    event_loop: &'a EventLoop,
    /// When steps 1 and 2 give up on what is left (real time).
    deadline: Option<Instant>,
    /// What the deadline came from, for reports (`None`: a test's grace).
    close_timeout: Option<Duration>,
    /// The final interrupt of the run before the close.
    hard_before: Option<i32>,
    /// What the interrupts of the run before the close came to.
    last_run: RefCell<Option<Interrupted>>,
    /// Whether the close takes the interrupt signals: from when a step
    /// first has to wait (a close with nothing to wait for costs no signal
    /// bookkeeping); the loop keeps the state.
    listening: Cell<bool>,
    /// When to say what the close waits for (after a Ctrl-C only).
    hint_at: Cell<Option<Instant>>,
    hinted: Cell<bool>,
    listened: Cell<bool>,
}

impl Closing<'_> {
    /// The signal of a final interrupt, before or during the close.
    fn aborted_by(&self) -> Option<i32> {
        self.hard_before.or_else(|| {
            self.listening
                .get()
                .then(|| self.event_loop.core().interrupts.hard())
                .flatten()
        })
    }

    fn aborted(&self) -> bool {
        self.aborted_by().is_some()
    }

    /// Takes the interrupt signals for the rest of the close (once), and
    /// starts the hint's clock when the run before was interrupted.
    fn listen(&self) {
        if self.listened.replace(true) {
            return;
        }
        let last = self.last_run.borrow_mut().take();
        if last.as_ref().is_some_and(|r| r.soft.is_some()) {
            self.hint_at.set(Some(Instant::now() + CLOSE_HINT_AFTER));
        }
        let watchdog = last.and_then(|r| r.watchdog);
        let listening = self
            .runner
            .take_interrupts(self.event_loop, Phase::Closing, None, watchdog);
        self.listening.set(listening);
    }

    /// Drives the loop until `done` (or a final interrupt, or `deadline`,
    /// real time), printing the hint once when it is due.
    fn drive(&self, deadline: Option<Instant>, waiting_for: impl Fn() -> String, done: impl Fn() -> bool) {
        self.listen();
        let wake_at = || {
            let hint = self.hint_at.get().filter(|_| !self.hinted.get());
            match (deadline, hint) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let _ = self.event_loop.run_until_waking(wake_at, || {
            if done() || self.aborted() || deadline.is_some_and(|d| Instant::now() >= d) {
                return true;
            }
            if self.hint_at.get().is_some_and(|at| Instant::now() >= at) && !self.hinted.replace(true) {
                let again = if signal::final_in_handler() {
                    "exits now"
                } else {
                    "stops the wait"
                };
                eprintln!("runner: closing is waiting for {}; Ctrl-C again {again}", waiting_for());
            }
            false
        });
    }

    /// Close step 1: cancel all tasks alive on the loop, drive them to the
    /// end, report the ones that panicked. After a final interrupt, they
    /// are only cancelled: closing the loop drops them.
    fn cancel_all_tasks(&self) {
        let event_loop = self.event_loop;
        let tasks = event_loop.cancel_all_tasks();
        if tasks.is_empty() || self.aborted() {
            return;
        }
        // Panics of the tasks finishing now are reported, as asyncio's
        // "unhandled exception during asyncio.run() shutdown".
        let _shutdown = event_loop.enter_shutdown();
        let waiting_for = || {
            let sched = &event_loop.core().sched;
            let pending: Vec<String> = tasks
                .iter()
                .filter(|t| !t.core().is_done())
                .map(|t| sched.info(t.raw()).to_string())
                .collect();
            let mut what = format!(
                "{} task(s) that did not finish after cancellation ({})",
                pending.len(),
                pending.join("; ")
            );
            let jobs = event_loop.blocking_jobs_in_flight();
            if jobs > 0 {
                what.push_str(&format!(" and {jobs} blocking job(s) still running"));
            }
            what
        };
        self.drive(self.deadline, waiting_for, || tasks.iter().all(|t| t.core().is_done()));
        self.give_up_on(&tasks, "ignored its cancellation");
    }

    /// Close step 2: finalize the async generators still open, within the
    /// deadline.
    fn shutdown_asyncgens(&self) {
        if self.aborted() {
            return;
        }
        let Ok(closing) = self.event_loop.begin_asyncgen_shutdown() else {
            return;
        };
        if !closing.is_empty() {
            let waiting_for = || format!("{} async generator(s) running their cleanup", closing.len());
            self.drive(self.deadline, waiting_for, || closing.iter().all(|h| h.is_done()));
            let tasks: Vec<TaskRef> = closing.iter().map(|h| h.task_ref()).collect();
            self.give_up_on(&tasks, "is an async generator whose cleanup did not finish");
        }
        self.event_loop.finish_asyncgen_shutdown(closing);
    }

    /// Past the deadline: reports each task of `tasks` still alive and
    /// drops it.
    fn give_up_on(&self, tasks: &[TaskRef], what: &str) {
        let past = self.deadline.is_some_and(|d| Instant::now() >= d);
        if !past || self.aborted() {
            return;
        }
        let bound = match self.close_timeout {
            Some(t) => format!("the close timeout of {t:?}"),
            None => "the test's timeout grace".to_string(),
        };
        let sched = &self.event_loop.core().sched;
        let left: Vec<&TaskRef> = tasks.iter().filter(|t| !t.core().is_done()).collect();
        for task in &left {
            self.event_loop.core().report(ExceptionContext {
                message: format!(
                    "{CLOSE_TIMEOUT_MESSAGE}: a task {what} and was still running after {bound}; it was dropped \
                     (its destructors ran, its async cleanup did not)"
                ),
                panic: None,
                task: Some(sched.info(task.raw())),
            });
            self.event_loop.drop_task(task);
        }
        // The drops happen at the tasks' next scheduling: now.
        if !left.is_empty() {
            let _ = self.event_loop.run_until(|| left.iter().all(|t| t.core().is_done()));
        }
    }

    /// Close step 3: shut the default executor down, waiting for its
    /// threads up to `timeout` (none after a final interrupt).
    fn shutdown_executor(&self, timeout: Option<Duration>) {
        let event_loop = self.event_loop;
        let Ok(shutdown) = event_loop.begin_executor_shutdown(timeout) else {
            return;
        };
        if !shutdown.is_done() && !self.aborted() {
            let jobs = || {
                format!(
                    "{} blocking job(s) (spawn_blocking / run_in_executor) still running",
                    shutdown.jobs_in_flight()
                )
            };
            self.drive(shutdown.deadline, jobs, || shutdown.is_done());
        }
        if !self.aborted() {
            shutdown.finish(event_loop);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The close order with the async-generator step, through the loop's
    //! registry (the generator type that registers itself comes later; this
    //! stand-in registers the same way).
    use std::cell::RefCell;
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::time::Duration;

    use super::*;
    use crate::event_loop::core::AsyncGenFinalizer;
    use crate::{cancellable, sleep, spawn, yield_now};

    struct FakeGen {
        log: Rc<RefCell<Vec<String>>>,
        finished: bool,
    }

    impl AsyncGenFinalizer for FakeGen {
        fn is_finished(&self) -> bool {
            self.finished
        }

        fn aclose(self: Rc<Self>) -> Pin<Box<dyn Future<Output = ()>>> {
            Box::pin(async move {
                self.log.borrow_mut().push("generator cleanup starts".into());
                sleep(Duration::from_millis(2)).await;
                let lp = crate::get_running_loop().unwrap();
                self.log
                    .borrow_mut()
                    .push(format!("generator async cleanup done, loop closed: {}", lp.is_closed()));
            })
        }
    }

    #[test]
    fn close_order_is_tasks_then_generators_then_executor_then_loop() {
        let log = Rc::new(RefCell::new(Vec::<String>::new()));
        let runner = Runner::new();
        let lp = runner.get_loop().unwrap();
        let open_gen = Rc::new(FakeGen {
            log: log.clone(),
            finished: false,
        });
        let done_gen = Rc::new(FakeGen {
            log: log.clone(),
            finished: true,
        });
        assert!(lp
            .core()
            .track_asyncgen(Rc::downgrade(&(open_gen.clone() as Rc<dyn AsyncGenFinalizer>))));
        assert!(lp
            .core()
            .track_asyncgen(Rc::downgrade(&(done_gen.clone() as Rc<dyn AsyncGenFinalizer>))));
        let l = log.clone();
        runner
            .run(async move {
                spawn(async move {
                    if cancellable(std::future::pending::<()>()).await.is_err() {
                        l.borrow_mut().push("task cancelled".into());
                        // The executor is still up during step 1.
                        let v = crate::spawn_blocking(|| 1).await.unwrap();
                        l.borrow_mut().push(format!("task used the executor: {v}"));
                    }
                });
                yield_now().await;
            })
            .unwrap();
        // A job left on the executor shows step 3 after step 2.
        let l = log.clone();
        let lp2 = lp.clone();
        drop(lp.run_in_executor(move || std::thread::sleep(Duration::from_millis(20))));
        runner.close().unwrap();
        l.borrow_mut().push(format!(
            "after close: executor threads {}, loop closed {}",
            lp2.executor_thread_count(),
            lp2.is_closed()
        ));
        assert_eq!(
            *log.borrow(),
            [
                "task cancelled",
                "task used the executor: 1",
                "generator cleanup starts",
                "generator async cleanup done, loop closed: false",
                "after close: executor threads 0, loop closed true",
            ]
        );
        // Generators started after the shutdown are not tracked.
        assert!(!lp
            .core()
            .track_asyncgen(Rc::downgrade(&(open_gen as Rc<dyn AsyncGenFinalizer>))));
    }
}
