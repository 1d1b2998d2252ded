//! Who the client is: the connection's peer, or what trusted proxies in front of Sluice say
//! (PROXY protocol, `X-Forwarded-*`), as ingress-nginx's `use-proxy-protocol`,
//! `use-forwarded-headers`, `enable-real-ip`, `forwarded-for-header`,
//! `compute-full-forwarded-for` and `proxy-real-ip-cidr` decide.

use std::net::IpAddr;

use http::header::HeaderName;
pub use ipnet::IpNet;

/// What the HTTP and HTTPS listeners believe about a client. The default believes only the
/// connection: incoming forwarding headers are replaced (and passed on as
/// `X-Original-Forwarded-*`), as ingress-nginx does by default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientTrust {
    /// `use-proxy-protocol`: every connection starts with a PROXY v1 or v2 header, whose
    /// source is the client (connections without one are closed).
    pub proxy_protocol: bool,
    /// `enable-real-ip` / `use-forwarded-headers`: the client address is read from a header.
    pub real_ip: Option<RealIp>,
    /// `use-forwarded-headers`: `X-Forwarded-Proto`, `-Port` and `-Host` from the client are
    /// believed (for redirects, the headers sent upstream and the upstream `Host`).
    pub forwarded_headers: bool,
    /// `compute-full-forwarded-for`: `X-Forwarded-For` sent upstream is the incoming list
    /// with the peer appended, instead of the client address alone.
    pub full_forwarded_for: bool,
}

/// Where the real client address is read from, and whom to believe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealIp {
    /// `forwarded-for-header` (default `X-Forwarded-For`).
    pub header: HeaderName,
    /// `proxy-real-ip-cidr`: only a peer inside these may set the header, and addresses
    /// inside them are skipped from the right of the list (nginx's `real_ip_recursive`).
    pub trusted: Vec<IpNet>,
}

impl RealIp {
    /// The client address that `peer` (the connection's, or the PROXY header's source)
    /// forwards in `list` (the header's value, comma-separated, possibly repeated): the
    /// rightmost address that is not trusted, or the leftmost when all are. `peer` itself
    /// when the peer is not trusted or the list holds no address.
    pub fn client<'a>(&self, peer: IpAddr, lists: impl DoubleEndedIterator<Item = &'a [u8]>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut leftmost = None;
        for list in lists.rev() {
            let text = std::str::from_utf8(list).unwrap_or_default();
            for item in text.rsplit(',') {
                let Some(address) = parse_address(item) else {
                    // nginx stops at the first entry that is not an address.
                    return leftmost.unwrap_or(peer);
                };
                if !self.trusts(address) {
                    return address;
                }
                leftmost = Some(address);
            }
        }
        leftmost.unwrap_or(peer)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.trusted.iter().any(|net| net.contains(&address))
    }
}

/// An address as written in `X-Forwarded-For`: optional spaces, IPv6 possibly in brackets,
/// IPv4 possibly with a port.
fn parse_address(item: &str) -> Option<IpAddr> {
    let item = item.trim();
    if let Ok(address) = item.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Some(inner) = item.strip_prefix('[') {
        let end = inner.find(']')?;
        return inner[..end].parse::<IpAddr>().ok().map(canonical);
    }
    let (host, port) = item.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4, so that IPv4 ranges cover them.
pub fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_ip(trusted: &[&str]) -> RealIp {
        RealIp {
            header: HeaderName::from_static("x-forwarded-for"),
            trusted: trusted.iter().map(|t| t.parse().unwrap()).collect(),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn everyone_trusted_gives_the_leftmost_address() {
        let trust = real_ip(&["0.0.0.0/0", "::/0"]);
        let lists: [&[u8]; 2] = [b"1.2.3.4, 10.0.0.1", b"10.0.0.2"];
        assert_eq!(trust.client(ip("127.0.0.1"), lists.into_iter()), ip("1.2.3.4"));
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        let trust = real_ip(&["10.0.0.0/8", "127.0.0.1/32"]);
        let lists: [&[u8]; 1] = [b"6.6.6.6, 1.2.3.4:5555, 10.0.0.1"];
        assert_eq!(trust.client(ip("127.0.0.1"), lists.into_iter()), ip("1.2.3.4"));
        assert_eq!(trust.client(ip("::ffff:127.0.0.1"), lists.into_iter()), ip("1.2.3.4"));
    }

    #[test]
    fn an_untrusted_peer_or_garbage_gives_the_peer() {
        let trust = real_ip(&["10.0.0.0/8"]);
        let lists: [&[u8]; 1] = [b"1.2.3.4"];
        assert_eq!(trust.client(ip("192.0.2.1"), lists.into_iter()), ip("192.0.2.1"));
        let garbage: [&[u8]; 1] = [b"unknown, \xff"];
        assert_eq!(trust.client(ip("10.1.1.1"), garbage.into_iter()), ip("10.1.1.1"));
        let v6: [&[u8]; 1] = [b"[2001:db8::1]:443"];
        assert_eq!(trust.client(ip("10.1.1.1"), v6.into_iter()), ip("2001:db8::1"));
    }
}
