//! A task's memory: who holds it, when it is freed, and where what it owns
//! is dropped (runner-core/src/task/raw.rs). No sockets, no signals, so
//! that Miri runs it, which checks the `unsafe` of the task layer:
//!
//! ```text
//! cargo +nightly miri test -p runner-core --test task_memory
//! ```
//!
//! Every test counts drops through an `Arc` the task's future or output
//! holds: a task's allocation freed too early is a use-after-free (Miri
//! reports it), one never freed keeps the `Arc`'s count up (the tests
//! report it).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use runner_core::{cancellable, current_task, spawn, yield_now, EventLoop, JoinHandle};

/// Records the thread it is dropped on.
struct Tracked {
    alive: Arc<AtomicUsize>,
    dropped_on: Arc<Mutex<Vec<thread::ThreadId>>>,
}

impl Tracked {
    fn new(alive: &Arc<AtomicUsize>, dropped_on: &Arc<Mutex<Vec<thread::ThreadId>>>) -> Tracked {
        alive.fetch_add(1, Ordering::SeqCst);
        Tracked {
            alive: alive.clone(),
            dropped_on: dropped_on.clone(),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::SeqCst);
        self.dropped_on.lock().unwrap().push(thread::current().id());
    }
}

fn counters() -> (Arc<AtomicUsize>, Arc<Mutex<Vec<thread::ThreadId>>>) {
    (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())))
}

/// Returns `Pending` once, waking itself first.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Wakes itself and finishes in the same poll: the task is queued and
/// finished at once (the queue entry then frees it).
struct WakeAndFinish;

impl Future for WakeAndFinish {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        cx.waker().wake_by_ref();
        // By value too: a clone's reference released by the wake.
        let clone = cx.waker().clone();
        clone.wake();
        Poll::Ready(())
    }
}

/// Pending until a flag is raised; stores its waker where a test reaches it.
struct Parked {
    waker: Arc<Mutex<Option<Waker>>>,
    go: Arc<AtomicBool>,
}

impl Future for Parked {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.go.load(Ordering::SeqCst) {
            return Poll::Ready(());
        }
        *self.waker.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }
}

