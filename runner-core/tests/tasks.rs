//! Tasks, timers and context variables (SPEC section 3); cancellation has
//! its own file, `cancellation.rs`, and timeouts `timeouts.rs`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use runner_core::{run, sleep, spawn, timeout, yield_now, Context, ContextVar, EventLoop, JoinHandle};

#[test]
fn spawned_task_output_is_returned_by_its_handle() {
    let v = run(async { spawn(async { "out" }).await.unwrap() }).unwrap();
    assert_eq!(v, "out");
}

#[test]
fn one_hundred_thousand_spawned_tasks_complete() {
    let total = run(async {
        let handles: Vec<JoinHandle<u64>> = (0..100_000u64)
            .map(|i| {
                spawn(async move {
                    yield_now().await;
                    i
                })
            })
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await.unwrap();
        }
        sum
    })
    .unwrap();
    assert_eq!(total, (0..100_000u64).sum::<u64>());
}

#[test]
fn tasks_need_not_be_send() {
    let shared = Rc::new(Cell::new(0));
    let s = shared.clone();
    run(async move {
        spawn(async move { s.set(s.get() + 1) }).await.unwrap();
    })
    .unwrap();
    assert_eq!(shared.get(), 1);
}

#[test]
fn task_handle_reports_name_done_and_cancelled() {
    run(async {
        let t = spawn(sleep(Duration::from_secs(3600)));
        t.set_name("sleeper");
        assert_eq!(t.name().as_deref(), Some("sleeper"));
        assert!(!t.is_done());
        yield_now().await;
        assert!(t.cancel());
        assert_eq!(t.cancelling(), 1);
        yield_now().await;
        assert!(t.is_done() && t.is_cancelled());
        assert!(!t.cancel(), "cancelling a finished task answers false");
    })
    .unwrap();
}

#[test]
fn dropping_a_handle_detaches_the_task() {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    run(async move {
        drop(spawn(async move {
            sleep(Duration::from_millis(2)).await;
            r.set(true);
        }));
        sleep(Duration::from_millis(10)).await;
    })
    .unwrap();
    assert!(ran.get());
}

#[test]
fn panicking_task_gives_its_panic_to_the_awaiter() {
    let err = run(async { spawn(async { panic!("task boom") }).await.unwrap_err() }).unwrap();
    assert!(err.is_panic());
    assert_eq!(err.panic_message().as_deref(), Some("task boom"));
    assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"task boom"));
}

#[test]
fn timers_fire_in_deadline_order_and_equal_deadlines_fifo() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let lp = EventLoop::new().unwrap();
    let base = lp.time() + Duration::from_millis(20);
    for (i, offset) in [(0, 10u64), (1, 0), (2, 10), (3, 5), (4, 0), (5, 10)] {
        let o = order.clone();
        lp.call_at(base + Duration::from_millis(offset), move || o.borrow_mut().push(i))
            .unwrap();
    }
    lp.run_until_complete(sleep(Duration::from_millis(50))).unwrap();
    assert_eq!(*order.borrow(), [1, 4, 3, 0, 2, 5]);
}

#[test]
fn cancelled_timer_handle_does_not_run() {
    let ran = Rc::new(Cell::new(false));
    let lp = EventLoop::new().unwrap();
    let r = ran.clone();
    let h = lp.call_later(Duration::from_millis(1), move || r.set(true)).unwrap();
    h.cancel();
    assert!(h.is_cancelled());
    lp.run_until_complete(sleep(Duration::from_millis(10))).unwrap();
    assert!(!ran.get());
}

/// A sleep never ends early, though the poller is asked to wake a little
/// before the deadline (less the kernel's timer slack) and may: the loop
/// then waits again. Lengths from under the slack to past 0.1% of it
/// mattering, one after another and side by side.
#[test]
fn sleep_waits_at_least_its_duration() {
    let lengths: Vec<Duration> = [30, 90, 160, 700, 1_300, 4_000, 30_000, 120_000]
        .iter()
        .map(|&us| Duration::from_micros(us))
        .collect();
    let early = run(async move {
        let mut early = Vec::new();
        for &d in &lengths {
            let started = Instant::now();
            sleep(d).await;
            if started.elapsed() < d {
                early.push((d, started.elapsed()));
            }
        }
        let side_by_side: Vec<_> = lengths
            .iter()
            .map(|&d| {
                spawn(async move {
                    let started = Instant::now();
                    sleep(d).await;
                    (d, started.elapsed())
                })
            })
            .collect();
        for h in side_by_side {
            let (d, took) = h.await.unwrap();
            if took < d {
                early.push((d, took));
            }
        }
        early
    })
    .unwrap();
    assert!(early.is_empty(), "sleeps that ended early: {early:?}");
}

