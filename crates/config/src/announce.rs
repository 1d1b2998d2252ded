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

/// A BGP community attached to announced routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Community {
    /// `65535:65282`.
    Standard(u16, u16),
    /// `large:1:2:3`.
    Large(u32, u32, u32),
}

impl FromStr for Community {
    type Err = String;

    /// MetalLB's syntax: `AS:VALUE` with 16-bit parts, or `large:GLOBAL:DATA1:DATA2`.
    fn from_str(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let bad = || format!("{text:?} is not a community: expected \"65535:65282\" or \"large:1:2:3\"");
        match parts.as_slice() {
            [a, b] => Ok(Community::Standard(a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?)),
            ["large", a, b, c] => Ok(Community::Large(
                a.parse().map_err(|_| bad())?,
                b.parse().map_err(|_| bad())?,
                c.parse().map_err(|_| bad())?,
            )),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(a, b) => write!(f, "{a}:{b}"),
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
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
    use super::Community;

    #[test]
    fn communities_parse_as_metallb_writes_them() {
        assert_eq!("65535:65282".parse(), Ok(Community::Standard(65535, 65282)));
        assert_eq!("large:4200000000:1:2".parse(), Ok(Community::Large(4_200_000_000, 1, 2)));
        for bad in ["65536:1", "1", "large:1:2", "a:b", "1:2:3", ""] {
            assert!(bad.parse::<Community>().is_err(), "{bad}");
        }
        assert_eq!(Community::Large(1, 2, 3).to_string(), "large:1:2:3");
    }
}
