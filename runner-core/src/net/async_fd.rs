//! [`Async`]: any non-blocking I/O object registered with the running
//! loop's reactor (as async-io's `Async`), and the readiness waits and
//! futures-io traits built on it. Uses `reactor` only.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::reactor::{self, Direction, ReactorDriver, Running, Source};

/// A non-blocking I/O object registered with the loop's reactor.
///
/// ```
/// use std::net::UdpSocket;
/// use runner_core::net::Async;
///
/// runner_core::run(async {
///     let a = Async::new(UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     b.send_to(b"ping", a.get_ref().local_addr().unwrap()).unwrap();
///     let mut buf = [0u8; 4];
///     let (n, _) = a.read_with(|s| s.recv_from(&mut buf)).await.unwrap();
///     assert_eq!(&buf[..n], b"ping");
/// })
/// .unwrap();
/// ```
pub struct Async<T: AsFd + 'static> {
    /// `None` only once [`into_inner`](Async::into_inner) took it.
    io: Option<T>,
    pub(super) source: Rc<Source>,
    reactor: Weak<ReactorDriver>,
}

impl<T: AsFd + 'static> Async<T> {
    /// Puts `io` in non-blocking mode and registers it with the running
    /// loop. Fails outside a loop (`NotConnected`, saying so) or when the OS
    /// refuses.
    pub fn new(io: T) -> io::Result<Async<T>> {
        let driver = reactor::current().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotConnected,
                "runner_core::net needs a running event loop: create sockets inside runner_core::run(..)",
            )
        })?;
        socket2::SockRef::from(&io).set_nonblocking(true)?;
        let source = driver.get()?.register(io.as_fd())?;
        Ok(Async {
            io: Some(io),
            source,
            reactor: Rc::downgrade(&driver),
        })
    }

    /// The wrapped object.
    pub fn get_ref(&self) -> &T {
        self.io
            .as_ref()
            .expect("invariant: the object is taken only by into_inner")
    }

    /// The wrapped object, mutably (for I/O calls that take `&mut self`).
    /// Do the I/O through [`read_with`](Self::read_with) and friends so the
    /// readiness stays true, and do not replace the object: the
    /// registration is for its descriptor.
    pub fn get_mut(&mut self) -> &mut T {
        self.io
            .as_mut()
            .expect("invariant: the object is taken only by into_inner")
    }

    /// Takes the object back off the loop's reactor (it stays in
    /// non-blocking mode).
    ///
    /// ```
    /// use runner_core::net::Async;
    ///
    /// runner_core::run(async {
    ///     let socket = Async::new(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()).unwrap();
    ///     let std_socket = socket.into_inner().unwrap();
    ///     assert!(std_socket.local_addr().unwrap().ip().is_loopback());
    /// })
    /// .unwrap();
    /// ```
    pub fn into_inner(mut self) -> io::Result<T> {
        self.deregister();
        Ok(self.io.take().expect("invariant: the object is taken only here"))
    }

    /// Deletes the descriptor from the poller while it is still open.
    fn deregister(&mut self) {
        let Some(io) = &self.io else { return };
        if let Some(driver) = self.reactor.upgrade() {
            if let Some(mut reactor) = driver.try_existing() {
                reactor.deregister(&self.source, io.as_fd());
            }
        }
    }

    /// Registers the waker for the direction's next readiness event.
    /// `Ready(Err)` when the loop is gone (nothing would ever wake it).
    fn poll_wait(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        poll_wait(&self.source, &self.reactor, dir, cx)
    }

    /// Runs a non-blocking operation, polling style: [`try_op`](Self::try_op),
    /// with its `WouldBlock` turned into `Pending` and the waker registered.
    ///
    /// It and [`poll_attempts`] are every socket read and write: both are
    /// inlined by force, as the compiler's own choice moved with unrelated
    /// edits (out of line, a hyper request cost 7,687 instructions instead
    /// of 7,601: `cargo bench -p runner --bench net instructions`).
    #[inline(always)]
    pub(super) fn poll_op<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self
            .io
            .as_ref()
            .expect("invariant: the object is taken only by into_inner");
        poll_attempts(&self.source, &self.reactor, dir, cx, || op(io))
    }

    /// [`poll_op`](Self::poll_op) with the object borrowed mutably (for
    /// objects that read or write only through `&mut`).
    fn poll_op_mut<R>(
        &mut self,
        dir: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let io = self
            .io
            .as_mut()
            .expect("invariant: the object is taken only by into_inner");
        poll_attempts(&self.source, &self.reactor, dir, cx, || op(io))
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for
    /// readability in between.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_op(Direction::Read, cx, &mut op)).await
    }

    /// Runs `op` until it does not return `WouldBlock`, waiting for
    /// writability in between.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        std::future::poll_fn(|cx| self.poll_op(Direction::Write, cx, &mut op)).await
    }

    /// Runs `op` once, now, if the object is believed readable; otherwise,
    /// or when `op` says `WouldBlock`, returns `WouldBlock` (and records
    /// it, so that [`readable`](Self::readable) then waits for the next
    /// event). The non-waiting half of [`read_with`](Self::read_with), for
    /// loops around `readable()` (tokio's `try_io`).
    ///
    /// ```
    /// use std::io::{self, Read, Write};
    /// use std::os::unix::net::UnixStream;
    /// use runner_core::net::Async;
    ///
    /// runner_core::run(async {
    ///     let (a, mut b) = UnixStream::pair().unwrap();
    ///     let a = Async::new(a).unwrap();
    ///     let mut buf = [0u8; 8];
    ///     // Nothing yet: WouldBlock, and readable() will now wait.
    ///     let e = a.try_read_with(|s| (&*s).read(&mut buf)).unwrap_err();
    ///     assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    ///     b.write_all(b"hi").unwrap();
    ///     let n = loop {
    ///         a.readable().await.unwrap();
    ///         match a.try_read_with(|s| (&*s).read(&mut buf)) {
    ///             Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
    ///             other => break other.unwrap(),
    ///         }
    ///     };
    ///     assert_eq!(&buf[..n], b"hi");
    /// })
    /// .unwrap();
    /// ```
    pub fn try_read_with<R>(&self, op: impl FnOnce(&T) -> io::Result<R>) -> io::Result<R> {
        self.try_op(Direction::Read, op)
    }

    /// As [`try_read_with`](Self::try_read_with), for writing.
    pub fn try_write_with<R>(&self, op: impl FnOnce(&T) -> io::Result<R>) -> io::Result<R> {
        self.try_op(Direction::Write, op)
    }

    /// Runs `op` if the direction is believed ready, else says
    /// `WouldBlock`; a `WouldBlock` from `op` clears the belief.
    fn try_op<R>(&self, dir: Direction, op: impl FnOnce(&T) -> io::Result<R>) -> io::Result<R> {
        attempt_if_ready(&self.source, dir, || op(self.get_ref()))
    }

    /// Waits until the reactor reported the object readable: a readiness
    /// event came, and no operation through [`read_with`](Self::read_with)
    /// (or the stream methods built on it) returned `WouldBlock` since. A
    /// freshly wrapped descriptor waits for its first event (the poller
    /// reports one at once when data is already there), as with tokio's
    /// `AsyncFd` and smol's `Async`. An I/O call made directly on
    /// [`get_ref`](Self::get_ref) does not update the readiness, so do the
    /// I/O through `read_with` or [`try_read_with`](Self::try_read_with); a
    /// loop of `readable()` and a direct call that keeps getting
    /// `WouldBlock` would spin.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::unix::net::UnixStream;
    /// use std::time::Duration;
    /// use runner_core::{net::Async, timeout};
    ///
    /// runner_core::run(async {
    ///     let (a, mut b) = UnixStream::pair().unwrap();
    ///     let a = Async::new(a).unwrap();
    ///     // Nothing was sent: not readable.
    ///     assert!(timeout(Duration::from_millis(20), a.readable()).await.is_err());
    ///     b.write_all(b"x").unwrap();
    ///     a.readable().await.unwrap();
    /// })
    /// .unwrap();
    /// ```
    pub async fn readable(&self) -> io::Result<()> {
        self.wait_ready(Direction::Read).await
    }

    /// Waits until the reactor reported the object writable; as
    /// [`readable`](Self::readable), with [`write_with`](Self::write_with).
    pub async fn writable(&self) -> io::Result<()> {
        self.wait_ready(Direction::Write).await
    }

    async fn wait_ready(&self, dir: Direction) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            if self.source.is_reported(dir) {
                return Poll::Ready(Ok(()));
            }
            self.poll_wait(dir, cx)
        })
        .await
    }
}

