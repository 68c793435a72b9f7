//! A TCP echo server with graceful Ctrl-C: the first Ctrl-C stops accepting
//! and gives the open connections up to two seconds to finish; a second
//! Ctrl-C exits at once.
//!
//! `cargo run --example echo [ADDR]` (default 127.0.0.1:7878), then for
//! example `nc 127.0.0.1 7878`.

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

#[runner_core::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7878".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("bad address: {e}")))?;
    let listener = TcpListener::bind(addr)?;
    println!("echo server listening on {} (Ctrl-C to stop)", listener.local_addr()?);
    let open = Rc::new(Cell::new(0usize));
    let served = Rc::new(Cell::new(0usize));

    let accept_loop = async {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    println!("connection from {peer}");
                    open.set(open.get() + 1);
                    served.set(served.get() + 1);
                    drop(spawn(echo(stream, open.clone())));
                }
                // Out of file descriptors and the like: report, go on.
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    sleep(Duration::from_millis(100)).await;
                }
            }
        }
    };
    if cancellable(accept_loop).await.is_err() {
        println!("Ctrl-C: not accepting any more; {} connection(s) open", open.get());
        let drained = timeout(Duration::from_secs(2), async {
            while open.get() > 0 {
                sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        match drained {
            Ok(()) => println!("all connections finished"),
            Err(_) => println!("{} connection(s) still open; closing them", open.get()),
        }
    }
    println!("served {} connection(s); bye", served.get());
    Ok(())
}
