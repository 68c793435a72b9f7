//! Task benchmarks: runner-core against tokio's current-thread runtime (and
//! its `LocalSet` where that is the faster tokio), smol (async-executor's
//! `LocalExecutor` driven by async-io's `block_on`) and futures'
//! `LocalPool`, on the same work in one run.
//!
//! - `spawn_join_100k`: spawn 100,000 tasks that each yield once and return
//!   a number, then await every handle.
//! - `spawn_join_ready_100k`: the same with tasks that return at once.
//! - `yield_1m`: one task calls `yield_now` 1,000,000 times.
//! - `yield_100x10k`: 100 tasks yield 10,000 times each.
//! - `ping_pong_100k`: two tasks hand a counter back and forth 100,000
//!   times through a one-slot baton (the same `Send` baton type for every
//!   runtime, so no runtime gets a cheaper channel).
//! - `ping_pong_channel_100k`: the same over two async-channel channels.
//! - `ping_pong_channel_main_100k`: the same, with one player the future
//!   the runtime runs (`run`, `block_on`, `run_until`) and the other
//!   spawned: the shape where `LocalPool` is the fastest peer.
//!   Both channel groups also run `floor_bare_executor`: the same two
//!   futures on the least an executor can be (two fixed slots, a waker
//!   that is the slot's number, a queue of numbers), not a peer but the
//!   channel's own cost, so that a ratio's ceiling is measured too.
//! - `timers_10k`: 10,000 tasks each sleep 1 to 10 ms (real time).
//! - `sleep_1ms_x50`: 50 sleeps of 1 ms, one after another: the time
//!   less 50 ms is how late they end.
//! - `timeouts_100k`: 100,000 timeouts of 60 s around a future that
//!   yields once (each timer inserted, then cancelled: the pattern of
//!   per-request timeouts), while 10,000 other timers wait (idle
//!   connections' timeouts).
//! - `run_fresh_10k`: 10,000 times, a fresh loop (runtime, executor) runs
//!   a trivial future and is closed.
//! - `run_reused_10k`: 10,000 runs of a trivial future: on one `Runner`
//!   (tokio: one runtime's `block_on`; smol: a new executor each time, as
//!   `block_on` of a fresh `LocalExecutor` is smol's way to run a future).
//!
//! Run with `cargo bench -p runner-core --bench tasks`; ratios are in
//! `docs/benchmarks.md` (`python3 scripts/bench-table.py`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const TASKS: u64 = 100_000;
const YIELDS: u64 = 1_000_000;
const ROUNDS: u64 = 100_000;

/// A yield that works on every runtime: wake self, return Pending once.
struct Yield(bool);

impl Future for Yield {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

fn yield_once() -> Yield {
    Yield(false)
}

/// A one-slot handoff between two tasks.
#[derive(Clone, Default)]
struct Baton(Arc<Mutex<(Option<u64>, Option<Waker>)>>);

impl Baton {
    fn put(&self, v: u64) {
        let waker = {
            let mut g = self.0.lock().unwrap();
            g.0 = Some(v);
            g.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    fn take(&self) -> impl Future<Output = u64> + '_ {
        std::future::poll_fn(move |cx| {
            let mut g = self.0.lock().unwrap();
            match g.0.take() {
                Some(v) => Poll::Ready(v),
                None => {
                    g.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
    }
}

/// Player one: puts `i`, waits for `i + 1`, up to `ROUNDS`.
async fn ping(to: Baton, from: Baton) -> u64 {
    let mut last = 0;
    for i in 0..ROUNDS {
        to.put(i);
        last = from.take().await;
    }
    last
}

/// Player two: answers every `i` with `i + 1`.
async fn pong(to: Baton, from: Baton) {
    for _ in 0..ROUNDS {
        let v = from.take().await;
        to.put(v + 1);
    }
}

async fn yield_many() {
    for _ in 0..YIELDS {
        yield_once().await;
    }
}

/// What `#[tokio::main(flavor = "current_thread")]` builds: I/O and time
/// drivers enabled, as runner's loop always has its reactor.
fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn bench_spawn_join(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join_100k");
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            runner_core::run(async {
                let hs: Vec<_> = (0..TASKS)
                    .map(|i| {
                        runner_core::spawn(async move {
                            yield_once().await;
                            i
                        })
                    })
                    .collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            })
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            tokio_rt().block_on(async {
                let hs: Vec<_> = (0..TASKS)
                    .map(|i| {
                        tokio::spawn(async move {
                            yield_once().await;
                            i
                        })
                    })
                    .collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async {
                let hs: Vec<_> = (0..TASKS)
                    .map(|i| {
                        ex.spawn(async move {
                            yield_once().await;
                            i
                        })
                    })
                    .collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await;
                }
                sum
            }))
        })
    });
    g.bench_function(BenchmarkId::from_parameter("futures_localpool"), |b| {
        use futures::task::LocalSpawnExt;
        b.iter(|| {
            let mut pool = futures::executor::LocalPool::new();
            let sp = pool.spawner();
            pool.run_until(async {
                let hs: Vec<_> = (0..TASKS)
                    .map(|i| {
                        sp.spawn_local_with_handle(async move {
                            yield_once().await;
                            i
                        })
                        .unwrap()
                    })
                    .collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await;
                }
                sum
            })
        })
    });
    g.finish();
}

