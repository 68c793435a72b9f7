//! Network throughput, runner against tokio current-thread, smol
//! (async-executor + async-io) and a bare level-triggered epoll loop (raw
//! `epoll_wait` through rustix, no runtime), on the same work in one run:
//!
//! - **echo**: `CONNS` connections, each sending a `MSG`-byte message and
//!   waiting for its echo, over and over (round trips per second);
//! - **http**: the same hyper 1.x HTTP/1.1 hello server on runner
//!   (`runner_core::hyper_rt`) and on tokio (`hyper-util`), `CONNS` keep-alive
//!   connections each sending GET after GET (requests per second).
//!
//! Every server runs on one thread; the load comes from one client thread,
//! a bare epoll loop shared by all servers, so only the server differs.
//! Rounds interleave the servers (1 s each, `ROUNDS` rounds) and medians
//! are reported, with ratios against tokio and the bare loop.
//!
//! - **idle**: the resident memory of a server process (runner, tokio,
//!   smol) holding `NET_BENCH_IDLE` (10,000) idle connections, each with a
//!   task waiting to read.
//!
//! - **wrk** and **instructions**: hyper under `wrk` at 1, 50 and 500
//!   connections, and callgrind's instructions per request (`net/wrk.rs`).
//!
//! `cargo bench -p runner --bench net [echo|http|idle|wrk|instructions]`
//! (no argument: echo, http and idle); environment:
//! `NET_BENCH_CONNS` (default 64), `NET_BENCH_ROUNDS` (5),
//! `NET_BENCH_SECS` (1.0), `NET_BENCH_MSG` (echo message size, 512).

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Response;
use rustix::event::epoll;

#[path = "net/wrk.rs"]
mod wrk;

/// A bare level-triggered epoll set (rustix's safe wrappers): one
/// `epoll_wait` per wait, nothing else.
struct Epoll(std::os::fd::OwnedFd);

