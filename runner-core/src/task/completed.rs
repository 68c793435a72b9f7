//! [`as_completed`]: the outputs of tasks in the order they finish.
//!
//! Each handle is polled with a waker of its own that records its index in
//! a shared ready list, so a wake-up polls only the handles that finished:
//! n tasks cost O(n) polls, not O(n²).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures_core::Stream;

use super::handle::{JoinError, JoinHandle};

/// The outputs of `handles` in the order the tasks finish, each with its
/// position in `handles` (asyncio's `as_completed`, tokio's
/// `JoinSet::join_next`). A [`Stream`]; `next()` from `futures` or
/// `futures-lite`'s `StreamExt`, or [`AsCompleted::next`].
///
/// ```
/// use std::time::Duration;
/// use runner_core::{as_completed, sleep, spawn};
///
/// let order = runner_core::run(async {
///     let handles = [30u64, 10, 20].map(|ms| {
///         spawn(async move {
///             sleep(Duration::from_millis(ms)).await;
///             ms
///         })
///     });
///     let mut done = as_completed(handles);
///     let mut order = Vec::new();
///     while let Some((index, out)) = done.next().await {
///         order.push((index, out.unwrap()));
///     }
///     order
/// })
/// .unwrap();
/// assert_eq!(order, [(1, 10), (2, 20), (0, 30)]);
/// ```
pub fn as_completed<T: 'static>(handles: impl IntoIterator<Item = JoinHandle<T>>) -> AsCompleted<T> {
    let handles: Vec<Option<JoinHandle<T>>> = handles.into_iter().map(Some).collect();
    let ready = Arc::new(Ready {
        indices: Mutex::new((0..handles.len()).collect()),
        waker: Mutex::new(None),
    });
    let wakers = (0..handles.len())
        .map(|index| {
            Waker::from(Arc::new(IndexWaker {
                index,
                ready: ready.clone(),
            }))
        })
        .collect();
    AsCompleted {
        left: handles.len(),
        handles,
        wakers,
        ready,
    }
}

/// The stream of [`as_completed`].
pub struct AsCompleted<T: 'static> {
    handles: Vec<Option<JoinHandle<T>>>,
    wakers: Vec<Waker>,
    ready: Arc<Ready>,
    left: usize,
}

struct Ready {
    /// Handles to poll: woken, or never polled.
    indices: Mutex<VecDeque<usize>>,
    waker: Mutex<Option<Waker>>,
}

struct IndexWaker {
    index: usize,
    ready: Arc<Ready>,
}

impl Wake for IndexWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready
            .indices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(self.index);
        let waker = self.ready.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T: 'static> AsCompleted<T> {
    /// The next task to finish: its position and output; `None` when all
    /// were returned.
    pub async fn next(&mut self) -> Option<(usize, Result<T, JoinError>)> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// How many tasks have not been returned yet.
    pub fn len(&self) -> usize {
        self.left
    }

    /// Whether every task was returned.
    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<T: 'static> Stream for AsCompleted<T> {
    type Item = (usize, Result<T, JoinError>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        *self.ready.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
        loop {
            let next = self.ready.indices.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            let Some(index) = next else {
                return Poll::Pending;
            };
            let this = &mut *self;
            let Some(handle) = this.handles[index].as_mut() else {
                continue;
            };
            let mut own = Context::from_waker(&this.wakers[index]);
            if let Poll::Ready(out) = Pin::new(handle).poll(&mut own) {
                this.handles[index] = None;
                this.left -= 1;
                return Poll::Ready(Some((index, out)));
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T: 'static> fmt::Debug for AsCompleted<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsCompleted").field("left", &self.left).finish()
    }
}
