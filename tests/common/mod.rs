//! Helpers shared by the integration tests that drive child processes.

// Each test file uses part of it.
#![allow(dead_code)]

pub mod fixture;

use std::io::{BufRead, BufReader, Read};
use std::sync::mpsc::{channel, Receiver};

/// The lines `r` produces (a child's stdout or stderr), forwarded to a
/// channel by a thread, so the test can wait for them with a deadline.
pub fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}
