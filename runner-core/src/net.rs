//! Networking on the reactor: [`Async`] for any file descriptor, and TCP.
//!
//! [`Async<T>`] wraps a non-blocking I/O object registered with the running
//! loop's reactor (as async-io's `Async`): an operation that would block
//! waits for readiness instead. [`TcpListener`] and [`TcpStream`] are built
//! on it; the stream implements futures-io's `AsyncRead`/`AsyncWrite`, for
//! `&TcpStream` too, so the ecosystem's utilities (`futures::io::copy`,
//! `split`, codecs) work on it.
//!
//! Errors are the operating system's, as `io::Error`: a refused connection
//! is `ConnectionRefused`, a reset `ConnectionReset`, running out of file
//! descriptors on accept `EMFILE` (the listener stays usable: an accept loop
//! can report it and go on). Cancelling a pending read or write (dropping
//! its future, or a `timeout`) leaves the socket usable: readiness waits
//! hold no state beyond a waker.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::reactor::{self, Direction, ReactorDriver, Source};

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
    io: Rc<T>,
    source: Rc<Source>,
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
        let io = Rc::new(io);
        let source = driver.get()?.register(io.clone())?;
        Ok(Async {
            io,
            source,
            reactor: Rc::downgrade(&driver),
        })
    }

    /// The wrapped object.
    pub fn get_ref(&self) -> &T {
        &self.io
    }

    /// Registers the waker for the direction's next readiness event.
    /// `Ready(Err)` when the loop is gone (nothing would ever wake it).
    fn poll_wait(&self, dir: Direction, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let open = self.reactor.upgrade().is_some_and(|d| !d.is_closed());
        if !open {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the event loop this socket belongs to was closed",
            )));
        }
        self.source.add_waiter(dir, cx.waker());
        Poll::Pending
    }

    /// Runs a non-blocking operation, polling style: [`try_op`](Self::try_op),
    /// with its `WouldBlock` turned into `Pending` and the waker registered.
    fn poll_op<R>(
        &self,
        dir: Direction,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            match self.try_op(dir, &mut op) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return match self.poll_wait(dir, cx) {
                        Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                        _ => Poll::Pending,
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                result => return Poll::Ready(result),
            }
        }
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
        if !self.source.is_ready(dir) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let result = op(&self.io);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.source.clear_ready(dir);
        }
        result
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

impl<T: AsFd + 'static> Drop for Async<T> {
    fn drop(&mut self) {
        // Delete from the poller while the descriptor is still open (the
        // source holds the object until then).
        if let Some(driver) = self.reactor.upgrade() {
            if let Some(mut reactor) = driver.try_existing() {
                reactor.deregister(&self.source);
            }
        }
    }
}

impl<T: AsFd + 'static> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.io.as_fd()
    }
}

/// Any object read through a shared reference (`File`, pipes, sockets,
/// `&Stdin`): futures-io's `AsyncRead`, for `Async<T>` and `&Async<T>`. For
/// a `ChildStdout` (read only through `&mut`), wrap
/// `File::from(OwnedFd::from(stdout))`: the same descriptor.
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
impl<T: AsFd + 'static> AsyncRead for Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.poll_op(Direction::Read, cx, |io| (&*io).read(buf))
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

/// Any object written through a shared reference: futures-io's
/// `AsyncWrite`, for `Async<T>` and `&Async<T>`. `poll_close` flushes; the
/// descriptor closes when the `Async` is dropped.
impl<T: AsFd + 'static> AsyncWrite for Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_op(Direction::Write, cx, |io| (&*io).write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here; the object's own flush does not wait.
        Poll::Ready((&*self.io).flush())
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
        Poll::Ready((&*self.io).flush())
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl<T: AsFd + fmt::Debug + 'static> fmt::Debug for Async<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async").field("io", &self.io).finish()
    }
}