#[test]
fn outputs_reach_their_handles_and_every_task_is_freed() {
    let (alive, dropped_on) = counters();
    let lp = EventLoop::new().unwrap();
    let a = alive.clone();
    let d = dropped_on.clone();
    let sum = lp
        .run_until_complete(async move {
            let handles: Vec<JoinHandle<(usize, Tracked)>> = (0..50)
                .map(|i| {
                    let t = Tracked::new(&a, &d);
                    spawn(async move {
                        YieldOnce(false).await;
                        (i, t)
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await.unwrap().0;
            }
            sum
        })
        .unwrap();
    assert_eq!(sum, (0..50).sum::<usize>());
    lp.close().unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 0, "every output was dropped");
}

#[test]
fn a_detached_tasks_output_is_dropped_on_the_loop_thread_when_it_finishes() {
    let (alive, dropped_on) = counters();
    let lp = EventLoop::new().unwrap();
    let (a, d) = (alive.clone(), dropped_on.clone());
    lp.run_until_complete(async move {
        let t = Tracked::new(&a, &d);
        drop(spawn(async move {
            YieldOnce(false).await;
            t
        }));
        for _ in 0..3 {
            yield_now().await;
        }
        assert_eq!(a.load(Ordering::SeqCst), 0, "dropped as the task finished");
    })
    .unwrap();
    assert_eq!(*dropped_on.lock().unwrap(), vec![thread::current().id()]);
    lp.close().unwrap();
}

#[test]
fn a_handle_dropped_after_the_task_finished_drops_the_output() {
    let (alive, dropped_on) = counters();
    let lp = EventLoop::new().unwrap();
    let (a, d) = (alive.clone(), dropped_on.clone());
    lp.run_until_complete(async move {
        let t = Tracked::new(&a, &d);
        let h = spawn(async move { t });
        yield_now().await;
        assert!(h.is_done());
        assert_eq!(a.load(Ordering::SeqCst), 1, "kept for the handle");
        drop(h);
        assert_eq!(a.load(Ordering::SeqCst), 0);
    })
    .unwrap();
    lp.close().unwrap();
}

#[test]
fn a_task_that_wakes_itself_as_it_finishes_is_run_once_and_freed() {
    let (alive, dropped_on) = counters();
    let lp = EventLoop::new().unwrap();
    let (a, d) = (alive.clone(), dropped_on.clone());
    lp.run_until_complete(async move {
        let polls = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        for keep in [true, false] {
            let t = Tracked::new(&a, &d);
            let p = polls.clone();
            let h = spawn(async move {
                p.fetch_add(1, Ordering::SeqCst);
                WakeAndFinish.await;
                drop(t);
            });
            if keep {
                handles.push(h);
            }
        }
        for _ in 0..3 {
            yield_now().await;
        }
        assert_eq!(polls.load(Ordering::SeqCst), 2);
        for h in handles {
            h.await.unwrap();
        }
    })
    .unwrap();
    lp.close().unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

#[test]
fn a_wake_from_another_thread_schedules_the_task_once() {
    let lp = EventLoop::new().unwrap();
    let waker = Arc::new(Mutex::new(None));
    let go = Arc::new(AtomicBool::new(false));
    let (w, g) = (waker.clone(), go.clone());
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let out = lp
        .run_until_complete(async move {
            let task = spawn(async move {
                p.fetch_add(1, Ordering::SeqCst);
                Parked { waker: w, go: g }.await;
                "woken"
            });
            yield_now().await;
            let parked = waker.lock().unwrap().take().expect("the task parked");
            let thread = thread::spawn(move || {
                go.store(true, Ordering::SeqCst);
                // Several wakes, by reference and by value: one scheduling.
                parked.wake_by_ref();
                parked.wake_by_ref();
                parked.wake();
            });
            let out = task.await.unwrap();
            thread.join().unwrap();
            out
        })
        .unwrap();
    assert_eq!(out, "woken");
    assert_eq!(polls.load(Ordering::SeqCst), 1, "the body ran once");
    lp.close().unwrap();
}

#[test]
fn a_waker_outliving_its_task_and_loop_is_dropped_on_another_thread() {
    let (alive, dropped_on) = counters();
    let kept = Arc::new(Mutex::new(None));
    {
        let lp = EventLoop::new().unwrap();
        let (a, d, k) = (alive.clone(), dropped_on.clone(), kept.clone());
        lp.run_until_complete(async move {
            let t = Tracked::new(&a, &d);
            spawn(std::future::poll_fn(move |cx| {
                *k.lock().unwrap() = Some(cx.waker().clone());
                let _ = &t;
                Poll::Ready(())
            }))
            .await
            .unwrap();
        })
        .unwrap();
        // A wake while the loop is not running goes to its remote queue.
        kept.lock().unwrap().as_ref().unwrap().wake_by_ref();
        lp.close().unwrap();
    }
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "the future was dropped when it finished"
    );
    let waker = kept.lock().unwrap().take().unwrap();
    thread::spawn(move || {
        // The loop is gone: a wake does nothing, the drop frees the task.
        waker.wake_by_ref();
        drop(waker);
    })
    .join()
    .unwrap();
}

#[test]
fn closing_a_loop_drops_the_futures_of_pending_tasks_on_its_thread() {
    let (alive, dropped_on) = counters();
    let lp = EventLoop::new().unwrap();
    let waker = Arc::new(Mutex::new(None));
    let (a, d) = (alive.clone(), dropped_on.clone());
    let handle = {
        let (w, a, d) = (waker.clone(), a.clone(), d.clone());
        lp.spawn(async move {
            let _t = Tracked::new(&a, &d);
            Parked {
                waker: w,
                go: Arc::new(AtomicBool::new(false)),
            }
            .await;
        })
    };
    lp.run_until_complete(async move {
        let t = Tracked::new(&a, &d);
        drop(spawn(async move {
            let _t = t;
            std::future::pending::<()>().await;
        }));
        yield_now().await;
    })
    .unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 2);
    lp.close().unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 0);
    assert!(dropped_on.lock().unwrap().iter().all(|t| *t == thread::current().id()));
    assert!(handle.is_cancelled());
    // A waker of a dropped future wakes nothing.
    let w = waker.lock().unwrap().take().unwrap();
    thread::spawn(move || w.wake()).join().unwrap();
}

