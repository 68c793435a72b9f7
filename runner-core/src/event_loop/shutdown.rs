//! Closing: what [`EventLoop::close`] does (asyncio's `loop.close()`), and
//! the pieces the runner's close sequence drives: cancelling every task,
//! finalizing async generators, dropping a task that outlived its close
//! deadline.

use std::rc::Rc;
use std::time::Instant;

use super::core::{AsyncGenFinalizer, LoopCore};
use super::{EventLoop, State};
use crate::executor;
use crate::reactor;
use crate::runtime::{ExceptionContext, Remote};
use crate::task::raw::TaskRef;
use crate::task::sched;
use crate::task::JoinHandle;
use crate::time::driver as time;
use crate::Error;

impl EventLoop {
    /// Closes the loop: drops pending callbacks, timers and tasks (a task
    /// still alive is dropped, i.e. cancelled without running again; one
    /// whose future panics as it is dropped, with no handle left to tell,
    /// is reported), releases the poller's file descriptors. Closing twice
    /// is a no-op; closing a running loop fails with [`Error::LoopRunning`].
    pub fn close(&self) -> Result<(), Error> {
        match self.core.state.get() {
            State::Running => Err(Error::LoopRunning),
            State::Closed => Ok(()),
            State::Idle => {
                if self.get_debug() {
                    self.report_left_open();
                }
                self.core.release();
                Ok(())
            }
        }
    }

    /// Debug mode, at close: what is still open is reported (tasks still
    /// pending, noting the ones never polled; fd sources still registered).
    fn report_left_open(&self) {
        for task in self.core.sched.live_tasks() {
            let core = task.core();
            let never = if core.was_polled() {
                "it is pending"
            } else {
                "it was never polled"
            };
            self.core.report(ExceptionContext {
                message: format!(
                    "task was destroyed but {never}: the loop closed before it finished (await or cancel \
                     your tasks before closing; Runner::close does)"
                ),
                panic: None,
                task: Some(self.core.sched.info(task.raw())),
            });
        }
        let sources = self.core.reactor.source_count();
        if sources > 0 {
            self.core.report(ExceptionContext::new(format!(
                "{sources} file descriptor source(s) were still registered when the loop closed; \
                 close sockets and remove readers/writers before closing the loop"
            )));
        }
    }

    /// Closes every async generator started on this loop and not finished,
    /// running their cleanup, async cleanup included (close step 2;
    /// asyncio's `shutdown_asyncgens`). Generators started afterwards are not
    /// tracked. Fails with [`Error::LoopRunning`] inside the running loop.
    pub fn shutdown_asyncgens(&self) -> Result<(), Error> {
        let closing = self.begin_asyncgen_shutdown()?;
        if !closing.is_empty() {
            self.run_until(|| closing.iter().all(|h| h.is_done()))?;
        }
        self.finish_asyncgen_shutdown(closing);
        Ok(())
    }

    /// Close step 2's first half: a task closing each async generator
    /// still open. The caller drives the loop until they are done (or it
    /// gives up on them), then calls `finish_asyncgen_shutdown`.
    pub(crate) fn begin_asyncgen_shutdown(&self) -> Result<Vec<JoinHandle<()>>, Error> {
        self.check_open()?;
        if self.is_running() {
            return Err(Error::LoopRunning);
        }
        self.core.asyncgens_shut_down.set(true);
        if self.core.asyncgens.borrow().is_empty() {
            return Ok(Vec::new());
        }
        let gens: Vec<Rc<dyn AsyncGenFinalizer>> = std::mem::take(&mut *self.core.asyncgens.borrow_mut())
            .into_iter()
            .filter_map(|g| g.upgrade())
            .filter(|g| !g.is_finished())
            .collect();
        Ok(gens
            .into_iter()
            .map(|g| {
                let h = self.spawn(g.aclose());
                h.set_name("async generator finalizer");
                h
            })
            .collect())
    }

    /// Reports the generators whose cleanup panicked.
    pub(crate) fn finish_asyncgen_shutdown(&self, closing: Vec<JoinHandle<()>>) {
        for mut h in closing {
            if let Some(Err(e)) = h.take_outcome() {
                if e.is_panic() {
                    self.core.report(ExceptionContext {
                        message: "an error occurred during closing of an asynchronous generator".into(),
                        panic: e.panic_message(),
                        task: None,
                    });
                }
            }
        }
    }

    /// Cancels every task still alive on the loop; returns them.
    pub(crate) fn cancel_all_tasks(&self) -> Vec<TaskRef> {
        if self.core.sched.task_count() == 0 {
            return Vec::new();
        }
        let tasks = self.core.sched.live_tasks();
        for task in &tasks {
            task.cancel();
        }
        tasks
    }

    /// Makes a task drop its future at its next scheduling, without running
    /// its code again (its destructors run, its async cleanup does not):
    /// what a close does with a task that outlived the close timeout. The
    /// caller drives the loop for it to happen.
    pub(crate) fn drop_task(&self, task: &TaskRef) {
        task.force_drop();
    }

    /// Marks the start of close step 1; panics of tasks finishing while the
    /// guard lives are reported as shutdown errors.
    pub(crate) fn enter_shutdown(&self) -> impl Drop + '_ {
        struct Shutdown<'a>(&'a LoopCore);
        impl Drop for Shutdown<'_> {
            fn drop(&mut self) {
                self.0.sched.set_shutting_down(false);
            }
        }
        self.core.sched.set_shutting_down(true);
        Shutdown(&self.core)
    }

    /// Runs until `done()`, also waking at the real-time instant `wake_at()`
    /// gives (asked again after every iteration), so that `done` can look
    /// at the clock: the deadlines of closing are real time, even on a
    /// virtual clock.
    pub(crate) fn run_until_waking(
        &self,
        wake_at: impl Fn() -> Option<Instant>,
        done: impl Fn() -> bool,
    ) -> Result<bool, Error> {
        let result = self.run_until(|| {
            self.core.real_deadline.set(wake_at());
            done()
        });
        self.core.real_deadline.set(None);
        result
    }
}

impl LoopCore {
    /// Drops everything the loop holds; the close of [`EventLoop::close`]
    /// without its checks. Every live task's future is dropped (with this
    /// loop's layers current, so that what its destructors do lands here);
    /// reports go to the loop's handler, or the default one when the loop
    /// is being dropped.
    pub(crate) fn release(&self) {
        self.state.set(State::Closed);
        self.shared.close();
        // As asyncio's close: the signals go back to what they were.
        if !self.signal_handlers.borrow().is_empty() {
            self.remove_signal_handlers();
        }
        // What other threads queued is taken, so no task is left behind
        // in the remote queue.
        while let Some(msg) = self.shared.try_recv() {
            match msg {
                Remote::Wake(task) => self.sched.schedule_remote(task),
                Remote::Call(f) => drop(f),
            }
        }
        if self.sched.task_count() == 0 && !self.sched.has_ready() {
            self.sched.close();
        } else {
            let _sched = sched::enter(&self.sched);
            let _time = time::enter(&self.time);
            let _reactor = reactor::enter(&self.reactor);
            let _executor = executor::enter(&self.executor);
            self.sched.close();
        }
        let timers = self.time.timers.borrow_mut().clear();
        drop(timers);
        self.asyncgens.borrow_mut().clear();
        // As asyncio's close: stop the executors without waiting for them.
        for executor in self.executor.take_all() {
            executor.begin_shutdown();
            executor.join_exited();
        }
        self.reactor.close();
    }
}
