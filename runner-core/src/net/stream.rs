//! The byte-stream half shared by TCP and Unix streams (a macro: the two
//! types differ only in the std stream they wrap).

/// The byte-stream half shared by [`TcpStream`](crate::net::TcpStream) and [`UnixStream`](crate::net::UnixStream): async
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