#[test]
fn cancelling_an_awaiting_task_cancels_the_awaited_one_and_frees_both() {
    let (alive, dropped_on) = counters();
    let lp = EventLoop::new().unwrap();
    let (a, d) = (alive.clone(), dropped_on.clone());
    lp.run_until_complete(async move {
        let t = Tracked::new(&a, &d);
        let inner = spawn(async move {
            let _t = t;
            std::future::pending::<()>().await;
        });
        let t = Tracked::new(&a, &d);
        let outer = spawn(async move {
            let _t = t;
            let caught = cancellable(inner).await;
            assert!(caught.is_err(), "the await was cancelled");
            "cleaned up"
        });
        yield_now().await;
        assert!(outer.cancel());
        assert_eq!(outer.await.unwrap(), "cleaned up");
        yield_now().await;
        assert_eq!(a.load(Ordering::SeqCst), 0, "the inner task was cancelled too");
    })
    .unwrap();
    lp.close().unwrap();
}

// Handles awaited in one step, one of them then dropped in it (a race's
// losing branch): the poll's record lets go of it and keeps a reference
// to the other, which takes the cancellation; all three tasks are freed.
#[test]
fn a_handle_dropped_in_the_step_that_awaited_it_is_let_go_and_the_other_takes_the_cancel() {
    let (alive, dropped_on) = counters();
    let lp = EventLoop::new().unwrap();
    let (a, d) = (alive.clone(), dropped_on.clone());
    lp.run_until_complete(async move {
        let (go, waker) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(None)));
        let t = Tracked::new(&a, &d);
        let (g, w) = (go.clone(), waker.clone());
        let kept = spawn(async move {
            let _t = t;
            Parked { waker: w, go: g }.await;
        });
        let t = Tracked::new(&a, &d);
        let dropped = spawn(async move {
            let _t = t;
            YieldOnce(false).await;
            YieldOnce(false).await;
        });
        let t = Tracked::new(&a, &d);
        let outer = spawn(async move {
            let _t = t;
            let race = async {
                // Both handles polled in one step, then this one dropped.
                let mut dropped = dropped;
                let mut first = YieldOnce(false);
                std::future::poll_fn(|cx| {
                    let _ = Pin::new(&mut dropped).poll(cx);
                    Pin::new(&mut first).poll(cx)
                })
                .await;
                drop(dropped);
                current_task().unwrap().cancel();
                std::future::pending::<()>().await;
            };
            let (kept, ()) = futures_lite::future::zip(kept, race).await;
            kept
        });
        yield_now().await;
        // Bounded: a cancellation handed to the dropped one would leave
        // the awaiting task waiting for a wake that never comes.
        let out = runner_core::timeout(Duration::from_secs(10), outer).await;
        let out = out.expect("the awaiting task ended");
        assert!(
            out.is_err_and(|e| e.is_cancelled()),
            "the kept one ended cancelled, and so did the awaiting one"
        );
        yield_now().await;
        yield_now().await;
        assert_eq!(
            a.load(Ordering::SeqCst),
            0,
            "every task freed (the dropped one ran to its end)"
        );
        assert!(!go.load(Ordering::SeqCst));
        drop(waker);
    })
    .unwrap();
    lp.close().unwrap();
}

// A task's future dropped without a poll (cancelled where nothing catches
// it, or dropped by a close) drops the handle of a task it awaited. What
// the last poll of another task recorded, the handles it awaited, must not
// be taken for this one's: here that task awaited C, and C was freed by
// the time Y's handle of D is dropped (Miri reports a use-after-free if
// the record is read; found by the randomized programs, closing at once).
#[test]
fn a_future_dropped_without_a_poll_reads_nothing_of_another_tasks_poll() {
    let (alive, dropped_on) = counters();
    let lp = EventLoop::new().unwrap();
    let pending = |a: &Arc<AtomicUsize>, d: &Arc<Mutex<Vec<thread::ThreadId>>>| {
        let t = Tracked::new(a, d);
        async move {
            let _t = t;
            std::future::pending::<()>().await;
        }
    };
    // Spawn order is the order a close drops them in: C, X, Y, D.
    let c = lp.spawn(pending(&alive, &dropped_on));
    let stopper = lp.clone();
    let t = Tracked::new(&alive, &dropped_on);
    let x = lp.spawn(async move {
        let _t = t;
        yield_now().await;
        // The last step before the loop stops: it awaits C.
        stopper.stop();
        let _ = c.await;
    });
    let d_handle: std::rc::Rc<std::cell::Cell<Option<JoinHandle<()>>>> = Default::default();
    let d_slot = d_handle.clone();
    let t = Tracked::new(&alive, &dropped_on);
    let y = lp.spawn(async move {
        let _t = t;
        let _ = d_slot.take().unwrap().await;
    });
    d_handle.set(Some(lp.spawn(pending(&alive, &dropped_on))));
    lp.run_forever().unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 4);
    lp.close().unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 0, "every task's future dropped");
    assert!(x.is_cancelled() && y.is_cancelled());
}

