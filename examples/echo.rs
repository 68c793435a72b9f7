//! A TCP echo server with graceful Ctrl-C: the first Ctrl-C stops accepting
//! and gives the open connections up to two seconds to finish; a second
//! Ctrl-C exits at once.
//!
//! `cargo run --example echo [ADDR]` (default 127.0.0.1:7878), then for
//! example `nc 127.0.0.1 7878`.
//!
//! `tests/net_limits.rs` runs this file's [`serve`] out of file descriptors.

use std::cell::Cell;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use runner_core::net::{TcpListener, TcpStream};
use runner_core::{cancellable, sleep, spawn, timeout};

async fn echo(stream: TcpStream, open: Rc<Cell<usize>>) {
    let mut buf = vec![0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    open.set(open.get() - 1);
}

/// Accepts and echoes until the calling task is cancelled (Ctrl-C), then
/// gives the open connections `grace` to finish. Returns how many
/// connections it served.
///
/// An accept that fails (out of file descriptors, say) is reported on
/// stderr and retried 100 ms later; the connections waiting in the
/// listener's backlog are served once descriptors free up.
pub async fn serve(listener: TcpListener, grace: Duration) -> usize {
    let open = Rc::new(Cell::new(0usize));
    let mut served = 0;
    let accept_loop = async {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    println!("connection from {peer}");
                    open.set(open.get() + 1);
                    served += 1;
                    drop(spawn(echo(stream, open.clone())));
                }
                Err(e) => {
                    eprintln!("accept failed: {e}; retrying in 100 ms");
                    sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    // The accept loop never ends by itself: this returns on cancellation.
    let _cancelled = cancellable(accept_loop).await;
    println!("Ctrl-C: not accepting any more; {} connection(s) open", open.get());
    let drained = timeout(grace, async {
        while open.get() > 0 {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match drained {
        Ok(()) => println!("all connections finished"),
        Err(_) => println!("{} connection(s) still open; closing them", open.get()),
    }
    served
}

#[runner_core::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad address: {e}")))?;
    let listener = TcpListener::bind(addr).await?;
    println!("echo server listening on {} (Ctrl-C to stop)", listener.local_addr()?);
    let served = serve(listener, Duration::from_secs(2)).await;
    println!("served {served} connection(s); bye");
    Ok(())
}
