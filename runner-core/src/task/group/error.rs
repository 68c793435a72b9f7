//! What a [`task_group`](super::task_group) scope gives when it gives no
//! value: [`TaskGroupError`] (asyncio's `ExceptionGroup`, or a
//! cancellation), with each [`Failure`] of a child or the body.
//!
//! This module uses `handle` (a panic's message) and `runtime` (task ids).

use std::any::Any;
use std::fmt;

use sync_wrapper::SyncWrapper;

use super::BoxError;
use crate::runtime::TaskId;
use crate::task::handle::panic_message;

/// One failure of a task group: a child's or the body's error, or panic.
pub struct Failure {
    task: Option<TaskId>,
    kind: FailureKind,
}

enum FailureKind {
    Error(BoxError),
    Panic {
        message: String,
        payload: SyncWrapper<Box<dyn Any + Send>>,
    },
}

impl Failure {
    pub(super) fn from_error(task: Option<TaskId>, e: BoxError) -> Failure {
        Failure {
            task,
            kind: FailureKind::Error(e),
        }
    }

    pub(super) fn from_panic(task: Option<TaskId>, payload: Box<dyn Any + Send>) -> Failure {
        Failure {
            task,
            kind: FailureKind::Panic {
                message: panic_message(payload.as_ref()),
                payload: SyncWrapper::new(payload),
            },
        }
    }

    /// The child that failed; `None` for the group's body.
    pub fn task(&self) -> Option<TaskId> {
        self.task
    }

    /// Whether it was a panic.
    pub fn is_panic(&self) -> bool {
        matches!(self.kind, FailureKind::Panic { .. })
    }

    /// The error, when it was one (not a panic). A nested group's failure
    /// is a [`TaskGroupError`]: `downcast_ref` finds it.
    pub fn error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &self.kind {
            FailureKind::Error(e) => Some(e.as_ref()),
            FailureKind::Panic { .. } => None,
        }
    }

    /// The panic's message, when it was a panic.
    pub fn panic_message(&self) -> Option<&str> {
        match &self.kind {
            FailureKind::Panic { message, .. } => Some(message),
            FailureKind::Error(_) => None,
        }
    }

    /// The error, or the failure back when it was a panic.
    pub fn into_error(self) -> Result<BoxError, Failure> {
        match self.kind {
            FailureKind::Error(e) => Ok(e),
            kind => Err(Failure { task: self.task, kind }),
        }
    }

    /// The panic payload (for [`std::panic::resume_unwind`]), or the
    /// failure back when it was an error.
    pub fn into_panic(self) -> Result<Box<dyn Any + Send>, Failure> {
        match self.kind {
            FailureKind::Panic { payload, .. } => Ok(payload.into_inner()),
            kind => Err(Failure { task: self.task, kind }),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.task {
            Some(id) => write!(f, "{id}")?,
            None => f.write_str("the body")?,
        }
        match &self.kind {
            FailureKind::Error(e) => write!(f, " failed: {e}"),
            FailureKind::Panic { message, .. } => write!(f, " panicked: {message}"),
        }
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Failure");
        d.field("task", &self.task);
        match &self.kind {
            FailureKind::Error(e) => d.field("error", e),
            FailureKind::Panic { message, .. } => d.field("panic", message),
        };
        d.finish()
    }
}

/// Why a [`task_group`](super::task_group) scope gave no value: failures of its children or
/// body (asyncio's `ExceptionGroup`), the cancellation of the task that
/// ran it, or [`TaskGroup::cancel`](super::TaskGroup::cancel) before the body finished.
pub struct TaskGroupError {
    pub(super) failures: Vec<Failure>,
    pub(super) ended: Ended,
}

/// How a scope without a value ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    Failed,
    OwnerCancelled,
    GroupCancelled,
}

impl TaskGroupError {
    /// The failures, in the order they happened; the body's (if it failed)
    /// last. Empty when the scope was only cancelled.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// The failures, by value.
    pub fn into_failures(self) -> Vec<Failure> {
        self.failures
    }

    /// Whether the task running the scope was cancelled and nothing
    /// failed: the cancellation goes on at the task's next suspension
    /// (catch it with [`cancellable`](crate::cancellable) around that, as with any).
    pub fn is_cancelled(&self) -> bool {
        self.ended == Ended::OwnerCancelled
    }

    /// Whether [`TaskGroup::cancel`](super::TaskGroup::cancel) ended the scope before its body gave
    /// a value, and nothing failed. No cancellation goes on: where asyncio
    /// goes on after the `async with` block, go on after the scope. (Handed
    /// on with `?` from the body or a child of an outer group, it is a
    /// failure there, as any error is: match it where the scope ends.)
    pub fn is_group_cancelled(&self) -> bool {
        self.ended == Ended::GroupCancelled
    }
}

impl fmt::Display for TaskGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ended {
            Ended::OwnerCancelled => {
                return f.write_str("the task running the TaskGroup was cancelled; its children were cancelled too");
            }
            Ended::GroupCancelled => {
                return f.write_str(
                    "the TaskGroup was cancelled with TaskGroup::cancel before its body gave a value; \
                     nothing failed",
                );
            }
            Ended::Failed => {}
        }
        let n = self.failures.len();
        write!(f, "{n} failure{} in a TaskGroup", if n == 1 { "" } else { "s" })?;
        for (i, failure) in self.failures.iter().enumerate() {
            write!(f, "{} {failure}", if i == 0 { ":" } else { ";" })?;
        }
        Ok(())
    }
}

impl fmt::Debug for TaskGroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroupError")
            .field("failures", &self.failures)
            .field("ended", &self.ended)
            .finish()
    }
}

impl std::error::Error for TaskGroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let e = self.failures.first()?.error()?;
        Some(e)
    }
}
