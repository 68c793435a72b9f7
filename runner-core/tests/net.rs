//! TCP on the reactor, against std's blocking clients on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use runner_core::net::{TcpListener, TcpStream};
use runner_core::{cancellable, sleep, spawn, timeout, yield_now};

mod common;
use common::thread_cpu;

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A std client on its own thread: sends `data`, closes its write half,
/// and returns what comes back until the server closes.
fn std_client(addr: SocketAddr, data: &'static [u8]) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.write_all(data).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    })
}

/// Echoes until the peer closes its write half.
async fn echo(stream: TcpStream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            stream.shutdown(Shutdown::Write)?;
            return Ok(total);
        }
        stream.write_all(&buf[..n]).await?;
        total += n as u64;
    }
}

#[test]
fn echo_of_one_mebibyte_through_one_connection() {
    let echoed = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            let mut w = s.try_clone().unwrap();
            let sent = data.clone();
            let writer = std::thread::spawn(move || {
                w.write_all(&sent).unwrap();
                w.shutdown(Shutdown::Write).unwrap();
            });
            let mut back = Vec::new();
            s.read_to_end(&mut back).unwrap();
            writer.join().unwrap();
            back == data
        });
        let (stream, _) = listener.accept().await.unwrap();
        let n = echo(stream).await.unwrap();
        assert_eq!(n, 1 << 20);
        client.join().unwrap()
    })
    .unwrap();
    assert!(echoed, "every byte came back in order");
}

/// `write_all` and `read_exact` across many partial transfers: 8 MiB one
/// way between two tasks of one loop (the writer fills the socket buffers
/// and waits, the reader drains in slow 7-byte-aligned steps), content
/// checked; and their futures are three words (a connection's task holds
/// one at each await).
#[test]
fn write_all_and_read_exact_carry_8_mib_through_partial_transfers() {
    let got = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
        let expected = data.clone();
        let writer = spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            assert_eq!(
                std::mem::size_of_val(&s.write_all(&data)),
                3 * std::mem::size_of::<usize>()
            );
            s.write_all(&data).await.unwrap();
        });
        let (s, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8 << 20];
        assert_eq!(
            std::mem::size_of_val(&s.read_exact(&mut buf)),
            3 * std::mem::size_of::<usize>()
        );
        let mut offset = 0;
        while offset < buf.len() {
            let step = (buf.len() - offset).min(7 * 9_973);
            s.read_exact(&mut buf[offset..offset + step]).await.unwrap();
            offset += step;
            yield_now().await;
        }
        writer.await.unwrap();
        // Nothing more: the writer's stream is closed.
        let mut more = [0u8; 1];
        assert_eq!(s.read(&mut more).await.unwrap(), 0);
        let err = s.read_exact(&mut more).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
        buf == expected
    })
    .unwrap();
    assert!(got, "the bytes arrived in order and whole");
}

#[test]
fn one_thousand_concurrent_connections_each_echo() {
    const N: usize = 1000;
    let ok = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            // All N connections open at once, then each talks.
            let mut conns: Vec<std::net::TcpStream> =
                (0..N).map(|_| std::net::TcpStream::connect(addr).unwrap()).collect();
            for (i, c) in conns.iter_mut().enumerate() {
                c.write_all(format!("message {i:04}").as_bytes()).unwrap();
                c.shutdown(Shutdown::Write).unwrap();
            }
            conns.iter_mut().enumerate().all(|(i, c)| {
                let mut back = String::new();
                c.read_to_string(&mut back).unwrap();
                back == format!("message {i:04}")
            })
        });
        let mut handlers = Vec::with_capacity(N);
        for _ in 0..N {
            let (stream, _) = listener.accept().await.unwrap();
            handlers.push(spawn(echo(stream)));
        }
        for h in handlers {
            assert_eq!(h.await.unwrap().unwrap(), 12);
        }
        client.join().unwrap()
    })
    .unwrap();
    assert!(ok);
}

