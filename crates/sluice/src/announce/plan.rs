//! What this node does with the snapshot's announcements, given the live replicas: which
//! addresses it accepts traffic for, which it answers ARP/NDP for (the one holder per
//! address), and which routes it announces to which BGP peers. Pure: the same inputs give the
//! same plan on every replica, so they agree on holders without talking to each other.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use sluice_announce::Interfaces;
use sluice_bgp::{PeerSpec, Route, SessionConfig};
use sluice_config::{AddressAnnouncement, Announcements, BgpPeer, L2Interfaces};

/// This node's part.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// Every announced address: the node accepts traffic for it (all nodes do, so that a
    /// takeover needs only an announcement, and BGP's ECMP works).
    pub local: BTreeSet<IpAddr>,
    /// Addresses this node holds in L2 and where it answers for them.
    pub l2: BTreeMap<IpAddr, Interfaces>,
    /// The L2 holder of each L2-announced address (`None`: no eligible live node).
    pub holders: BTreeMap<IpAddr, Option<String>>,
    /// The BGP sessions of this node and the routes announced over each.
    pub bgp: Vec<PeerSpec>,
}

/// Computes the plan of `node` when `live` replicas run. `router_id` gives the router ID of
/// a peer that names none.
pub(crate) fn plan(
    announcements: &Announcements,
    node: &str,
    live: &BTreeSet<String>,
    router_id: impl Fn(&BgpPeer) -> Ipv4Addr,
) -> Plan {
    let mut plan = Plan::default();
    let usable = |candidate: &str, address: &AddressAnnouncement| {
        live.contains(candidate)
            && !announcements.excluded_nodes.contains(candidate)
            && address.local_nodes.as_ref().is_none_or(|nodes| nodes.contains(candidate))
    };
    for (ip, address) in &announcements.addresses {
        if address.l2.is_none() && address.bgp.is_empty() {
            continue;
        }
        plan.local.insert(*ip);
        if let Some(l2) = &address.l2 {
            let holder = live
                .iter()
                .filter(|candidate| l2.nodes.contains(candidate) && usable(candidate, address))
                .min_by_key(|candidate| (rank(candidate, *ip), *candidate))
                .cloned();
            if holder.as_deref() == Some(node) {
                let interfaces = match &l2.interfaces {
                    L2Interfaces::All => Interfaces::All,
                    L2Interfaces::Named(names) => Interfaces::Named(names.clone()),
                };
                plan.l2.insert(*ip, interfaces);
            }
            plan.holders.insert(*ip, holder);
        }
    }
    let takes_part = live.contains(node) && !announcements.excluded_nodes.contains(node);
    for peer in &announcements.bgp_peers {
        if !takes_part || !peer.nodes.contains(node) {
            continue;
        }
        let mut routes = Vec::new();
        for address in announcements.addresses.values() {
            if !usable(node, address) {
                continue;
            }
            for bgp in &address.bgp {
                let to_peer = bgp.peers.as_ref().is_none_or(|peers| peers.contains(&peer.short_name));
                if to_peer && bgp.nodes.contains(node) {
                    routes.push(Route {
                        prefix: bgp.prefix,
                        communities: bgp.communities.clone(),
                        local_pref: bgp.local_pref,
                    });
                }
            }
        }
        routes.sort();
        routes.dedup();
        plan.bgp.push(PeerSpec { name: peer.name.clone(), session: session(peer, &router_id), routes });
    }
    plan
}

/// The order in which nodes are preferred for `ip`: a hash of both, so that addresses spread
/// over the nodes, the same on every replica (as MetalLB orders them).
fn rank(node: &str, ip: IpAddr) -> u64 {
    sluice_config::stable_hash(0, &[node.as_bytes(), b"#", ip.to_string().as_bytes()])
}

