//! How each allocated address is announced: the L2Advertisements and BGPAdvertisements
//! selecting its pool (and its Service), the BGPPeers, and the nodes taking part.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use sluice_config::{
    AddressAnnouncement, Announcements, BgpAnnouncement, BgpPeer, Community, Diagnostic, IpNet, L2Announcement,
    L2Interfaces, NodeSet, ObjectRef,
};
use sluice_store::k8s_openapi::api::core::v1::Node;
use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use sluice_store::{BGPPeer, Store};

use super::pools::{Pool, FLAG_POOL};
use crate::selector::Selector;

/// Nodes with this label never hold or announce addresses (as in MetalLB and kube-proxy).
const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// BGP's default port.
const BGP_PORT: u16 = 179;
/// MetalLB's defaults.
const DEFAULT_HOLD: Duration = Duration::from_secs(90);
const DEFAULT_CONNECT: Duration = Duration::from_secs(10);

/// An allocated address with what decides its announcement.
pub(super) struct Allocated<'a> {
    pub ip: IpAddr,
    pub holder: &'a ObjectRef,
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// `externalTrafficPolicy: Local`: the nodes with ready endpoints.
    pub local_nodes: Option<BTreeSet<String>>,
}

/// A parsed advertisement: which pools, Services and nodes it selects.
struct Scope {
    id: String,
    pools: Vec<String>,
    pool_selectors: Vec<Selector>,
    service_selectors: Vec<Selector>,
    nodes: NodeSet,
}

impl Scope {
    fn read(
        reference: &ObjectRef,
        pools: &[String],
        pool_selectors: &[LabelSelector],
        service_selectors: &[LabelSelector],
        node_selectors: &[LabelSelector],
        store: &Store,
    ) -> Result<Self, Diagnostic> {
        let parse = |list: &[LabelSelector], field: &str| -> Result<Vec<Selector>, Diagnostic> {
            list.iter()
                .enumerate()
                .map(|(i, s)| {
                    Selector::of(s).map_err(|e| Diagnostic::object(reference.clone(), format!("spec.{field}[{i}]"), e))
                })
                .collect()
        };
        let node_selectors = parse(node_selectors, "nodeSelectors")?;
        Ok(Self {
            id: format!("{}/{}", reference.namespace, reference.name),
            pools: pools.to_vec(),
            pool_selectors: parse(pool_selectors, "ipAddressPoolSelectors")?,
            service_selectors: parse(service_selectors, "serviceSelectors")?,
            nodes: nodes_selected(store, &node_selectors),
        })
    }

    /// Whether the advertisement covers an address of `pool` held by a Service with `labels`.
    /// The `--lb-pool` ranges are never announced (they are local, or routed by the operator).
    fn selects(&self, pool: &Pool, labels: Option<&BTreeMap<String, String>>) -> bool {
        if pool.id == FLAG_POOL {
            return false;
        }
        let by_pool = (self.pools.is_empty() && self.pool_selectors.is_empty())
            || self.pools.contains(&pool.name)
            || self.pool_selectors.iter().any(|s| s.matches(Some(&pool.labels)));
        by_pool && (self.service_selectors.is_empty() || self.service_selectors.iter().any(|s| s.matches(labels)))
    }
}

/// The Node objects matching any of `selectors` (none: every node).
fn nodes_selected(store: &Store, selectors: &[Selector]) -> NodeSet {
    if selectors.is_empty() {
        return NodeSet::All;
    }
    let names = store
        .nodes
        .iter()
        .filter(|(_, node)| selectors.iter().any(|s| s.matches(node.metadata.labels.as_ref())))
        .map(|(key, _)| key.name.clone())
        .collect();
    NodeSet::Only(names)
}

