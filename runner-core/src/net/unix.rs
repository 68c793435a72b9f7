//! Unix-domain sockets: [`UnixListener`], [`UnixStream`], [`UnixDatagram`].

use std::fmt;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::addr::{explain, Doing, Place};
use super::stream::stream_io;
use super::tcp::{finish_connect, start_connect};
use super::Async;
use crate::reactor::Direction;

/// A Unix-domain stream listener on the reactor.
///
/// ```
/// use runner_core::net::{UnixListener, UnixStream};
///
/// let path = std::env::temp_dir().join(format!("runner-doc-{}.sock", std::process::id()));
/// let _ = std::fs::remove_file(&path);
/// let p = path.clone();
/// runner_core::run(async move {
///     let listener = UnixListener::bind(&p).unwrap();
///     let client = UnixStream::connect(&p).await.unwrap();
///     let (server_side, _) = listener.accept().await.unwrap();
///     client.write_all(b"over a socket file").await.unwrap();
///     let mut buf = [0u8; 18];
///     server_side.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"over a socket file");
/// })
/// .unwrap();
/// std::fs::remove_file(path).unwrap();
/// ```
pub struct UnixListener {
    inner: Async<std::os::unix::net::UnixListener>,
}

impl UnixListener {
    /// Binds to the socket file `path` (which must not exist yet).
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let path = path.as_ref();
        let listener =
            std::os::unix::net::UnixListener::bind(path).map_err(|e| explain(e, Doing::Binding, Place::Path(path)))?;
        Ok(UnixListener {
            inner: Async::new(listener)?,
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
///
/// ```
/// use runner_core::net::UnixStream;
///
/// runner_core::run(async {
///     let (a, b) = UnixStream::pair().unwrap();
///     a.write_all(b"ping").await.unwrap();
///     let mut buf = [0u8; 4];
///     b.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"ping");
/// })
/// .unwrap();
/// ```
pub struct UnixStream {
    inner: Async<std::os::unix::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket file `path` without blocking the loop.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let path = path.as_ref();
        let explained = |e| explain(e, Doing::Connecting, Place::Path(path));
        let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        start_connect(&socket, &socket2::SockAddr::unix(path).map_err(explained)?).map_err(explained)?;
        let inner = Async::new(std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(socket)))?;
        finish_connect(&inner).await.map_err(explained)?;
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
///
/// ```
/// use runner_core::net::UnixDatagram;
///
/// runner_core::run(async {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     a.send(b"one message").await.unwrap();
///     let mut buf = [0u8; 32];
///     let n = b.recv(&mut buf).await.unwrap();
///     assert_eq!(&buf[..n], b"one message");
/// })
/// .unwrap();
/// ```
pub struct UnixDatagram {
    inner: Async<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// Binds to the socket file `path`.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let path = path.as_ref();
        let socket =
            std::os::unix::net::UnixDatagram::bind(path).map_err(|e| explain(e, Doing::Binding, Place::Path(path)))?;
        Ok(UnixDatagram {
            inner: Async::new(socket)?,
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
