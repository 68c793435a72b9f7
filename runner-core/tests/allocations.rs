//! How many allocations the hot paths make, counted by dhat's global
//! allocator: a yield, a wake and poll through a waker kept by a future,
//! a `timeout`, a `scoped_timeout`, a sleep, `cancellable`, `shield` and a
//! TCP round trip make none; a spawn + join makes one (the task's block),
//! and so do a task group's child and `scoped_timeout_with` (its handle).
//!
//! A test binary of its own without libtest's harness (`harness = false`
//! in Cargo.toml): the count is the process's, so nothing else may run
//! beside it, not even the harness's threads. Each path runs twice with
//! the same code (so the same spawn sites and future types): first to grow
//! what the loop keeps (the registry, the ready queue, the timers, the
//! spawn-site records), then counted.

use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use runner_core::net::{TcpListener, TcpStream};
use runner_core::{
    cancellable, scoped_timeout, scoped_timeout_with, shield, sleep, spawn, task_group, timeout, yield_now,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const N: u64 = 500;

fn allocations() -> u64 {
    dhat::HeapStats::get().total_blocks
}

/// Allocations made by `f().await`.
async fn counted<F: std::future::Future<Output = u64>>(f: impl Fn() -> F) -> u64 {
    assert!(f().await > 0, "the warm-up did its work");
    let before = allocations();
    let out = f().await;
    let made = allocations() - before;
    assert!(out > 0, "the counted run did its work");
    made
}

/// A future that suspends once (as a read that waits would), then
/// returns `i + 1`.
async fn yield_then(i: u64) -> u64 {
    yield_now().await;
    i + 1
}

async fn yields() -> u64 {
    for _ in 0..N {
        yield_now().await;
    }
    N
}

async fn spawn_join_ready() -> u64 {
    let mut sum = 0;
    for i in 0..N {
        sum += spawn(async move { i + 1 }).await.unwrap();
    }
    sum
}

async fn spawn_join_suspending() -> u64 {
    let mut sum = 0;
    for i in 0..N {
        sum += spawn(yield_then(i)).await.unwrap();
    }
    sum
}

async fn timeouts() -> u64 {
    let mut sum = 0;
    for i in 0..N {
        sum += timeout(Duration::from_secs(60), yield_then(i)).await.unwrap();
    }
    sum
}

async fn scoped_timeouts() -> u64 {
    let mut sum = 0;
    for i in 0..N {
        sum += scoped_timeout(Duration::from_secs(60), yield_then(i)).await.unwrap();
    }
    sum
}

async fn rescheduled_timeouts() -> u64 {
    let mut sum = 0;
    for i in 0..N {
        sum += scoped_timeout_with(None, |cm| async move {
            let now = runner_core::get_running_loop().unwrap().time();
            cm.reschedule(Some(now + Duration::from_secs(60))).unwrap();
            yield_then(i).await
        })
        .await
        .unwrap();
    }
    sum
}

async fn scopes() -> u64 {
    let mut sum = 0;
    for i in 0..N {
        sum += cancellable(shield(yield_then(i))).await.unwrap();
    }
    sum
}

async fn sleeps() -> u64 {
    for _ in 0..N {
        sleep(Duration::from_micros(1)).await;
    }
    N
}

/// One group, `N` children that suspend once: their blocks, and the
/// group's own state (its shared part, the children's list as it grows).
async fn group() -> u64 {
    task_group(|tg| async move {
        for i in 0..N {
            tg.spawn(async move {
                yield_now().await;
                Ok::<_, std::io::Error>(i)
            });
        }
        Ok::<_, std::io::Error>(N)
    })
    .await
    .unwrap()
}

/// `n` round trips of 64 bytes between two tasks over a TCP connection on
/// 127.0.0.1: both sides wait in the reactor at every turn. The listener,
/// the two sockets and the other task are made here, so they count.
async fn tcp_round_trips(n: u64) -> u64 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let echo = spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 64];
        for _ in 0..n {
            conn.read_exact(&mut buf).await.unwrap();
            conn.write_all(&buf).await.unwrap();
        }
    });
    let conn = TcpStream::connect(addr).await.unwrap();
    let mut buf = [7u8; 64];
    for _ in 0..n {
        conn.write_all(&buf).await.unwrap();
        conn.read_exact(&mut buf).await.unwrap();
    }
    echo.await.unwrap();
    n
}

/// Two tasks hand a number back and forth through a slot that keeps the
/// waiting side's waker: a waker clone and a wake per hand-over.
async fn baton() -> u64 {
    type Slot = Rc<RefCell<(Option<u64>, Option<Waker>)>>;
    fn take(slot: &Slot) -> impl std::future::Future<Output = u64> + '_ {
        poll_fn(move |cx| {
            let mut s = slot.borrow_mut();
            match s.0.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
    fn give(slot: &Slot, v: u64) {
        let mut s = slot.borrow_mut();
        s.0 = Some(v);
        if let Some(w) = s.1.take() {
            drop(s);
            w.wake();
        }
    }
    let there: Slot = Rc::default();
    let back: Slot = Rc::default();
    let (t, b) = (there.clone(), back.clone());
    let other = spawn(async move {
        for _ in 0..N {
            let v = take(&t).await;
            give(&b, v + 1);
        }
    });
    let mut last = 0;
    for i in 0..N {
        give(&there, i);
        last = take(&back).await;
    }
    other.await.unwrap();
    last
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    // Bounded, as every wait in a test is: a stuck round trip fails the
    // test instead of hanging it. The bound's own timer is set before any
    // count begins.
    let bounded = timeout(Duration::from_secs(120), async {
        assert_eq!(counted(yields).await, 0, "{N} yields");
        // The two slots and the other task's block; nothing per hand-over.
        assert_eq!(counted(baton).await, 3, "{N} hand-overs through a kept waker");
        assert_eq!(
            counted(timeouts).await,
            0,
            "{N} timeouts around a future that suspends once"
        );
        assert_eq!(
            counted(scoped_timeouts).await,
            0,
            "{N} scoped_timeouts around a future that suspends once"
        );
        assert_eq!(
            counted(rescheduled_timeouts).await,
            N,
            "{N} scoped_timeout_with, rescheduled once: the handle's slot each"
        );
        assert_eq!(counted(scopes).await, 0, "{N} cancellable(shield(..)) scopes");
        assert_eq!(counted(sleeps).await, 0, "{N} sleeps");
        // A connection's set-up allocates (the task, the sockets'
        // registrations); its round trips do not: as many for 4 × N.
        let made = counted(|| tcp_round_trips(N)).await;
        let made_4x = counted(|| tcp_round_trips(4 * N)).await;
        assert!(
            made == made_4x && made < 16,
            "TCP: {made} allocations for {N} round trips, {made_4x} for {}",
            4 * N
        );
        let made = counted(group).await;
        assert!(
            // One per child; the group's state and its list of children,
            // which grows by doubling (517 when this was written).
            (N..N + 32).contains(&made),
            "a group of {N} children made {made} allocations: one per child and a few for the group"
        );
        assert_eq!(
            counted(spawn_join_ready).await,
            N,
            "{N} spawns + joins of tasks that return at once"
        );
        assert_eq!(
            counted(spawn_join_suspending).await,
            N,
            "{N} spawns + joins of tasks that suspend once"
        );
    });
    // Debug mode off whatever RUNNER_DEBUG says: its bookkeeping allocates,
    // and what is counted here is the release path.
    runner_core::Builder::new()
        .debug(false)
        .run(bounded)
        .unwrap()
        .expect("the counted paths finish within 120 s");
    println!("allocations: the hot paths allocate only the task's block: ok");
}