/// asyncio's `all_tasks()`: the loop's unfinished tasks, the current one
/// included; nothing outside a running loop.
#[test]
fn all_tasks_lists_the_live_tasks_the_current_one_included() {
    assert!(runner_core::all_tasks().is_empty());
    let (before, names, after) = run(async {
        let done = spawn(async {});
        let waiting = spawn(sleep(Duration::from_secs(3600)));
        waiting.set_name("waiting");
        yield_now().await;
        assert!(done.is_done());
        let mut names: Vec<_> = runner_core::all_tasks()
            .iter()
            .map(|t| t.name().unwrap_or_else(|| "unnamed".into()))
            .collect();
        names.sort();
        let before = runner_core::all_tasks().len();
        let me = runner_core::current_task().unwrap().id();
        assert!(runner_core::all_tasks().iter().any(|t| t.id() == me));
        let listed: Vec<_> = runner_core::all_tasks();
        assert!(listed.iter().all(|t| !t.is_done()));
        waiting.cancel();
        let _ = waiting.await;
        // The handles outlive their tasks and say so.
        assert_eq!(listed.iter().filter(|t| t.is_done()).count(), 1);
        (before, names, runner_core::all_tasks().len())
    })
    .unwrap();
    assert_eq!(before, 2, "the main task and the sleeping one; not the finished one");
    assert_eq!(names, ["main", "waiting"]);
    assert_eq!(after, 1);
}

#[test]
fn yield_now_lets_other_tasks_run_in_turn() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    run(async move {
        let mut handles = Vec::new();
        for name in ["a", "b"] {
            let o = o.clone();
            handles.push(spawn(async move {
                for i in 0..3 {
                    o.borrow_mut().push(format!("{name}{i}"));
                    yield_now().await;
                }
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(*order.borrow(), ["a0", "b0", "a1", "b1", "a2", "b2"]);
}

#[test]
fn wake_from_another_thread_wakes_the_blocked_loop() {
    let started = Instant::now();
    let got = run(async {
        let (tx, rx) = mpsc::channel::<u32>();
        let slot = std::sync::Arc::new(std::sync::Mutex::new((None::<u32>, None::<std::task::Waker>)));
        let s2 = slot.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(99).unwrap();
            let waker = {
                let mut g = s2.lock().unwrap();
                g.0 = Some(rx.recv().unwrap());
                g.1.take()
            };
            waker.expect("the task registered its waker").wake();
        });
        std::future::poll_fn(move |cx| {
            let mut g = slot.lock().unwrap();
            match g.0.take() {
                Some(v) => std::task::Poll::Ready(v),
                None => {
                    g.1 = Some(cx.waker().clone());
                    std::task::Poll::Pending
                }
            }
        })
        .await
    })
    .unwrap();
    assert_eq!(got, 99);
    // The loop had nothing else to do: it blocked in the poller with no
    // timeout, and the other thread's wake ended that wait promptly.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn wakers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    run(std::future::poll_fn(|cx| {
        assert_send_sync(cx.waker());
        let w = cx.waker().clone();
        std::thread::spawn(move || w.wake()).join().unwrap();
        std::task::Poll::Ready(())
    }))
    .unwrap();
}

#[test]
fn many_wakes_from_many_threads_are_all_delivered() {
    let total = run(async {
        let mut handles = Vec::new();
        for _ in 0..8 {
            let (tx, rx) = async_channel_pair();
            std::thread::spawn(move || {
                for i in 0..200 {
                    tx.send(i).unwrap();
                }
            });
            handles.push(spawn(async move {
                let mut n = 0;
                while rx.recv().await.is_some() {
                    n += 1;
                }
                n
            }));
        }
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        total
    })
    .unwrap();
    assert_eq!(total, 8 * 200);
}

