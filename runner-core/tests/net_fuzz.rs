//! Random echo traffic on 127.0.0.1, cut short at random: clients that
//! time out or are cancelled mid-message, drop their stream mid-way, a
//! server that drops connections, a client task cancelled before it ran.
//! Built from a seed, on real sockets. Every program must end, and every
//! socket it opened be closed after its run (the process's descriptor count
//! is back where it was: a test binary of its own, so no other test opens
//! descriptors meanwhile).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures::future::join_all;
use runner_core::net::{TcpListener, TcpStream};
use runner_core::{cancellable, spawn, timeout, yield_now};

mod common;
mod programs;

use programs::Rng;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A client: a few messages of up to 70 kB (more than a socket buffer),
/// each echoed back, some cut short.
async fn client(rng: Rc<Rng>, addr: SocketAddr) -> std::io::Result<()> {
    let stream = TcpStream::connect(addr).await?;
    for _ in 0..rng.below(5) {
        let len = 1 + rng.below(70_000) as usize;
        let message = vec![7u8; len];
        let mut round_trip = std::pin::pin!(async {
            let mut echo = vec![0u8; len];
            stream.write_all(&message).await?;
            stream.read_exact(&mut echo).await?;
            Ok::<_, std::io::Error>(echo.iter().all(|&b| b == 7))
        });
        match rng.below(4) {
            // A deadline that may cut the message: the stream is then
            // mid-message, so it is done with.
            0 => {
                let micros = rng.below(500);
                let _ = timeout(Duration::from_micros(micros), round_trip.as_mut()).await;
                return Ok(());
            }
            1 => {
                let _ = cancellable(round_trip.as_mut()).await;
            }
            _ => {
                assert!(round_trip.await?, "the echo is the message");
            }
        }
        if rng.below(6) == 0 {
            // Dropped mid-conversation.
            return Ok(());
        }
    }
    Ok(())
}

/// Echoes every connection, and drops one now and then.
async fn serve(listener: TcpListener, rng: Rc<Rng>) {
    while let Ok((stream, _)) = listener.accept().await {
        let rng = rng.clone();
        spawn(async move {
            let mut buf = vec![0u8; 8192];
            loop {
                let n = match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if rng.below(50) == 0 || stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn run_seed(seed: u64) -> Result<(), String> {
    let rng = Rc::new(Rng::new(seed));
    let ended = runner_core::run(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = spawn(serve(listener, rng.clone()));
        let clients: Vec<_> = (0..=rng.below(8)).map(|_| spawn(client(rng.clone(), addr))).collect();
        if rng.below(3) == 0 {
            yield_now().await;
            clients[0].cancel();
        }
        let ended = timeout(Duration::from_secs(20), join_all(clients)).await.is_ok();
        server.cancel();
        ended
    })
    .map_err(|e| format!("run failed: {e}"))?;
    if !ended {
        return Err("the clients did not end within 20 s".into());
    }
    Ok(())
}

#[test]
fn random_traffic_cut_short_ends_and_closes_every_socket() {
    let before = open_descriptors();
    let failures: Vec<String> = common::within_wall_time(Duration::from_secs(120), || {
        (1..=60u64)
            .filter_map(|seed| {
                let mut failed = run_seed(seed).err();
                let after = open_descriptors();
                if failed.is_none() && after != before {
                    failed = Some(format!("{} descriptor(s) left open", after as i64 - before as i64));
                }
                failed.map(|e| format!("seed {seed}: {e}"))
            })
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}
