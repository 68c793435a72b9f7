//! Networking on the reactor: [`Async`] for any file descriptor, and TCP.
//!
//! [`Async<T>`] wraps a non-blocking I/O object registered with the running
//! loop's reactor (as async-io's `Async`): an operation that would block
//! waits for readiness instead. [`TcpListener`] and [`TcpStream`] are built
//! on it; the stream implements futures-io's `AsyncRead`/`AsyncWrite`, for
//! `&TcpStream` too, so the ecosystem's utilities (`futures::io::copy`,
//! `split`, codecs) work on it.
//!
//! Errors are the operating system's, as `io::Error` (binding and
//! connecting add where, and what to do, to the message, keeping the
//! kind): a refused connection
//! is `ConnectionRefused`, a reset `ConnectionReset`, running out of file
//! descriptors on accept `EMFILE` (the listener stays usable: an accept loop
//! can report it and go on). Cancelling a pending read or write (dropping
//! its future, or a `timeout`) leaves the socket usable: readiness waits
//! hold no state beyond a waker.
//!
//! The parts: `async_fd` ([`Async`]), `stream` (what TCP and Unix streams
//! share), `tcp`, `udp`, `unix`, `addr` (addresses as users write them).
//! They use `reactor`, `executor` (name lookups off the loop thread) and
//! nothing else of the crate.

mod addr;
mod async_fd;
mod server;
mod stream;
mod tcp;
mod udp;
#[cfg(unix)]
mod unix;

pub use self::addr::ToAddrs;
pub use self::async_fd::Async;
pub use self::server::Server;
pub use self::stream::{ReadExactFuture, ReadFuture, WriteAllFuture, WriteFuture};
pub use self::tcp::{TcpListener, TcpStream, LISTEN_BACKLOG};
pub use self::udp::UdpSocket;
#[cfg(unix)]
pub use self::unix::{UnixDatagram, UnixListener, UnixStream};