#[test]
fn half_close_lets_the_server_answer_after_the_clients_eof() {
    let answer = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std_client(addr, b"three words here");
        let (stream, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            match stream.read(&mut buf).await.unwrap() {
                0 => break,
                n => request.extend_from_slice(&buf[..n]),
            }
        }
        let words = String::from_utf8(request).unwrap().split_whitespace().count();
        stream.write_all(format!("{words} words").as_bytes()).await.unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        client.join().unwrap()
    })
    .unwrap();
    assert_eq!(answer, "3 words");
}

#[test]
fn connect_talks_to_a_std_server() {
    let server = std::net::TcpListener::bind(localhost()).unwrap();
    let addr = server.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf.map(|b| b.to_ascii_uppercase())).unwrap();
    });
    let reply = runner_core::run(async move {
        let s = TcpStream::connect(addr).await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), addr);
        s.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.unwrap();
        buf
    })
    .unwrap();
    t.join().unwrap();
    assert_eq!(&reply, b"PING");
}

/// The server side of a connection whose client closed it with SO_LINGER
/// 0, which sends RST instead of FIN.
async fn a_connection_the_peer_reset() -> TcpStream {
    let listener = TcpListener::bind(localhost()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let s = std::net::TcpStream::connect(addr).unwrap();
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        drop(s);
    });
    let (stream, _) = listener.accept().await.unwrap();
    client.join().unwrap();
    stream
}

#[test]
fn a_reset_by_the_peer_is_connection_reset() {
    let err = runner_core::run(async {
        let stream = a_connection_the_peer_reset().await;
        let mut buf = [0u8; 8];
        timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap_err()
    })
    .unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
}

/// Closing (futures-io's `close`, hyper's `poll_shutdown`) a stream the
/// peer has reset succeeds: it is closed. The system call itself says
/// `NotConnected`, which `shutdown` passes on.
#[test]
fn closing_a_stream_the_peer_reset_succeeds() {
    use futures::AsyncWriteExt;
    let (shutdown, close) = runner_core::run(async {
        let mut stream = a_connection_the_peer_reset().await;
        // The reset has arrived once a read says so.
        let mut buf = [0u8; 8];
        let reset = timeout(Duration::from_secs(10), stream.read(&mut buf)).await.unwrap();
        assert_eq!(reset.unwrap_err().kind(), std::io::ErrorKind::ConnectionReset);
        let shutdown = stream.shutdown(Shutdown::Write);
        (shutdown, stream.close().await)
    })
    .unwrap();
    assert_eq!(shutdown.unwrap_err().kind(), std::io::ErrorKind::NotConnected);
    close.unwrap();
}

#[test]
fn a_read_timeout_leaves_the_socket_usable() {
    let got = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            rx.recv().unwrap(); // write only after the server timed out once
            s.write_all(b"late").unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        let first = timeout(Duration::from_millis(50), stream.read(&mut buf)).await;
        assert!(first.is_err(), "nothing was sent yet: the read timed out");
        tx.send(()).unwrap();
        stream.read_exact(&mut buf).await.unwrap();
        client.join().unwrap();
        buf
    })
    .unwrap();
    assert_eq!(&got, b"late");
}

#[test]
fn cancelling_a_read_mid_way_then_reading_again_works() {
    let got = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            rx.recv().unwrap();
            s.write_all(b"after the cancel").unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        let stream = std::rc::Rc::new(stream);
        let reader = stream.clone();
        let pending_read = spawn(async move {
            let mut buf = [0u8; 16];
            cancellable(reader.read(&mut buf)).await.is_err()
        });
        yield_now().await;
        yield_now().await;
        pending_read.cancel();
        assert!(pending_read.await.unwrap(), "the read was cancelled while waiting");
        tx.send(()).unwrap();
        let mut buf = [0u8; 16];
        stream.read_exact(&mut buf).await.unwrap();
        client.join().unwrap();
        buf
    })
    .unwrap();
    assert_eq!(&got, b"after the cancel");
}

#[test]
fn streams_work_with_futures_io_utilities() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    let got = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"through futures-io").await.unwrap();
            s.close().await.unwrap();
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        client.await.unwrap();
        text
    })
    .unwrap();
    assert_eq!(got, "through futures-io");
}

