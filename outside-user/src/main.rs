//! What a new user of runner-core writes first: the README's example, the
//! attribute, and a hyper hello server, checked with a real request over
//! 127.0.0.1. Exits non-zero when anything is off.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use runner_core::hyper_rt::{HyperIo, RunnerExecutor, RunnerTimer};
use runner_core::net::{TcpListener, TcpStream};
use runner_core::{cancellable, sleep, spawn, ContextVar};

static REQUEST_ID: ContextVar<u32> = ContextVar::new("request_id");

/// The README's first example, as written there.
fn readme_example() {
    let out = runner_core::run(async {
        let _ = REQUEST_ID.set(7);
        // Spawned tasks run in a copy of the spawner's context.
        let worker = spawn(async {
            match cancellable(sleep(Duration::from_secs(3600))).await {
                Ok(()) => "slept".to_string(),
                // The cancellation is caught as a value; async cleanup still runs.
                Err(_) => format!("request {} cleaned up", REQUEST_ID.get().unwrap()),
            }
        });
        runner_core::yield_now().await;
        worker.cancel();
        worker.await.unwrap()
    });
    assert_eq!(out.unwrap(), "request 7 cleaned up");
    println!("README example: ok");
}

async fn hello(_: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from("Hello from runner\n"))))
}

/// A hyper server on runner, and a hyper client asking it once.
async fn hyper_round_trip() -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = spawn(async move {
        let (stream, _) = listener.accept().await?;
        hyper::server::conn::http1::Builder::new()
            .timer(RunnerTimer)
            .serve_connection(HyperIo::new(stream), service_fn(hello))
            .await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    });
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(HyperIo::new(stream)).await?;
    hyper::rt::Executor::execute(&RunnerExecutor, async move {
        let _ = conn.await;
    });
    let response = sender
        .send_request(
            Request::get("/")
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())?,
        )
        .await?;
    let body = response.into_body().collect().await?.to_bytes();
    drop(sender);
    server.await??;
    Ok(String::from_utf8(body.to_vec())?)
}

#[runner_core::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    // `run` inside a running loop is refused; the README example runs on a
    // thread of its own.
    std::thread::spawn(readme_example).join().expect("the README example");
    let body = hyper_round_trip().await?;
    assert_eq!(body, "Hello from runner\n");
    println!("hyper server: answered {body:?}");
    Ok(())
}
