//! The TCP connection of a session: source address, IP TTL and TCP MD5 are set before
//! `connect()` (the SYN must already be signed and carry the right TTL).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::{TcpSocket, TcpStream};

use crate::config::SessionConfig;

/// The shortest connect timeout used, whatever the configuration says.
const MIN_CONNECT_TIME: Duration = Duration::from_secs(1);

/// Opens the session's TCP connection within `connect_time`; the error says why not.
pub(crate) async fn connect(config: &SessionConfig) -> Result<TcpStream, String> {
    let peer = SocketAddr::new(config.peer_address, config.peer_port);
    let socket = prepare(config).map_err(|e| format!("preparing the connection to {peer}: {e}"))?;
    let timeout = config.connect_time.max(MIN_CONNECT_TIME);
    match tokio::time::timeout(timeout, socket.connect(peer)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Err(format!("connection to {peer} refused (is BGP running there and configured for us?)"))
        }
        Ok(Err(e)) if e.kind() == io::ErrorKind::HostUnreachable && single_hop(config) => Err(format!(
            "connecting to {peer}: {e} (packets go with TTL 1: if the peer is not directly connected, \
             set ebgp_multihop)"
        )),
        Ok(Err(e)) => Err(format!("connecting to {peer}: {e}")),
        Err(_) if config.md5_key().is_some() => Err(format!(
            "no answer from {peer} within {timeout:?}: check the TCP MD5 password on both sides \
             (a peer drops SYNs with a wrong or missing signature silently)"
        )),
        Err(_) => Err(format!("no answer from {peer} within {timeout:?}")),
    }
}

/// eBGP peers are directly connected unless told otherwise (RFC 4271 §5.1.3): TTL 1.
fn single_hop(config: &SessionConfig) -> bool {
    !config.ibgp() && !config.ebgp_multihop
}

/// A non-blocking socket with TTL, MD5 key and source address set, ready to connect.
fn prepare(config: &SessionConfig) -> io::Result<TcpSocket> {
    let domain = if config.peer_address.is_ipv4() { Domain::IPV4 } else { Domain::IPV6 };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    // iBGP and multihop sessions may cross routers.
    let ttl = if single_hop(config) { 1 } else { 255 };
    if config.peer_address.is_ipv4() {
        socket.set_ttl_v4(ttl)?;
    } else {
        socket.set_unicast_hops_v6(ttl)?;
    }
    if let Some(key) = config.md5_key() {
        md5::set_key(&socket, config.peer_address, key)
            .map_err(|e| io::Error::new(e.kind(), format!("setting the TCP MD5 key: {e}")))?;
    }
    if let Some(source) = config.source_address {
        socket
            .bind(&SockAddr::from(SocketAddr::new(source, 0)))
            .map_err(|e| io::Error::new(e.kind(), format!("binding the source address {source}: {e}")))?;
    }
    Ok(TcpSocket::from_std_stream(socket.into()))
}

#[cfg(target_os = "linux")]
mod md5 {
    //! `setsockopt(IPPROTO_TCP, TCP_MD5SIG)`: libc has the option but not its struct.

    use std::io;
    use std::net::IpAddr;
    use std::os::fd::AsRawFd;

    use socket2::Socket;

    use crate::config::MAX_PASSWORD_LEN;

    /// Linux's `struct tcp_md5sig` (include/uapi/linux/tcp.h).
    #[repr(C)]
    struct TcpMd5Sig {
        addr: libc::sockaddr_storage,
        flags: u8,
        prefix_len: u8,
        key_len: u16,
        ifindex: libc::c_int,
        key: [u8; MAX_PASSWORD_LEN],
    }

    const _: () = assert!(std::mem::size_of::<TcpMd5Sig>() == 216);

    /// Signs every segment to and from `peer` with `key` (at most 80 bytes).
    pub(super) fn set_key(socket: &Socket, peer: IpAddr, key: &[u8]) -> io::Result<()> {
        // SAFETY: every field is a plain integer or byte array; all zeros is a valid value.
        let mut sig: TcpMd5Sig = unsafe { std::mem::zeroed() };
        sig.key_len = u16::try_from(key.len()).unwrap_or(u16::MAX);
        sig.key
            .get_mut(..key.len())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the key is longer than 80 bytes"))?
            .copy_from_slice(key);
        let storage: *mut libc::sockaddr_storage = &mut sig.addr;
        match peer {
            IpAddr::V4(address) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(address.octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr.
                unsafe { storage.cast::<libc::sockaddr_in>().write(sin) };
            }
            IpAddr::V6(address) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: 0,
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr { s6_addr: address.octets() },
                    sin6_scope_id: 0,
                };
                // SAFETY: as above.
                unsafe { storage.cast::<libc::sockaddr_in6>().write(sin6) };
            }
        }
        // SAFETY: the pointer and length describe `sig`, which lives across the call.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_MD5SIG,
                (&raw const sig).cast::<libc::c_void>(),
                std::mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
            )
        };
        if result == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod md5 {
    //! TCP MD5 signatures are set up the Linux way only.

    use std::io;
    use std::net::IpAddr;

    use socket2::Socket;

    pub(super) fn set_key(_: &Socket, _: IpAddr, _: &[u8]) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "TCP MD5 signatures need Linux"))
    }
}