#[test]
fn buffered_line_reading_and_split_halves_work() {
    // AsyncBufRead through futures-io's BufReader, and the stream split
    // into owned read and write halves used by two tasks at once.
    use futures_lite::io::{split, AsyncBufReadExt, AsyncWriteExt, BufReader};
    let lines = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std_client(addr, b"one\ntwo\nthree\n");
        let (stream, _) = listener.accept().await.unwrap();
        let (reader, mut writer) = split(stream);
        let echo_upper = spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            let mut seen = Vec::new();
            while let Some(line) = futures_lite::StreamExt::next(&mut lines).await {
                seen.push(line.unwrap());
            }
            seen
        });
        let seen = echo_upper.await.unwrap();
        for l in &seen {
            writer
                .write_all(format!("{}\n", l.to_uppercase()).as_bytes())
                .await
                .unwrap();
        }
        writer.close().await.unwrap();
        assert_eq!(client.join().unwrap(), "ONE\nTWO\nTHREE\n");
        seen
    })
    .unwrap();
    assert_eq!(lines, ["one", "two", "three"]);
}

#[test]
fn sockets_need_a_running_loop() {
    let err = futures::executor::block_on(TcpListener::bind(localhost())).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
    assert!(err.to_string().contains("running event loop"));
}

#[test]
fn the_virtual_clock_still_jumps_with_a_socket_registered() {
    let wall = std::time::Instant::now();
    runner_core::Builder::new()
        .loop_factory(|| runner_core::EventLoop::builder().start_paused(true).build())
        .run(async {
            let _listener = TcpListener::bind(localhost()).await.unwrap();
            sleep(Duration::from_secs(3600)).await;
        })
        .unwrap();
    assert!(wall.elapsed() < Duration::from_secs(2));
}

#[test]
fn udp_round_trips() {
    use runner_core::net::UdpSocket;
    let replies = runner_core::run(async {
        let server = UdpSocket::bind(localhost()).await.unwrap();
        let server_addr = server.local_addr().unwrap();
        let serve = spawn(async move {
            let mut buf = [0u8; 64];
            for _ in 0..100 {
                let (n, from) = server.recv_from(&mut buf).await.unwrap();
                let reply: Vec<u8> = buf[..n].iter().rev().copied().collect();
                server.send_to(&reply, from).await.unwrap();
            }
        });
        let client = UdpSocket::bind(localhost()).await.unwrap();
        client.connect(server_addr).unwrap();
        let mut ok = 0;
        for i in 0..100 {
            let msg = format!("dgram-{i:03}");
            client.send(msg.as_bytes()).await.unwrap();
            let mut buf = [0u8; 64];
            let n = client.recv(&mut buf).await.unwrap();
            let expected: String = msg.chars().rev().collect();
            ok += usize::from(buf[..n] == *expected.as_bytes());
        }
        serve.await.unwrap();
        ok
    })
    .unwrap();
    assert_eq!(replies, 100);
}

