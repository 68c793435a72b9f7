//! Networking at the edges of the process's limits, in real child
//! processes (`tests/fixtures/net.rs`) whose file-descriptor limit is set
//! by the shell's `ulimit`: an accept loop out of descriptors, and 10,000
//! idle connections held at once (memory per connection reported).

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

mod common;

const FIXTURE: &str = env!("CARGO_BIN_EXE_net-fixture");
const PATIENCE: Duration = Duration::from_secs(30);

struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Receiver<String>,
}

impl Fixture {
    /// Starts the fixture with a soft descriptor limit of `nofile`.
    fn start(nofile: u64, args: &[&str]) -> Fixture {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -S -n \"$1\" || exit 97; shift; exec \"$0\" \"$@\"")
            .arg(FIXTURE)
            .arg(nofile.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the fixture starts");
        let lines = common::lines_of(child.stdout.take().unwrap());
        let stderr = common::lines_of(child.stderr.take().unwrap());
        Fixture {
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                    assert!(
                        !line.contains("failed"),
                        "the fixture reported a failure while we waited for {prefix:?}: {line}"
                    );
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let errors: Vec<String> = self.stderr.try_iter().collect();
                    panic!("no {prefix:?} line from the fixture within {PATIENCE:?}; stderr: {errors:?}");
                }
            }
        }
    }

    /// Closes the fixture's stdin (its signal to finish) and waits for it
    /// to exit successfully; returns its stderr.
    fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let errors: Vec<String> = self.stderr.iter().collect();
                assert!(status.success(), "the fixture exited with {status}; stderr: {errors:?}");
                return errors;
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the fixture did not exit within {PATIENCE:?} of its stdin closing");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The hard limit on open files of this process (children inherit it).
fn hard_nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let hard = line.split_whitespace().nth(4).unwrap();
    hard.parse().unwrap_or(u64::MAX) // "unlimited"
}

#[test]
fn accept_out_of_file_descriptors_reports_and_loses_no_connection() {
    // 48 descriptors: some 10 go to the runtime and stdio, so the server
    // can hold fewer than 40 connections. 80 clients connect and wait in
    // the listener's backlog; each, in order, checks its echo and leaves,
    // which frees a descriptor for the next.
    const CLIENTS: usize = 80;
    let mut server = Fixture::start(48, &["echo"]);
    let addr: SocketAddr = server.expect("listening").parse().unwrap();
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut s = TcpStream::connect(addr).expect("the kernel completes the handshake (backlog)");
            s.set_read_timeout(Some(PATIENCE)).unwrap();
            writeln!(s, "hello {i:03}").unwrap();
            s
        })
        .collect();
    for (i, s) in clients.iter_mut().enumerate() {
        let mut back = [0u8; 10];
        s.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("client {i} got no echo: {e}"));
        assert_eq!(back, format!("hello {i:03}\n").as_bytes());
        s.shutdown(std::net::Shutdown::Both).unwrap();
    }
    drop(clients);
    drop(server.stdin.take()); // the fixture's signal to stop serving
    let served: usize = server.expect("served").parse().unwrap();
    assert_eq!(served, CLIENTS, "every connection was accepted in the end");
    let errors = server.finish();
    assert!(
        errors
            .iter()
            .any(|l| l.starts_with("accept failed: ") && l.contains("os error 24")),
        "EMFILE was reported: {errors:?}"
    );
}

#[test]
fn ten_thousand_idle_connections_memory_per_connection() {
    // The client side lives in its own process: both ends in one process
    // would need 20,000 descriptors.
    let hard = hard_nofile();
    let n: u64 = 10_000.min(hard.saturating_sub(200));
    if n < 10_000 {
        eprintln!("the hard limit on open files is {hard}: holding {n} connections instead of 10,000");
    }
    let mut server = Fixture::start(n + 100, &["idle-server", &n.to_string()]);
    let addr = server.expect("listening");
    let before: u64 = server.expect("rss_before").parse().unwrap();
    let clients = Fixture::start(n + 100, &["idle-clients", &addr, &n.to_string()]);
    let mut clients = clients;
    assert_eq!(clients.expect("connected"), n.to_string());
    let after: u64 = server.expect("rss_after").parse().unwrap();
    assert_eq!(server.expect("held"), n.to_string());
    let per_connection = (after.saturating_sub(before) * 1024) / n;
    eprintln!(
        "{n} idle connections: resident memory {before} KiB -> {after} KiB, {per_connection} bytes per connection \
         (task, socket, reactor source; kernel socket buffers not included)"
    );
    assert!(
        per_connection < 4096,
        "an idle connection costs {per_connection} bytes of user memory; expected well under 4 KiB"
    );
    clients.finish();
    server.expect("all closed");
    server.finish();
}
