//! Random programs of cancellation, for the randomized tests: trees of
//! spawns, joins, task groups (some ended early by `TaskGroup::cancel`),
//! `timeout`, `scoped_timeout` (its deadline moved by the code inside,
//! too), `wait_for`, `cancellable` (with resume), `shield`, self-cancels,
//! `uncancel`, `as_completed`, joins and races of two programs in one
//! task, async generators, cancels from another
//! thread and blocking jobs, drawn from a seed; the wider ones
//! ([`Rng::wider`]) also hand handles to other tasks to await, and keep the
//! handles of task-group children to await or cancel. Every wait in them is a
//! timer (or a job or thread that ends at once), so every program ends.
//!
//! Shared by `runner-core/tests/cancellation_fuzz.rs` and the Ctrl-C
//! fixture (`tests/fixtures/ctrl_c.rs`, through `#[path]`): it uses
//! runner-core and std only.
#![allow(dead_code)]

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use runner_core::{
    as_completed, asyncgen, cancellable, current_task, get_running_loop, scoped_timeout, scoped_timeout_with, shield,
    sleep, spawn, spawn_blocking, task_group, timeout, wait_for, yield_now, BoxError,
};

/// xorshift64: small, and the same sequence everywhere.
pub struct Rng {
    state: Cell<u64>,
    /// The programs also hand handles to other tasks and keep the handles
    /// of task-group children (draws of their own: without them, a seed
    /// gives the program it always gave).
    wider: bool,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let rng = Rng {
            state: Cell::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
            wider: false,
        };
        for _ in 0..8 {
            rng.next();
        }
        rng
    }

    /// The generator of the wider programs (see `wider`).
    pub fn wider(seed: u64) -> Rng {
        Rng {
            wider: true,
            ..Rng::new(seed)
        }
    }

    pub fn next(&self) -> u64 {
        let mut x = self.state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state.set(x);
        x
    }

    pub fn below(&self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn ms(&self, n: u64) -> Duration {
        Duration::from_millis(self.below(n))
    }
}

/// A program: its output is a count, or a failure of its own making.
pub type Node = Pin<Box<dyn Future<Output = Result<u32, BoxError>>>>;

/// A random program of at most `depth` levels. What each step draws from
/// the generator depends on the order the steps run in, which the runtime
/// decides: the same seed gives the same program on the same runtime.
pub fn node(rng: Rc<Rng>, depth: u32) -> Node {
    Box::pin(async move {
        let kind = match depth {
            0 => rng.below(3),
            4.. => 3 + rng.below(15),
            _ => rng.below(18),
        };
        let child = || node(rng.clone(), depth - 1);
        match kind {
            0 => {
                sleep(rng.ms(20)).await;
                Ok(1)
            }
            1 => {
                yield_now().await;
                Ok(1)
            }
            2 if rng.below(4) == 0 => Err("a failure".into()),
            2 => Ok(0),
            3 => {
                let handle = spawn(child());
                match rng.below(4) {
                    0 => {
                        handle.cancel();
                        let _ = handle.await;
                    }
                    1 => {
                        let _ = handle.await;
                    }
                    2 => {
                        yield_now().await;
                        handle.cancel();
                    }
                    _ if !rng.wider || rng.below(2) == 0 => drop(handle),
                    _ => {
                        // Handed to another task, which awaits it; that
                        // one is cancelled, awaited or dropped.
                        let waiter = spawn(async move { handle.await.map_err(BoxError::from) });
                        match rng.below(4) {
                            0 => {
                                sleep(rng.ms(5)).await;
                                waiter.cancel();
                                let _ = waiter.await;
                            }
                            1 => {
                                let _ = waiter.await;
                            }
                            2 => {
                                yield_now().await;
                                let cancel = waiter.cancel_handle();
                                drop(waiter);
                                cancel.cancel();
                            }
                            _ => drop(waiter),
                        }
                    }
                }
                Ok(1)
            }
            4 => {
                let children = rng.below(4);
                // Sometimes a child (or the body) ends the group early:
                // `TaskGroup::cancel` after a while.
                let stop_after = (rng.below(4) == 0).then(|| rng.ms(15));
                let brng = rng.clone();
                let r = task_group(|tg| async move {
                    // Some children's handles kept, to be awaited or
                    // cancelled by the body; some cancelled at once.
                    let mut kept = Vec::new();
                    for _ in 0..children {
                        let h = tg.spawn(child());
                        match brng.wider.then(|| brng.below(4)) {
                            Some(0) => kept.push(h),
                            Some(1) => {
                                h.cancel();
                            }
                            _ => drop(h),
                        }
                    }
                    if let Some(after) = stop_after {
                        let stop = tg.clone();
                        tg.spawn(async move {
                            sleep(after).await;
                            stop.cancel();
                            Ok::<u32, BoxError>(0)
                        });
                    }
                    let out = child().await;
                    for h in kept {
                        if brng.below(2) == 0 {
                            let _ = h.await;
                        } else {
                            h.cancel();
                        }
                    }
                    out
                })
                .await;
                Ok(r.map_or(0, |_| 1))
            }
            5 if rng.below(2) == 0 => Ok(scoped_timeout(rng.ms(15), child()).await.is_ok().into()),
            5 => {
                // Its deadline moved (or taken away) by the code inside,
                // between two programs; refused once it fired.
                let (first, then) = (rng.ms(15), rng.below(20));
                let r = scoped_timeout_with(Some(clock() + first), |cm| async move {
                    let a = child().await.unwrap_or(0);
                    let when = (then < 15).then(|| clock() + Duration::from_millis(then));
                    let moved = cm.reschedule(when);
                    assert_eq!(moved.is_err(), cm.expired(), "refused only once fired: {moved:?}");
                    Ok::<u32, BoxError>(a + child().await.unwrap_or(0))
                })
                .await;
                Ok(r.map_or(0, |r| r.unwrap_or(0)))
            }
            6 => Ok(timeout(rng.ms(15), child()).await.is_ok().into()),
            7 => match cancellable(child()).await {
                Ok(out) => out,
                Err(cancelled) => {
                    sleep(rng.ms(5)).await;
                    if rng.below(2) == 0 {
                        cancelled.resume().await;
                    }
                    Ok(0)
                }
            },
            8 => shield(child()).await,
            9 => {
                if rng.below(3) == 0 {
                    current_task().unwrap().cancel();
                }
                child().await
            }
            10 => {
                let handle = spawn(child());
                Ok(wait_for(rng.ms(15), handle).await.is_ok().into())
            }
            11 if rng.below(2) == 0 => {
                // Both, polled together in this task.
                let (a, b) = Zip::new(child(), child()).await;
                Ok(a.unwrap_or(0) + b.unwrap_or(0))
            }
            11 => {
                // The first of two to finish; the other is dropped.
                Race::new(child(), child()).await
            }
            12 => {
                let me = current_task().unwrap();
                if me.cancelling() > 0 && rng.below(2) == 0 {
                    me.uncancel();
                }
                child().await
            }
            13 => {
                let handle = spawn(child());
                Ok(scoped_timeout(rng.ms(15), handle).await.is_ok().into())
            }
            16 => {
                // Cancelled from another thread, while it runs or after.
                let handle = spawn(child());
                let cancel = handle.cancel_handle();
                let canceller = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_micros(50));
                    cancel.cancel();
                });
                let out = handle.await;
                canceller.join().unwrap();
                Ok(out.is_ok().into())
            }
            17 => {
                // A blocking job's result, a real-time event on a paused clock.
                let job = spawn_blocking(|| 1u32).await.unwrap_or(0);
                Ok(job + child().await.unwrap_or(0))
            }
            14 => {
                let handles: Vec<_> = (0..=rng.below(3)).map(|_| spawn(child())).collect();
                let mut done = as_completed(handles);
                let mut n = 0;
                while done.next().await.is_some() {
                    n += 1;
                    if rng.below(4) == 0 {
                        break;
                    }
                }
                Ok(n)
            }
            _ => {
                // A generator whose steps run programs of their own, and
                // whose close awaits: taken for a while, then closed,
                // dropped (the loop closes it) or drained.
                let body_rng = rng.clone();
                let mut gen = asyncgen(move |mut y| async move {
                    for i in 0..3u32 {
                        if y.yield_(i).await.is_err() {
                            sleep(body_rng.ms(5)).await;
                            return;
                        }
                        let _ = node(body_rng.clone(), depth - 1).await;
                    }
                });
                let mut n = 0;
                for _ in 0..rng.below(4) {
                    n += u32::from(gen.next().await.is_some());
                }
                match rng.below(3) {
                    0 => gen.aclose().await,
                    1 => drop(gen),
                    _ => {
                        while gen.next().await.is_some() {
                            n += 1;
                        }
                    }
                }
                Ok(n)
            }
        }
    })
}

