//! [`Server`]: asyncio's `start_server` and its lifecycle, `close()` (stop
//! accepting: the listening socket is closed at once, so new clients are
//! refused) and `wait_closed()` (the connections still open finish), with
//! [`shutdown`](Server::shutdown) for the usual "stop, let them finish
//! within a deadline" of a service. Uses `tcp`, `task` and `time`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use super::{TcpListener, TcpStream, ToAddrs};
use crate::runtime::ExceptionContext;
use crate::task::{sched, spawn, JoinHandle};

/// A TCP server: accepts on its own task and runs `handler` in a task per
/// connection (asyncio's `asyncio.start_server`).
///
/// ```
/// use std::time::Duration;
/// use futures_lite::{AsyncReadExt, AsyncWriteExt};
/// use runner_core::net::{Server, TcpStream};
///
/// runner_core::run(async {
///     let server = Server::start("127.0.0.1:0", |mut conn: TcpStream, _peer| async move {
///         let mut buf = [0u8; 4];
///         if conn.read_exact(&mut buf).await.is_ok() {
///             let _ = conn.write_all(&buf).await;
///         }
///     })
///     .await
///     .unwrap();
///     let addr = server.local_addr().unwrap();
///     let mut client = TcpStream::connect(addr).await.unwrap();
///     client.write_all(b"ping").await.unwrap();
///     let mut echo = [0u8; 4];
///     client.read_exact(&mut echo).await.unwrap();
///     assert_eq!(&echo, b"ping");
///
///     server.close(); // the socket is closed now: new clients are refused
///     assert!(TcpStream::connect(addr).await.is_err());
///     drop(client);
///     assert!(server.shutdown(Duration::from_secs(1)).await, "every connection finished");
/// })
/// .unwrap();
/// ```
pub struct Server {
    inner: Rc<Inner>,
    local_addr: SocketAddr,
}

struct Inner {
    listener: RefCell<Option<TcpListener>>,
    acceptor: RefCell<Option<JoinHandle<()>>>,
    connections: RefCell<Vec<JoinHandle<()>>>,
    accepted: Cell<u64>,
    /// The length of `connections` at which finished ones are dropped.
    prune_at: Cell<usize>,
}

/// How many connection handles are kept before the first pruning.
const PRUNE_FIRST: usize = 64;