fn session(peer: &BgpPeer, router_id: &impl Fn(&BgpPeer) -> Ipv4Addr) -> SessionConfig {
    SessionConfig {
        peer_address: peer.peer_address,
        peer_port: peer.peer_port,
        peer_asn: peer.peer_asn,
        local_asn: peer.my_asn,
        router_id: peer.router_id.unwrap_or_else(|| router_id(peer)),
        source_address: peer.source_address,
        hold_time: peer.hold_time,
        keepalive_time: peer.keepalive_time,
        connect_time: peer.connect_time,
        password: peer.password.clone(),
        ebgp_multihop: peer.ebgp_multihop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{BgpAnnouncement, L2Announcement, NodeSet, ObjectRef};
    use std::time::Duration;

    fn address(l2: bool, bgp: bool, local_nodes: Option<&[&str]>) -> AddressAnnouncement {
        AddressAnnouncement {
            holder: ObjectRef::new("Service", "default", "web"),
            pool: "metallb-system/pool".into(),
            l2: l2.then(|| L2Announcement {
                advertisements: vec!["metallb-system/l2".into()],
                interfaces: L2Interfaces::Named(vec!["eth0".into()]),
                nodes: NodeSet::All,
            }),
            bgp: if bgp {
                vec![BgpAnnouncement {
                    advertisement: "metallb-system/bgp".into(),
                    prefix: "198.18.0.10/32".parse().unwrap(),
                    communities: Vec::new(),
                    local_pref: None,
                    peers: None,
                    nodes: NodeSet::All,
                }]
            } else {
                Vec::new()
            },
            local_nodes: local_nodes.map(|n| n.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn peer() -> BgpPeer {
        BgpPeer {
            name: "metallb-system/router".into(),
            short_name: "router".into(),
            peer_address: "198.18.0.1".parse().unwrap(),
            peer_port: 179,
            peer_asn: 64500,
            my_asn: 64501,
            router_id: None,
            source_address: None,
            hold_time: Duration::from_secs(9),
            keepalive_time: None,
            connect_time: Duration::from_secs(3),
            password: None,
            ebgp_multihop: false,
            nodes: NodeSet::All,
        }
    }

    fn live(nodes: &[&str]) -> BTreeSet<String> {
        nodes.iter().map(|s| s.to_string()).collect()
    }

    const ID: fn(&BgpPeer) -> Ipv4Addr = |_| Ipv4Addr::new(198, 18, 0, 2);

    #[test]
    fn exactly_one_live_node_holds_each_l2_address_and_another_takes_over() {
        let mut announcements = Announcements::default();
        for last in 10..40u8 {
            announcements.addresses.insert(IpAddr::from([198, 18, 0, last]), address(true, false, None));
        }
        let all = live(&["a", "b", "c"]);
        let plans: Vec<Plan> = ["a", "b", "c"].iter().map(|n| plan(&announcements, n, &all, ID)).collect();
        for ip in announcements.addresses.keys() {
            assert_eq!(plans.iter().filter(|p| p.l2.contains_key(ip)).count(), 1, "{ip}");
            assert!(plans.iter().all(|p| p.local.contains(ip)));
        }
        assert!(plans.iter().all(|p| !p.l2.is_empty()), "addresses spread over the nodes");
        let held_by_a: Vec<&IpAddr> = plans[0].l2.keys().collect();
        let without_a = live(&["b", "c"]);
        let b = plan(&announcements, "b", &without_a, ID);
        let c = plan(&announcements, "c", &without_a, ID);
        for ip in held_by_a {
            assert!(b.l2.contains_key(ip) ^ c.l2.contains_key(ip), "{ip} taken over by one node");
        }
        let alone = plan(&announcements, "a", &live(&["b"]), ID);
        assert!(alone.l2.is_empty(), "a replica that is not live holds nothing");
    }

    #[test]
    fn local_traffic_policy_prefers_nodes_with_endpoints_and_withdraws_without() {
        let mut announcements = Announcements::default();
        let ip: IpAddr = "198.18.0.10".parse().unwrap();
        announcements.addresses.insert(ip, address(true, true, Some(&["c"])));
        announcements.bgp_peers.push(peer());
        let all = live(&["a", "b", "c"]);
        let c = plan(&announcements, "c", &all, ID);
        assert!(c.l2.contains_key(&ip));
        assert_eq!(c.bgp[0].routes.len(), 1);
        let a = plan(&announcements, "a", &all, ID);
        assert!(a.l2.is_empty());
        assert!(a.bgp[0].routes.is_empty(), "no local endpoint: the route is withdrawn here");
        announcements.addresses.insert(ip, address(true, true, Some(&[])));
        let none = plan(&announcements, "c", &all, ID);
        assert!(none.l2.is_empty() && none.bgp[0].routes.is_empty());
        assert_eq!(none.holders[&ip], None);
    }

    #[test]
    fn bgp_announces_from_every_eligible_node_to_selected_peers() {
        let mut announcements = Announcements::default();
        let ip: IpAddr = "198.18.0.10".parse().unwrap();
        announcements.addresses.insert(ip, address(false, true, None));
        announcements.bgp_peers.push(peer());
        let mut other = peer();
        other.name = "metallb-system/other".into();
        other.short_name = "other".into();
        other.nodes = NodeSet::Only(live(&["b"]));
        announcements.bgp_peers.push(other);
        let all = live(&["a", "b"]);
        let a = plan(&announcements, "a", &all, ID);
        assert_eq!(a.bgp.len(), 1, "peer `other` selects node b only");
        assert_eq!(a.bgp[0].routes[0].prefix.to_string(), "198.18.0.10/32");
        assert_eq!(a.bgp[0].session.router_id, Ipv4Addr::new(198, 18, 0, 2));
        let b = plan(&announcements, "b", &all, ID);
        assert_eq!(b.bgp.len(), 2);
        announcements.addresses.get_mut(&ip).unwrap().bgp[0].peers = Some(live(&["other"]));
        let b = plan(&announcements, "b", &all, ID);
        assert!(b.bgp.iter().find(|p| p.name.ends_with("/router")).unwrap().routes.is_empty());
        assert_eq!(b.bgp.iter().find(|p| p.name.ends_with("/other")).unwrap().routes.len(), 1);
        announcements.excluded_nodes.insert("b".into());
        assert!(plan(&announcements, "b", &all, ID).bgp.is_empty(), "an excluded node announces nothing");
    }
}
