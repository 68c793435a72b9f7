//! The hyper example (`examples/http.rs`) answering real HTTP/1.1 requests
//! from std's blocking clients on 127.0.0.1, responses parsed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use runner_core::net::TcpListener;
use runner_core::{spawn, spawn_blocking};

#[path = "../examples/http.rs"]
#[allow(dead_code)] // the example's own `main`
mod example;

/// One parsed response.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (status line, headers, a Content-Length body).
fn read_response(r: &mut BufReader<std::net::TcpStream>) -> std::io::Result<Option<Response>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.trim_end().splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "status line: {line:?}");
    let status = parts.next().and_then(|s| s.parse().ok()).expect("a status code");
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("a header line");
        headers.push((n.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: String::new(),
    };
    let len: usize = resp
        .header("content-length")
        .expect("hyper sets Content-Length on a full body")
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    resp.body = String::from_utf8(body).unwrap();
    Ok(Some(resp))
}

fn connect(addr: SocketAddr) -> (std::net::TcpStream, BufReader<std::net::TcpStream>) {
    let s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let r = BufReader::new(s.try_clone().unwrap());
    (s, r)
}

fn get(s: &mut std::net::TcpStream, path: &str) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
}

/// Runs the example's server on a loop, `client` on a blocking thread, and
/// cancels the server (as Ctrl-C does) when the client is done.
fn with_server<T: Send + 'static>(client: impl FnOnce(SocketAddr) -> T + Send + 'static) -> (T, usize) {
    runner_core::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(example::serve(listener, Duration::from_secs(2)));
        let out = spawn_blocking(move || client(addr)).await.unwrap();
        server.cancel();
        let served = server.await.unwrap();
        (out, served)
    })
    .unwrap()
}

#[test]
fn answers_a_get_with_the_hello_page() {
    let (resp, served) = with_server(|addr| {
        let (mut s, mut r) = connect(addr);
        get(&mut s, "/hello/world");
        let resp = read_response(&mut r).unwrap().expect("a response");
        (resp, s.local_addr().unwrap())
    });
    let (resp, client_addr) = resp;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("date").is_some(),
        "hyper's Date header (its timer): {resp:?}"
    );
    assert_eq!(
        resp.body,
        format!("Hello from runner: GET /hello/world (you are {client_addr})\n"),
        "the path and the peer (a context variable of the connection's task) reach the service"
    );
    assert_eq!(served, 1);
}

#[test]
fn keeps_a_connection_alive_across_requests() {
    let (bodies, served) = with_server(|addr| {
        let (mut s, mut r) = connect(addr);
        let mut bodies = Vec::new();
        for i in 0..20 {
            get(&mut s, &format!("/n/{i}"));
            let resp = read_response(&mut r)
                .unwrap()
                .expect("a response on the same connection");
            assert_eq!(resp.status, 200);
            bodies.push(resp.body);
        }
        // Pipelined: three requests written at once, three answers in order.
        write!(
            s,
            "GET /p/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /p/2 HTTP/1.1\r\nHost: t\r\n\r\nGET /p/3 HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        .unwrap();
        for _ in 0..3 {
            bodies.push(read_response(&mut r).unwrap().unwrap().body);
        }
        bodies
    });
    assert_eq!(served, 1, "all 23 requests went through one connection");
    for (i, b) in bodies[..20].iter().enumerate() {
        assert!(b.starts_with(&format!("Hello from runner: GET /n/{i} ")), "{b}");
    }
    for (i, b) in bodies[20..].iter().enumerate() {
        assert!(b.starts_with(&format!("Hello from runner: GET /p/{} ", i + 1)), "{b}");
    }
}

#[test]
fn serves_many_concurrent_clients() {
    const CLIENTS: usize = 100;
    const REQUESTS: usize = 10;
    let (ok, served) = with_server(|addr| {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|c| {
                std::thread::spawn(move || {
                    let (mut s, mut r) = connect(addr);
                    (0..REQUESTS).all(|i| {
                        get(&mut s, &format!("/{c}/{i}"));
                        let resp = read_response(&mut r).unwrap().unwrap();
                        resp.status == 200 && resp.body.starts_with(&format!("Hello from runner: GET /{c}/{i} "))
                    })
                })
            })
            .collect();
        let results: Vec<bool> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        results.iter().all(|&ok| ok)
    });
    assert!(ok, "every client got its own answers");
    assert_eq!(served, CLIENTS);
}