/// The running loop's clock.
fn clock() -> std::time::Instant {
    get_running_loop().expect("inside a run").time()
}

/// Both futures, polled together in one task (futures' `join!`, without
/// the dependency: the Ctrl-C fixture has runner-core and std only).
pub struct Zip<A: Future, B: Future> {
    a: Pin<Box<A>>,
    b: Pin<Box<B>>,
    a_out: Option<A::Output>,
    b_out: Option<B::Output>,
}

impl<A: Future, B: Future> Zip<A, B> {
    pub fn new(a: A, b: B) -> Zip<A, B> {
        Zip {
            a: Box::pin(a),
            b: Box::pin(b),
            a_out: None,
            b_out: None,
        }
    }
}

impl<A: Future, B: Future> Unpin for Zip<A, B> {}

impl<A: Future, B: Future> Future for Zip<A, B> {
    type Output = (A::Output, B::Output);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if this.a_out.is_none() {
            if let Poll::Ready(out) = this.a.as_mut().poll(cx) {
                this.a_out = Some(out);
            }
        }
        if this.b_out.is_none() {
            if let Poll::Ready(out) = this.b.as_mut().poll(cx) {
                this.b_out = Some(out);
            }
        }
        if this.a_out.is_some() && this.b_out.is_some() {
            return Poll::Ready((this.a_out.take().unwrap(), this.b_out.take().unwrap()));
        }
        Poll::Pending
    }
}

/// The first of two futures to finish, polled together in one task; the
/// other is dropped then (a `select!`'s losing branch).
pub struct Race<A, B> {
    a: Option<Pin<Box<A>>>,
    b: Option<Pin<Box<B>>>,
}

impl<A, B> Race<A, B> {
    pub fn new(a: A, b: B) -> Race<A, B> {
        Race {
            a: Some(Box::pin(a)),
            b: Some(Box::pin(b)),
        }
    }
}

impl<A, B> Unpin for Race<A, B> {}

impl<T, A: Future<Output = T>, B: Future<Output = T>> Future for Race<A, B> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if let Poll::Ready(out) = self.a.as_mut().unwrap().as_mut().poll(cx) {
            self.a = None;
            self.b = None;
            return Poll::Ready(out);
        }
        if let Poll::Ready(out) = self.b.as_mut().unwrap().as_mut().poll(cx) {
            self.a = None;
            self.b = None;
            return Poll::Ready(out);
        }
        Poll::Pending
    }
}
