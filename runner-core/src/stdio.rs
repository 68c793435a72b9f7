//! Standard input and output on the loop's reactor: [`stdin`] and
//! [`stdout`], futures-io's `AsyncRead` and `AsyncWrite`.
//!
//! No thread is involved (tokio reads stdin on a blocking thread, which can
//! keep a process alive after `main` returned): the descriptor is
//! duplicated, put in non-blocking mode, and waited on like a socket. So a
//! read that waits does not keep the process alive: when `main` returns,
//! the process exits even if stdin is still open.
//!
//! Non-blocking mode belongs to the open file description, which the
//! process shares with whoever else holds it (the shell's terminal, the
//! other end's parent): the flag is put back as it was when the handle is
//! dropped. A descriptor the poller cannot wait on (a regular file, as in
//! `prog < file`) needs no waiting: it is read and written directly.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};
use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

use crate::net::Async;

/// The process's standard input, read asynchronously ([`stdin`]).
pub struct Stdin {
    inner: Inner,
}

/// The process's standard output, written asynchronously ([`stdout`]).
pub struct Stdout {
    inner: Inner,
}

enum Inner {
    /// Waited on through the reactor; the flags to put back.
    Polled { io: Async<File>, restore: Option<OFlags> },
    /// Never blocks (a regular file): used directly.
    Direct(File),
}

/// Standard input, for reading inside a running loop.
///
/// ```no_run
/// use futures_lite::{io::BufReader, AsyncBufReadExt, StreamExt};
///
/// runner_core::run(async {
///     let mut lines = BufReader::new(runner_core::stdio::stdin().unwrap()).lines();
///     while let Some(line) = lines.next().await {
///         println!("read: {}", line.unwrap());
///     }
/// })
/// .unwrap();
/// ```
///
/// # Errors
/// Outside a running loop (`NotConnected`), or when the descriptor cannot
/// be duplicated.
pub fn stdin() -> io::Result<Stdin> {
    Ok(Stdin {
        inner: Inner::new(io::stdin().as_fd().try_clone_to_owned()?)?,
    })
}

/// Standard output, for writing inside a running loop. Bytes written here
/// do not go through `std::io::stdout()`'s buffer: flush that first if
/// both are used.
///
/// # Errors
/// As [`stdin`].
pub fn stdout() -> io::Result<Stdout> {
    Ok(Stdout {
        inner: Inner::new(io::stdout().as_fd().try_clone_to_owned()?)?,
    })
}

impl Inner {
    fn new(fd: OwnedFd) -> io::Result<Inner> {
        let flags = fcntl_getfl(&fd)?;
        let file = File::from(fd);
        // Registration first (it sets O_NONBLOCK): a regular file is
        // refused by the poller and read directly.
        match Async::new(file.try_clone()?) {
            Ok(io) => Ok(Inner::Polled {
                io,
                restore: (!flags.contains(OFlags::NONBLOCK)).then_some(flags),
            }),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                // Async::new may have set the flag before the poller said no.
                let _ = fcntl_setfl(&file, flags);
                Ok(Inner::Direct(file))
            }
            Err(e) => {
                let _ = fcntl_setfl(&file, flags);
                Err(e)
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Inner::Polled {
            io,
            restore: Some(flags),
        } = self
        {
            let _ = fcntl_setfl(io.get_ref(), *flags);
        }
    }
}

impl AsyncRead for Stdin {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Polled { io, .. } => Pin::new(io).poll_read(cx, buf),
            Inner::Direct(file) => Poll::Ready(file.read(buf)),
        }
    }
}

impl AsyncWrite for Stdout {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Polled { io, .. } => Pin::new(io).poll_write(cx, buf),
            Inner::Direct(file) => Poll::Ready(file.write(buf)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl fmt::Debug for Stdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdin")
            .field("polled", &self.inner.is_polled())
            .finish()
    }
}

impl fmt::Debug for Stdout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stdout")
            .field("polled", &self.inner.is_polled())
            .finish()
    }
}

impl Inner {
    fn is_polled(&self) -> bool {
        matches!(self, Inner::Polled { .. })
    }
}
