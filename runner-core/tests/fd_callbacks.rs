//! `add_reader`/`add_writer`/`remove_reader`/`remove_writer` on raw file
//! descriptors (asyncio's callback-style I/O), with real socket pairs.

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use runner_core::net::Async;
use runner_core::{sleep, ContextVar, Error, EventLoop};

mod common;
use common::capture_reports;

/// A socket pair: the end to watch (non-blocking, shared through an `Rc`
/// so callbacks can read it) and the peer.
fn watched_pair() -> (Rc<UnixStream>, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    (Rc::new(a), b)
}

#[test]
fn reader_callback_runs_when_data_arrives_and_stops_after_removal() {
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = watched_pair();
    let fd = a.as_raw_fd();
    let got = Rc::new(RefCell::new(Vec::new()));
    let calls = Rc::new(Cell::new(0));
    {
        let (a, got, calls) = (a.clone(), got.clone(), calls.clone());
        lp.add_reader(a.clone(), move || {
            calls.set(calls.get() + 1);
            let mut buf = [0u8; 64];
            if let Ok(n) = (&*a).read(&mut buf) {
                got.borrow_mut().extend_from_slice(&buf[..n]);
            }
        })
        .unwrap();
    }
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        b.write_all(b"hello").unwrap();
        b
    });
    let got2 = got.clone();
    lp.run_until_complete(async move {
        while got2.borrow().len() < 5 {
            sleep(Duration::from_millis(5)).await;
        }
    })
    .unwrap();
    assert_eq!(&got.borrow()[..], b"hello");
    assert!(lp.remove_reader(fd), "it was registered");
    assert!(!lp.remove_reader(fd), "and is no more");
    let calls_after_removal = calls.get();
    let mut b = writer.join().unwrap();
    b.write_all(b"more").unwrap();
    lp.run_until_complete(sleep(Duration::from_millis(50))).unwrap();
    assert_eq!(calls.get(), calls_after_removal, "no call after remove_reader");
}

#[test]
fn reader_callback_is_level_triggered() {
    // Data left unread keeps the descriptor readable: the callback runs
    // again at every iteration (asyncio's semantics), until it reads.
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = watched_pair();
    b.write_all(b"x").unwrap();
    let calls = Rc::new(Cell::new(0));
    {
        let (a, calls) = (a.clone(), calls.clone());
        lp.add_reader(a.clone(), move || {
            calls.set(calls.get() + 1);
            if calls.get() == 5 {
                let mut buf = [0u8; 1];
                (&*a).read_exact(&mut buf).unwrap();
            }
        })
        .unwrap();
    }
    lp.run_until_complete(sleep(Duration::from_millis(50))).unwrap();
    assert_eq!(calls.get(), 5, "called while unread, then not once the data was read");
    assert!(lp.remove_reader(a.as_raw_fd()));
}

#[test]
fn writer_callback_can_remove_itself_and_reader_and_writer_share_a_descriptor() {
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = watched_pair();
    let fd = a.as_raw_fd();
    let events = Rc::new(RefCell::new(Vec::new()));
    {
        let (a, ev, lp2) = (a.clone(), events.clone(), lp.clone());
        lp.add_writer(a.clone(), move || {
            (&*a).write_all(b"from the writer callback").unwrap();
            ev.borrow_mut().push("wrote");
            // One write is enough: the callback unregisters itself.
            assert!(lp2.remove_writer(fd));
        })
        .unwrap();
    }
    {
        let (a, ev) = (a.clone(), events.clone());
        lp.add_reader(a.clone(), move || {
            let mut buf = [0u8; 8];
            let n = (&*a).read(&mut buf).unwrap();
            ev.borrow_mut().push(if n == 0 { "eof" } else { "read" });
        })
        .unwrap();
    }
    lp.run_until_complete(sleep(Duration::from_millis(30))).unwrap();
    assert_eq!(
        &events.borrow()[..],
        ["wrote"],
        "the writer ran once; nothing to read yet"
    );
    let mut buf = vec![0u8; 24];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(buf, b"from the writer callback");
    // The reader is still registered after the writer left.
    b.write_all(b"ping").unwrap();
    lp.run_until_complete(sleep(Duration::from_millis(30))).unwrap();
    assert_eq!(&events.borrow()[..], ["wrote", "read"]);
    assert!(!lp.remove_writer(fd));
    assert!(lp.remove_reader(fd));
}