/// The byte-stream half shared by [`TcpStream`] and [`UnixStream`]: async
/// `read`/`write` helpers and futures-io's `AsyncRead`/`AsyncWrite`, for the
/// stream and for `&stream`.
macro_rules! stream_io {
    ($stream:ident, $std:ty) => {
        impl $stream {
            /// Reads into `buf`; `Ok(0)` at end of stream.
            pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
                std::future::poll_fn(|cx| self.poll_read_buf(cx, buf)).await
            }

            /// Writes from `buf`; returns how much was written.
            pub async fn write(&self, buf: &[u8]) -> io::Result<usize> {
                std::future::poll_fn(|cx| self.poll_write_buf(cx, buf)).await
            }

            /// A read that came back short emptied the receive buffer, so
            /// the next one would be `WouldBlock`: the readiness is cleared
            /// now, saving that system call (edge-triggered: data arriving
            /// later makes a new event). Streams only: a datagram read is
            /// one message whatever is left queued.
            fn poll_read_buf(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                let len = buf.len();
                let r = self.inner.poll_op(Direction::Read, cx, |s| (&*s).read(buf));
                if let Poll::Ready(Ok(n)) = r {
                    if n > 0 && n < len {
                        self.inner.source.clear_ready_after_short(Direction::Read);
                    }
                }
                r
            }

            /// As [`poll_read_buf`](Self::poll_read_buf): a short write
            /// filled the send buffer.
            fn poll_write_buf(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                let r = self.inner.poll_op(Direction::Write, cx, |s| (&*s).write(buf));
                if let Poll::Ready(Ok(n)) = r {
                    if n < buf.len() {
                        self.inner.source.clear_ready_after_short(Direction::Write);
                    }
                }
                r
            }

            /// Fills `buf` completely, or fails with `UnexpectedEof`.
            pub async fn read_exact(&self, mut buf: &mut [u8]) -> io::Result<()> {
                while !buf.is_empty() {
                    match self.read(buf).await? {
                        0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                        n => buf = &mut buf[n..],
                    }
                }
                Ok(())
            }

            /// Writes all of `buf`.
            pub async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
                while !buf.is_empty() {
                    match self.write(buf).await? {
                        0 => return Err(io::ErrorKind::WriteZero.into()),
                        n => buf = &buf[n..],
                    }
                }
                Ok(())
            }

            /// Shuts down the read, write, or both halves.
            pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                self.inner.get_ref().shutdown(how)
            }

            /// The wrapped std stream.
            pub fn get_ref(&self) -> &$std {
                self.inner.get_ref()
            }
        }

        impl AsyncRead for &$stream {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                self.poll_read_buf(cx, buf)
            }
        }

        impl AsyncWrite for &$stream {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                self.poll_write_buf(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.inner.get_ref().shutdown(Shutdown::Write))
            }
        }

        impl AsyncRead for $stream {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_read(cx, buf)
            }
        }

        impl AsyncWrite for $stream {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_write(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut &*self).poll_flush(cx)
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Pin::new(&mut &*self).poll_close(cx)
            }
        }
    };
}

/// The listen backlog of [`TcpListener::bind`], as tokio's.
pub const LISTEN_BACKLOG: i32 = 1024;

/// A TCP listener on the reactor.
///
/// ```
/// use runner_core::net::TcpListener;
///
/// runner_core::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
///     let addr = listener.local_addr().unwrap();
///     let client = std::thread::spawn(move || {
///         use std::io::{Read, Write};
///         let mut s = std::net::TcpStream::connect(addr).unwrap();
///         s.write_all(b"hello").unwrap();
///         let mut back = [0u8; 5];
///         s.read_exact(&mut back).unwrap();
///         back
///     });
///     let (stream, _) = listener.accept().await.unwrap();
///     let mut buf = [0u8; 5];
///     stream.read_exact(&mut buf).await.unwrap();
///     stream.write_all(&buf).await.unwrap();
///     assert_eq!(&client.join().unwrap(), b"hello");
/// })
/// .unwrap();
/// ```
pub struct TcpListener {
    inner: Async<std::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (port 0: any free port) and listens, with a backlog
    /// of [`LISTEN_BACKLOG`] pending connections (std's `bind` uses 128:
    /// a burst of clients beyond it sees SYNs dropped and one-second
    /// retries).
    pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        #[cfg(unix)]
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Ok(TcpListener {
            inner: Async::new(std::net::TcpListener::from(socket))?,
        })
    }

    /// Accepts a connection. Errors (`EMFILE` when out of file descriptors,
    /// say) leave the listener usable.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, addr) = self.inner.read_with(|l| l.accept()).await?;
        Ok((TcpStream::from_std(stream)?, addr))
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

