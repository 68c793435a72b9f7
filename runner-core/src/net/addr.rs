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
pub(crate) async fn each<T, F, Fut>(addrs: Vec<SocketAddr>, mut op: F) -> io::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = io::Result<T>>,
{
    let mut last = None;
    for addr in addrs {
        match op(addr).await {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address was given")))
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
