//! Memory per task: runner-core against tokio's current-thread runtime and
//! smol (async-executor's `LocalExecutor` driven by async-io's
//! `block_on`), on the same tasks.
//!
//! Two shapes, 1,000,000 tasks each, every `JoinHandle` kept in a `Vec`:
//!
//! - `queued`: tasks of a future that holds a `u64` and returns it, spawned
//!   and not yet run (what a burst of spawns costs).
//! - `idle`: tasks that hold a `u64` and wait on a future that never wakes,
//!   each polled once, then the loop waits (a 1 ms sleep of the main
//!   future): what idle connections' tasks cost.
//!
//! - `burst`: tasks that each sleep 1 to 5 ms and return, all awaited,
//!   then the loop waits (a 1 ms sleep): what a burst leaves behind.
//!
//! For `queued` and `idle`: allocations and bytes asked of the allocator per task (a
//! counting allocator around the system's), and resident memory per task
//! (the growth of the process's RSS, `/proc/self/statm`), which is what
//! the allocator's rounding and bookkeeping make of those bytes. Each
//! runtime runs in a child process of its own, so that no runtime gets the
//! pages another one freed. For `burst`, per task of the burst: the bytes
//! the runtime still holds once it is over (asked, not given back), the
//! growth of RSS, and that growth after `malloc_trim(0)` (what is left when
//! the allocator's free lists go back to the system).
//!
//! Run with `cargo bench -p runner-core --bench memory` (Linux only: it
//! reads `/proc`); the figures are in `docs/benchmarks.md`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::pin::Pin;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

const TASKS: usize = 1_000_000;
/// How long the `idle` shape lets the loop wait.
const PAUSE: Duration = Duration::from_millis(1);
const CHILD: &str = "RUNNER_MEMORY_BENCH_CHILD";
const RUNTIMES: [&str; 3] = ["runner", "tokio", "smol"];
const SHAPES: [&str; 3] = ["queued", "idle", "burst"];

/// Counts allocations and the bytes asked for, then defers to `System`.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed to `System` unchanged; the counters are
// plain atomics.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        LIVE_BYTES.fetch_add(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        LIVE_BYTES.fetch_add(new_size as u64, Relaxed);
        LIVE_BYTES.fetch_sub(layout.size() as u64, Relaxed);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// What the counters and RSS say at one moment.
#[derive(Clone, Copy)]
struct Snapshot {
    allocs: u64,
    live: u64,
    rss: u64,
}

fn snapshot() -> Snapshot {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("this benchmark needs /proc");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("/proc/self/statm has a resident field");
    // SAFETY: sysconf has no preconditions.
    #[allow(unsafe_code)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    Snapshot {
        allocs: ALLOCS.load(Relaxed),
        live: LIVE_BYTES.load(Relaxed),
        rss: pages * page,
    }
}

/// Prints the per-task figures between `before` and now, for the parent.
fn report(before: Snapshot) {
    let after = snapshot();
    let n = TASKS as f64;
    println!(
        "{:.2} {:.1} {:.1}",
        (after.allocs - before.allocs) as f64 / n,
        after.live.saturating_sub(before.live) as f64 / n,
        after.rss.saturating_sub(before.rss) as f64 / n,
    );
}

/// Prints what a burst left behind, per task, for the parent.
fn report_burst(before: Snapshot) {
    let after = snapshot();
    // glibc's; elsewhere the last figure is the resident one again.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
    let trimmed = snapshot();
    let n = TASKS as f64;
    println!(
        "{:.1} {:.1} {:.1}",
        after.live.saturating_sub(before.live) as f64 / n,
        after.rss.saturating_sub(before.rss) as f64 / n,
        trimmed.rss.saturating_sub(before.rss) as f64 / n,
    );
}

/// A burst task's sleep: 1 to 5 ms.
fn burst_delay(i: u64) -> Duration {
    Duration::from_millis(1 + i % 5)
}

/// The `burst` shape as one async block, for any runtime (the arguments
/// as [`spawn_shape`]'s; `$join` turns an awaited handle into its output).
macro_rules! burst_shape {
    ([$($spawn:tt)+], $sleep:expr, $join:expr) => {
        async move {
            let before = snapshot();
            let handles: Vec<_> = (0..TASKS as u64)
                .map(|i| {
                    $($spawn)+(async move {
                        $sleep(burst_delay(i)).await;
                        i
                    })
                })
                .collect();
            for h in handles {
                $join(h.await);
            }
            $sleep(PAUSE).await;
            report_burst(before);
            std::process::exit(0);
        }
    };
}