fn bench_yield(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield_1m");
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| runner_core::run(async { runner_core::spawn(yield_many()).await.unwrap() }).unwrap())
    });
    g.bench_function(BenchmarkId::from_parameter("runner_debug_on"), |b| {
        b.iter(|| {
            runner_core::Builder::new()
                .debug(true)
                .run(async { runner_core::spawn(yield_many()).await.unwrap() })
                .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| tokio_rt().block_on(async { tokio::spawn(yield_many()).await.unwrap() }))
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async { ex.spawn(yield_many()).await }))
        })
    });
    g.bench_function(BenchmarkId::from_parameter("futures_localpool"), |b| {
        use futures::task::LocalSpawnExt;
        b.iter(|| {
            let mut pool = futures::executor::LocalPool::new();
            let h = pool.spawner().spawn_local_with_handle(yield_many()).unwrap();
            pool.run_until(h)
        })
    });
    g.finish();
}

fn bench_ping_pong(c: &mut Criterion) {
    let mut g = c.benchmark_group("ping_pong_100k");
    let batons = || (Baton::default(), Baton::default());
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            let (ab, ba) = batons();
            runner_core::run(async move {
                let p = runner_core::spawn(pong(ba.clone(), ab.clone()));
                let last = runner_core::spawn(ping(ab, ba)).await.unwrap();
                p.await.unwrap();
                last
            })
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("runner_debug_on"), |b| {
        b.iter(|| {
            let (ab, ba) = batons();
            runner_core::Builder::new()
                .debug(true)
                .run(async move {
                    let p = runner_core::spawn(pong(ba.clone(), ab.clone()));
                    let last = runner_core::spawn(ping(ab, ba)).await.unwrap();
                    p.await.unwrap();
                    last
                })
                .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            let (ab, ba) = batons();
            tokio_rt().block_on(async move {
                let p = tokio::spawn(pong(ba.clone(), ab.clone()));
                let last = tokio::spawn(ping(ab, ba)).await.unwrap();
                p.await.unwrap();
                last
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            let (ab, ba) = batons();
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async {
                let p = ex.spawn(pong(ba.clone(), ab.clone()));
                let last = ex.spawn(ping(ab, ba)).await;
                p.await;
                last
            }))
        })
    });
    g.bench_function(BenchmarkId::from_parameter("futures_localpool"), |b| {
        use futures::task::LocalSpawnExt;
        b.iter(|| {
            let (ab, ba) = batons();
            let mut pool = futures::executor::LocalPool::new();
            let sp = pool.spawner();
            let p = sp.spawn_local_with_handle(pong(ba.clone(), ab.clone())).unwrap();
            let pi = sp.spawn_local_with_handle(ping(ab, ba)).unwrap();
            pool.run_until(async move {
                let last = pi.await;
                p.await;
                last
            })
        })
    });
    g.finish();
}