impl Server {
    /// Binds to `addr` (what `std::net` accepts) and starts serving.
    pub async fn start<H, Fut>(addr: impl ToAddrs, handler: H) -> io::Result<Server>
    where
        H: FnMut(TcpStream, SocketAddr) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Server::from_listener(TcpListener::bind(addr).await?, handler)
    }

    /// Serves on `listener`.
    ///
    /// # Panics
    /// Outside a running loop (it spawns the accepting task), as
    /// [`spawn`](crate::spawn()) does; [`start`](Self::start) is awaited
    /// inside one anyway.
    pub fn from_listener<H, Fut>(listener: TcpListener, mut handler: H) -> io::Result<Server>
    where
        H: FnMut(TcpStream, SocketAddr) -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let local_addr = listener.local_addr()?;
        let inner = Rc::new(Inner {
            listener: RefCell::new(Some(listener)),
            acceptor: RefCell::new(None),
            connections: RefCell::new(Vec::new()),
            accepted: Cell::new(0),
            prune_at: Cell::new(PRUNE_FIRST),
        });
        let me = inner.clone();
        let acceptor = spawn(async move {
            loop {
                // The listener is borrowed only while polled: `close` can
                // take it (and close the socket) between polls.
                let accepted = poll_fn(|cx| match &*me.listener.borrow() {
                    Some(l) => l.poll_accept(cx).map(Some),
                    None => Poll::Ready(None),
                })
                .await;
                match accepted {
                    None => return,
                    Some(Ok((stream, peer))) => {
                        me.accepted.set(me.accepted.get() + 1);
                        let mut open = me.connections.borrow_mut();
                        // Finished connections are pruned when the list has
                        // doubled since the last pruning, not at every
                        // accept: O(1) per accept with thousands open.
                        if open.len() >= me.prune_at.get() {
                            open.retain(|h| !h.is_done());
                            me.prune_at.set((open.len() * 2).max(PRUNE_FIRST));
                        }
                        open.push(spawn(handler(stream, peer)));
                    }
                    // Out of file descriptors and the like: report, go on.
                    Some(Err(e)) => {
                        report(format!(
                            "the server on {local_addr} failed to accept: {e}; retrying in 100 ms"
                        ));
                        crate::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
        *inner.acceptor.borrow_mut() = Some(acceptor);
        Ok(Server { inner, local_addr })
    }

    /// The address the server listens on (it keeps it after `close`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }

    /// Whether the server still accepts.
    pub fn is_serving(&self) -> bool {
        self.inner.listener.borrow().is_some()
    }

    /// How many connections it accepted.
    pub fn accepted(&self) -> u64 {
        self.inner.accepted.get()
    }

    /// How many connection tasks are still running.
    pub fn open_connections(&self) -> usize {
        self.inner.connections.borrow().iter().filter(|h| !h.is_done()).count()
    }

    /// Stops accepting (asyncio's `Server.close()`): the listening socket
    /// is closed now, so a client connecting from here on is refused at
    /// once; the connections already open go on.
    pub fn close(&self) {
        let listener = self.inner.listener.borrow_mut().take();
        drop(listener);
        if let Some(acceptor) = self.inner.acceptor.borrow().as_ref() {
            acceptor.cancel();
        }
    }

    /// Cancels every open connection's task (asyncio's
    /// `Server.close_clients()`); a handler that catches the cancellation
    /// with `cancellable` can finish its request first.
    pub fn close_clients(&self) {
        for h in self.inner.connections.borrow().iter() {
            h.cancel();
        }
    }

    /// Serves until [`close`](Self::close) (asyncio's
    /// `Server.serve_forever()`); cancelling the task that awaits it
    /// cancels the accepting (the listener then closes when that task
    /// ends; call `close` to close it at once).
    pub async fn serve_forever(&self) {
        poll_fn(|cx| {
            let mut acceptor = self.inner.acceptor.borrow_mut();
            match acceptor.as_mut().map(|h| Pin::new(h).poll(cx)) {
                None => Poll::Ready(()),
                Some(Poll::Pending) => Poll::Pending,
                Some(Poll::Ready(_)) => {
                    *acceptor = None;
                    Poll::Ready(())
                }
            }
        })
        .await;
    }

    /// Waits until the server is closed and every connection task has
    /// finished (asyncio's `Server.wait_closed()`). A panic of a handler
    /// is reported to the loop's exception handler.
    pub async fn wait_closed(&self) {
        self.serve_forever().await;
        poll_fn(|cx| {
            let mut panics = Vec::new();
            let done = {
                let mut open = self.inner.connections.borrow_mut();
                open.retain_mut(|h| match Pin::new(h).poll(cx) {
                    Poll::Pending => true,
                    Poll::Ready(Err(e)) if e.is_panic() => {
                        panics.push(e.panic_message().unwrap_or_default());
                        false
                    }
                    Poll::Ready(_) => false,
                });
                open.is_empty()
            };
            for p in panics {
                report(format!(
                    "a connection handler of the server on {} panicked: {p}",
                    self.local_addr
                ));
            }
            if done {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }

    /// Stops the server the way a service does on SIGTERM: stop accepting
    /// ([`close`](Self::close)), cancel the open connections
    /// ([`close_clients`](Self::close_clients)) so they finish their
    /// request, and wait up to `grace` for them. Those still running then
    /// are dropped (their destructors run). Whether all finished in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.close();
        self.close_clients();
        let in_time = crate::time::timeout(grace, self.wait_closed()).await.is_ok();
        if !in_time {
            for h in self.inner.connections.borrow().iter() {
                h.task_ref().force_drop();
            }
            self.wait_closed().await;
        }
        in_time
    }
}

fn report(message: String) {
    if let Some(sched) = sched::current() {
        sched.report(ExceptionContext::new(message));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Nothing serves a dropped server: stop accepting. The connections
        // go on (they are tasks of their own), as asyncio's do.
        self.close();
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("serving", &self.is_serving())
            .field("accepted", &self.accepted())
            .field("open_connections", &self.open_connections())
            .finish()
    }
}
