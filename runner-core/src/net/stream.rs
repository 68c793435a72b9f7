//! The byte-stream half shared by TCP and Unix streams (a macro: the two
//! types differ only in the std stream they wrap).

/// The byte-stream half shared by [`TcpStream`](crate::net::TcpStream) and [`UnixStream`](crate::net::UnixStream): async
/// `read`/`write` helpers and futures-io's `AsyncRead`/`AsyncWrite`, for the
/// stream and for `&stream`.
macro_rules! stream_io {
    ($stream:ident, $std:ty) => {
        impl $stream {
            /// Reads into `buf`; `Ok(0)` at end of stream.
            pub fn read<'a>(&'a self, buf: &'a mut [u8]) -> $crate::net::ReadFuture<'a, Self> {
                $crate::net::ReadFuture { stream: self, buf }
            }

            /// Writes from `buf`; returns how much was written.
            pub fn write<'a>(&'a self, buf: &'a [u8]) -> $crate::net::WriteFuture<'a, Self> {
                $crate::net::WriteFuture { stream: self, buf }
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
            pub fn read_exact<'a>(&'a self, buf: &'a mut [u8]) -> $crate::net::ReadExactFuture<'a, Self> {
                $crate::net::ReadExactFuture { stream: self, buf }
            }

            /// Writes all of `buf`.
            pub fn write_all<'a>(&'a self, buf: &'a [u8]) -> $crate::net::WriteAllFuture<'a, Self> {
                $crate::net::WriteAllFuture { stream: self, buf }
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

            /// Shuts the write half down. A stream that is no longer
            /// connected (the peer reset it, or, on macOS and the BSDs, it
            /// was shut down already) is closed: `NotConnected` is success
            /// here, so that hyper does not report "error shutting down
            /// connection" for every client that resets its connection
            /// (wrk does at its end). The stream's own `shutdown` gives
            /// the system call's answer unchanged.
            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(match self.inner.get_ref().shutdown(Shutdown::Write) {
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
                    done => done,
                })
            }
        }

        impl AsyncRead for $stream {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                Pin::new(&mut &*self).poll_read(cx, buf)
            }
        }

        impl std::future::Future for $crate::net::ReadFuture<'_, $stream> {
            type Output = io::Result<usize>;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
                let this = &mut *self;
                this.stream.poll_read_buf(cx, this.buf)
            }
        }

        impl std::future::Future for $crate::net::WriteFuture<'_, $stream> {
            type Output = io::Result<usize>;
            fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
                self.stream.poll_write_buf(cx, self.buf)
            }
        }

        impl std::future::Future for $crate::net::ReadExactFuture<'_, $stream> {
            type Output = io::Result<()>;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = &mut *self;
                while !this.buf.is_empty() {
                    match std::task::ready!(this.stream.poll_read_buf(cx, this.buf))? {
                        0 => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                        n => this.buf = &mut std::mem::take(&mut this.buf)[n..],
                    }
                }
                Poll::Ready(Ok(()))
            }
        }

        impl std::future::Future for $crate::net::WriteAllFuture<'_, $stream> {
            type Output = io::Result<()>;
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let this = &mut *self;
                while !this.buf.is_empty() {
                    match std::task::ready!(this.stream.poll_write_buf(cx, this.buf))? {
                        0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                        n => this.buf = &this.buf[n..],
                    }
                }
                Poll::Ready(Ok(()))
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

pub(crate) use stream_io;

/// What [`TcpStream::read`](crate::net::TcpStream::read) and
/// [`UnixStream::read`](crate::net::UnixStream::read) return: a future of
/// how many bytes were read (`Ok(0)` at end of stream). Three words, so
/// that a connection's task stays small.
#[must_use = "futures do nothing unless awaited"]
pub struct ReadFuture<'a, S> {
    pub(super) stream: &'a S,
    pub(super) buf: &'a mut [u8],
}

/// What [`TcpStream::write`](crate::net::TcpStream::write) and
/// [`UnixStream::write`](crate::net::UnixStream::write) return: a future
/// of how many bytes were written.
#[must_use = "futures do nothing unless awaited"]
pub struct WriteFuture<'a, S> {
    pub(super) stream: &'a S,
    pub(super) buf: &'a [u8],
}

/// What [`TcpStream::read_exact`](crate::net::TcpStream::read_exact) and
/// [`UnixStream::read_exact`](crate::net::UnixStream::read_exact) return:
/// a future that fills the buffer, or fails with `UnexpectedEof`.
#[must_use = "futures do nothing unless awaited"]
pub struct ReadExactFuture<'a, S> {
    pub(super) stream: &'a S,
    pub(super) buf: &'a mut [u8],
}

/// What [`TcpStream::write_all`](crate::net::TcpStream::write_all) and
/// [`UnixStream::write_all`](crate::net::UnixStream::write_all) return: a
/// future that writes the whole buffer (`WriteZero` if the stream takes
/// nothing).
#[must_use = "futures do nothing unless awaited"]
pub struct WriteAllFuture<'a, S> {
    pub(super) stream: &'a S,
    pub(super) buf: &'a [u8],
}

/// The futures' `Debug`: the stream and how many bytes are left.
macro_rules! debug_io_future {
    ($($name:ident),+) => {$(
        impl<S: std::fmt::Debug> std::fmt::Debug for $name<'_, S> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("stream", self.stream)
                    .field("bytes_left", &self.buf.len())
                    .finish()
            }
        }
    )+};
}

debug_io_future!(ReadFuture, WriteFuture, ReadExactFuture, WriteAllFuture);