fn bench_spawn_join_ready(c: &mut Criterion) {
    let mut g = c.benchmark_group("spawn_join_ready_100k");
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            runner_core::run(async {
                let hs: Vec<_> = (0..TASKS).map(|i| runner_core::spawn(async move { i })).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            })
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            tokio_rt().block_on(async {
                let hs: Vec<_> = (0..TASKS).map(|i| tokio::spawn(async move { i })).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_local_set"), |b| {
        b.iter(|| {
            let local = tokio::task::LocalSet::new();
            local.block_on(&tokio_rt(), async {
                let hs: Vec<_> = (0..TASKS).map(|i| tokio::task::spawn_local(async move { i })).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await.unwrap();
                }
                sum
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async {
                let hs: Vec<_> = (0..TASKS).map(|i| ex.spawn(async move { i })).collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await;
                }
                sum
            }))
        })
    });
    g.bench_function(BenchmarkId::from_parameter("futures_localpool"), |b| {
        use futures::task::LocalSpawnExt;
        b.iter(|| {
            let mut pool = futures::executor::LocalPool::new();
            let sp = pool.spawner();
            pool.run_until(async {
                let hs: Vec<_> = (0..TASKS)
                    .map(|i| sp.spawn_local_with_handle(async move { i }).unwrap())
                    .collect();
                let mut sum = 0;
                for h in hs {
                    sum += h.await;
                }
                sum
            })
        })
    });
    g.finish();
}

const YIELDERS: u64 = 100;
const YIELDS_EACH: u64 = 10_000;

async fn yield_each() {
    for _ in 0..YIELDS_EACH {
        yield_once().await;
    }
}

fn bench_yield_many_tasks(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield_100x10k");
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            runner_core::run(async {
                let hs: Vec<_> = (0..YIELDERS).map(|_| runner_core::spawn(yield_each())).collect();
                for h in hs {
                    h.await.unwrap();
                }
            })
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            tokio_rt().block_on(async {
                let hs: Vec<_> = (0..YIELDERS).map(|_| tokio::spawn(yield_each())).collect();
                for h in hs {
                    h.await.unwrap();
                }
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async {
                let hs: Vec<_> = (0..YIELDERS).map(|_| ex.spawn(yield_each())).collect();
                for h in hs {
                    h.await;
                }
            }))
        })
    });
    g.bench_function(BenchmarkId::from_parameter("futures_localpool"), |b| {
        use futures::task::LocalSpawnExt;
        b.iter(|| {
            let mut pool = futures::executor::LocalPool::new();
            let sp = pool.spawner();
            let hs: Vec<_> = (0..YIELDERS)
                .map(|_| sp.spawn_local_with_handle(yield_each()).unwrap())
                .collect();
            pool.run_until(async move {
                for h in hs {
                    h.await;
                }
            })
        })
    });
    g.finish();
}

/// Player one over channels: sends `i`, waits for `i + 1`.
async fn ping_ch(to: async_channel::Sender<u64>, from: async_channel::Receiver<u64>) -> u64 {
    let mut last = 0;
    for i in 0..ROUNDS {
        to.send(i).await.unwrap();
        last = from.recv().await.unwrap();
    }
    last
}

/// Player two over channels: answers every `i` with `i + 1`.
async fn pong_ch(to: async_channel::Sender<u64>, from: async_channel::Receiver<u64>) {
    for _ in 0..ROUNDS {
        let v = from.recv().await.unwrap();
        to.send(v + 1).await.unwrap();
    }
}

type Channels = (
    async_channel::Sender<u64>,
    async_channel::Receiver<u64>,
    async_channel::Sender<u64>,
    async_channel::Receiver<u64>,
);

fn channels() -> Channels {
    let (a_tx, a_rx) = async_channel::bounded(1);
    let (b_tx, b_rx) = async_channel::bounded(1);
    (a_tx, a_rx, b_tx, b_rx)
}

fn bench_ping_pong_channel(c: &mut Criterion) {
    ping_pong_channel(c, "ping_pong_channel_100k", false);
}

fn bench_ping_pong_channel_main(c: &mut Criterion) {
    ping_pong_channel(c, "ping_pong_channel_main_100k", true);
}