// The object is never pinned through an `Async` (nothing hands out a
// `Pin<&mut T>`), so an `Async` moves freely whatever `T` is.
impl<T: AsFd + 'static> Unpin for Async<T> {}

/// See [`Async::poll_wait`].
fn poll_wait(
    source: &Source,
    reactor: &Weak<ReactorDriver>,
    dir: Direction,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let running = reactor::running(reactor);
    // Running, so open: the common case, one thread-local read.
    if running != Running::Its {
        if reactor.upgrade().is_none_or(|d| d.is_closed()) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the event loop this socket belongs to was closed",
            )));
        }
        if running == Running::Another {
            return Poll::Ready(Err(io::Error::other(
                "this socket is registered with another event loop than the one running, and that \
                 loop cannot run meanwhile, so the wait could never end: use the socket inside a run \
                 of the loop (Runner) that created it, or move it to this one with into_std() then \
                 from_std() (for an Async: into_inner() then Async::new)",
            )));
        }
    }
    source.add_waiter(dir, cx.waker());
    Poll::Pending
}

/// Runs `attempt` if the direction is believed ready, else says
/// `WouldBlock`; a `WouldBlock` from it clears the belief.
fn attempt_if_ready<R>(source: &Source, dir: Direction, attempt: impl FnOnce() -> io::Result<R>) -> io::Result<R> {
    if !source.is_ready(dir) {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    let result = attempt();
    if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
        source.clear_ready(dir);
    }
    result
}

