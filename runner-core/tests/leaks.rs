//! After close, no file descriptor the loop opened is still open and no
//! thread it started is still running. This file holds a single test: it
//! counts the whole process's descriptors and threads.

use std::time::Duration;

use runner_core::{sleep, spawn, spawn_blocking, Runner};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// The process's threads once those that are exiting are gone: a joined
/// thread has ended its run, but the kernel may list it a moment longer
/// (the join returns when the thread lets go of its memory, before it is
/// taken off the thread group), for longer on a loaded machine. One still
/// running after a second is a thread left behind.
fn threads_settled(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let n = threads();
        if n == expected || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn close_releases_every_fd_and_thread_the_loop_started() {
    let fds_before = open_fds();
    let threads_before = threads();
    for _ in 0..3 {
        let runner = Runner::new();
        runner
            .run(async {
                let blocking: Vec<_> = (0..4)
                    .map(|i| spawn_blocking(move || std::thread::sleep(Duration::from_millis(5 * i))))
                    .collect();
                let t = spawn(sleep(Duration::from_secs(3600)));
                for b in blocking {
                    b.await.unwrap();
                }
                drop(t);
                // Sockets: a listener and both ends of a connection.
                let listener = runner_core::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let client = spawn(runner_core::net::TcpStream::connect(addr));
                let (server_side, _) = listener.accept().await.unwrap();
                let client_side = client.await.unwrap().unwrap();
                client_side.write_all(b"x").await.unwrap();
                let mut b = [0u8; 1];
                server_side.read_exact(&mut b).await.unwrap();
            })
            .unwrap();
        let lp = runner.get_loop().unwrap();
        assert!(open_fds() > fds_before, "the loop holds its poller while open");
        assert!(lp.executor_thread_count() > 0);
        runner.close().unwrap();
        assert_eq!(open_fds(), fds_before, "fds left open after close");
        assert_eq!(
            threads_settled(threads_before),
            threads_before,
            "threads left running after close"
        );
    }
}
