//! How LoadBalancer addresses are made reachable from the network: which node may hold each
//! address and answer ARP/NDP for it (L2), and which BGP peers hear it with which attributes.
//! Translation fills it from MetalLB's advertisements and peers; the announcers read it and
//! decide, with the live replicas, what this node does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use crate::ObjectRef;

/// Nodes an advertisement or peer applies to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum NodeSet {
    /// Every node (no `nodeSelectors`).
    All,
    /// Only these nodes, by name (the Node objects the selectors match).
    Only(BTreeSet<String>),
}

impl NodeSet {
    /// Whether `node` is in the set.
    pub fn contains(&self, node: &str) -> bool {
        match self {
            NodeSet::All => true,
            NodeSet::Only(nodes) => nodes.contains(node),
        }
    }
}

/// The interfaces an L2 announcement answers on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum L2Interfaces {
    /// Every Ethernet interface that is up (no `interfaces` given).
    All,
    /// Only these, by name.
    Named(Vec<String>),
}

/// An address announced by ARP/NDP: one node holds it at a time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct L2Announcement {
    /// The L2Advertisements that announce it (`namespace/name`), for status.
    pub advertisements: Vec<String>,
    /// Where it is answered.
    pub interfaces: L2Interfaces,
    /// Nodes that may hold it.
    pub nodes: NodeSet,
}

/// A BGP community: RFC 1997 (two 16-bit halves) or RFC 8092 large (three 32-bit parts).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize)]
pub enum Community {
    /// `ASN:value`, each 16 bits.
    Standard(u16, u16),
    /// `large:global:local1:local2`, each 32 bits.
    Large(u32, u32, u32),
}

impl FromStr for Community {
    type Err = String;

    /// Parses MetalLB's syntax: `65535:65282` or `large:1:2:3` (decimal numbers).
    fn from_str(text: &str) -> Result<Self, String> {
        let number = |part: &str, what: &str, bits: u32| -> Result<u64, String> {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("community {text:?}: {what} {part:?} is not a decimal number"));
            }
            part.parse::<u64>()
                .ok()
                .filter(|value| value >> bits == 0)
                .ok_or_else(|| format!("community {text:?}: {what} {part} does not fit in {bits} bits"))
        };
        if let Some(large) = text.strip_prefix("large:") {
            let parts: Vec<&str> = large.split(':').collect();
            let [global, local1, local2] = parts.as_slice() else {
                return Err(format!(
                    "community {text:?}: a large community has three parts, large:GLOBAL:LOCAL1:LOCAL2"
                ));
            };
            let part = |p, what| number(p, what, 32).map(|v| v as u32);
            return Ok(Self::Large(
                part(global, "the global administrator")?,
                part(local1, "the first local part")?,
                part(local2, "the second local part")?,
            ));
        }
        let parts: Vec<&str> = text.split(':').collect();
        let [high, low] = parts.as_slice() else {
            return Err(format!(
                "community {text:?}: expected ASN:VALUE (two 16-bit numbers) or large:GLOBAL:LOCAL1:LOCAL2"
            ));
        };
        let part = |p, what| number(p, what, 16).map(|v| v as u16);
        Ok(Self::Standard(part(high, "the first part")?, part(low, "the second part")?))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Standard(high, low) => write!(f, "{high}:{low}"),
            Self::Large(global, local1, local2) => write!(f, "large:{global}:{local1}:{local2}"),
        }
    }
}

/// An address announced over BGP by one BGPAdvertisement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BgpAnnouncement {
    /// The BGPAdvertisement (`namespace/name`).
    pub advertisement: String,
    /// The prefix announced: the address, or the aggregate containing it
    /// (`aggregationLength`).
    pub prefix: IpNet,
    /// Communities attached.
    pub communities: Vec<Community>,
    /// LOCAL_PREF towards iBGP peers.
    pub local_pref: Option<u32>,
    /// Peers it goes to (BGPPeer names); `None`: every peer.
    pub peers: Option<BTreeSet<String>>,
    /// Nodes that announce it.
    pub nodes: NodeSet,
}