#[test]
fn panics_in_a_poll_and_in_a_destructor_end_the_task_panicked() {
    struct PanicOnDrop;
    impl Drop for PanicOnDrop {
        fn drop(&mut self) {
            panic!("in a destructor");
        }
    }
    let lp = EventLoop::new().unwrap();
    lp.set_exception_handler(|_: &EventLoop, _: &runner_core::ExceptionContext| {});
    lp.run_until_complete(async {
        let polled = spawn(async {
            yield_now().await;
            panic!("in a poll");
        });
        let e = polled.await.unwrap_err();
        assert_eq!(e.panic_message().as_deref(), Some("in a poll"));

        let dropped = spawn(async {
            let _p = PanicOnDrop;
            yield_now().await;
        });
        let e = dropped.await.unwrap_err();
        assert_eq!(e.panic_message().as_deref(), Some("in a destructor"));

        let cancelled = spawn(async {
            let _p = PanicOnDrop;
            std::future::pending::<()>().await;
        });
        yield_now().await;
        cancelled.cancel();
        let e = cancelled.await.unwrap_err();
        assert!(e.is_panic(), "a destructor panicking during cancellation: {e:?}");
    })
    .unwrap();
    lp.close().unwrap();
}

#[test]
fn current_task_handles_outlive_their_task() {
    let lp = EventLoop::new().unwrap();
    let (kept, id) = lp
        .run_until_complete(async {
            let task = spawn(async {
                let me = current_task().unwrap();
                me.set_name("short-lived");
                me
            });
            let id = task.id();
            (task.await.unwrap(), id)
        })
        .unwrap();
    lp.close().unwrap();
    drop(lp);
    // The task is gone; what it was stays readable.
    assert_eq!(kept.id(), id);
    assert!(!kept.cancel(), "a finished task cannot be cancelled");
}