#[cfg(unix)]
#[test]
fn unix_stream_and_datagram_sockets_work() {
    use runner_core::net::{UnixDatagram, UnixListener, UnixStream};
    let dir = common::fresh_dir("runner-unix");
    let sock = dir.join("echo.sock");
    let (stream_reply, dgram_reply, pair_reply) = runner_core::run({
        let sock = sock.clone();
        let dir = dir.clone();
        async move {
            let listener = UnixListener::bind(&sock).unwrap();
            let server = spawn(async move {
                let (s, _) = listener.accept().await.unwrap();
                echo_unix(s).await;
            });
            let c = UnixStream::connect(&sock).await.unwrap();
            c.write_all(b"over a unix stream").await.unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut back = Vec::new();
            let mut buf = [0u8; 8];
            loop {
                match c.read(&mut buf).await.unwrap() {
                    0 => break,
                    n => back.extend_from_slice(&buf[..n]),
                }
            }
            server.await.unwrap();

            let a = UnixDatagram::bind(dir.join("a.sock")).unwrap();
            let b = UnixDatagram::bind(dir.join("b.sock")).unwrap();
            a.send_to(b"dgram", dir.join("b.sock")).await.unwrap();
            let mut buf = [0u8; 16];
            let (n, _) = b.recv_from(&mut buf).await.unwrap();
            let dgram = buf[..n].to_vec();

            let (x, y) = UnixStream::pair().unwrap();
            x.write_all(b"pair").await.unwrap();
            let mut p = [0u8; 4];
            y.read_exact(&mut p).await.unwrap();
            (back, dgram, p)
        }
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(stream_reply, b"over a unix stream");
    assert_eq!(dgram_reply, b"dgram");
    assert_eq!(&pair_reply, b"pair");
}

#[cfg(unix)]
async fn echo_unix(s: runner_core::net::UnixStream) {
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).await.unwrap();
        if n == 0 {
            s.shutdown(Shutdown::Write).unwrap();
            return;
        }
        s.write_all(&buf[..n]).await.unwrap();
    }
}

#[test]
fn blocked_reads_and_writes_wait_without_spinning_then_wake() {
    // One task waits to read from a silent peer; another is stuck writing
    // into a peer that does not read (send buffer full). For 300 ms the
    // loop must sleep; then the peer reads and writes, and both finish.
    let before = thread_cpu();
    let (read_back, written) = runner_core::run(async move {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            go_rx.recv().unwrap();
            s.write_all(b"wake up").unwrap();
            let mut sink = Vec::new();
            let mut r = s.try_clone().unwrap();
            r.read_to_end(&mut sink).unwrap();
            sink.len()
        });
        let (stream, _) = listener.accept().await.unwrap();
        let stream = std::rc::Rc::new(stream);
        let reader = {
            let s = stream.clone();
            spawn(async move {
                let mut buf = [0u8; 16];
                let n = s.read(&mut buf).await.unwrap();
                buf[..n].to_vec()
            })
        };
        let writer = {
            let s = stream.clone();
            spawn(async move {
                let chunk = vec![7u8; 64 * 1024];
                let mut total = 0;
                // Far more than the socket buffers hold: blocks until the
                // peer reads.
                while total < 32 << 20 {
                    s.write_all(&chunk).await.unwrap();
                    total += chunk.len();
                }
                s.shutdown(Shutdown::Write).unwrap();
                total
            })
        };
        sleep(Duration::from_millis(300)).await;
        assert!(!reader.is_done() && !writer.is_done(), "both are blocked");
        let cpu = thread_cpu() - before;
        assert!(
            cpu < Duration::from_millis(150),
            "the loop used {cpu:?} of CPU while blocked"
        );
        go_tx.send(()).unwrap();
        let got = reader.await.unwrap();
        let written = writer.await.unwrap();
        assert_eq!(peer.join().unwrap(), written);
        (got, written)
    })
    .unwrap();
    assert_eq!(read_back, b"wake up");
    assert_eq!(written, 32 << 20);
}

#[test]
fn readable_waits_for_data_after_a_would_block() {
    use runner_core::net::Async;
    let got = runner_core::run(async {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        let mut b = b;
        // Drain what's there: nothing, so the read would block...
        let mut buf = [0u8; 8];
        let first = timeout(Duration::from_millis(50), a.read_with(|s| (&*s).read(&mut buf))).await;
        assert!(first.is_err(), "nothing to read yet");
        // ...and readable() now waits until the peer writes.
        let waiter = timeout(Duration::from_millis(50), a.readable()).await;
        assert!(waiter.is_err(), "readable() must wait while nothing came");
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            b.write_all(b"hi").unwrap();
        });
        a.readable().await.unwrap();
        let n = a.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
        t.join().unwrap();
        buf[..n].to_vec()
    })
    .unwrap();
    assert_eq!(got, b"hi");
}

