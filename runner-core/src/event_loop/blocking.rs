//! The loop's default executor, from the loop's side: submitting
//! blocking jobs (asyncio's `run_in_executor`), replacing the pool, and
//! shutting it down (close step 3).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::EventLoop;
use crate::executor::{self, Blocking, Executor};
use crate::runtime::ExceptionContext;
use crate::Error;

impl EventLoop {
    /// Runs the blocking function `f` on the loop's default executor (a
    /// thread pool started lazily) and returns a future of its result
    /// (asyncio's `run_in_executor(None, f)`). A panic in `f` comes back as
    /// a [`JoinError`](crate::JoinError); after the executor was shut down
    /// (or the loop closed) the job is refused and the future gives a
    /// cancelled `JoinError`.
    pub fn run_in_executor<T, F>(&self, f: F) -> Blocking<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.core.executor.submit(f)
    }

    /// How many executor threads are running now (the default pool and any
    /// pool it replaced that has not finished yet).
    pub fn executor_thread_count(&self) -> usize {
        self.core.executor.thread_count()
    }

    /// How many blocking-pool jobs are queued or running.
    pub(crate) fn blocking_jobs_in_flight(&self) -> usize {
        self.core.executor.jobs_in_flight()
    }

    /// Replaces the default executor with a pool of this configuration
    /// (asyncio's `set_default_executor`). The old pool takes no new jobs;
    /// its running ones finish, and its threads are joined at shutdown with
    /// the new pool's. New jobs go to the new pool, started lazily.
    pub fn set_default_executor(&self, pool: executor::ThreadPool) -> Result<(), Error> {
        self.check_open()?;
        self.core.executor.set_pool(pool);
        Ok(())
    }

    /// Shuts the default executor down (close step 3): no new jobs are taken,
    /// queued and running jobs finish, and the loop runs while it waits for
    /// the threads, up to `timeout` (`None`: the loop's configured timeout,
    /// by default 5 minutes). Past it, a warning naming the timeout goes to
    /// the exception handler and the threads are left detached.
    ///
    /// Fails with [`Error::LoopRunning`] when called from inside the running
    /// loop (it would block the loop), [`Error::LoopClosed`] after close.
    pub fn shutdown_default_executor(&self, timeout: Option<Duration>) -> Result<(), Error> {
        let shutdown = self.begin_executor_shutdown(timeout)?;
        if shutdown.is_done() {
            return Ok(());
        }
        // Real time, even on a virtual clock: the reactor's wait is bounded
        // by it, and exiting workers wake the loop.
        let deadline = shutdown.deadline;
        let _ = self.run_until_waking(|| deadline, || shutdown.is_done() || shutdown.is_past_deadline());
        shutdown.finish(self);
        Ok(())
    }

    /// Close step 3's first half: stops the executors taking jobs. The
    /// caller drives the loop until [`ExecutorShutdown::is_done`] (or its
    /// deadline), then calls [`ExecutorShutdown::finish`].
    pub(crate) fn begin_executor_shutdown(&self, timeout: Option<Duration>) -> Result<ExecutorShutdown, Error> {
        self.check_open()?;
        if self.is_running() {
            return Err(Error::LoopRunning);
        }
        let executors = self.core.executor.take_all();
        for executor in &executors {
            executor.begin_shutdown();
        }
        let timeout = timeout.unwrap_or(self.core.executor.shutdown_timeout);
        Ok(ExecutorShutdown {
            // No pool, nothing to wait for (and no clock to read).
            deadline: if executors.is_empty() {
                None
            } else {
                Instant::now().checked_add(timeout)
            },
            timeout,
            executors,
        })
    }
}

/// The executors being shut down in close step 3.
pub(crate) struct ExecutorShutdown {
    /// Real time; `None` when the timeout is too long to represent.
    pub(crate) deadline: Option<Instant>,
    timeout: Duration,
    executors: Vec<Arc<Executor>>,
}

impl ExecutorShutdown {
    /// Whether every worker thread has exited.
    pub(crate) fn is_done(&self) -> bool {
        self.executors.iter().all(|e| e.all_exited())
    }

    pub(crate) fn is_past_deadline(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Jobs still queued or running on these executors.
    pub(crate) fn jobs_in_flight(&self) -> usize {
        self.executors.iter().map(|e| e.jobs_in_flight()).sum()
    }

    /// Joins the threads that exited; when some are still running past the
    /// deadline, warns (naming the timeout) and leaves them detached.
    pub(crate) fn finish(self, lp: &EventLoop) {
        for executor in &self.executors {
            executor.join_exited();
        }
        if !self.is_done() && self.is_past_deadline() {
            lp.core.report(ExceptionContext::new(format!(
                "the default executor did not finish joining its threads within {:?}: {} blocking job(s) \
                 (spawn_blocking / run_in_executor) still running; they were left running detached (configure \
                 the timeout with LoopBuilder::executor_shutdown_timeout)",
                Duration::from_millis(self.timeout.as_millis().try_into().unwrap_or(u64::MAX)),
                self.jobs_in_flight()
            )));
        }
    }
}