/// A tiny thread-safe channel whose receiver is a future, to wake tasks from
/// other threads many times.
fn async_channel_pair() -> (ChanTx, ChanRx) {
    let shared = std::sync::Arc::new(std::sync::Mutex::new(ChanState::default()));
    (ChanTx(shared.clone()), ChanRx(shared))
}

#[derive(Default)]
struct ChanState {
    items: std::collections::VecDeque<u32>,
    waker: Option<std::task::Waker>,
    closed: bool,
}

struct ChanTx(std::sync::Arc<std::sync::Mutex<ChanState>>);
struct ChanRx(std::sync::Arc<std::sync::Mutex<ChanState>>);

impl ChanTx {
    fn send(&self, v: u32) -> Result<(), ()> {
        let w = {
            let mut s = self.0.lock().unwrap();
            s.items.push_back(v);
            s.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
        Ok(())
    }
}

impl Drop for ChanTx {
    fn drop(&mut self) {
        let w = {
            let mut s = self.0.lock().unwrap();
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    }
}

impl ChanRx {
    async fn recv(&self) -> Option<u32> {
        std::future::poll_fn(|cx| {
            let mut s = self.0.lock().unwrap();
            if let Some(v) = s.items.pop_front() {
                return std::task::Poll::Ready(Some(v));
            }
            if s.closed {
                return std::task::Poll::Ready(None);
            }
            s.waker = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }
}

static REQUEST: ContextVar<u32> = ContextVar::new("request");

#[test]
fn spawned_task_runs_in_a_copy_of_the_spawners_context() {
    let (seen_by_child, after_child) = run(async {
        let _ = REQUEST.set(1);
        let child = spawn(async {
            let seen = REQUEST.get();
            let _ = REQUEST.set(2);
            seen
        });
        let seen = child.await.unwrap();
        (seen, REQUEST.get())
    })
    .unwrap();
    assert_eq!(seen_by_child, Some(1));
    assert_eq!(after_child, Some(1), "the child's change does not leak back");
}

#[test]
fn sibling_tasks_do_not_see_each_others_changes() {
    let seen = run(async {
        let a = spawn(async {
            let _ = REQUEST.set(10);
            yield_now().await;
            REQUEST.get()
        });
        let b = spawn(async {
            yield_now().await;
            REQUEST.get()
        });
        (a.await.unwrap(), b.await.unwrap())
    })
    .unwrap();
    assert_eq!(seen, (Some(10), None));
}

#[test]
fn context_copy_and_run_from_inside_a_task() {
    let (inside, outside) = run(async {
        let _ = REQUEST.set(5);
        let copy = Context::copy_current();
        copy.run(|| {
            let _ = REQUEST.set(6);
        });
        (copy.get(&REQUEST), REQUEST.get())
    })
    .unwrap();
    assert_eq!(inside, Some(6));
    assert_eq!(outside, Some(5));
}

#[test]
fn callbacks_run_in_the_context_current_when_scheduled() {
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    run(async move {
        let _ = REQUEST.set(77);
        runner_core::get_running_loop()
            .unwrap()
            .call_soon(move || s.set(REQUEST.get()))
            .unwrap();
        yield_now().await;
        yield_now().await;
    })
    .unwrap();
    assert_eq!(seen.get(), Some(77));
}

#[test]
fn call_soon_threadsafe_on_the_loops_own_thread_keeps_the_context_and_the_order() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let s = seen.clone();
    run(async move {
        let _ = REQUEST.set(78);
        let lp = runner_core::get_running_loop().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let first = tx.clone();
        lp.call_soon(move || first.send(("call_soon", REQUEST.get())).unwrap())
            .unwrap();
        lp.call_soon_threadsafe(move || tx.send(("call_soon_threadsafe", REQUEST.get())).unwrap())
            .unwrap();
        yield_now().await;
        yield_now().await;
        s.borrow_mut().extend(rx.try_iter());
    })
    .unwrap();
    assert_eq!(
        *seen.borrow(),
        [("call_soon", Some(78)), ("call_soon_threadsafe", Some(78))]
    );
}

#[test]
fn awaiting_own_handle_is_reported_as_a_panic_not_a_hang() {
    let reports = Rc::new(RefCell::new(Vec::new()));
    let sink = reports.clone();
    run(async move {
        runner_core::get_running_loop()
            .unwrap()
            .set_exception_handler(move |_, ctx| sink.borrow_mut().push(ctx.panic.clone().unwrap_or_default()));
        let slot: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
        let s = slot.clone();
        let t = spawn(async move {
            yield_now().await;
            let me = s.borrow_mut().take().unwrap();
            let _ = me.await;
        });
        *slot.borrow_mut() = Some(t);
        sleep(Duration::from_millis(2)).await;
    })
    .unwrap();
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(reports[0].contains("awaited its own JoinHandle"), "{reports:?}");
}

/// A handle awaited inside a run of another loop (its task's loop cannot
/// run meanwhile) answers at once with an error that says so, as asyncio
/// raises "attached to a different loop"; the task is left alone and its
/// handle still completes in a run of its own loop. Polled where no loop
/// runs, it waits for that run.
#[test]
// The first run returns the handle un-awaited: that is the point.
#[allow(clippy::async_yields_async)]
fn a_handle_awaited_in_another_loops_run_says_so_at_once() {
    let first = runner_core::Runner::new();
    let handle = first
        .run(async {
            spawn(async {
                sleep(Duration::from_millis(1)).await;
                7
            })
        })
        .unwrap();
    let second = runner_core::Runner::new();
    let (handle, err, took) = second
        .run(async move {
            let mut handle = handle;
            let start = Instant::now();
            let err = timeout(Duration::from_secs(10), &mut handle).await;
            (handle, err, start.elapsed())
        })
        .unwrap();
    let err = err.expect("no wait for the bound").unwrap_err();
    assert!(err.is_other_loop() && !err.is_cancelled() && !err.is_panic(), "{err:?}");
    assert!(err.to_string().contains("await it inside a run of the loop"), "{err}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(!handle.is_done());
    // A poll where no loop runs leaves it waiting.
    let mut handle = handle;
    let waker = std::task::Waker::noop();
    let polled = std::pin::Pin::new(&mut handle).poll(&mut std::task::Context::from_waker(waker));
    assert!(polled.is_pending());
    assert_eq!(
        first
            .run(timeout(Duration::from_secs(10), handle))
            .unwrap()
            .unwrap()
            .unwrap(),
        7
    );
}

static PER_REQUEST: ContextVar<Vec<u8>> = ContextVar::new("per_request").not_inherited();
static DEFAULTED: ContextVar<u32> = ContextVar::with_default("defaulted", || 7).not_inherited();

#[test]
fn not_inherited_variable_is_unset_in_spawned_tasks_and_inherited_ones_are_set() {
    let (child, parent_after) = run(async {
        let _ = PER_REQUEST.set(vec![1, 2, 3]);
        let _ = DEFAULTED.set(99);
        let _ = REQUEST.set(5);
        let child = spawn(async { (PER_REQUEST.get(), DEFAULTED.get(), REQUEST.get()) })
            .await
            .unwrap();
        (child, (PER_REQUEST.get(), DEFAULTED.get()))
    })
    .unwrap();
    assert_eq!(
        child,
        (None, Some(7), Some(5)),
        "not inherited: unset (or default); inherited: set"
    );
    assert_eq!(
        parent_after,
        (Some(vec![1, 2, 3]), Some(99)),
        "the spawner keeps its values"
    );
    assert!(!PER_REQUEST.is_inherited() && REQUEST.is_inherited());
}

#[test]
fn not_inherited_variable_is_kept_by_explicit_context_copies() {
    let copied = run(async {
        let _ = PER_REQUEST.set(vec![9]);
        Context::copy_current().get(&PER_REQUEST)
    })
    .unwrap();
    assert_eq!(copied, Some(vec![9]));
}

#[test]
fn sleep_is_send_and_sync_for_traits_that_ask_for_it() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let s = sleep(Duration::from_millis(1));
    assert_send_sync(&s);
    let t = timeout(Duration::from_millis(1), std::future::ready(()));
    assert_send_sync(&t);
    run(s).unwrap();
}

/// `JoinError` is `Send + Sync`, as tokio's is: `?` turns it into a
/// `Box<dyn Error + Send + Sync>` (or `anyhow::Error`), and the panic
/// payload is still there to take out.
#[test]
fn join_error_is_send_and_sync_and_converts_with_the_question_mark() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<runner_core::JoinError>();
    async fn body() -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
        let v = spawn(async { panic!("boom") }).await?;
        Ok(v)
    }
    let err = runner_core::run(body()).unwrap().unwrap_err();
    assert_eq!(err.to_string(), "the task panicked: boom");
    let join_error = err.downcast::<runner_core::JoinError>().unwrap();
    assert_eq!(join_error.panic_message().as_deref(), Some("boom"));
    let payload = join_error.into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
}

#[test]
fn a_join_handle_is_one_word_as_tokios_and_smols_are() {
    assert_eq!(std::mem::size_of::<JoinHandle<u64>>(), std::mem::size_of::<usize>());
    assert_eq!(
        std::mem::size_of::<Option<JoinHandle<u64>>>(),
        std::mem::size_of::<usize>()
    );
}

/// One future type spawned from many places, and many types from one
/// place: each handle names its own spawn site (tasks share one record
/// per type and site, found through a small cache that these overflow).
#[test]
fn spawned_at_names_each_spawn_site_for_any_mix_of_future_types_and_sites() {
    async fn job(n: u32) -> u32 {
        n
    }
    macro_rules! spawn_job_here {
        ($n:expr) => {
            (spawn(job($n)), line!())
        };
    }
    #[track_caller]
    fn spawn_boxed(n: u32) -> JoinHandle<u32> {
        spawn(Box::pin(async move { n }))
    }
    run(async {
        let mut handles = vec![
            spawn_job_here!(1),
            spawn_job_here!(2),
            spawn_job_here!(3),
            spawn_job_here!(4),
            spawn_job_here!(5),
            spawn_job_here!(6),
            spawn_job_here!(7),
            spawn_job_here!(8),
            spawn_job_here!(9),
            spawn_job_here!(10),
            spawn_job_here!(11),
            spawn_job_here!(12),
            spawn_job_here!(13),
            spawn_job_here!(14),
            spawn_job_here!(15),
            spawn_job_here!(16),
            spawn_job_here!(17),
            spawn_job_here!(18),
        ];
        // Twice over: the second round finds the records made by the first.
        for round in 0..2 {
            handles.push((spawn(job(100 + round)), line!()));
            handles.push((spawn(async move { 200 + round }), line!()));
            handles.push((spawn_boxed(300 + round), line!()));
            handles.push(spawn_job_here!(400 + round));
        }
        // Many types from one site (a generic function's own spawn): each
        // task keeps its own type's vtable.
        fn spawn_inside<F: std::future::Future + 'static>(fut: F) -> (JoinHandle<F::Output>, u32) {
            (spawn(fut), line!())
        }
        for round in 0..2 {
            let (number, at) = spawn_inside(async move { 7u64 + round });
            let (text, same) = spawn_inside(async move { format!("text {round}") });
            let (unit, also) = spawn_inside(async {});
            assert_eq!((at, at), (same, also));
            assert_eq!(number.spawned_at(), text.spawned_at());
            assert_eq!(number.await.unwrap(), 7 + round);
            assert_eq!(text.await.unwrap(), format!("text {round}"));
            assert_eq!(unit.spawned_at().line(), at);
            unit.await.unwrap();
        }
        let mut lines = std::collections::HashSet::new();
        for (handle, line) in handles {
            assert!(
                handle.spawned_at().file().ends_with("tasks.rs"),
                "{}",
                handle.spawned_at()
            );
            assert_eq!(
                handle.spawned_at().line(),
                line,
                "task {} output",
                handle.await.unwrap()
            );
            lines.insert(line);
        }
        assert_eq!(lines.len(), 22, "18 sites of one type, then 4 sites each spawned twice");
    })
    .unwrap();
}

/// Loops on several threads spawn from the same sites at once: each
/// thread finds the shared records (made once, behind a lock) and every
/// handle still names its site.
#[test]
fn spawned_at_is_right_on_loops_of_several_threads_spawning_from_the_same_sites() {
    fn spawn_two(n: u64) -> [(JoinHandle<u64>, u32); 2] {
        [
            (spawn(async move { n }), line!()),
            (spawn(async move { n * 2 }), line!()),
        ]
    }
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                run(async move {
                    for i in 0..50 {
                        for (k, (handle, line)) in spawn_two(t * 100 + i).into_iter().enumerate() {
                            assert_eq!(handle.spawned_at().line(), line);
                            assert_eq!(handle.await.unwrap(), (t * 100 + i) * (k as u64 + 1));
                        }
                    }
                })
                .unwrap()
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
