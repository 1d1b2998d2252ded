//! What the controller asks of the speaker: the peers, how to reach each, and the routes to
//! announce to each.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;
pub use sluice_config::Community;

/// One BGP peer as the controller wants it: a session and the routes announced over it.
/// [`crate::Speaker::apply`] takes the whole list and reconciles the running sessions to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// `namespace/name` of the BGPPeer: the session's identity across `apply` calls and the
    /// `peer` label of the metrics.
    pub name: String,
    /// How to reach the peer; a change restarts the session.
    pub session: SessionConfig,
    /// The routes to announce. Host bits of a prefix are cleared; two routes for the same
    /// prefix are merged (the union of their communities, the higher LOCAL_PREF). A route of
    /// the other address family than the session (an IPv6 prefix over an IPv4 session or the
    /// reverse) cannot be announced: it is skipped and `last_error` says so.
    pub routes: Vec<Route>,
}

/// The parameters of one BGP session; two equal configurations are the same session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The router's address; the session's address family follows it.
    pub peer_address: IpAddr,
    /// The router's BGP port (179).
    pub peer_port: u16,
    /// The router's AS; its OPEN must carry it or the session is refused (Bad Peer AS).
    pub peer_asn: u32,
    /// Our AS. Equal to `peer_asn` makes the session iBGP.
    pub local_asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The local address to connect from; the kernel chooses when `None`.
    pub source_address: Option<IpAddr>,
    /// The hold time we propose: 0 (no keepalives, no hold timer) or at least 3 s.
    pub hold_time: Duration,
    /// The keepalive interval; one third of the negotiated hold time when `None`, and never
    /// more than that.
    pub keepalive_time: Option<Duration>,
    /// How long one TCP connection attempt may take (at least 1 s is used).
    pub connect_time: Duration,
    /// The TCP MD5 signature key (RFC 2385), at most 80 bytes; `None` or empty for none.
    pub password: Option<String>,
    /// Allows an eBGP peer that is not directly connected (IP TTL 255 instead of 1).
    pub ebgp_multihop: bool,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("peer_address", &self.peer_address)
            .field("peer_port", &self.peer_port)
            .field("peer_asn", &self.peer_asn)
            .field("local_asn", &self.local_asn)
            .field("router_id", &self.router_id)
            .field("source_address", &self.source_address)
            .field("hold_time", &self.hold_time)
            .field("keepalive_time", &self.keepalive_time)
            .field("connect_time", &self.connect_time)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ebgp_multihop", &self.ebgp_multihop)
            .finish()
    }
}

/// Longest TCP MD5 key the kernel accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub(crate) const MAX_PASSWORD_LEN: usize = 80;

impl SessionConfig {
    /// True for iBGP (same AS on both sides).
    pub(crate) fn ibgp(&self) -> bool {
        self.peer_asn == self.local_asn
    }

    /// The MD5 key, when one is set.
    pub(crate) fn md5_key(&self) -> Option<&[u8]> {
        self.password.as_deref().filter(|p| !p.is_empty()).map(str::as_bytes)
    }

    /// Checks what the session cannot start without; the error says which field is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.peer_asn == 0 || self.local_asn == 0 {
            return Err(format!("AS 0 is not usable (local {}, peer {})", self.local_asn, self.peer_asn));
        }
        if self.router_id.is_unspecified() {
            return Err("the router id 0.0.0.0 is not usable".to_owned());
        }
        if self.peer_port == 0 {
            return Err("the peer port 0 is not usable".to_owned());
        }
        let hold = self.hold_time.as_secs();
        if (1..3).contains(&hold) || hold > u64::from(u16::MAX) || (hold == 0 && !self.hold_time.is_zero()) {
            return Err(format!(
                "hold time {:?} is not usable: 0 (no keepalives) or 3 to 65535 seconds",
                self.hold_time
            ));
        }
        if self.keepalive_time.is_some_and(|k| k.as_secs() == 0) {
            return Err("keepalive time must be at least 1 second".to_owned());
        }
        if self.md5_key().is_some_and(|key| key.len() > MAX_PASSWORD_LEN) {
            return Err(format!("the TCP MD5 password is longer than {MAX_PASSWORD_LEN} bytes"));
        }
        if let Some(source) = self.source_address {
            if source.is_ipv4() != self.peer_address.is_ipv4() {
                return Err(format!(
                    "source address {source} and peer address {} are of different families",
                    self.peer_address
                ));
            }
        }
        Ok(())
    }
}

/// One prefix to announce, with the attributes a BGPAdvertisement gives it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Route {
    /// The announced prefix (a LoadBalancer address is a /32 or /128, aggregation may give
    /// shorter ones).
    pub prefix: IpNet,
    /// COMMUNITIES and LARGE_COMMUNITY values.
    pub communities: Vec<Community>,
    /// LOCAL_PREF, sent to iBGP peers only (100 when `None`).
    pub local_pref: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_password() {
        let config = SessionConfig {
            peer_address: "198.18.0.1".parse().unwrap(),
            peer_port: 179,
            peer_asn: 64512,
            local_asn: 64513,
            router_id: "198.18.0.2".parse().unwrap(),
            source_address: None,
            hold_time: Duration::from_secs(90),
            keepalive_time: None,
            connect_time: Duration::from_secs(10),
            password: Some("sekrit".to_owned()),
            ebgp_multihop: false,
        };
        let text = format!("{config:?}");
        assert!(!text.contains("sekrit") && text.contains("<redacted>"), "{text}");
        assert!(config.validate().is_ok());
        let bad_hold = SessionConfig { hold_time: Duration::from_secs(2), ..config.clone() };
        assert!(bad_hold.validate().unwrap_err().contains("hold time"));
        let long_key = SessionConfig { password: Some("k".repeat(81)), ..config.clone() };
        assert!(long_key.validate().unwrap_err().contains("longer than 80 bytes"));
        let mixed = SessionConfig { source_address: Some("fd00::1".parse().unwrap()), ..config };
        assert!(mixed.validate().unwrap_err().contains("different families"));
    }
}
