//! Socket setup: listener binding options and half-close.

use std::io;
use std::net::{Shutdown, SocketAddr};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Pending connections the kernel queues per TCP listener before `accept`.
const BACKLOG: i32 = 1024;

/// A TCP listener with `SO_REUSEADDR`, so a restart re-binds while old connections linger in
/// TIME_WAIT. IPv6 listeners are v6-only so they never collide with an IPv4 key.
pub(crate) fn bind_tcp(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// A UDP listener. No `SO_REUSEADDR`: on Linux it would let a second socket silently share
/// the address, so a clash is reported instead.
pub(crate) fn bind_udp(address: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

/// A UDP socket on an ephemeral port connected to `endpoint`: the upstream side of one flow,
/// so the endpoint's replies arrive only on it.
pub(crate) fn connect_udp(endpoint: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(endpoint), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    socket.connect(&endpoint.into())?;
    UdpSocket::from_std(socket.into())
}

/// Sends FIN on `stream` while it keeps receiving (half-close). Errors mean the peer is gone,
/// which the other direction will notice.
pub(crate) fn shutdown_write(stream: &TcpStream) {
    let _ = SockRef::from(stream).shutdown(Shutdown::Write);
}