/// A TCP connection on the reactor; `AsyncRead + AsyncWrite` (futures-io),
/// also through `&TcpStream`, so one task can read while another writes.
pub struct TcpStream {
    inner: Async<std::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr` without blocking the loop. A refused connection
    /// is `io::ErrorKind::ConnectionRefused`.
    pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        start_connect(&socket, &addr.into())?;
        let inner = Async::new(std::net::TcpStream::from(socket))?;
        finish_connect(&inner).await?;
        Ok(TcpStream { inner })
    }

    /// Resolves `host` (a name or an address literal) and connects to
    /// the first of its addresses that answers, in the resolver's order
    /// (asyncio's `open_connection(host, port)`). The name lookup is
    /// blocking in the OS, so it runs on the blocking pool; the loop goes
    /// on meanwhile. Fails with the last address's error, or `NotFound`
    /// when the name has no address.
    ///
    /// ```
    /// use runner_core::net::{TcpListener, TcpStream};
    ///
    /// runner_core::run(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    ///     let port = listener.local_addr().unwrap().port();
    ///     let client = TcpStream::connect_to("localhost", port).await.unwrap();
    ///     let (_server_side, peer) = listener.accept().await.unwrap();
    ///     assert_eq!(peer, client.local_addr().unwrap());
    /// })
    /// .unwrap();
    /// ```
    pub async fn connect_to(host: &str, port: u16) -> io::Result<TcpStream> {
        use std::net::ToSocketAddrs;
        let name = host.to_string();
        let addrs = crate::spawn_blocking(move || (name.as_str(), port).to_socket_addrs().map(Vec::from_iter))
            .await
            .map_err(|e| io::Error::other(format!("resolving {host:?} failed: {e}")))??;
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host:?} has no address to connect to"),
            )
        }))
    }

    /// Wraps a connected std stream (made non-blocking).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Async::new(stream)?,
        })
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.get_ref().set_nodelay(on)
    }
}

stream_io!(TcpStream, std::net::TcpStream);

/// `EINPROGRESS`, the answer of a non-blocking `connect` under way.
fn libc_einprogress() -> i32 {
    #[cfg(unix)]
    {
        libc::EINPROGRESS
    }
    #[cfg(not(unix))]
    {
        -1
    }
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("local_addr", &self.local_addr().ok())
            .field("peer_addr", &self.peer_addr().ok())
            .finish()
    }
}

/// Waits for a non-blocking connect under way on `inner` to finish; the
/// socket's pending error says whether it succeeded.
async fn finish_connect<T: AsFd + 'static>(inner: &Async<T>) -> io::Result<()> {
    inner
        .write_with(|io| {
            let socket = socket2::SockRef::from(io);
            if let Some(e) = socket.take_error()? {
                return Err(e);
            }
            // Writable without an error can be spurious (or the socket's
            // first readiness): connected only once there is a peer.
            match socket.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::ErrorKind::WouldBlock.into()),
                Err(e) => Err(e),
            }
        })
        .await
}

/// Starts a non-blocking connect: `Ok` whether it finished or is under way.
fn start_connect(socket: &socket2::Socket, addr: &socket2::SockAddr) -> io::Result<()> {
    match socket.connect(addr) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) || e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}

/// A UDP socket on the reactor.
///
/// ```
/// use runner_core::net::UdpSocket;
///
/// runner_core::run(async {
///     let a = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
///     a.send_to(b"hi", b.local_addr().unwrap()).await.unwrap();
///     let mut buf = [0u8; 8];
///     let (n, from) = b.recv_from(&mut buf).await.unwrap();
///     assert_eq!((&buf[..n], from), (&b"hi"[..], a.local_addr().unwrap()));
/// })
/// .unwrap();
/// ```
pub struct UdpSocket {
    inner: Async<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (port 0: any free port).
    pub fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            inner: Async::new(std::net::UdpSocket::bind(addr)?)?,
        })
    }

    /// Sends a datagram to `addr`.
    pub async fn send_to(&self, buf: &[u8], addr: SocketAddr) -> io::Result<usize> {
        self.inner.write_with(|s| s.send_to(buf, addr)).await
    }

    /// Receives a datagram and who sent it.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.inner.read_with(|s| s.recv_from(buf)).await
    }

    /// Sets the default destination (and the only source received from).
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        self.inner.get_ref().connect(addr)
    }

    /// Sends to the connected address.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_with(|s| s.send(buf)).await
    }

    /// Receives from the connected address.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read_with(|s| s.recv(buf)).await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.get_ref().local_addr()
    }
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local_addr", &self.local_addr().ok())
            .finish()
    }
}

