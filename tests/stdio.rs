//! `runner_core::stdio` in a real child process: stdin from a pipe (lines
//! as they come, end of input), from a regular file, the descriptor's
//! blocking flag put back, and a process that exits while a read still
//! waits on an open stdin. Every wait is bounded.

#![cfg(target_os = "linux")]

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;

const FIXTURE: &str = env!("CARGO_BIN_EXE_stdio-fixture");
const PATIENCE: Duration = Duration::from_secs(20);

/// The fixture in `mode`, its stdin a pipe this side writes, its stdout
/// read line by line.
fn start_piped(mode: &str) -> (Child, ChildStdin, mpsc::Receiver<String>) {
    let mut child = Command::new(FIXTURE)
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = common::lines_of(child.stdout.take().unwrap());
    let input = child.stdin.take().unwrap();
    (child, input, lines)
}

#[test]
fn stdin_from_a_pipe_gives_lines_as_they_come_and_the_blocking_flag_is_put_back() {
    let (mut child, mut input, lines) = start_piped("echo-lines");
    let next = || lines.recv_timeout(PATIENCE).expect("a line from the fixture");
    assert_eq!(next(), "nonblocking before: false");
    assert_eq!(next(), "Stdin { polled: true }");
    // Line by line: each is read while the pipe stays open.
    for word in ["one", "two"] {
        writeln!(input, "{word}").unwrap();
        assert_eq!(next(), format!("got: {word}"));
    }
    drop(input);
    assert_eq!(next(), "eof");
    assert_eq!(next(), "nonblocking while held: true");
    assert_eq!(next(), "nonblocking after drop: false");
    assert!(child.wait().unwrap().success());
}

#[test]
fn stdin_from_a_regular_file_is_read_directly() {
    let path = std::env::temp_dir().join(format!("runner-stdio-{}.txt", std::process::id()));
    std::fs::write(&path, "alpha\nbeta\n").unwrap();
    let out = Command::new(FIXTURE)
        .arg("echo-lines")
        .stdin(std::fs::File::open(&path).unwrap())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(out.status.success(), "{lines:?}");
    assert_eq!(lines[1], "Stdin { polled: false }");
    assert_eq!(lines[2..5], ["got: alpha", "got: beta", "eof"]);
}

#[test]
fn the_process_exits_when_main_returns_while_a_read_waits_on_open_stdin() {
    let (mut child, mut input, lines) = start_piped("exit-while-open");
    input.write_all(b"hi").unwrap();
    assert_eq!(lines.recv_timeout(PATIENCE).unwrap(), "first read: 2");
    assert_eq!(lines.recv_timeout(PATIENCE).unwrap(), "main returns");
    // The pipe stays open (`input` is alive): the exit must not wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the fixture did not exit while its stdin was open");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(status.success());
    drop(input);
}

#[test]
fn stdout_writes_reach_the_reader() {
    let out = Command::new(FIXTURE).arg("write-stdout").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "written through runner_core::stdio::stdout\n"
    );
}
