//! TCP: [`TcpListener`] and [`TcpStream`], and the non-blocking connect
//! shared with Unix streams.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::addr::{each, resolve, Doing};
use super::stream::stream_io;
use super::{Async, ToAddrs};
use crate::reactor::Direction;

/// The listen backlog of [`TcpListener::bind`], as tokio's.
pub const LISTEN_BACKLOG: i32 = 1024;

/// A TCP listener on the reactor.
///
/// ```
/// use runner_core::net::TcpListener;
///
/// runner_core::run(async {
///     let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
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
    /// retries). `addr` is what `std::net` accepts: `"127.0.0.1:8080"`,
    /// `("localhost", 8080)`, a `SocketAddr`; a host name is looked up off
    /// the loop thread, and its addresses tried in turn.
    ///
    /// ```
    /// use runner_core::net::TcpListener;
    ///
    /// runner_core::run(async {
    ///     let by_literal = TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     let by_name = TcpListener::bind(("localhost", 0)).await.unwrap();
    ///     assert!(by_literal.local_addr().unwrap().ip().is_loopback());
    ///     assert!(by_name.local_addr().unwrap().ip().is_loopback());
    /// })
    /// .unwrap();
    /// ```
    pub async fn bind(addr: impl ToAddrs) -> io::Result<TcpListener> {
        let addrs = resolve(addr).await?;
        each(addrs, Doing::Binding, |a| std::future::ready(TcpListener::bind_addr(a))).await
    }

    fn bind_addr(addr: SocketAddr) -> io::Result<TcpListener> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        #[cfg(unix)]
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(LISTEN_BACKLOG)?;
        TcpListener::from_std(std::net::TcpListener::from(socket))
    }

    /// Wraps a listening std socket (made non-blocking).
    pub fn from_std(listener: std::net::TcpListener) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: Async::new(listener)?,
        })
    }

    /// The std socket, off the loop (still non-blocking).
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        self.inner.into_inner()
    }

    /// Accepts a connection. Errors (`EMFILE` when out of file descriptors,
    /// say) leave the listener usable.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// The poll behind [`accept`](Self::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.inner.poll_op(Direction::Read, cx, |l| l.accept()) {
            Poll::Ready(Ok((stream, addr))) => Poll::Ready(TcpStream::from_std(stream).map(|s| (s, addr))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
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
    /// Connects to `addr` without blocking the loop: what `std::net`
    /// accepts (`"127.0.0.1:8080"`, `("example.com", 443)`, a
    /// `SocketAddr`); a host name is looked up on the blocking pool, and
    /// its addresses tried in the resolver's order (asyncio's
    /// `open_connection(host, port)`). A refused connection is
    /// `io::ErrorKind::ConnectionRefused`; with several addresses, the
    /// last one's error.
    ///
    /// ```
    /// use runner_core::net::{TcpListener, TcpStream};
    ///
    /// runner_core::run(async {
    ///     let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    ///     let port = listener.local_addr().unwrap().port();
    ///     let client = TcpStream::connect(("localhost", port)).await.unwrap();
    ///     let (_server_side, peer) = listener.accept().await.unwrap();
    ///     assert_eq!(peer, client.local_addr().unwrap());
    /// })
    /// .unwrap();
    /// ```
    pub async fn connect(addr: impl ToAddrs) -> io::Result<TcpStream> {
        let addrs = resolve(addr).await?;
        each(addrs, Doing::Connecting, TcpStream::connect_addr).await
    }

    async fn connect_addr(addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        start_connect(&socket, &addr.into())?;
        let inner = Async::new(std::net::TcpStream::from(socket))?;
        finish_connect(&inner).await?;
        Ok(TcpStream { inner })
    }

    /// Connects to `host` and `port`: [`connect`](Self::connect) with
    /// `(host, port)`.
    pub async fn connect_to(host: &str, port: u16) -> io::Result<TcpStream> {
        TcpStream::connect((host, port)).await
    }

    /// Wraps a connected std stream (made non-blocking).
    pub fn from_std(stream: std::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: Async::new(stream)?,
        })
    }

    /// The std stream, off the loop (still non-blocking: set it back with
    /// `set_nonblocking(false)` for blocking use).
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        self.inner.into_inner()
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
pub(super) async fn finish_connect<T: AsFd + 'static>(inner: &Async<T>) -> io::Result<()> {
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
pub(super) fn start_connect(socket: &socket2::Socket, addr: &socket2::SockAddr) -> io::Result<()> {
    match socket.connect(addr) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc_einprogress()) || e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(e) => Err(e),
    }
}