#[test]
fn a_post_body_is_read_and_the_connection_goes_on() {
    let (resp, _) = with_server(|addr| {
        let (mut s, mut r) = connect(addr);
        let body = "x".repeat(100_000);
        write!(
            s,
            "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let first = read_response(&mut r).unwrap().unwrap();
        get(&mut s, "/after");
        let second = read_response(&mut r).unwrap().unwrap();
        (first, second)
    });
    assert_eq!(resp.0.status, 200);
    assert!(resp.0.body.starts_with("Hello from runner: POST /upload "));
    assert!(resp.0.body.ends_with(", 100000 bytes received\n"), "{}", resp.0.body);
    assert!(resp.1.body.starts_with("Hello from runner: GET /after "));
}

#[test]
fn a_malformed_request_gets_400_and_the_server_keeps_serving() {
    let (statuses, _) = with_server(|addr| {
        let (mut s, mut r) = connect(addr);
        s.write_all(b"this is not http\r\n\r\n").unwrap();
        let bad = read_response(&mut r).unwrap().map(|r| r.status);
        let (mut s2, mut r2) = connect(addr);
        get(&mut s2, "/");
        let good = read_response(&mut r2).unwrap().unwrap().status;
        (bad, good)
    });
    assert_eq!(statuses, (Some(400), 200));
}

#[test]
fn shutdown_closes_idle_keep_alive_connections_gracefully() {
    // The client keeps a connection open after its answer; cancelling the
    // server (what Ctrl-C does to the main task) closes it cleanly, well
    // within the grace period, and the server returns.
    let started = std::time::Instant::now();
    let (eof, served) = runner_core::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(example::serve(listener, Duration::from_secs(10)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let client = spawn_blocking(move || {
            let (mut s, mut r) = connect(addr);
            get(&mut s, "/");
            assert_eq!(read_response(&mut r).unwrap().unwrap().status, 200);
            tx.send(()).unwrap();
            // Now idle: the next read sees the server's close.
            read_response(&mut r).unwrap().is_none()
        });
        spawn_blocking(move || rx.recv().unwrap()).await.unwrap();
        server.cancel();
        let served = server.await.unwrap();
        (client.await.unwrap(), served)
    })
    .unwrap();
    assert!(eof, "the idle connection was closed by the server (EOF)");
    assert_eq!(served, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "graceful, not the 10 s grace timeout"
    );
}

#[test]
fn shutdown_answers_the_request_in_flight_then_closes() {
    // The client is halfway through sending a POST body when the server is
    // cancelled; the request still gets its full answer, then EOF.
    let (got, served) = runner_core::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(example::serve(listener, Duration::from_secs(10)));
        let (half_sent, wait_half) = std::sync::mpsc::channel::<()>();
        let (cancelled, wait_cancel) = std::sync::mpsc::channel::<()>();
        let client = spawn_blocking(move || {
            let (mut s, mut r) = connect(addr);
            s.write_all(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
                .unwrap();
            half_sent.send(()).unwrap();
            wait_cancel.recv().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(b"67890").unwrap();
            let resp = read_response(&mut r)
                .unwrap()
                .expect("the request in flight is answered");
            (resp.status, resp.body, read_response(&mut r).unwrap().is_none())
        });
        spawn_blocking(move || wait_half.recv().unwrap()).await.unwrap();
        // Let the server read the first half before it is told to stop.
        runner_core::sleep(Duration::from_millis(50)).await;
        server.cancel();
        runner_core::yield_now().await;
        cancelled.send(()).unwrap();
        let served = server.await.unwrap();
        (client.await.unwrap(), served)
    })
    .unwrap();
    let (status, body, eof) = got;
    assert_eq!(status, 200);
    assert!(body.ends_with(", 10 bytes received\n"), "{body}");
    assert!(eof, "the connection closed after the answer");
    assert_eq!(served, 1);
}

#[test]
fn a_client_connecting_after_the_drain_began_is_refused_at_once() {
    // A request is in flight when the server is told to stop: the
    // listening socket closes at once (a new client is refused, not left
    // hanging), and the request in flight is still answered.
    let (refused_in, answered) = runner_core::run(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(example::serve(listener, Duration::from_secs(10)));
        let (half_sent, wait_half) = std::sync::mpsc::channel::<()>();
        let (draining, wait_draining) = std::sync::mpsc::channel::<()>();
        let client = spawn_blocking(move || {
            let (mut s, mut r) = connect(addr);
            s.write_all(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nab")
                .unwrap();
            half_sent.send(()).unwrap();
            wait_draining.recv().unwrap();
            let started = std::time::Instant::now();
            let refused = std::net::TcpStream::connect(addr).map_err(|e| e.kind());
            let refused_in = started.elapsed();
            assert_eq!(refused.unwrap_err(), std::io::ErrorKind::ConnectionRefused);
            s.write_all(b"cd").unwrap();
            let resp = read_response(&mut r)
                .unwrap()
                .expect("the request in flight is answered");
            (refused_in, resp.status)
        });
        spawn_blocking(move || wait_half.recv().unwrap()).await.unwrap();
        runner_core::sleep(Duration::from_millis(50)).await;
        server.cancel();
        // The server task awaits the accepting task, so the cancellation
        // is handed to that one first (as asyncio does); the server closes
        // its listener when it comes back, two loop turns later. A sleep
        // lets every ready task run first (one yield did not: flaky).
        runner_core::sleep(Duration::from_millis(20)).await;
        draining.send(()).unwrap();
        let out = client.await.unwrap();
        server.await.unwrap();
        out
    })
    .unwrap();
    assert!(refused_in < Duration::from_millis(500), "refused in {refused_in:?}");
    assert_eq!(answered, 200);
}