/// Tries `attempt` while the direction is believed ready; its
/// `WouldBlock` clears the belief and waits for the next event
/// (`Pending`), `Interrupted` retries. Inlined by force: see
/// [`Async::poll_op`].
#[inline(always)]
fn poll_attempts<R>(
    source: &Source,
    reactor: &Weak<ReactorDriver>,
    dir: Direction,
    cx: &mut Context<'_>,
    mut attempt: impl FnMut() -> io::Result<R>,
) -> Poll<io::Result<R>> {
    loop {
        match attempt_if_ready(source, dir, &mut attempt) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return match poll_wait(source, reactor, dir, cx) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Pending,
                };
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return Poll::Ready(result),
        }
    }
}

impl<T: AsFd + 'static> Drop for Async<T> {
    fn drop(&mut self) {
        self.deregister();
    }
}

impl<T: AsFd + 'static> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

/// Any object that reads (`File`, pipes, sockets, a `ChildStdout`):
/// futures-io's `AsyncRead`; `&Async<T>` too when `&T` reads (`File`,
/// sockets), so that one task can read while another writes.
///
/// ```
/// use std::io::Write;
/// use std::os::unix::net::UnixStream;
/// use futures_lite::AsyncReadExt;
/// use runner_core::net::Async;
///
/// runner_core::run(async {
///     let (a, mut b) = UnixStream::pair().unwrap();
///     let mut a = Async::new(a).unwrap();
///     b.write_all(b"through AsyncRead").unwrap();
///     drop(b);
///     let mut text = String::new();
///     a.read_to_string(&mut text).await.unwrap();
///     assert_eq!(text, "through AsyncRead");
/// })
/// .unwrap();
/// ```
impl<T: AsFd + Read + 'static> AsyncRead for Async<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_op_mut(Direction::Read, cx, |io| io.read(buf))
    }
}

impl<T: AsFd + 'static> AsyncRead for &Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_op(Direction::Read, cx, |io| (&*io).read(buf))
    }
}

/// Any object that writes (`File`, pipes, sockets, a `ChildStdin`):
/// futures-io's `AsyncWrite`; `&Async<T>` too when `&T` writes.
/// `poll_close` flushes; the descriptor closes when the `Async` is
/// dropped.
impl<T: AsFd + Write + 'static> AsyncWrite for Async<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().poll_op_mut(Direction::Write, cx, |io| io.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here; the object's own flush does not wait.
        Poll::Ready(self.get_mut().get_mut().flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl<T: AsFd + 'static> AsyncWrite for &Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_op(Direction::Write, cx, |io| (&*io).write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here; the object's own flush does not wait.
        Poll::Ready(self.get_ref().flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl<T: AsFd + fmt::Debug + 'static> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", &self.get_ref()).finish()
    }
}
