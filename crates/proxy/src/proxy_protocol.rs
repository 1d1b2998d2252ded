//! Reading the PROXY protocol header (v1 text or v2 binary, HAProxy's spec) that a load
//! balancer in front of Sluice sends first on each connection (`use-proxy-protocol`).
//!
//! Reads exactly the header's bytes and nothing after it, so the stream can go on to TLS or
//! HTTP as if the header had never been there. Bounded: a v1 line is at most 107 bytes, a
//! v2 header at most 16 + 1,024 bytes here; anything else is an error and the connection is
//! closed.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included.
const V1_MAX: usize = 107;
/// The most address and TLV bytes of a v2 header accepted.
const V2_MAX_BODY: usize = 1024;

/// The connection as the sender of the header saw it; `None` for `UNKNOWN`/`LOCAL`
/// (a health check by the balancer itself: the connection's own addresses apply).
pub(crate) type Addresses = Option<(SocketAddr, SocketAddr)>;

/// Reads one PROXY header from `stream`: the original source and destination.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Addresses> {
    // 15 bytes: the shortest v1 line (`PROXY UNKNOWN\r\n`) and more than the v2 signature.
    let mut start = [0u8; 15];
    stream.read_exact(&mut start).await?;
    if start[..12] == V2_SIGNATURE {
        let mut rest = [0u8; 1];
        stream.read_exact(&mut rest).await?;
        let head = [start[12], start[13], start[14], rest[0]];
        let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if length > V2_MAX_BODY {
            return Err(invalid("PROXY v2 header too long"));
        }
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await?;
        return parse_v2(head, &body);
    }
    if !start.starts_with(b"PROXY ") {
        return Err(invalid("no PROXY protocol header"));
    }
    let mut line = Vec::with_capacity(V1_MAX);
    line.extend_from_slice(&start);
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(invalid("PROXY v1 line too long"));
        }
        stream.read_exact(&mut byte).await?;
        line.push(byte[0]);
    }
    parse_v1(&line)
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// `PROXY TCP4 src dst sport dport\r\n`, `TCP6`, or `UNKNOWN ...`.
fn parse_v1(line: &[u8]) -> io::Result<Addresses> {
    let text = std::str::from_utf8(line).map_err(|_| invalid("PROXY v1 line is not text"))?;
    let fields: Vec<&str> = text.trim_end_matches("\r\n").split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        ["PROXY", family @ ("TCP4" | "TCP6"), source, destination, source_port, destination_port] => {
            let address = |text: &str| -> io::Result<IpAddr> {
                let ip: IpAddr = text.parse().map_err(|_| invalid("bad address in PROXY v1 line"))?;
                match (*family, ip) {
                    ("TCP4", IpAddr::V4(_)) | ("TCP6", IpAddr::V6(_)) => Ok(ip),
                    _ => Err(invalid("address family mismatch in PROXY v1 line")),
                }
            };
            let port = |text: &str| text.parse::<u16>().map_err(|_| invalid("bad port in PROXY v1 line"));
            Ok(Some((
                SocketAddr::new(address(source)?, port(source_port)?),
                SocketAddr::new(address(destination)?, port(destination_port)?),
            )))
        }
        _ => Err(invalid("malformed PROXY v1 line")),
    }
}

/// Version/command, family/protocol and length, then the addresses (TLVs are skipped).
fn parse_v2(head: [u8; 4], body: &[u8]) -> io::Result<Addresses> {
    if head[0] >> 4 != 2 {
        return Err(invalid("unsupported PROXY protocol version"));
    }
    match head[0] & 0x0f {
        0 => return Ok(None),
        1 => {}
        _ => return Err(invalid("unknown PROXY v2 command")),
    }
    match head[1] {
        // TCP over IPv4: 4 + 4 + 2 + 2 bytes.
        0x11 if body.len() >= 12 => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(body[at], body[at + 1], body[at + 2], body[at + 3]));
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            Ok(Some((SocketAddr::new(ip(0), port(8)), SocketAddr::new(ip(4), port(10)))))
        }
        // TCP over IPv6: 16 + 16 + 2 + 2 bytes.
        0x21 if body.len() >= 36 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&body[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            let port = |at: usize| u16::from_be_bytes([body[at], body[at + 1]]);
            Ok(Some((SocketAddr::new(ip(0), port(32)), SocketAddr::new(ip(16), port(34)))))
        }
        // UNSPEC, UDP, unix sockets: nothing usable about the client.
        0x00 | 0x12 | 0x22 | 0x31 | 0x32 => Ok(None),
        _ => Err(invalid("unsupported or truncated PROXY v2 addresses")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (io::Result<Addresses>, Vec<u8>) {
        let mut stream = bytes;
        let header = read_header(&mut stream).await;
        (header, stream.to_vec())
    }

    #[tokio::test]
    async fn v1_reads_exactly_the_line() {
        let (header, rest) = read(b"PROXY TCP4 192.0.2.1 198.18.0.1 5555 443\r\nGET / HTTP/1.1\r\n").await;
        let (source, destination) = header.unwrap().unwrap();
        assert_eq!(source, "192.0.2.1:5555".parse().unwrap());
        assert_eq!(destination.port(), 443);
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (header, rest) = read(b"PROXY UNKNOWN\r\nx").await;
        assert!(header.unwrap().is_none());
        assert_eq!(rest, b"x");
        let (header, _) = read(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n").await;
        assert_eq!(header.unwrap().unwrap().0, "[2001:db8::1]:1".parse().unwrap());
    }

    #[tokio::test]
    async fn v2_reads_addresses_and_skips_tlvs() {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend_from_slice(&[0x21, 0x11, 0, 15]);
        bytes.extend_from_slice(&[192, 0, 2, 1, 198, 18, 0, 1, 0x15, 0xb3, 0x01, 0xbb]);
        bytes.extend_from_slice(&[0x04, 0, 0]); // an empty TLV
        bytes.extend_from_slice(b"after");
        let (header, rest) = read(&bytes).await;
        let (source, destination) = header.unwrap().unwrap();
        assert_eq!(source, "192.0.2.1:5555".parse().unwrap());
        assert_eq!(destination, "198.18.0.1:443".parse().unwrap());
        assert_eq!(rest, b"after");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert!(read(&local).await.0.unwrap().is_none());
    }

    #[tokio::test]
    async fn garbage_is_an_error_never_a_panic() {
        for bytes in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            b"PROXY",
        ] {
            assert!(read(bytes).await.0.is_err(), "{bytes:?}");
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(read(&long).await.0.is_err());
        let mut truncated = V2_SIGNATURE.to_vec();
        truncated.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert!(read(&truncated).await.0.is_err());
        for _ in 0..2000 {
            let mut random = V2_SIGNATURE.to_vec();
            let length = fastrand::usize(0..64);
            random.extend_from_slice(&[fastrand::u8(..), fastrand::u8(..), 0, length as u8]);
            random.extend((0..fastrand::usize(0..80)).map(|_| fastrand::u8(..)));
            let _ = read(&random).await;
        }
    }
}