#[test]
fn clients_that_half_close_after_their_request_are_all_answered() {
    const CLIENTS: usize = 300;
    let (answered, served) = with_server(|addr| {
        // All at once, each writing its request (with a body) and its
        // end-of-stream in one go, so the server often reads both before it
        // answers.
        let start = std::sync::Arc::new(std::sync::Barrier::new(CLIENTS));
        let threads: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let start = start.clone();
                std::thread::spawn(move || {
                    let (mut s, mut r) = connect(addr);
                    start.wait();
                    s.write_all(
                        format!("POST /half/{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello").as_bytes(),
                    )
                    .unwrap();
                    // Nothing more to send: the write side closes.
                    s.shutdown(std::net::Shutdown::Write).unwrap();
                    matches!(read_response(&mut r), Ok(Some(resp)) if resp.status == 200)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).filter(|&ok| ok).count()
    });
    assert_eq!(answered, CLIENTS, "every half-closing client got its answer");
    assert_eq!(served, CLIENTS);
}

#[runner_core::runner_test(start_paused, timeout = "20s")]
async fn hyper_timers_run_on_runner_timers_and_follow_a_paused_clock() {
    // hyper's header-read timeout (30 s) runs on RunnerTimer: with the
    // loop's clock paused, it fires as soon as the loop has nothing else to
    // do, in far less than 30 s of real time, and hyper closes the
    // connection of a client that never finished its request head.
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use runner_core::hyper_rt::{HyperIo, RunnerTimer};

    let started = std::time::Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let (mut s, _) = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: slow").unwrap(); // never finished
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest); // until the server closes
        String::from_utf8_lossy(&rest).into_owned()
    });
    let (stream, _) = listener.accept().await.unwrap();
    let served = http1::Builder::new()
        .timer(RunnerTimer)
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(
            HyperIo::new(stream),
            service_fn(|_req| async { Ok::<_, std::convert::Infallible>(hyper::Response::new(String::new())) }),
        )
        .await;
    let err = served.expect_err("the request head never completed");
    assert!(err.is_timeout(), "hyper's header timeout fired: {err}");
    let answer = client.join().unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "closed (or 408) after the timeout: {answer:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "virtual time, not 30 real seconds"
    );
}

#[runner_core::runner_test(start_paused, timeout = "20s")]
async fn hyper_deadlines_are_on_the_loops_clock_even_an_hour_ahead_of_real_time() {
    // The paused clock moves an hour ahead of real time before the client
    // comes. hyper takes its deadlines from RunnerTimer::now, so its 30 s
    // header-read timeout is 30 s of the loop's clock away and both requests
    // on the kept-alive connection are answered. From real time, the
    // deadline would be an hour in the
    // loop's past and the timeout would cut the connection while the client
    // pauses before its request.
    runner_core::time::pause_auto_advance().unwrap();
    runner_core::time::advance(Duration::from_secs(3600)).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(example::serve(listener, Duration::from_secs(2)));
    let statuses = spawn_blocking(move || {
        let (mut s, mut r) = connect(addr);
        (0..2)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(50));
                get(&mut s, "/");
                read_response(&mut r).ok().flatten().map(|resp| resp.status)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    server.cancel();
    server.await.unwrap();
    assert_eq!(statuses, [Some(200), Some(200)]);
}

#[test]
fn runner_executor_spawns_hyper_futures_on_the_running_loop() {
    use hyper::rt::Executor;
    use runner_core::hyper_rt::RunnerExecutor;
    use std::cell::Cell;
    use std::rc::Rc;
    let ran = runner_core::run(async {
        let flag = Rc::new(Cell::new(false));
        let f = flag.clone();
        // Not Send: hyper's executor trait is generic over the future.
        RunnerExecutor.execute(async move { f.set(true) });
        assert!(!flag.get(), "spawned, not run inline");
        runner_core::yield_now().await;
        flag.get()
    })
    .unwrap();
    assert!(ran);
}