/// Ping-pong over async-channel: the ping player spawned, or (`in_main`)
/// the future the runtime runs itself.
fn ping_pong_channel(c: &mut Criterion, group: &str, in_main: bool) {
    let mut g = c.benchmark_group(group);
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            let (a_tx, a_rx, b_tx, b_rx) = channels();
            runner_core::run(async move {
                let p = runner_core::spawn(pong_ch(b_tx, a_rx));
                let last = if in_main {
                    ping_ch(a_tx, b_rx).await
                } else {
                    runner_core::spawn(ping_ch(a_tx, b_rx)).await.unwrap()
                };
                p.await.unwrap();
                last
            })
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            let (a_tx, a_rx, b_tx, b_rx) = channels();
            tokio_rt().block_on(async move {
                let p = tokio::spawn(pong_ch(b_tx, a_rx));
                let last = if in_main {
                    ping_ch(a_tx, b_rx).await
                } else {
                    tokio::spawn(ping_ch(a_tx, b_rx)).await.unwrap()
                };
                p.await.unwrap();
                last
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            let (a_tx, a_rx, b_tx, b_rx) = channels();
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async {
                let p = ex.spawn(pong_ch(b_tx, a_rx));
                let last = if in_main {
                    ping_ch(a_tx, b_rx).await
                } else {
                    ex.spawn(ping_ch(a_tx, b_rx)).await
                };
                p.await;
                last
            }))
        })
    });
    g.bench_function(BenchmarkId::from_parameter("floor_bare_executor"), |b| {
        b.iter(|| {
            let (a_tx, a_rx, b_tx, b_rx) = channels();
            bare::run_two(pong_ch(b_tx, a_rx), ping_ch(a_tx, b_rx))
        })
    });
    g.bench_function(BenchmarkId::from_parameter("futures_localpool"), |b| {
        use futures::task::LocalSpawnExt;
        b.iter(|| {
            let (a_tx, a_rx, b_tx, b_rx) = channels();
            let mut pool = futures::executor::LocalPool::new();
            let sp = pool.spawner();
            let p = sp.spawn_local_with_handle(pong_ch(b_tx, a_rx)).unwrap();
            if in_main {
                pool.run_until(async move {
                    let last = ping_ch(a_tx, b_rx).await;
                    p.await;
                    last
                })
            } else {
                let pi = sp.spawn_local_with_handle(ping_ch(a_tx, b_rx)).unwrap();
                pool.run_until(async move {
                    let last = pi.await;
                    p.await;
                    last
                })
            }
        })
    });
    g.finish();
}

/// The bench's floor executor (its own file, so that a test runs its
/// waker under Miri).
#[path = "bare.rs"]
mod bare;

const TIMERS: u64 = 10_000;

/// 1 to 10 ms, spread over the tasks.
fn timer_delay(i: u64) -> Duration {
    Duration::from_micros(1_000 + (i * 7_919) % 9_000)
}

fn bench_timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timers_10k");
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            runner_core::run(async {
                let hs: Vec<_> = (0..TIMERS)
                    .map(|i| runner_core::spawn(runner_core::sleep(timer_delay(i))))
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            })
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            tokio_rt().block_on(async {
                let hs: Vec<_> = (0..TIMERS)
                    .map(|i| tokio::spawn(tokio::time::sleep(timer_delay(i))))
                    .collect();
                for h in hs {
                    h.await.unwrap();
                }
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async {
                let hs: Vec<_> = (0..TIMERS)
                    .map(|i| {
                        ex.spawn(async move {
                            async_io::Timer::after(timer_delay(i)).await;
                        })
                    })
                    .collect();
                for h in hs {
                    h.await;
                }
            }))
        })
    });
    g.finish();
}

const SLEEPS: u32 = 50;

/// How late a sleep ends: `SLEEPS` sleeps of 1 ms one after another, on
/// a fresh runtime each time (the time less 50 ms is their lateness).
fn bench_sleep_lateness(c: &mut Criterion) {
    let ms = Duration::from_millis(1);
    let mut g = c.benchmark_group("sleep_1ms_x50");
    g.sample_size(10);
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            runner_core::run(async move {
                for _ in 0..SLEEPS {
                    runner_core::sleep(ms).await;
                }
            })
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            tokio_rt().block_on(async move {
                for _ in 0..SLEEPS {
                    tokio::time::sleep(ms).await;
                }
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            async_io::block_on(async move {
                for _ in 0..SLEEPS {
                    async_io::Timer::after(ms).await;
                }
            })
        })
    });
    g.finish();
}