#[test]
fn connect_to_resolves_names_and_reports_refusal() {
    // (No lookup of a missing name: without a reachable DNS server that
    // can take the resolver's full timeout.)
    let (ok, refused) = runner_core::run(async {
        let listener = TcpListener::bind(localhost()).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect_to("localhost", port).await;
        let ok = client.is_ok() && listener.accept().await.is_ok();
        let closed_port = {
            let l = std::net::TcpListener::bind(localhost()).unwrap();
            l.local_addr().unwrap().port()
        };
        let refused = TcpStream::connect_to("127.0.0.1", closed_port).await.unwrap_err();
        (ok, refused)
    })
    .unwrap();
    assert!(ok, "localhost resolved and connected");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
}

#[test]
fn a_readable_and_try_read_loop_waits_instead_of_spinning() {
    use runner_core::net::Async;
    let before = thread_cpu();
    let got = runner_core::run(async move {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(250));
            b.write_all(b"late").unwrap();
        });
        let mut buf = [0u8; 8];
        let mut would_block = 0;
        let n = loop {
            a.readable().await.unwrap();
            match a.try_read_with(|s| (&*s).read(&mut buf)) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => would_block += 1,
                other => break other.unwrap(),
            }
        };
        t.join().unwrap();
        assert!(
            would_block <= 2,
            "readable() waited after the WouldBlock ({would_block} tries)"
        );
        buf[..n].to_vec()
    })
    .unwrap();
    assert_eq!(got, b"late");
    let cpu = thread_cpu() - before;
    assert!(
        cpu < Duration::from_millis(120),
        "the loop used {cpu:?} of CPU while waiting"
    );
}

/// Readiness means an event came: `readable()` on a freshly wrapped empty
/// descriptor waits (a self-pipe for signals must not fire at startup),
/// and completes once a byte arrives; `writable()` on a fresh socket with
/// room completes (the poller reports it at registration).
#[test]
fn readable_on_a_fresh_empty_descriptor_waits_for_a_real_event() {
    use runner_core::net::Async;
    use std::os::unix::net::UnixStream;
    runner_core::run(async {
        let (a, b) = UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        let waited = timeout(Duration::from_millis(200), a.readable()).await;
        assert!(waited.is_err(), "readable() completed with nothing sent");
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            (&b).write_all(b"!").unwrap();
            b
        });
        timeout(Duration::from_secs(5), a.readable())
            .await
            .expect("readable() completes once a byte arrived")
            .unwrap();
        let mut buf = [0u8; 4];
        let n = a.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"!");
        let b = writer.join().unwrap();
        let b = Async::new(b).unwrap();
        timeout(Duration::from_secs(5), b.writable())
            .await
            .expect("a fresh socket with room is reported writable")
            .unwrap();
    })
    .unwrap();
}

#[test]
fn bind_and_connect_take_what_std_net_takes_and_names_are_looked_up_off_the_loop() {
    use runner_core::net::UdpSocket;
    let out = runner_core::run(async {
        // A name, as a "host:port" string and as a pair.
        let listener = TcpListener::bind("localhost:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let a = TcpStream::connect(format!("localhost:{port}")).await.unwrap();
        let b = TcpStream::connect(("localhost", port)).await.unwrap();
        let c = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        for _ in 0..3 {
            listener.accept().await.unwrap();
        }
        let udp = UdpSocket::bind(("127.0.0.1", 0)).await.unwrap();
        // A name with no address is a clear error.
        let missing = TcpStream::connect("no-such-host.invalid:80").await.unwrap_err();
        // So is an address without its port, saying what form it takes.
        let no_port = TcpStream::connect("127.0.0.1").await.unwrap_err();
        (
            [a, b, c].map(|s| s.peer_addr().unwrap().port()),
            udp.local_addr().unwrap().ip().is_loopback(),
            missing.to_string(),
            no_port,
        )
    })
    .unwrap();
    assert!(out.0.iter().all(|&p| p == out.0[0]));
    assert!(out.1);
    assert!(out.2.contains("no-such-host.invalid"), "{}", out.2);
    assert_eq!(out.3.kind(), std::io::ErrorKind::InvalidInput);
    assert!(out.3.to_string().contains("\"host:port\""), "{}", out.3);
}

#[test]
fn sockets_go_to_std_and_back() {
    runner_core::run(async {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = TcpListener::from_std(std_listener).unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server_side, _) = listener.accept().await.unwrap();
        // Off the loop: a std stream again, usable blocking.
        let std_client = client.into_std().unwrap();
        std_client.set_nonblocking(false).unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            (&std_client).write_all(b"from std").unwrap();
        });
        let mut buf = [0u8; 8];
        server_side.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from std");
        writer.join().unwrap();
        let back = listener.into_std().unwrap();
        assert_eq!(back.local_addr().unwrap(), addr);
    })
    .unwrap();
}