/// Nodes that must not take part: not Ready, or excluded by label.
fn excluded_nodes(store: &Store) -> BTreeSet<String> {
    let unready = |node: &Node| {
        let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
        conditions.iter().any(|c| c.type_ == "Ready" && c.status != "True")
    };
    let excluded = |node: &Node| node.metadata.labels.as_ref().is_some_and(|l| l.contains_key(EXCLUDE_LABEL));
    store.nodes.iter().filter(|(_, n)| unready(n) || excluded(n)).map(|(k, _)| k.name.clone()).collect()
}

/// Builds the announcements of `allocated` addresses.
pub(super) fn announcements(
    store: &Store,
    pools: &[Pool],
    allocated: Vec<Allocated<'_>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Announcements {
    let communities = community_aliases(store);
    let mut l2 = Vec::new();
    for (key, adv) in &store.l2_advertisements {
        let reference = ObjectRef::new("L2Advertisement", &key.namespace, &key.name);
        let s = &adv.spec;
        match Scope::read(
            &reference,
            &s.ip_address_pools,
            &s.ip_address_pool_selectors,
            &s.service_selectors,
            &s.node_selectors,
            store,
        ) {
            Ok(scope) => l2.push((scope, s.interfaces.clone())),
            Err(d) => diagnostics.push(d),
        }
    }
    let mut bgp = Vec::new();
    for (key, adv) in &store.bgp_advertisements {
        let reference = ObjectRef::new("BGPAdvertisement", &key.namespace, &key.name);
        let s = &adv.spec;
        let scope = Scope::read(
            &reference,
            &s.ip_address_pools,
            &s.ip_address_pool_selectors,
            &s.service_selectors,
            &s.node_selectors,
            store,
        );
        let attributes = bgp_attributes(&reference, adv, &communities);
        match (scope, attributes) {
            (Ok(scope), Ok(attributes)) => bgp.push((scope, attributes)),
            (Err(d), _) | (_, Err(d)) => diagnostics.push(d),
        }
    }
    let mut addresses = BTreeMap::new();
    for entry in allocated {
        let Some(pool) = pools.iter().find(|p| p.contains(entry.ip)) else {
            continue;
        };
        let l2 = l2_announcement(&l2, pool, entry.labels);
        let bgp = bgp
            .iter()
            .filter(|(scope, _)| scope.selects(pool, entry.labels))
            .map(|(scope, a)| BgpAnnouncement {
                advertisement: scope.id.clone(),
                prefix: aggregate(entry.ip, if entry.ip.is_ipv4() { a.length_v4 } else { a.length_v6 }),
                communities: a.communities.clone(),
                local_pref: a.local_pref,
                peers: a.peers.clone(),
                nodes: scope.nodes.clone(),
            })
            .collect();
        let announcement = AddressAnnouncement {
            holder: entry.holder.clone(),
            pool: pool.id.clone(),
            l2,
            bgp,
            local_nodes: entry.local_nodes,
        };
        addresses.insert(entry.ip, announcement);
    }
    let bgp_peers = store
        .bgp_peers
        .iter()
        .filter_map(|(key, peer)| {
            let reference = ObjectRef::new("BGPPeer", &key.namespace, &key.name);
            bgp_peer(store, &reference, peer).map_err(|d| diagnostics.push(d)).ok()
        })
        .collect();
    Announcements { addresses, bgp_peers, excluded_nodes: excluded_nodes(store) }
}

/// Every L2Advertisement selecting the address, merged: the union of their interfaces and
/// nodes.
fn l2_announcement(
    l2: &[(Scope, Vec<String>)],
    pool: &Pool,
    labels: Option<&BTreeMap<String, String>>,
) -> Option<L2Announcement> {
    let selecting: Vec<&(Scope, Vec<String>)> = l2.iter().filter(|(scope, _)| scope.selects(pool, labels)).collect();
    if selecting.is_empty() {
        return None;
    }
    let interfaces = if selecting.iter().any(|(_, i)| i.is_empty()) {
        L2Interfaces::All
    } else {
        let mut names: Vec<String> = selecting.iter().flat_map(|(_, i)| i.iter().cloned()).collect();
        names.sort();
        names.dedup();
        L2Interfaces::Named(names)
    };
    let nodes = if selecting.iter().any(|(s, _)| s.nodes == NodeSet::All) {
        NodeSet::All
    } else {
        NodeSet::Only(
            selecting
                .iter()
                .flat_map(|(s, _)| match &s.nodes {
                    NodeSet::Only(n) => n.iter().cloned().collect::<Vec<_>>(),
                    NodeSet::All => Vec::new(),
                })
                .collect(),
        )
    };
    Some(L2Announcement { advertisements: selecting.iter().map(|(s, _)| s.id.clone()).collect(), interfaces, nodes })
}