impl Epoll {
    fn new() -> Epoll {
        Epoll(epoll::create(epoll::CreateFlags::CLOEXEC).unwrap())
    }
    fn flags(r: bool, w: bool) -> epoll::EventFlags {
        let mut f = epoll::EventFlags::empty();
        if r {
            f |= epoll::EventFlags::IN;
        }
        if w {
            f |= epoll::EventFlags::OUT;
        }
        f
    }
    fn add(&self, fd: impl std::os::fd::AsFd, key: usize, r: bool, w: bool) {
        epoll::add(&self.0, fd, epoll::EventData::new_u64(key as u64), Self::flags(r, w)).unwrap();
    }
    fn modify(&self, fd: impl std::os::fd::AsFd, key: usize, r: bool, w: bool) {
        epoll::modify(&self.0, fd, epoll::EventData::new_u64(key as u64), Self::flags(r, w)).unwrap();
    }
    fn delete(&self, fd: impl std::os::fd::AsFd) {
        epoll::delete(&self.0, fd).unwrap();
    }
    /// Waits (at most `timeout_ms`, -1 for no limit) into `out` as
    /// `(key, readable, writable)`.
    fn wait(&self, buf: &mut Vec<epoll::Event>, out: &mut Vec<(usize, bool, bool)>, timeout_ms: i64) {
        buf.clear();
        out.clear();
        let ts = rustix::event::Timespec {
            tv_sec: timeout_ms / 1000,
            tv_nsec: (timeout_ms % 1000) * 1_000_000,
        };
        let timeout = (timeout_ms >= 0).then_some(&ts);
        match epoll::wait(&self.0, rustix::buffer::spare_capacity(buf), timeout) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => panic!("epoll_wait: {e}"),
        }
        use epoll::EventFlags as F;
        out.extend(buf.iter().map(|e| {
            let (flags, data) = (e.flags, e.data); // copied out of the packed struct
            let bad = flags.intersects(F::ERR | F::HUP);
            (
                data.u64() as usize,
                bad || flags.contains(F::IN),
                bad || flags.contains(F::OUT),
            )
        }));
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const HELLO: &[u8] = b"Hello, World!";
const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A running server: where it listens and the id of its thread (to read
/// its CPU time).
#[derive(Clone, Copy)]
struct Server {
    addr: SocketAddr,
    tid: u32,
}

/// Starts `server` on its own thread; it sends back its address.
fn start(server: fn(mpsc::Sender<SocketAddr>)) -> Server {
    let (tx, rx) = mpsc::channel();
    let (tid_tx, tid_rx) = mpsc::channel();
    std::thread::spawn(move || {
        // "PID/task/TID"
        let me = std::fs::read_link("/proc/thread-self").unwrap();
        tid_tx
            .send(me.file_name().unwrap().to_str().unwrap().parse().unwrap())
            .unwrap();
        server(tx)
    });
    Server {
        tid: tid_rx.recv().unwrap(),
        addr: rx.recv().expect("the server reports its address"),
    }
}

/// CPU time (user + system) a thread has used, in clock ticks (1/100 s).
fn thread_ticks(tid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

// ---------------------------------------------------------------- echo servers

/// The same per-connection echo on each runtime: read into `buf`, write it
/// all back, until end of stream or an error.
async fn runner_echo_conn(s: runner_core::net::TcpStream, buf: &mut [u8]) {
    while let Ok(n @ 1..) = s.read(buf).await {
        if s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

async fn tokio_echo_conn(mut s: tokio::net::TcpStream, buf: &mut [u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok(n @ 1..) = s.read(buf).await {
        if s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

async fn smol_echo_conn(s: async_io::Async<TcpStream>, buf: &mut [u8]) {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    while let Ok(n @ 1..) = (&s).read(buf).await {
        if (&s).write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// tokio's current-thread runtime as `#[tokio::main(flavor = "current_thread")]` builds it.
fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn runner_echo(tx: mpsc::Sender<SocketAddr>) {
    runner_core::run(async move {
        let listener = runner_core::net::TcpListener::bind(localhost()).await.unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            drop(runner_core::spawn(async move {
                runner_echo_conn(s, &mut vec![0u8; 4096]).await
            }));
        }
    })
    .unwrap();
}

fn tokio_echo(tx: mpsc::Sender<SocketAddr>) {
    tokio_rt().block_on(async move {
        let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move { tokio_echo_conn(s, &mut vec![0u8; 4096]).await });
        }
    });
}

fn smol_echo(tx: mpsc::Sender<SocketAddr>) {
    let ex = async_executor::LocalExecutor::new();
    async_io::block_on(ex.run(async {
        let listener = async_io::Async::<TcpListener>::bind(localhost()).unwrap();
        tx.send(listener.get_ref().local_addr().unwrap()).unwrap();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            s.get_ref().set_nodelay(true).unwrap();
            ex.spawn(async move { smol_echo_conn(s, &mut vec![0u8; 4096]).await })
                .detach();
        }
    }));
}

/// The bare loop: level-triggered epoll, a slab of connections, each read
/// written straight back (what is left of a short write waits for
/// writability).
fn bare_echo(tx: mpsc::Sender<SocketAddr>) {
    struct Conn {
        s: TcpStream,
        pending: Vec<u8>,
    }
    let listener = TcpListener::bind(localhost()).unwrap();
    listener.set_nonblocking(true).unwrap();
    tx.send(listener.local_addr().unwrap()).unwrap();
    let ep = Epoll::new();
    ep.add(&listener, 0, true, false);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let (mut raw, mut events) = (Vec::with_capacity(1024), Vec::with_capacity(1024));
    let mut buf = vec![0u8; 4096];
    loop {
        ep.wait(&mut raw, &mut events, -1);
        for &(key, readable, writable) in &events {
            if key == 0 {
                while let Ok((s, _)) = listener.accept() {
                    s.set_nonblocking(true).unwrap();
                    s.set_nodelay(true).unwrap();
                    let key = conns.iter().position(Option::is_none).unwrap_or_else(|| {
                        conns.push(None);
                        conns.len() - 1
                    });
                    ep.add(&s, key + 1, true, false);
                    conns[key] = Some(Conn { s, pending: Vec::new() });
                }
                continue;
            }
            let key = key - 1;
            let Some(c) = conns[key].as_mut() else { continue };
            let mut close = false;
            if writable && !c.pending.is_empty() {
                match c.s.write(&c.pending) {
                    Ok(n) => drop(c.pending.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => close = true,
                }
                if c.pending.is_empty() {
                    ep.modify(&c.s, key + 1, true, false);
                }
            } else if readable {
                match c.s.read(&mut buf) {
                    Ok(0) => close = true,
                    Ok(n) => match c.s.write(&buf[..n]) {
                        Ok(w) if w == n => {}
                        Ok(w) => {
                            c.pending.extend_from_slice(&buf[w..n]);
                            ep.modify(&c.s, key + 1, false, true);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            c.pending.extend_from_slice(&buf[..n]);
                            ep.modify(&c.s, key + 1, false, true);
                        }
                        Err(_) => close = true,
                    },
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => close = true,
                }
            }
            if close {
                let c = conns[key].take().unwrap();
                ep.delete(&c.s);
            }
        }
    }
}

// ---------------------------------------------------------------- http servers

async fn hello_service(_req: hyper::Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    wrk::count_request();
    Ok(Response::new(Full::new(Bytes::from_static(HELLO))))
}

fn runner_http(tx: mpsc::Sender<SocketAddr>) {
    use runner_core::hyper_rt::{HyperIo, RunnerTimer};
    runner_core::run(async move {
        let listener = runner_core::net::TcpListener::bind(localhost()).await.unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            drop(runner_core::spawn(async move {
                let _ = http1::Builder::new()
                    .timer(RunnerTimer)
                    .serve_connection(HyperIo::new(s), service_fn(hello_service))
                    .await;
            }));
        }
    })
    .unwrap();
}

fn tokio_http(tx: mpsc::Sender<SocketAddr>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    tokio_rt().block_on(async move {
        let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
        tx.send(listener.local_addr().unwrap()).unwrap();
        loop {
            let (s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(s), service_fn(hello_service))
                    .await;
            });
        }
    });
}

// ---------------------------------------------------------------- the client

/// How long the complete reply at the start of `buf` is, if it is there.
type Complete = fn(&[u8]) -> Option<usize>;

fn http_response_len(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&buf[..head]).ok()?;
    let len: usize = text
        .split("\r\n")
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("a Content-Length");
    (buf.len() >= head + len).then_some(head + len)
}

/// Opens `conns` connections to `addr`, then for `secs` keeps each of them
/// sending `request` and waiting for a complete reply; returns replies per
/// second. One thread, level-triggered epoll.
fn load(addr: SocketAddr, conns: usize, request: &[u8], complete: Complete, secs: f64) -> f64 {
    struct Conn {
        s: TcpStream,
        inbuf: Vec<u8>,
        out: usize,
    }
    let ep = Epoll::new();
    let mut cs: Vec<Conn> = (0..conns)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_nodelay(true).unwrap();
            s.set_nonblocking(true).unwrap();
            Conn {
                s,
                inbuf: Vec::with_capacity(4096),
                out: 0,
            }
        })
        .collect();
    for (i, c) in cs.iter().enumerate() {
        ep.add(&c.s, i, false, true);
    }
    let (mut raw, mut events) = (Vec::with_capacity(1024), Vec::with_capacity(1024));
    let mut buf = vec![0u8; 64 * 1024];
    let mut replies = 0u64;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    while Instant::now() < end {
        ep.wait(&mut raw, &mut events, 100);
        for &(key, readable, writable) in &events {
            let c = &mut cs[key];
            if writable {
                match c.s.write(&request[c.out..]) {
                    Ok(n) => c.out += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("client write: {e}"),
                }
                if c.out == request.len() {
                    ep.modify(&c.s, key, true, false);
                }
            } else if readable {
                match c.s.read(&mut buf) {
                    Ok(0) => panic!("the server closed a connection"),
                    Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => panic!("client read: {e}"),
                }
                if let Some(len) = complete(&c.inbuf) {
                    assert_eq!(len, c.inbuf.len(), "one request in flight, one reply");
                    c.inbuf.clear();
                    replies += 1;
                    c.out = match c.s.write(request) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                        Err(e) => panic!("client write: {e}"),
                    };
                    if c.out < request.len() {
                        ep.modify(&c.s, key, false, true);
                    }
                }
            }
        }
    }
    let rate = replies as f64 / start.elapsed().as_secs_f64();
    for c in &cs {
        ep.delete(&c.s);
    }
    rate
}