/// A listener made in a run of its own `Runner`, returned out of it.
fn a_listener_of_another_runner() -> (runner_core::Runner, TcpListener) {
    let runner = runner_core::Runner::new();
    let listener = runner
        .run(async { TcpListener::bind(localhost()).await.unwrap() })
        .unwrap();
    (runner, listener)
}

/// The error of an accept that must answer at once. Bounded: a wait that
/// never ends fails here, not hangs.
async fn accept_error(listener: &TcpListener) -> std::io::Error {
    timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the accept answers at once")
        .unwrap_err()
}

/// A socket made in one loop and waited on inside a run of another (which
/// keeps its own loop from running) fails at once, saying so, as asyncio
/// raises "attached to a different loop"; moved with `into_std` and
/// `from_std`, it works in the other loop.
#[test]
fn a_socket_waited_on_in_another_loops_run_fails_at_once_and_can_be_moved() {
    let (_first, listener) = a_listener_of_another_runner();
    let addr = listener.local_addr().unwrap();
    let second = runner_core::Runner::new();
    let (got, client) = second
        .run(async move {
            // No client yet: the accept has to wait.
            let err = accept_error(&listener).await;
            assert!(err.to_string().contains("registered with another event loop"), "{err}");
            let listener = TcpListener::from_std(listener.into_std().unwrap()).unwrap();
            let client = std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.write_all(b"moved").unwrap();
                s.shutdown(Shutdown::Write).unwrap();
            });
            let (stream, _) = timeout(Duration::from_secs(10), listener.accept())
                .await
                .unwrap()
                .unwrap();
            let mut buf = [0u8; 5];
            timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
                .await
                .unwrap()
                .unwrap();
            (buf, client)
        })
        .unwrap();
    client.join().unwrap();
    assert_eq!(&got, b"moved");
}

/// A socket whose loop was closed says so when waited on, in another
/// loop's run or where no loop runs.
#[test]
fn a_socket_whose_loop_closed_says_so() {
    let (first, listener) = a_listener_of_another_runner();
    first.close().unwrap();
    let (err, listener) = runner_core::run(async move { (accept_error(&listener).await, listener) }).unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected, "{err}");
    assert!(err.to_string().contains("was closed"), "{err}");
    let waker = std::task::Waker::noop();
    let accept = std::pin::pin!(listener.accept());
    match std::future::Future::poll(accept, &mut std::task::Context::from_waker(waker)) {
        std::task::Poll::Ready(Err(e)) => assert!(e.to_string().contains("was closed"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_child_process_pipes_are_async_read_and_write_through_async() {
    use futures_lite::{AsyncReadExt, AsyncWriteExt};
    use runner_core::net::Async;
    use std::process::{Command, Stdio};
    let out = runner_core::run(async {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // ChildStdin/ChildStdout read and write only through `&mut`.
        let mut stdin = Async::new(child.stdin.take().unwrap()).unwrap();
        let mut stdout = Async::new(child.stdout.take().unwrap()).unwrap();
        stdin.write_all(b"through cat and back").await.unwrap();
        drop(stdin); // end of input: cat ends
        let mut text = String::new();
        stdout.read_to_string(&mut text).await.unwrap();
        let status = runner_core::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
        text
    })
    .unwrap();
    assert_eq!(out, "through cat and back");
}
