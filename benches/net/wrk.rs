//! hyper under wrk: the same hello server on runner and on tokio
//! current-thread, loaded by `wrk` (a separate process, one thread) at 1,
//! 50 and 500 connections, and the instructions each server executes per
//! request, counted by callgrind.
//!
//! - `cargo bench -p runner --bench net wrk`: rounds of `NET_BENCH_SECS`
//!   (whole seconds, default 3) per server and connection count, interleaved, medians.
//! - `cargo bench -p runner --bench net instructions`: each server runs as
//!   a child under `valgrind --tool=callgrind`, exits after answering a
//!   set number of requests, twice (`LOW` and `HIGH` requests); the
//!   difference of the two counts divided by the difference of requests is
//!   the cost of one request, without start-up.
//!
//! Both need `wrk` (Debian: `apt install wrk`), the second `valgrind`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use super::{env_or, median, start, thread_ticks, Server};

/// Runs wrk against `addr`; its requests per second.
fn wrk(addr: SocketAddr, conns: usize, secs: u64) -> f64 {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s")])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("wrk runs (Debian: apt install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .unwrap_or_else(|| panic!("wrk printed no rate:\n{text}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The throughput comparison (see the module docs).
pub(crate) fn compare_wrk() {
    let servers: [(&str, Server); 2] = [
        ("runner", start(super::runner_http)),
        ("tokio current-thread", start(super::tokio_http)),
    ];
    let rounds = env_or("NET_BENCH_ROUNDS", 5usize);
    // Whole seconds: wrk takes no less.
    let secs = env_or("NET_BENCH_SECS", 3u64);
    for (_, s) in &servers {
        wrk(s.addr, 50, 1);
    }
    println!("\n### hyper hello under wrk (-t1): {rounds} rounds of {secs} s, medians\n");
    println!("| connections | runner (req/s) | tokio (req/s) | runner ÷ tokio | CPU µs/request runner | tokio | tokio ÷ runner |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for conns in [1, 50, 500] {
        let mut rates = [Vec::new(), Vec::new()];
        let mut cpu = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for k in 0..2 {
                let i = (k + round) % 2;
                let s = servers[i].1;
                let ticks = thread_ticks(s.tid);
                let rate = wrk(s.addr, conns, secs);
                let used = (thread_ticks(s.tid) - ticks) as f64 * 10_000.0; // µs
                rates[i].push(rate);
                cpu[i].push(used / (rate * secs as f64));
            }
        }
        let r: Vec<f64> = rates.iter_mut().map(|v| median(v)).collect();
        let c: Vec<f64> = cpu.iter_mut().map(|v| median(v)).collect();
        println!(
            "| {conns} | {:.0} | {:.0} | {:.2}× | {:.2} | {:.2} | {:.2}× |",
            r[0],
            r[1],
            r[0] / r[1],
            c[0],
            c[1],
            c[1] / c[0]
        );
    }
}

/// Requests answered by this (child) process.
static ANSWERED: AtomicU64 = AtomicU64::new(0);
static LIMIT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Counts a request; the process exits once `LIMIT` were answered.
pub(crate) fn count_request() {
    if ANSWERED.fetch_add(1, Ordering::Relaxed) + 1 >= LIMIT.load(Ordering::Relaxed) {
        std::process::exit(0);
    }
}

/// The child side of `instructions`: serve on `runtime` until `limit`
/// requests were answered; the address goes to stdout.
pub(crate) fn http_server(runtime: &str, limit: u64) {
    LIMIT.store(limit, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel();
    let server = match runtime {
        "runner" => super::runner_http,
        "tokio" => super::tokio_http,
        other => panic!("unknown runtime {other}: runner or tokio"),
    };
    std::thread::spawn(move || println!("{}", rx.recv().unwrap()));
    server(tx);
}

/// Instructions the child executed for `requests` requests.
fn instructions(runtime: &str, requests: u64) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("valgrind")
        .args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
        .arg(exe)
        .args(["--http-server", runtime, &requests.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("valgrind runs (Debian: apt install valgrind)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line.trim().parse().unwrap();
    // wrk's run ends early when the server is gone; its failure then is
    // expected.
    let mut load = Command::new("wrk")
        .args(["-t1", "-c50", "-d600s", &format!("http://{addr}/")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("wrk runs (Debian: apt install wrk)");
    let out = child.wait_with_output().unwrap();
    let _ = load.kill();
    let _ = load.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    let refs = err
        .lines()
        .find(|l| l.contains("refs:"))
        .unwrap_or_else(|| panic!("callgrind printed no count:\n{err}"));
    refs.rsplit(' ').next().unwrap().replace(',', "").parse().unwrap()
}

/// The instruction comparison (see the module docs).
pub(crate) fn compare_instructions() {
    const LOW: u64 = 5_000;
    const HIGH: u64 = 15_000;
    println!("\n### instructions per hyper request (callgrind, wrk -c50; the whole server process)\n");
    println!("| server | instructions per request |");
    println!("|---|---:|");
    let mut per = Vec::new();
    for runtime in ["runner", "tokio"] {
        let low = instructions(runtime, LOW);
        let high = instructions(runtime, HIGH);
        let n = (high - low) / (HIGH - LOW);
        per.push(n);
        println!("| {runtime} | {n} |");
    }
    println!("\ntokio ÷ runner: {:.2}×", per[1] as f64 / per[0] as f64);
}