#[cfg(unix)]
pub use unix::{UnixDatagram, UnixListener, UnixStream};

#[cfg(unix)]
mod unix {
    use std::fmt;
    use std::io::{self, Read, Write};
    use std::net::Shutdown;
    use std::os::unix::net::SocketAddr;
    use std::path::Path;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_io::{AsyncRead, AsyncWrite};

    use super::{finish_connect, start_connect, Async};
    use crate::reactor::Direction;

    /// A Unix-domain stream listener on the reactor.
    pub struct UnixListener {
        inner: Async<std::os::unix::net::UnixListener>,
    }

    impl UnixListener {
        /// Binds to the socket file `path` (which must not exist yet).
        pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
            Ok(UnixListener {
                inner: Async::new(std::os::unix::net::UnixListener::bind(path)?)?,
            })
        }

        /// Accepts a connection.
        pub async fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
            let (stream, addr) = self.inner.read_with(|l| l.accept()).await?;
            Ok((
                UnixStream {
                    inner: Async::new(stream)?,
                },
                addr,
            ))
        }

        /// The address the listener is bound to.
        pub fn local_addr(&self) -> io::Result<SocketAddr> {
            self.inner.get_ref().local_addr()
        }
    }

    impl fmt::Debug for UnixListener {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("UnixListener")
                .field("local_addr", &self.local_addr().ok())
                .finish()
        }
    }

    /// A Unix-domain stream on the reactor; `AsyncRead + AsyncWrite`.
    pub struct UnixStream {
        inner: Async<std::os::unix::net::UnixStream>,
    }

    impl UnixStream {
        /// Connects to the socket file `path` without blocking the loop.
        pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
            let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
            socket.set_nonblocking(true)?;
            start_connect(&socket, &socket2::SockAddr::unix(path)?)?;
            let inner = Async::new(std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(socket)))?;
            finish_connect(&inner).await?;
            Ok(UnixStream { inner })
        }

        /// A connected pair of streams.
        pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
            let (a, b) = std::os::unix::net::UnixStream::pair()?;
            Ok((
                UnixStream { inner: Async::new(a)? },
                UnixStream { inner: Async::new(b)? },
            ))
        }

        /// The peer's address.
        pub fn peer_addr(&self) -> io::Result<SocketAddr> {
            self.inner.get_ref().peer_addr()
        }
    }

    stream_io!(UnixStream, std::os::unix::net::UnixStream);

    impl fmt::Debug for UnixStream {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("UnixStream").finish_non_exhaustive()
        }
    }

    /// A Unix-domain datagram socket on the reactor.
    pub struct UnixDatagram {
        inner: Async<std::os::unix::net::UnixDatagram>,
    }

    impl UnixDatagram {
        /// Binds to the socket file `path`.
        pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
            Ok(UnixDatagram {
                inner: Async::new(std::os::unix::net::UnixDatagram::bind(path)?)?,
            })
        }

        /// An unbound socket (it can send, and receive replies once connected).
        pub fn unbound() -> io::Result<UnixDatagram> {
            Ok(UnixDatagram {
                inner: Async::new(std::os::unix::net::UnixDatagram::unbound()?)?,
            })
        }

        /// A connected pair of datagram sockets.
        pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
            let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
            Ok((
                UnixDatagram { inner: Async::new(a)? },
                UnixDatagram { inner: Async::new(b)? },
            ))
        }

        /// Sends a datagram to the socket file `path`.
        pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
            let path = path.as_ref();
            self.inner.write_with(|s| s.send_to(buf, path)).await
        }

        /// Receives a datagram and who sent it.
        pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            self.inner.read_with(|s| s.recv_from(buf)).await
        }

        /// Sends to the connected peer.
        pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
            self.inner.write_with(|s| s.send(buf)).await
        }

        /// Receives from the connected peer.
        pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
            self.inner.read_with(|s| s.recv(buf)).await
        }
    }

    impl fmt::Debug for UnixDatagram {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("UnixDatagram").finish_non_exhaustive()
        }
    }
}