/// One allocated address and how it is announced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AddressAnnouncement {
    /// The Service or Gateway holding it.
    pub holder: ObjectRef,
    /// The pool it came from (`namespace/name` of the IPAddressPool, or `--lb-pool`).
    pub pool: String,
    /// ARP/NDP, when an L2Advertisement selects it.
    pub l2: Option<L2Announcement>,
    /// BGP, one entry per BGPAdvertisement selecting it.
    pub bgp: Vec<BgpAnnouncement>,
    /// `externalTrafficPolicy: Local`: the nodes with a ready endpoint — only they may hold
    /// or announce it (none: nobody announces). `None` for `Cluster`.
    pub local_nodes: Option<BTreeSet<String>>,
}

/// A BGP router to peer with (a BGPPeer).
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct BgpPeer {
    /// `namespace/name` of the BGPPeer; advertisements' `peers` name it by `name`.
    pub name: String,
    /// The BGPPeer's `metadata.name`.
    pub short_name: String,
    /// The router's address.
    pub peer_address: IpAddr,
    /// Its port (179 by default).
    pub peer_port: u16,
    /// Its AS number.
    pub peer_asn: u32,
    /// Ours.
    pub my_asn: u32,
    /// The router ID we use; `None`: the session's own IPv4 address.
    pub router_id: Option<Ipv4Addr>,
    /// The local address sessions start from.
    pub source_address: Option<IpAddr>,
    /// Hold time proposed.
    pub hold_time: Duration,
    /// Keepalive interval (`None`: a third of the hold time).
    pub keepalive_time: Option<Duration>,
    /// How long a connection attempt may take.
    pub connect_time: Duration,
    /// TCP MD5 password.
    #[serde(skip)]
    pub password: Option<String>,
    /// eBGP across more than one hop.
    pub ebgp_multihop: bool,
    /// Nodes that peer with it.
    pub nodes: NodeSet,
}

impl fmt::Debug for BgpPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BgpPeer")
            .field("name", &self.name)
            .field("peer_address", &self.peer_address)
            .field("peer_asn", &self.peer_asn)
            .field("my_asn", &self.my_asn)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

/// Everything announced, and the nodes that cannot take part.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Announcements {
    /// Every allocated address with how it is announced (an address no advertisement
    /// selects is allocated but not announced, as in MetalLB).
    pub addresses: BTreeMap<IpAddr, AddressAnnouncement>,
    /// The BGP peers.
    pub bgp_peers: Vec<BgpPeer>,
    /// Nodes that hold and announce nothing: not Ready, or labelled
    /// `node.kubernetes.io/exclude-from-external-load-balancers`.
    pub excluded_nodes: BTreeSet<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn communities_parse_in_metallb_syntax() {
        assert_eq!("65535:65282".parse(), Ok(Community::Standard(65535, 65282)));
        assert_eq!("0:0".parse(), Ok(Community::Standard(0, 0)));
        assert_eq!("large:1:2:3".parse(), Ok(Community::Large(1, 2, 3)));
        assert_eq!("large:4294967295:0:4294967295".parse(), Ok(Community::Large(u32::MAX, 0, u32::MAX)));
        for text in ["65535:65282", "large:4200000001:7:8"] {
            assert_eq!(text.parse::<Community>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn community_errors_say_what_is_wrong() {
        let error = |text: &str| text.parse::<Community>().unwrap_err();
        assert!(error("65536:1").contains("the first part 65536 does not fit in 16 bits"), "{}", error("65536:1"));
        assert!(error("1:x").contains("the second part \"x\" is not a decimal number"));
        assert!(error("1:+2").contains("is not a decimal number"));
        assert!(error("1:2:3").contains("expected ASN:VALUE"));
        assert!(error("").contains("expected ASN:VALUE"));
        assert!(error("large:1:2").contains("three parts"));
        assert!(error("large:1:2:4294967296").contains("the second local part 4294967296 does not fit in 32 bits"));
        assert!(error("large:1::3").contains("the first local part \"\" is not a decimal number"));
        assert!(error("no-export").contains("expected ASN:VALUE"));
        assert!(error("99999999999999999999999:1").contains("does not fit in 16 bits"));
    }
}
