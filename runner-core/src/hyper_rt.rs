//! hyper 1.x on runner-core, through hyper's `rt` traits: [`HyperIo`] (its
//! `Read`/`Write` over runner's sockets), [`RunnerExecutor`] (spawns on the
//! running loop) and [`RunnerTimer`] (runner's timers). No tokio involved.
//! Enabled by the `hyper` feature: `runner-core = { version = "0.1",
//! features = ["hyper"] }`.
//!
//! This module uses `net`'s streams through futures-io's traits, `task`
//! and `time`; nothing else of the crate.
//!
//! ```no_run
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http_body_util::Full;
//! use hyper::{server::conn::http1, service::service_fn, Response};
//! use runner_core::hyper_rt::{HyperIo, RunnerTimer};
//! use runner_core::net::TcpListener;
//!
//! #[runner_core::main]
//! async fn main() -> std::io::Result<()> {
//!     let listener = TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (stream, _) = listener.accept().await?;
//!         runner_core::spawn(async move {
//!             let hello = service_fn(|_req| async {
//!                 Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("Hello from runner\n"))))
//!             });
//!             let _ = http1::Builder::new()
//!                 .timer(RunnerTimer)
//!                 .serve_connection(HyperIo::new(stream), hello)
//!                 .await;
//!         });
//!     }
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};

/// A runner stream (anything `AsyncRead + AsyncWrite` from futures-io) as
/// hyper's `rt::Read + rt::Write`.
///
/// Reads go through a buffer of 8 KiB allocated on the first read: hyper's
/// cursor hands out uninitialized memory only through `unsafe`, and copying
/// the bytes read is cheap next to the system call.
pub struct HyperIo<T> {
    io: T,
    buf: Box<[u8]>,
}

impl<T> HyperIo<T> {
    /// Wraps a stream.
    pub fn new(io: T) -> HyperIo<T> {
        HyperIo {
            io,
            buf: Box::default(),
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Unwraps the stream.
    pub fn into_inner(self) -> T {
        self.io
    }
}

impl<T: fmt::Debug> fmt::Debug for HyperIo<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HyperIo").field(&self.io).finish()
    }
}

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.buf.is_empty() {
            this.buf = vec![0; 8 * 1024].into_boxed_slice();
        }
        let want = buf.remaining().min(this.buf.len());
        match Pin::new(&mut this.io).poll_read(cx, &mut this.buf[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&this.buf[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_close(cx)
    }
}

/// hyper's `rt::Executor`: spawns onto the running loop (futures need not
/// be `Send`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunnerExecutor;

impl<F> hyper::rt::Executor<F> for RunnerExecutor
where
    F: Future + 'static,
    F::Output: 'static,
{
    fn execute(&self, fut: F) {
        drop(crate::task::spawn(fut));
    }
}

/// hyper's `rt::Timer`, on runner's timers (so it follows a paused clock
/// too).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunnerTimer;

/// runner's `Sleep` as hyper's `rt::Sleep`.
struct HyperSleep(crate::time::Sleep);

impl Future for HyperSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx)
    }
}

impl hyper::rt::Sleep for HyperSleep {}

impl hyper::rt::Timer for RunnerTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::time::sleep(duration)))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HyperSleep(crate::time::sleep_until(deadline)))
    }

    /// The running loop's clock (so that hyper's deadlines are on the same
    /// clock as its sleeps, a paused one included); the real time outside
    /// a loop.
    fn now(&self) -> Instant {
        crate::time::driver::with_current(|driver| driver.now()).unwrap_or_else(Instant::now)
    }

    /// In place: the sleep keeps its box and its timer entry.
    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HyperSleep>() {
            Some(mine) => mine.get_mut().0.reset(new_deadline),
            None => *sleep = self.sleep_until(new_deadline),
        }
    }
}