#[test]
fn many_threads_wake_many_tasks_and_nothing_leaks() {
    const TASKS: usize = 8;
    let lp = EventLoop::new().unwrap();
    let (alive, dropped_on) = counters();
    let (a, d) = (alive.clone(), dropped_on.clone());
    lp.run_until_complete(async move {
        let mut handles = Vec::new();
        let mut parked = Vec::new();
        for _ in 0..TASKS {
            let waker = Arc::new(Mutex::new(None));
            let go = Arc::new(AtomicBool::new(false));
            let t = Tracked::new(&a, &d);
            let (w, g) = (waker.clone(), go.clone());
            handles.push(spawn(async move {
                Parked { waker: w, go: g }.await;
                t
            }));
            parked.push((waker, go));
        }
        yield_now().await;
        let threads: Vec<_> = parked
            .into_iter()
            .map(|(waker, go)| {
                let w = waker.lock().unwrap().take().unwrap();
                thread::spawn(move || {
                    go.store(true, Ordering::SeqCst);
                    let clones: Vec<Waker> = (0..4).map(|_| w.clone()).collect();
                    for c in clones {
                        c.wake();
                    }
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(30);
        for h in handles {
            assert!(Instant::now() < deadline);
            drop(h.await.unwrap());
        }
        for t in threads {
            t.join().unwrap();
        }
    })
    .unwrap();
    lp.close().unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

/// The ready queue keeps tasks and loop callbacks in one word each (a
/// tagged pointer): callbacks run in their turn among tasks, and those
/// still queued when the loop closes are freed with what they own.
#[test]
fn callbacks_queued_among_tasks_run_in_order_or_are_freed_at_close() {
    let (alive, dropped_on) = counters();
    let order = Arc::new(Mutex::new(Vec::new()));
    let lp = EventLoop::new().unwrap();
    {
        let (o1, o2, o3) = (order.clone(), order.clone(), order.clone());
        let t = Tracked::new(&alive, &dropped_on);
        lp.call_soon(move || o1.lock().unwrap().push("callback 1")).unwrap();
        let task = lp.spawn(async move {
            let _t = t;
            o2.lock().unwrap().push("task");
        });
        lp.call_soon(move || o3.lock().unwrap().push("callback 2")).unwrap();
        let cancelled = {
            let t = Tracked::new(&alive, &dropped_on);
            lp.call_soon(move || drop(t)).unwrap()
        };
        cancelled.cancel();
        lp.run_until_complete(task).unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), ["callback 1", "task", "callback 2"]);
    // Queued and never run: freed when the loop closes.
    let t = Tracked::new(&alive, &dropped_on);
    lp.call_soon(move || drop(t)).unwrap();
    assert_eq!(alive.load(Ordering::SeqCst), 1);
    lp.close().unwrap();
    drop(lp);
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

/// A runner's main task runs in the runner's own context (a context mode
/// that is not zero-sized, moved out of the task when it finishes), which
/// it reads and writes in place: its changes persist across runs, and its
/// output and future are freed.
#[test]
fn a_runners_main_task_hands_back_its_context_and_frees_its_output() {
    static N: runner_core::ContextVar<u64> = runner_core::ContextVar::new("n");
    let (alive, dropped_on) = counters();
    let runner = runner_core::Runner::new();
    for i in 1..=3 {
        let t = Tracked::new(&alive, &dropped_on);
        let out = runner
            .run(async move {
                let _t = t;
                let n = N.get().unwrap_or(0);
                let _ = N.set(n + i);
                yield_now().await;
                Tracked::new(&_t.alive, &_t.dropped_on)
            })
            .unwrap();
        assert_eq!(alive.load(Ordering::SeqCst), 1, "only the output is alive");
        drop(out);
    }
    assert_eq!(runner.run(async { N.get() }).unwrap(), Some(6));
    drop(runner);
    assert_eq!(alive.load(Ordering::SeqCst), 0);
}

/// A waker that is not a runner task's: counts its wakes, and its clones
/// alive through the `Arc`'s count.
struct CountingWaker(AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_handle_wakes_only_the_last_waker_it_was_polled_with_and_drops_the_others() {
    let lp = EventLoop::new().unwrap();
    let (first, second) = (
        Arc::new(CountingWaker(AtomicUsize::new(0))),
        Arc::new(CountingWaker(AtomicUsize::new(0))),
    );
    let (f, s) = (first.clone(), second.clone());
    let out = lp
        .run_until_complete(async move {
            let go = Arc::new(AtomicBool::new(false));
            let parked = Arc::new(Mutex::new(None));
            let mut handle = spawn(Parked {
                waker: parked.clone(),
                go: go.clone(),
            });
            yield_now().await;
            // Polled as a combinator would, with wakers of its own (boxed
            // in the slot): twice with the first (kept, not cloned again),
            // then with the second (the first is dropped).
            for w in [&f, &f, &s] {
                let waker = Waker::from(w.clone());
                let mut cx = Context::from_waker(&waker);
                assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
            }
            assert_eq!(
                Arc::strong_count(&f),
                2,
                "the first waker's clone was dropped when replaced"
            );
            assert_eq!(Arc::strong_count(&s), 3, "the second waker is held once by the handle");
            // Then by this task itself (its own waker: no box), which the
            // end of the awaited task wakes.
            go.store(true, Ordering::SeqCst);
            parked.lock().unwrap().take().unwrap().wake();
            handle.await.unwrap();
            (f.0.load(Ordering::SeqCst), s.0.load(Ordering::SeqCst))
        })
        .unwrap();
    assert_eq!(out, (0, 0), "replaced wakers are not woken");
    assert_eq!(
        Arc::strong_count(&second),
        1,
        "the second waker's clone was dropped when the task awaited"
    );
    lp.close().unwrap();
    assert_eq!(Arc::strong_count(&first), 1);
    assert_eq!(Arc::strong_count(&second), 1);
}

#[test]
fn a_foreign_waker_in_the_slot_is_woken_when_the_task_ends_or_dropped_with_the_handle() {
    let lp = EventLoop::new().unwrap();
    let woken = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let dropped = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let (w, d) = (woken.clone(), dropped.clone());
    lp.run_until_complete(async move {
        let poll_with = |handle: &mut JoinHandle<()>, by: &Arc<CountingWaker>| {
            let waker = Waker::from(by.clone());
            Pin::new(handle).poll(&mut Context::from_waker(&waker)).is_pending()
        };
        let mut ends = spawn(YieldOnce(false));
        assert!(poll_with(&mut ends, &w));
        let mut kept = spawn(std::future::pending::<()>());
        assert!(poll_with(&mut kept, &d));
        yield_now().await;
        yield_now().await;
        assert!(ends.is_done());
        assert_eq!(w.0.load(Ordering::SeqCst), 1, "the task's end woke the foreign waker");
        assert_eq!(Arc::strong_count(&w), 2, "and let go of it");
        drop(kept);
        assert_eq!(Arc::strong_count(&d), 2, "a dropped handle lets go of its waker");
        assert_eq!(d.0.load(Ordering::SeqCst), 0);
    })
    .unwrap();
    lp.close().unwrap();
    assert_eq!(Arc::strong_count(&woken), 1);
}

/// References taken on the loop's thread while a task runs are counted
/// without atomics (`raw`'s biased counting) and folded into the atomic
/// count as it finishes: clones made on the loop, dropped on other threads
/// before and after that, and clones made on other threads, dropped on the
/// loop, all come out even (Miri reports a task freed early or never).
#[test]
fn waker_references_taken_on_the_loop_and_dropped_elsewhere_come_out_even() {
    let lp = EventLoop::new().unwrap();
    let later = Arc::new(Mutex::new(Vec::new()));
    let keep = later.clone();
    let woken_from_afar = lp
        .run_until_complete(async move {
            let task = spawn(async move {
                let mut polls = 0;
                std::future::poll_fn(|cx| {
                    polls += 1;
                    if polls == 3 {
                        return Poll::Ready(polls);
                    }
                    // Six clones on the loop's thread: two dropped on
                    // another thread now (the task still runs), one that
                    // thread uses to wake it, three kept past its end.
                    let clones: Vec<Waker> = (0..6).map(|_| cx.waker().clone()).collect();
                    let (now, rest) = clones.split_at(3);
                    let now = now.to_vec();
                    keep.lock().unwrap().extend(rest.iter().cloned());
                    drop(clones);
                    // Clones made on that thread come back to be dropped
                    // here (on the loop's thread, while the task runs).
                    let back = thread::spawn(move || {
                        let made_there: Vec<Waker> = now.iter().map(Waker::clone).collect();
                        let mut now = now.into_iter();
                        drop(now.next());
                        drop(now.next());
                        now.next().unwrap().wake();
                        made_there
                    })
                    .join()
                    .unwrap();
                    drop(back);
                    Poll::Pending
                })
                .await
            });
            task.await.unwrap()
        })
        .unwrap();
    assert_eq!(woken_from_afar, 3, "each wake from the other thread scheduled a poll");
    lp.close().unwrap();
    // The six clones the task's two pending polls kept outlive it and its
    // loop: dropped on other threads, the last one frees the task.
    let kept: Vec<Waker> = later.lock().unwrap().drain(..).collect();
    assert_eq!(kept.len(), 6);
    let handles: Vec<_> = kept
        .into_iter()
        .map(|w| {
            thread::spawn(move || {
                w.wake_by_ref();
                drop(w);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

/// More references than the loop thread's plain count holds (it is 16
/// bits wide): beyond it, references are counted atomically, both ways.
/// Not under Miri (over a minute there): the overflow goes to the atomic
/// count, which the tests above take Miri through.
#[test]
#[cfg_attr(miri, ignore)]
fn tens_of_thousands_of_waker_clones_either_way_come_out_even() {
    const MANY: usize = 40_000;
    let lp = EventLoop::new().unwrap();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let keep = kept.clone();
    lp.run_until_complete(async move {
        spawn(std::future::poll_fn(move |cx| {
            if !keep.lock().unwrap().is_empty() {
                return Poll::Ready(());
            }
            // Taken and dropped here: the plain count overflows upwards.
            let here: Vec<Waker> = (0..MANY).map(|_| cx.waker().clone()).collect();
            drop(here);
            // Taken there, dropped here: it overflows downwards.
            let one = cx.waker().clone();
            let there = thread::spawn(move || (0..MANY).map(|_| one.clone()).collect::<Vec<Waker>>())
                .join()
                .unwrap();
            drop(there);
            // Taken here, dropped there, as many again.
            let here: Vec<Waker> = (0..MANY).map(|_| cx.waker().clone()).collect();
            thread::spawn(move || drop(here)).join().unwrap();
            // One kept past the task's end, to wake it now and free it last.
            let last = cx.waker().clone();
            last.wake_by_ref();
            keep.lock().unwrap().push(last);
            Poll::Pending
        }))
        .await
        .unwrap();
    })
    .unwrap();
    lp.close().unwrap();
    let last = kept.lock().unwrap().pop().unwrap();
    thread::spawn(move || drop(last)).join().unwrap();
}