// ---------------------------------------------------------------- the driver

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn compare(title: &str, unit: &str, servers: &[(&str, Server)], request: &[u8], complete: Complete) {
    // NET_BENCH_SERVERS=runner,tokio keeps the servers whose names start so.
    let only: Option<String> = std::env::var("NET_BENCH_SERVERS").ok();
    let servers: Vec<(&str, Server)> = servers
        .iter()
        .filter(|(n, _)| only.as_ref().is_none_or(|o| o.split(',').any(|p| n.starts_with(p))))
        .cloned()
        .collect();
    let servers = &servers[..];
    let conns = env_or("NET_BENCH_CONNS", 64usize);
    let rounds = env_or("NET_BENCH_ROUNDS", 9usize);
    let secs = env_or("NET_BENCH_SECS", 1.0f64);
    // Warm-up: every server, briefly.
    for (_, s) in servers {
        load(s.addr, conns, request, complete, 0.2);
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    for round in 0..rounds {
        // Rotate the order, so no server always runs first or last.
        for k in 0..servers.len() {
            let i = (k + round) % servers.len();
            let s = servers[i].1;
            let ticks = thread_ticks(s.tid);
            let rate = load(s.addr, conns, request, complete, secs);
            let used = (thread_ticks(s.tid) - ticks) as f64 * 10_000.0; // µs
            rates[i].push(rate);
            cpu[i].push(used / (rate * secs));
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let cpu_medians: Vec<f64> = cpu.iter_mut().map(|c| median(c)).collect();
    println!("\n### {title}: {conns} connections, {rounds} rounds of {secs} s, medians\n");
    println!("| server | {unit} (median) | min | max | runner ÷ this | server CPU per op (µs) | this ÷ runner |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (runner, runner_cpu) = (medians[0], cpu_medians[0]);
    for (i, (name, _)) in servers.iter().enumerate() {
        let min = rates[i].iter().cloned().fold(f64::INFINITY, f64::min);
        let max = rates[i].iter().cloned().fold(0.0, f64::max);
        println!(
            "| {name} | {:.0} | {min:.0} | {max:.0} | {:.2}× | {:.2} | {:.2}× |",
            medians[i],
            runner / medians[i],
            cpu_medians[i],
            cpu_medians[i] / runner_cpu,
        );
    }
    println!(
        "\nThroughput: above 1× means runner served more. CPU per op: the server thread's user + system \
         time per {}, above 1× means runner used less.",
        if unit.starts_with("round") {
            "round trip"
        } else {
            "request"
        }
    );
}

// ---------------------------------------------------------------- idle memory

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The child side of the idle-memory comparison: a server on `runtime`
/// that accepts `n` connections, each served by a task echoing through a
/// 64-byte buffer, and prints its resident memory before and after; it
/// exits when all have closed.
fn idle_server(runtime: &str, n: usize) {
    fn report(before: u64) {
        println!("rss {before} {}", rss_kib());
    }
    match runtime {
        "runner" => runner_core::run(async move {
            let listener = runner_core::net::TcpListener::bind(localhost()).await.unwrap();
            println!("listening {}", listener.local_addr().unwrap());
            let before = rss_kib();
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                let (s, _) = listener.accept().await.unwrap();
                tasks.push(runner_core::spawn(
                    async move { runner_echo_conn(s, &mut [0u8; 64]).await },
                ));
            }
            runner_core::yield_now().await;
            report(before);
            for t in tasks {
                t.await.unwrap();
            }
        })
        .unwrap(),
        "tokio" => {
            tokio_rt().block_on(async move {
                let listener = tokio::net::TcpListener::bind(localhost()).await.unwrap();
                println!("listening {}", listener.local_addr().unwrap());
                let before = rss_kib();
                let mut tasks = Vec::with_capacity(n);
                for _ in 0..n {
                    let (s, _) = listener.accept().await.unwrap();
                    tasks.push(tokio::spawn(async move { tokio_echo_conn(s, &mut [0u8; 64]).await }));
                }
                tokio::task::yield_now().await;
                report(before);
                for t in tasks {
                    t.await.unwrap();
                }
            });
        }
        "smol" => {
            let ex = async_executor::LocalExecutor::new();
            async_io::block_on(ex.run(async {
                let listener = async_io::Async::<TcpListener>::bind(localhost()).unwrap();
                println!("listening {}", listener.get_ref().local_addr().unwrap());
                let before = rss_kib();
                let mut tasks = Vec::with_capacity(n);
                for _ in 0..n {
                    let (s, _) = listener.accept().await.unwrap();
                    tasks.push(ex.spawn(async move { smol_echo_conn(s, &mut [0u8; 64]).await }));
                }
                futures_lite::future::yield_now().await;
                report(before);
                for t in tasks {
                    t.await;
                }
            }));
        }
        other => panic!("unknown runtime {other}"),
    }
}

/// Starts an idle server child per runtime, holds `n` client connections
/// to it, and reports the child's memory growth per connection.
fn idle_memory(n: usize) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    println!("\n### {n} idle connections: resident memory of the server process\n");
    println!("| server | before (KiB) | after (KiB) | bytes per connection |");
    println!("|---|---:|---:|---:|");
    for runtime in ["runner", "tokio", "smol"] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--idle-server", runtime, &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = out.next().unwrap().unwrap();
        let addr: SocketAddr = line.strip_prefix("listening ").unwrap().parse().unwrap();
        let clients: Vec<TcpStream> = (0..n)
            .map(|i| {
                TcpStream::connect(addr).unwrap_or_else(|e| {
                    panic!("connection {i} failed: {e} (raise `ulimit -n` above {n} to hold them all)")
                })
            })
            .collect();
        let line = out.next().unwrap().unwrap();
        let nums: Vec<u64> = line.split_whitespace().skip(1).map(|v| v.parse().unwrap()).collect();
        let (before, after) = (nums[0], nums[1]);
        drop(clients);
        child.wait().unwrap();
        let name = match runtime {
            "tokio" => "tokio current-thread",
            "smol" => "smol (async-executor + async-io)",
            r => r,
        };
        println!(
            "| {name} | {before} | {after} | {} |",
            (after - before) * 1024 / n as u64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--idle-server") {
        return idle_server(&args[2], args[3].parse().unwrap());
    }
    if args.get(1).map(String::as_str) == Some("--http-server") {
        return wrk::http_server(&args[2], args[3].parse().unwrap());
    }
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    // Only when asked for: they need wrk (and valgrind).
    if which.iter().any(|w| w == "wrk") {
        wrk::compare_wrk();
    }
    if which.iter().any(|w| w == "instructions") {
        wrk::compare_instructions();
    }
    if wants("echo") {
        let msg = vec![b'x'; env_or("NET_BENCH_MSG", 512usize)];
        let servers = [
            ("runner", start(runner_echo)),
            ("tokio current-thread", start(tokio_echo)),
            ("smol (async-executor + async-io)", start(smol_echo)),
            ("bare epoll loop", start(bare_echo)),
        ];
        let title = format!("echo, {}-byte messages", msg.len());
        // The message's length is the reply's: a `fn` pointer can't capture
        // it, so the echo check reads it from a thread-local.
        MSG_LEN.with(|l| l.set(msg.len()));
        compare(&title, "round trips/s", &servers, &msg, echo_len);
    }
    if wants("http") {
        let servers = [
            ("runner", start(runner_http)),
            ("tokio current-thread", start(tokio_http)),
        ];
        compare(
            "hyper 1.x HTTP/1.1 hello, keep-alive",
            "requests/s",
            &servers,
            GET,
            http_response_len,
        );
    }
    if wants("idle") {
        idle_memory(env_or("NET_BENCH_IDLE", 10_000usize));
    }
}

thread_local! {
    static MSG_LEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn echo_len(buf: &[u8]) -> Option<usize> {
    let n = MSG_LEN.with(|l| l.get());
    (buf.len() >= n).then_some(n)
}