/// A BGPAdvertisement's route attributes.
struct Attributes {
    length_v4: u8,
    length_v6: u8,
    communities: Vec<Community>,
    local_pref: Option<u32>,
    peers: Option<BTreeSet<String>>,
}

fn bgp_attributes(
    reference: &ObjectRef,
    adv: &sluice_store::BGPAdvertisement,
    aliases: &BTreeMap<String, Community>,
) -> Result<Attributes, Diagnostic> {
    let s = &adv.spec;
    let problem = |field: &str, reason: String| Diagnostic::object(reference.clone(), field, reason);
    let length = |value: Option<i32>, max: u8, field: &str| match value {
        None => Ok(max),
        Some(n) => u8::try_from(n)
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| problem(field, format!("{n} is not a prefix length from 1 to {max}"))),
    };
    let mut communities = Vec::new();
    for (i, text) in s.communities.iter().enumerate() {
        let community = match aliases.get(text) {
            Some(c) => *c,
            None => text.parse().map_err(|e: String| {
                problem(&format!("spec.communities[{i}]"), format!("{e}, nor a Community alias"))
            })?,
        };
        communities.push(community);
    }
    if !s.service_selectors.is_empty()
        && (s.aggregation_length.is_some_and(|l| l != 32) || s.aggregation_length_v6.is_some_and(|l| l != 128))
    {
        return Err(problem(
            "spec.serviceSelectors",
            "cannot be combined with an aggregation length other than /32 or /128".into(),
        ));
    }
    Ok(Attributes {
        length_v4: length(s.aggregation_length, 32, "spec.aggregationLength")?,
        length_v6: length(s.aggregation_length_v6, 128, "spec.aggregationLengthV6")?,
        communities,
        local_pref: (s.local_pref != 0).then_some(s.local_pref),
        peers: (!s.peers.is_empty()).then(|| s.peers.iter().cloned().collect()),
    })
}

/// Community aliases from the Community objects: name -> value.
fn community_aliases(store: &Store) -> BTreeMap<String, Community> {
    store
        .communities
        .values()
        .flat_map(|c| c.spec.communities.iter())
        .filter_map(|alias| alias.value.parse().ok().map(|value| (alias.name.clone(), value)))
        .collect()
}

/// `ip` rolled up into its prefix of `length`.
fn aggregate(ip: IpAddr, length: u8) -> IpNet {
    IpNet::new(ip, length).map(|net| net.trunc()).unwrap_or_else(|_| IpNet::from(ip))
}