const TIMEOUTS: u64 = 100_000;
const IDLE_TIMERS: u64 = 10_000;

/// The long timers that wait while the timeouts come and go.
fn idle_delay(i: u64) -> Duration {
    Duration::from_secs(3600 + i)
}

fn bench_timeouts(c: &mut Criterion) {
    let mut g = c.benchmark_group("timeouts_100k");
    let limit = Duration::from_secs(60);
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            runner_core::run(async move {
                for i in 0..IDLE_TIMERS {
                    drop(runner_core::spawn(runner_core::sleep(idle_delay(i))));
                }
                let mut sum = 0;
                for i in 0..TIMEOUTS {
                    sum += runner_core::timeout(limit, async move {
                        yield_once().await;
                        i
                    })
                    .await
                    .unwrap();
                }
                sum
            })
            .unwrap()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            tokio_rt().block_on(async move {
                for i in 0..IDLE_TIMERS {
                    drop(tokio::spawn(tokio::time::sleep(idle_delay(i))));
                }
                let mut sum = 0;
                for i in 0..TIMEOUTS {
                    sum += tokio::time::timeout(limit, async move {
                        yield_once().await;
                        i
                    })
                    .await
                    .unwrap();
                }
                sum
            })
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        use futures_lite::FutureExt;
        b.iter(|| {
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async {
                for i in 0..IDLE_TIMERS {
                    ex.spawn(async move {
                        async_io::Timer::after(idle_delay(i)).await;
                    })
                    .detach();
                }
                let mut sum = 0;
                for i in 0..TIMEOUTS {
                    sum += async move {
                        yield_once().await;
                        Some(i)
                    }
                    .or(async {
                        async_io::Timer::after(limit).await;
                        None
                    })
                    .await
                    .unwrap();
                }
                sum
            }))
        })
    });
    g.finish();
}

const RUNS: u64 = 10_000;

fn bench_run_fresh(c: &mut Criterion) {
    let mut g = c.benchmark_group("run_fresh_10k");
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            (0..RUNS)
                .map(|i| runner_core::run(async move { i }).unwrap())
                .sum::<u64>()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| (0..RUNS).map(|i| tokio_rt().block_on(async move { i })).sum::<u64>())
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            (0..RUNS)
                .map(|i| {
                    let ex = async_executor::LocalExecutor::new();
                    async_io::block_on(ex.run(async move { i }))
                })
                .sum::<u64>()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("futures_localpool"), |b| {
        b.iter(|| {
            (0..RUNS)
                .map(|i| futures::executor::LocalPool::new().run_until(async move { i }))
                .sum::<u64>()
        })
    });
    g.finish();
}

fn bench_run_reused(c: &mut Criterion) {
    let mut g = c.benchmark_group("run_reused_10k");
    g.bench_function(BenchmarkId::from_parameter("runner"), |b| {
        b.iter(|| {
            let runner = runner_core::Runner::new();
            (0..RUNS).map(|i| runner.run(async move { i }).unwrap()).sum::<u64>()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("tokio_current_thread"), |b| {
        b.iter(|| {
            let rt = tokio_rt();
            (0..RUNS).map(|i| rt.block_on(async move { i })).sum::<u64>()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("smol"), |b| {
        b.iter(|| {
            (0..RUNS)
                .map(|i| {
                    let ex = async_executor::LocalExecutor::new();
                    async_io::block_on(ex.run(async move { i }))
                })
                .sum::<u64>()
        })
    });
    g.bench_function(BenchmarkId::from_parameter("futures_localpool"), |b| {
        b.iter(|| {
            let mut pool = futures::executor::LocalPool::new();
            (0..RUNS).map(|i| pool.run_until(async move { i })).sum::<u64>()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_spawn_join, bench_spawn_join_ready, bench_yield, bench_yield_many_tasks, bench_ping_pong,
        bench_ping_pong_channel, bench_ping_pong_channel_main, bench_timers, bench_sleep_lateness, bench_timeouts, bench_run_fresh,
        bench_run_reused
}
criterion_main!(benches);