#[test]
fn the_loop_keeps_the_descriptor_until_the_watch_ends() {
    // An OwnedFd handed to add_reader is closed when the reader is removed,
    // not before: the peer sees EOF only then.
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let fd = a.as_raw_fd();
    lp.add_reader(OwnedFd::from(a), || {}).unwrap();
    b.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 1];
    let e = b.read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "still open while watched");
    assert!(lp.remove_reader(fd));
    assert_eq!(b.read(&mut buf).unwrap(), 0, "closed (EOF) once the watch ended");
}

#[test]
fn a_second_add_reader_replaces_the_callback() {
    let lp = EventLoop::new().unwrap();
    let (a, mut b) = watched_pair();
    let who = Rc::new(RefCell::new(Vec::new()));
    for name in ["first", "second"] {
        let (a, who) = (a.clone(), who.clone());
        lp.add_reader(a.clone(), move || {
            let mut buf = [0u8; 8];
            let _ = (&*a).read(&mut buf);
            who.borrow_mut().push(name);
        })
        .unwrap();
    }
    b.write_all(b"x").unwrap();
    lp.run_until_complete(sleep(Duration::from_millis(30))).unwrap();
    assert_eq!(&who.borrow()[..], ["second"]);
    assert!(lp.remove_reader(a.as_raw_fd()));
}

#[test]
fn callbacks_run_in_the_context_they_were_added_in_and_panics_are_reported() {
    static USER: ContextVar<&'static str> = ContextVar::new("user");
    let lp = EventLoop::new().unwrap();
    let reports = capture_reports(&lp);
    let (a, mut b) = watched_pair();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (lp2, a2, seen2) = (lp.clone(), a.clone(), seen.clone());
    lp.run_until_complete(async move {
        let _token = USER.set("alice");
        lp2.add_reader(a2.clone(), move || {
            let mut buf = [0u8; 8];
            let n = (&*a2).read(&mut buf).unwrap();
            seen2.borrow_mut().push(USER.get());
            if &buf[..n] == b"boom" {
                panic!("reader exploded");
            }
        })
        .unwrap();
    })
    .unwrap();
    assert_eq!(USER.get(), None, "outside, the variable is unset");
    b.write_all(b"boom").unwrap();
    lp.run_until_complete(sleep(Duration::from_millis(30))).unwrap();
    b.write_all(b"fine").unwrap();
    lp.run_until_complete(sleep(Duration::from_millis(30))).unwrap();
    assert_eq!(
        &seen.borrow()[..],
        [Some("alice"), Some("alice")],
        "the reader survived its panic"
    );
    let reports = reports.borrow();
    assert_eq!(reports.len(), 1);
    assert!(reports[0].message.contains("add_reader/add_writer callback panicked"));
    assert_eq!(reports[0].panic.as_deref(), Some("reader exploded"));
    assert!(lp.remove_reader(a.as_raw_fd()));
}

#[test]
fn bad_descriptors_get_clear_errors() {
    let lp = EventLoop::new().unwrap();
    // A regular file: epoll refuses it.
    let file = std::fs::File::open("/proc/self/status").unwrap();
    let e = lp.add_reader(file, || {}).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("cannot watch file descriptor") && msg.contains("regular files"),
        "{msg}"
    );
    // A descriptor a runner socket already owns.
    let (a, mut b) = UnixStream::pair().unwrap();
    lp.run_until_complete(async move {
        let sock = Rc::new(Async::new(a).unwrap());
        let lp = runner_core::get_running_loop().unwrap();
        let e = lp.add_reader(sock.clone(), || {}).unwrap_err();
        assert!(e.to_string().contains("already registered"), "{e}");
        // The socket still works after the refusal.
        b.write_all(b"ok").unwrap();
        let mut buf = [0u8; 2];
        sock.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"ok");
    })
    .unwrap();
    // On a closed loop.
    lp.close().unwrap();
    let (c, _d) = UnixStream::pair().unwrap();
    assert!(matches!(lp.add_reader(c, || {}), Err(Error::LoopClosed)));
}