fn bgp_peer(store: &Store, reference: &ObjectRef, peer: &BGPPeer) -> Result<BgpPeer, Diagnostic> {
    let s = &peer.spec;
    let problem = |field: &str, reason: String| Diagnostic::object(reference.clone(), field, reason);
    let unsupported = [
        (!s.interface.is_empty(), "spec.interface", "unnumbered BGP over an interface is not supported"),
        (s.dynamic_asn.as_deref().is_some_and(|d| !d.is_empty()), "spec.dynamicASN", "is not supported; give peerASN"),
        (!s.bfd_profile.is_empty(), "spec.bfdProfile", "BFD is not supported"),
        (!s.vrf_name.is_empty(), "spec.vrf", "VRFs are not supported"),
        (
            s.password_secret.as_ref().is_some_and(|r| r.name.is_some()),
            "spec.passwordSecret",
            "is not supported (Sluice never stores plain Secrets); give spec.password",
        ),
    ];
    if let Some((_, field, reason)) = unsupported.iter().find(|(bad, _, _)| *bad) {
        return Err(problem(field, format!("{reason}; the peer is not used")));
    }
    let peer_address: IpAddr = s
        .peer_address
        .trim()
        .parse()
        .map_err(|_| problem("spec.peerAddress", format!("{:?} is not an IP address", s.peer_address)))?;
    if s.my_asn == 0 {
        return Err(problem("spec.myASN", "is required".into()));
    }
    if s.peer_asn == 0 {
        return Err(problem("spec.peerASN", "is required".into()));
    }
    let source_address = match s.source_address.trim() {
        "" => None,
        text => {
            Some(text.parse().map_err(|_| problem("spec.sourceAddress", format!("{text:?} is not an IP address")))?)
        }
    };
    let router_id = match s.router_id.trim() {
        "" => None,
        text => Some(text.parse().map_err(|_| problem("spec.routerID", format!("{text:?} is not an IPv4 address")))?),
    };
    let duration = |value: &Option<String>, field: &str| -> Result<Option<Duration>, Diagnostic> {
        value
            .as_deref()
            .map(|text| {
                go_duration(text).ok_or_else(|| problem(field, format!("{text:?} is not a duration like 90s or 1m30s")))
            })
            .transpose()
    };
    let hold_time = duration(&s.hold_time, "spec.holdTime")?.unwrap_or(DEFAULT_HOLD);
    if !hold_time.is_zero() && hold_time < Duration::from_secs(3) {
        return Err(problem("spec.holdTime", "must be 0 or at least 3s".into()));
    }
    let keepalive_time = duration(&s.keepalive_time, "spec.keepaliveTime")?;
    if keepalive_time.is_some_and(|k| !hold_time.is_zero() && k > hold_time) {
        return Err(problem("spec.keepaliveTime", "must not exceed the hold time".into()));
    }
    let selectors: Vec<Selector> = s
        .node_selectors
        .iter()
        .enumerate()
        .map(|(i, sel)| Selector::of(sel).map_err(|e| problem(&format!("spec.nodeSelectors[{i}]"), e)))
        .collect::<Result<_, _>>()?;
    Ok(BgpPeer {
        name: format!("{}/{}", reference.namespace, reference.name),
        short_name: reference.name.clone(),
        peer_address,
        peer_port: s.peer_port.filter(|p| *p != 0).unwrap_or(BGP_PORT),
        peer_asn: s.peer_asn,
        my_asn: s.my_asn,
        router_id,
        source_address,
        hold_time,
        keepalive_time,
        connect_time: duration(&s.connect_time, "spec.connectTime")?.unwrap_or(DEFAULT_CONNECT),
        password: (!s.password.is_empty()).then(|| s.password.clone()),
        ebgp_multihop: s.ebgp_multi_hop,
        nodes: nodes_selected(store, &selectors),
    })
}

/// Go's `time.ParseDuration` for the units BGP timers use: `90s`, `1m30s`, `1h`, `500ms`,
/// and a bare `0`.
fn go_duration(text: &str) -> Option<Duration> {
    match text.trim() {
        "0" => Some(Duration::ZERO),
        text => crate::duration::parse(text),
    }
}

#[cfg(test)]
mod tests {
    use super::{aggregate, go_duration};
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        for bad in ["", "s", "10", "1d", "-1s", "1.5s"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn aggregation() {
        assert_eq!(aggregate("198.18.5.77".parse().unwrap(), 24).to_string(), "198.18.5.0/24");
        assert_eq!(aggregate("198.18.5.77".parse().unwrap(), 32).to_string(), "198.18.5.77/32");
        assert_eq!(aggregate("fd00::5".parse().unwrap(), 64).to_string(), "fd00::/64");
    }
}
