//! PROXY protocol v1 and v2 headers, telling the backend the real client address
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>).

use std::net::{IpAddr, SocketAddr};

use sluice_config::ProxyProtocol;

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
/// Version 2, command PROXY.
const V2_PROXY: u8 = 0x21;
/// TCP over IPv4 / IPv6; unspecified.
const V2_TCP4: u8 = 0x11;
const V2_TCP6: u8 = 0x21;
const V2_UNSPEC: u8 = 0x00;

/// The header for a connection from `source` to `destination` (the address the client
/// connected to). IPv4-mapped IPv6 addresses are written as IPv4.
pub(crate) fn header(version: ProxyProtocol, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (src, dst) = (source.ip().to_canonical(), destination.ip().to_canonical());
    let (sport, dport) = (source.port(), destination.port());
    match version {
        ProxyProtocol::V1 => match (src, dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) => format!("PROXY TCP4 {src} {dst} {sport} {dport}\r\n"),
            (IpAddr::V6(_), IpAddr::V6(_)) => format!("PROXY TCP6 {src} {dst} {sport} {dport}\r\n"),
            _ => "PROXY UNKNOWN\r\n".to_owned(),
        }
        .into_bytes(),
        ProxyProtocol::V2 => {
            let mut out = Vec::with_capacity(16 + 36);
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(V2_PROXY);
            match (src, dst) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(V2_TCP4);
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (IpAddr::V6(s), IpAddr::V6(d)) => {
                    out.push(V2_TCP6);
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                _ => {
                    out.push(V2_UNSPEC);
                    out.extend_from_slice(&0u16.to_be_bytes());
                    return out;
                }
            }
            out.extend_from_slice(&sport.to_be_bytes());
            out.extend_from_slice(&dport.to_be_bytes());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn v1_ipv4_and_ipv6() {
        let h = header(ProxyProtocol::V1, addr("10.0.0.1:5000"), addr("192.0.2.1:80"));
        assert_eq!(h, b"PROXY TCP4 10.0.0.1 192.0.2.1 5000 80\r\n");
        let h = header(ProxyProtocol::V1, addr("[2001:db8::1]:5000"), addr("[2001:db8::2]:443"));
        assert_eq!(h, b"PROXY TCP6 2001:db8::1 2001:db8::2 5000 443\r\n");
    }

    #[test]
    fn v1_mapped_addresses_are_ipv4() {
        let h = header(ProxyProtocol::V1, addr("[::ffff:10.0.0.1]:5000"), addr("[::ffff:192.0.2.1]:80"));
        assert_eq!(h, b"PROXY TCP4 10.0.0.1 192.0.2.1 5000 80\r\n");
    }

    #[test]
    fn v2_ipv4_layout() {
        let h = header(ProxyProtocol::V2, addr("10.0.0.1:5000"), addr("192.0.2.1:80"));
        assert_eq!(h.len(), 28);
        assert_eq!(&h[..12], &V2_SIGNATURE);
        assert_eq!(&h[12..16], &[0x21, 0x11, 0, 12]);
        assert_eq!(&h[16..20], &[10, 0, 0, 1]);
        assert_eq!(&h[20..24], &[192, 0, 2, 1]);
        assert_eq!(&h[24..28], &[0x13, 0x88, 0, 80]);
    }

    #[test]
    fn v2_ipv6_and_mixed() {
        let h = header(ProxyProtocol::V2, addr("[2001:db8::1]:1"), addr("[2001:db8::2]:2"));
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(&h[12..16], &[0x21, 0x21, 0, 36]);
        let h = header(ProxyProtocol::V2, addr("10.0.0.1:1"), addr("[2001:db8::2]:2"));
        assert_eq!(&h[12..], &[0x21, 0x00, 0, 0]);
        let h = header(ProxyProtocol::V1, addr("10.0.0.1:1"), addr("[2001:db8::2]:2"));
        assert_eq!(h, b"PROXY UNKNOWN\r\n");
    }
}
