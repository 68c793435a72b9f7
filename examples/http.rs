//! An HTTP/1.1 server: hyper 1.x on runner-core through hyper's `rt` traits
//! (`runner_core::hyper_rt`), no tokio. It answers every request with a hello
//! page. The first Ctrl-C stops accepting and asks each open connection to
//! finish gracefully (the request in flight is answered, idle keep-alive
//! connections close), for up to two seconds; a second Ctrl-C exits at once.
//!
//! `cargo run --example http [ADDR]` (default 127.0.0.1:8080), then for
//! example `curl -i http://127.0.0.1:8080/`.
//!
//! `tests/http.rs` drives this file's [`serve`] with real clients.

use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use runner_core::hyper_rt::{HyperIo, RunnerTimer};
use runner_core::net::{Server, TcpListener, TcpStream};
use runner_core::{cancellable, ContextVar};

/// The client of the connection being served; each connection task sets
/// its own, and the service reads it from the task's context.
static PEER: ContextVar<SocketAddr> = ContextVar::new("peer");

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let peer = PEER.get().map_or_else(|| "?".to_string(), |p| p.to_string());
    let (parts, mut body) = req.into_parts();
    // Read (and count) the request body, so the connection can carry the
    // next request.
    let mut received = 0;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            received += data.len();
        }
    }
    let mut page = format!(
        "Hello from runner: {} {} (you are {peer})",
        parts.method,
        parts.uri.path()
    );
    if received > 0 {
        page += &format!(", {received} bytes received");
    }
    page.push('\n');
    Ok(Response::new(Full::new(Bytes::from(page))))
}

/// Serves one connection. A cancellation (the server shutting down) turns
/// into hyper's graceful shutdown: the request in flight is answered, then
/// the connection closes.
async fn connection(stream: TcpStream, peer: SocketAddr) {
    let _ = PEER.set(peer);
    let _ = stream.set_nodelay(true);
    let conn = http1::Builder::new()
        .timer(RunnerTimer)
        .header_read_timeout(Duration::from_secs(30))
        // A client that shuts its sending side after its request (curl
        // --no-keepalive, load generators) still gets its answer.
        .half_close(true)
        .serve_connection(HyperIo::new(stream), service_fn(hello));
    let mut conn = pin!(conn);
    let result = match cancellable(conn.as_mut()).await {
        Ok(result) => result,
        Err(_cancelled) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Clients that vanish mid-request are common; say so and go on.
        eprintln!("connection from {peer}: {e}");
    }
}

/// Accepts and serves until the calling task is cancelled (Ctrl-C), then
/// stops accepting (the listening socket closes at once: new clients are
/// refused) and shuts the open connections down gracefully, giving them
/// `grace` to finish before they are dropped. Returns how many connections
/// it served.
pub async fn serve(listener: TcpListener, grace: Duration) -> usize {
    let server = match Server::from_listener(listener, connection) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("cannot serve: {e}");
            return 0;
        }
    };
    // Serves until this task is cancelled (Ctrl-C).
    let _cancelled = cancellable(server.serve_forever()).await;
    server.close();
    println!(
        "shutting down: not accepting; {} connection(s) open",
        server.open_connections()
    );
    if server.shutdown(grace).await {
        println!("all connections finished");
    } else {
        println!("connections still open after {grace:?}; closed them");
    }
    server.accepted() as usize
}

#[runner_core::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad address: {e}")))?;
    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{} (Ctrl-C to stop)", listener.local_addr()?);
    let served = serve(listener, Duration::from_secs(2)).await;
    println!("served {served} connection(s); bye");
    Ok(())
}
