//! Addresses as users write them: [`ToAddrs`], what `std::net` accepts
//! (`"127.0.0.1:8080"`, `("localhost", 8080)`, a `SocketAddr`, ...). An
//! address literal is parsed here, at once; a host name is looked up on
//! the blocking pool (the OS resolver blocks), so the loop goes on
//! meanwhile.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, ToSocketAddrs};

/// What [`TcpListener::bind`](super::TcpListener::bind),
/// [`TcpStream::connect`](super::TcpStream::connect) and
/// [`UdpSocket::bind`](super::UdpSocket::bind) accept: the types
/// `std::net::ToSocketAddrs` is implemented for, owned or borrowed. Sealed.
pub trait ToAddrs: sealed::Sealed {}

mod sealed {
    /// Literals parsed now, names kept for the lookup.
    pub trait Sealed {
        fn target(self) -> super::Target;
    }
}

#[doc(hidden)]
#[derive(Debug)]
pub enum Target {
    Addrs(Vec<SocketAddr>),
    /// A `host:port` string to look up.
    Name(String),
    /// A host and a port to look up.
    HostPort(String, u16),
}

/// The addresses of `addr`, looked up off the loop thread when it is a
/// name.
pub(crate) async fn resolve(addr: impl ToAddrs) -> io::Result<Vec<SocketAddr>> {
    let target = sealed::Sealed::target(addr);
    let what = match &target {
        Target::Addrs(_) => String::new(),
        Target::Name(name) => format!("{name:?}"),
        Target::HostPort(host, port) => format!("{host:?} (port {port})"),
    };
    let lookup = match target {
        Target::Addrs(addrs) => return Ok(addrs),
        Target::Name(name) => crate::spawn_blocking(move || name.to_socket_addrs().map(Vec::from_iter)).await,
        Target::HostPort(host, port) => {
            crate::spawn_blocking(move || (host.as_str(), port).to_socket_addrs().map(Vec::from_iter)).await
        }
    };
    let addrs = lookup
        .map_err(|e| io::Error::other(format!("looking up {what} failed: {e}")))?
        .map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::InvalidInput {
                // std's word for a string that is not `host:port`.
                "give the address as \"host:port\", such as \"127.0.0.1:8080\""
            } else {
                "check the host name"
            };
            io::Error::new(e.kind(), format!("looking up {what} failed: {e}; {hint}"))
        })?;
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{what} has no address: check the host name"),
        ));
    }
    Ok(addrs)
}

/// Tries `op` on each address in turn: the first success, or the last
/// error.
pub(crate) async fn each<T, F, Fut>(addrs: Vec<SocketAddr>, doing: Doing, mut op: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in addrs {
        match op(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(explain(e, doing, Place::Addr(&addr))),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address was given")))
}

/// What a socket operation that names an address was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doing {
    Binding,
    Connecting,
}

/// Where a socket operation was aimed.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place<'a> {
    Addr(&'a SocketAddr),
    #[cfg_attr(not(unix), allow(dead_code))]
    Path(&'a std::path::Path),
}

/// `e`, of the same kind, with what was done where and, for the usual
/// causes, what to do about it in its message: "binding 127.0.0.1:80
/// failed: Permission denied (os error 13); ports below 1024 need
/// privileges: use a higher port".
pub(crate) fn explain(e: io::Error, doing: Doing, place: Place<'_>) -> io::Error {
    use io::ErrorKind::*;
    let path = matches!(place, Place::Path(_));
    let hint = match (e.kind(), doing) {
        (AddrInUse, _) if path => {
            "; a file is there already (a socket left by an earlier run?): remove it, or choose another path"
        }
        (AddrInUse, _) => {
            "; something else is bound there: stop it, or choose another address (port 0 picks a free one)"
        }
        (PermissionDenied, Doing::Binding) if !path => "; ports below 1024 need privileges: use a higher port",
        (PermissionDenied, _) => "; check the permissions of the path and its directories",
        (AddrNotAvailable, _) => "; that address is not one of this machine's",
        (ConnectionRefused, _) => "; nothing listens there: start the server, or check the address",
        (NotFound, Doing::Connecting) if path => "; no socket at that path: start the server, or check the path",
        (InvalidInput, _) if path => "; a socket path holds at most 107 bytes: use a shorter one",
        (TimedOut, _) => "; the other end did not answer",
        _ => "",
    };
    let what = match doing {
        Doing::Binding => "binding",
        Doing::Connecting => "connecting to",
    };
    let place = match place {
        Place::Addr(a) => a.to_string(),
        Place::Path(p) => format!("{p:?}"),
    };
    io::Error::new(e.kind(), format!("{what} {place} failed: {e}{hint}"))
}

fn literal(s: &str) -> Target {
    match s.parse::<SocketAddr>() {
        Ok(a) => Target::Addrs(vec![a]),
        Err(_) => Target::Name(s.to_string()),
    }
}

fn host_port(host: &str, port: u16) -> Target {
    match host.parse::<IpAddr>() {
        Ok(ip) => Target::Addrs(vec![SocketAddr::new(ip, port)]),
        Err(_) => Target::HostPort(host.to_string(), port),
    }
}

macro_rules! addrs {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(
            impl ToAddrs for $t {}
            impl sealed::Sealed for $t {
                fn target(self) -> Target {
                    let $v = self;
                    $e
                }
            }
        )*
    };
}

addrs! {
    SocketAddr => |a| Target::Addrs(vec![a]),
    &SocketAddr => |a| Target::Addrs(vec![*a]),
    SocketAddrV4 => |a| Target::Addrs(vec![a.into()]),
    SocketAddrV6 => |a| Target::Addrs(vec![a.into()]),
    (IpAddr, u16) => |a| Target::Addrs(vec![a.into()]),
    (Ipv4Addr, u16) => |a| Target::Addrs(vec![a.into()]),
    (Ipv6Addr, u16) => |a| Target::Addrs(vec![a.into()]),
    ([u8; 4], u16) => |a| Target::Addrs(vec![a.into()]),
    &[SocketAddr] => |a| Target::Addrs(a.to_vec()),
    Vec<SocketAddr> => |a| Target::Addrs(a),
    &str => |s| literal(s),
    String => |s| literal(&s),
    &String => |s| literal(s),
    (&str, u16) => |a| host_port(a.0, a.1),
    (String, u16) => |a| host_port(&a.0, a.1),
}