/// The `burst` shape on `runtime`.
fn burst(runtime: &str) {
    match runtime {
        "runner" => runner_core::run(burst_shape!([runner_core::spawn], runner_core::sleep, |r: Result<
            u64,
            runner_core::JoinError,
        >| r
            .expect("a burst task")))
        .expect("the benchmark's run"),
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(burst_shape!([tokio::spawn], tokio::time::sleep, |r: Result<
                u64,
                tokio::task::JoinError,
            >| r
                .expect("a burst task"))),
        "smol" => {
            let executor = async_executor::LocalExecutor::new();
            let ex = &executor;
            async_io::block_on(ex.run(burst_shape!([ex.spawn], async_io::Timer::after, |r: u64| r)))
        }
        other => panic!("no runtime {other:?}"),
    }
}

/// Counts its first poll, then never completes (and is never woken).
struct Idle {
    value: u64,
    polled: Arc<AtomicUsize>,
    counted: bool,
}

impl Future for Idle {
    type Output = u64;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u64> {
        if !self.counted {
            self.counted = true;
            self.polled.fetch_add(1, Relaxed);
        }
        if self.value == u64::MAX {
            Poll::Ready(self.value)
        } else {
            Poll::Pending
        }
    }
}

fn idle(value: u64, polled: &Arc<AtomicUsize>) -> Idle {
    Idle {
        value,
        polled: polled.clone(),
        counted: false,
    }
}

/// The `queued` and `idle` shapes as one async block, for any runtime:
/// `[$spawn]` is what spawns (a path or a method: `[ex.spawn]`), and
/// `$yield_now` and `$sleep` are the runtime's.
macro_rules! spawn_shape {
    ($queued:expr, $polled:expr, [$($spawn:tt)+], $yield_now:expr, $sleep:expr) => {
        async move {
            let (queued, polled): (bool, Arc<AtomicUsize>) = ($queued, $polled);
            let mut handles = Vec::with_capacity(TASKS);
            let before = snapshot();
            for i in 0..TASKS as u64 {
                if queued {
                    handles.push($($spawn)+(async move { std::hint::black_box(i) }));
                } else {
                    handles.push($($spawn)+(idle(i, &polled)));
                }
            }
            while !queued && polled.load(Relaxed) < TASKS {
                $yield_now.await;
            }
            if !queued {
                $sleep(PAUSE).await;
            }
            report(before);
            std::process::exit(0);
        }
    };
}

/// Runs one runtime's shape in this process and prints its figures.
fn child(runtime: &str, shape: &str) {
    if shape == "burst" {
        return burst(runtime);
    }
    let polled = Arc::new(AtomicUsize::new(0));
    let queued = shape == "queued";
    match runtime {
        "runner" => runner_core::run(spawn_shape!(
            queued,
            polled,
            [runner_core::spawn],
            runner_core::yield_now(),
            runner_core::sleep
        ))
        .expect("the benchmark's run"),
        "tokio" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(spawn_shape!(
                queued,
                polled,
                [tokio::spawn],
                tokio::task::yield_now(),
                tokio::time::sleep
            )),
        "smol" => {
            let executor = async_executor::LocalExecutor::new();
            let ex = &executor;
            async_io::block_on(ex.run(spawn_shape!(
                queued,
                polled,
                [ex.spawn],
                futures_lite::future::yield_now(),
                async_io::Timer::after
            )))
        }
        other => panic!("no runtime {other:?}"),
    }
}

fn main() {
    if let Ok(which) = std::env::var(CHILD) {
        let (runtime, shape) = which.split_once(' ').expect("runtime and shape");
        child(runtime, shape);
        return;
    }
    let exe = std::env::current_exe().expect("the benchmark's own path");
    for shape in SHAPES {
        println!("\n{shape}: {TASKS} tasks, per task");
        if shape == "burst" {
            println!(
                "| runtime | bytes still held | resident bytes | resident after malloc_trim | the last, runner = 1 |"
            );
        } else {
            println!("| runtime | allocations | bytes asked | resident bytes | resident, runner = 1 |");
        }
        println!("|---|---:|---:|---:|---:|");
        let mut runner_rss = None;
        for runtime in RUNTIMES {
            let out = Command::new(&exe)
                .env(CHILD, format!("{runtime} {shape}"))
                .output()
                .expect("the benchmark runs itself as a child");
            let text = String::from_utf8_lossy(&out.stdout);
            let figures: Vec<f64> = text.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            if !out.status.success() || figures.len() != 3 {
                eprintln!("{runtime} {shape} failed: {}", String::from_utf8_lossy(&out.stderr));
                continue;
            }
            let rss = figures[2];
            let base = *runner_rss.get_or_insert(rss);
            println!(
                "| {runtime} | {:.2} | {:.1} | {:.1} | {:.2}x |",
                figures[0],
                figures[1],
                rss,
                rss / base
            );
        }
    }
}
