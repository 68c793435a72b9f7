//! Socket errors: what binding and connecting say when they fail (the
//! OS error's kind kept, where and what to do in the message).

use std::net::SocketAddr;

use runner_core::net::{TcpListener, TcpStream};

mod common;

fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn connecting_to_a_closed_port_is_connection_refused() {
    let addr = {
        let l = std::net::TcpListener::bind(localhost()).unwrap();
        l.local_addr().unwrap()
    };
    let err = runner_core::run(async move { TcpStream::connect(addr).await.unwrap_err() }).unwrap();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // The message says where, and what to do.
    let msg = err.to_string();
    assert!(msg.contains(&format!("connecting to {addr} failed")), "{msg}");
    assert!(msg.contains("nothing listens there"), "{msg}");
}

#[test]
fn binding_an_address_in_use_says_which_and_what_to_do() {
    let (tcp, udp) = runner_core::run(async {
        let taken = TcpListener::bind(localhost()).await.unwrap();
        let addr = taken.local_addr().unwrap();
        let tcp = TcpListener::bind(addr).await.map(|_| ()).unwrap_err();
        let udp_taken = runner_core::net::UdpSocket::bind(localhost()).await.unwrap();
        let udp_addr = udp_taken.local_addr().unwrap();
        let udp = runner_core::net::UdpSocket::bind(udp_addr)
            .await
            .map(|_| ())
            .unwrap_err();
        ((addr, tcp), (udp_addr, udp))
    })
    .unwrap();
    for (addr, err) in [tcp, udp] {
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("binding {addr} failed")), "{msg}");
        assert!(msg.contains("port 0 picks a free one"), "{msg}");
    }
}

#[cfg(unix)]
#[test]
fn unix_socket_paths_in_use_missing_or_too_long_say_what_to_do() {
    use runner_core::net::{UnixListener, UnixStream};
    let dir = common::fresh_dir("runner-unix-errors");
    let sock = dir.join("taken.sock");
    let missing = dir.join("missing.sock");
    let long = dir.join("x".repeat(200));
    let (in_use, absent, too_long) = runner_core::run({
        let sock = sock.clone();
        async move {
            let _taken = UnixListener::bind(&sock).unwrap();
            let in_use = UnixListener::bind(&sock).map(|_| ()).unwrap_err();
            let absent = UnixStream::connect(&missing).await.map(|_| ()).unwrap_err();
            let too_long = UnixListener::bind(&long).map(|_| ()).unwrap_err();
            (in_use, absent, too_long)
        }
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(in_use.kind(), std::io::ErrorKind::AddrInUse);
    assert!(in_use.to_string().contains("taken.sock"), "{in_use}");
    assert!(in_use.to_string().contains("remove it"), "{in_use}");
    assert_eq!(absent.kind(), std::io::ErrorKind::NotFound);
    assert!(absent.to_string().contains("start the server"), "{absent}");
    assert_eq!(too_long.kind(), std::io::ErrorKind::InvalidInput);
    assert!(too_long.to_string().contains("at most 107 bytes"), "{too_long}");
}
