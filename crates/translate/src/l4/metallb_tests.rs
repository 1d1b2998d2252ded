//! MetalLB's configuration read as MetalLB reads it: pools with their options and
//! `serviceAllocation`, the Service annotations, dual-stack, and the announcements the
//! advertisements and peers make of the addresses.

use std::net::IpAddr;

use sluice_config::{Community, L2Interfaces, NodeSet, ObjectRef, Snapshot};

use crate::tests::{options, store};
use crate::{translate, Allocations};

fn pool(name: &str, spec: &str) -> String {
    format!("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}, namespace: metallb-system}}\nspec: {spec}\n---\n")
}

fn lb(name: &str, namespace: &str, meta: &str, spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}{meta}}}\nspec: {{type: LoadBalancer, ports: [{{port: 80}}]{spec}}}\n---\n"
    )
}

fn run(yaml: &str) -> Snapshot {
    translate(&store(yaml), &options(), &Allocations::new(), 1)
}

fn ips(snapshot: &Snapshot, namespace: &str, name: &str) -> Vec<String> {
    let object = ObjectRef::new("Service", namespace, name);
    snapshot.l4.addresses.get(&object).map(|v| v.iter().map(IpAddr::to_string).collect()).unwrap_or_default()
}

#[test]
fn pools_hand_out_addresses_as_metallb_does() {
    let yaml = [
        pool("manual", "{addresses: [198.18.1.0/30], autoAssign: false}"),
        pool("buggy", "{addresses: ['198.18.2.255-198.18.3.1'], avoidBuggyIPs: true}"),
        lb("a", "default", "", ""),
        lb("b", "default", "", ""),
        lb("pinned", "default", ", annotations: {metallb.io/address-pool: manual}", ""),
        lb("old-spelling", "default", ", annotations: {metallb.universe.tf/loadBalancerIPs: 198.18.1.3}", ""),
        lb("missing", "default", ", annotations: {metallb.io/address-pool: nope}", ""),
    ]
    .concat();
    let snapshot = run(&yaml);
    assert_eq!(ips(&snapshot, "default", "a"), ["198.18.3.1"], "autoAssign: false is skipped, .255 and .0 avoided");
    assert!(ips(&snapshot, "default", "b").is_empty(), "the buggy pool has one usable address");
    assert_eq!(ips(&snapshot, "default", "pinned"), ["198.18.1.0"]);
    assert_eq!(ips(&snapshot, "default", "old-spelling"), ["198.18.1.3"]);
    let text: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    assert!(
        text.iter().any(|d| d.contains("Service default/missing") && d.contains("no address pool named \"nope\"")),
        "{text:?}"
    );
    assert!(text.iter().any(|d| d.contains("Service default/b") && d.contains("no free address")), "{text:?}");
}

#[test]
fn service_allocation_selects_pools_by_namespace_labels_and_priority() {
    let yaml = [
        pool("team", "{addresses: [198.18.4.0/31], serviceAllocation: {priority: 20, namespaces: [team]}}"),
        pool("team-first", "{addresses: [198.18.5.0/32], serviceAllocation: {priority: 10, namespaces: [team]}}"),
        pool(
            "labelled",
            "{addresses: [198.18.6.0/32], serviceAllocation: {serviceSelectors: [{matchLabels: {tier: edge}}]}}",
        ),
        pool("general", "{addresses: [198.18.7.0/30]}"),
        lb("one", "team", "", ""),
        lb("two", "team", "", ""),
        lb("edge", "default", ", labels: {tier: edge}", ""),
        lb("plain", "default", "", ""),
    ]
    .concat();
    let snapshot = run(&yaml);
    assert_eq!(ips(&snapshot, "team", "one"), ["198.18.5.0"], "the lower priority value first");
    assert_eq!(ips(&snapshot, "team", "two"), ["198.18.4.0"]);
    assert_eq!(ips(&snapshot, "default", "edge"), ["198.18.6.0"]);
    assert_eq!(ips(&snapshot, "default", "plain"), ["198.18.7.0"], "pools meant for others are never used");
}

#[test]
fn dual_stack_gets_one_address_per_family() {
    let yaml = [
        pool("dual", "{addresses: [198.18.8.0/31, 'fd00:198:18:8::/126']}"),
        lb("a-six", "default", "", ", ipFamilies: [IPv6]"),
        lb("both", "default", "", ", ipFamilyPolicy: RequireDualStack, ipFamilies: [IPv4, IPv6]"),
        lb("prefer", "default", "", ", ipFamilyPolicy: PreferDualStack"),
        lb("prefer2", "default", "", ", ipFamilyPolicy: PreferDualStack"),
        lb("require", "default", "", ", ipFamilyPolicy: RequireDualStack"),
        lb("bad", "default", "", ", ipFamilyPolicy: Sometimes"),
    ]
    .concat();
    let snapshot = run(&yaml);
    assert_eq!(ips(&snapshot, "default", "a-six"), ["fd00:198:18:8::"]);
    assert_eq!(ips(&snapshot, "default", "both"), ["198.18.8.0", "fd00:198:18:8::1"]);
    assert_eq!(ips(&snapshot, "default", "prefer"), ["198.18.8.1", "fd00:198:18:8::2"]);
    assert_eq!(ips(&snapshot, "default", "prefer2"), ["fd00:198:18:8::3"], "IPv4 is used up: one family is enough");
    assert!(ips(&snapshot, "default", "require").is_empty(), "RequireDualStack waits for both");
    assert!(snapshot.diagnostics.iter().any(|d| d.to_string().contains("spec.ipFamilyPolicy")));
}

#[test]
fn invalid_objects_are_diagnostics_naming_the_field() {
    let yaml = [
        pool("bad", "{addresses: [198.18.9.0/33]}"),
        pool("overlap-a", "{addresses: [198.18.10.0/24]}"),
        pool("overlap-b", "{addresses: [198.18.10.128/25]}"),
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r, namespace: metallb-system}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 'not-an-ip'}\n---\n".into(),
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: a, namespace: metallb-system}\nspec: {communities: ['65536:1']}\n---\n".into(),
        lb("ranged", "default", "", ", loadBalancerSourceRanges: ['10.0.0.0/8', 'nonsense']"),
    ]
    .concat();
    let snapshot = run(&yaml);
    let text: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    for (subject, field) in [
        ("IPAddressPool metallb-system/bad", "spec.addresses[0]"),
        ("IPAddressPool metallb-system/overlap-b", "spec.addresses"),
        ("BGPPeer metallb-system/r", "spec.peerAddress"),
        ("BGPAdvertisement metallb-system/a", "spec.communities[0]"),
        ("Service default/ranged", "spec.loadBalancerSourceRanges[1]"),
    ] {
        assert!(text.iter().any(|d| d.contains(subject) && d.contains(field)), "{subject} {field}: {text:?}");
    }
    assert!(ips(&snapshot, "default", "ranged").is_empty(), "an unreadable source range refuses the Service");
}

#[test]
fn advertisements_say_how_each_address_is_announced() {
    let yaml = [
        pool("lan", "{addresses: [198.18.11.0/30]}"),
        pool("wan", "{addresses: [198.18.12.0/30]}"),
        "apiVersion: v1\nkind: Node\nmetadata: {name: n1, labels: {rack: a}}\n---\n".into(),
        "apiVersion: v1\nkind: Node\nmetadata: {name: n2, labels: {rack: b, node.kubernetes.io/exclude-from-external-load-balancers: ''}}\n---\n".into(),
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\nspec: {ipAddressPools: [lan], interfaces: [eth1], nodeSelectors: [{matchLabels: {rack: a}}]}\n---\n".into(),
        "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c, namespace: metallb-system}\nspec: {communities: [{name: edge, value: '64512:7'}]}\n---\n".into(),
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: bgp, namespace: metallb-system}\nspec: {ipAddressPools: [wan], aggregationLength: 24, localPref: 200, communities: [edge, 'large:1:2:3'], peers: [r1]}\n---\n".into(),
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r1, namespace: metallb-system}\nspec: {myASN: 64500, peerASN: 64501, peerAddress: 198.18.0.1, holdTime: 1m30s, password: s, ebgpMultiHop: true}\n---\n".into(),
        lb("l2", "default", ", annotations: {metallb.io/loadBalancerIPs: 198.18.11.1}", ""),
        lb("routed", "default", ", annotations: {metallb.io/loadBalancerIPs: 198.18.12.2}", ", externalTrafficPolicy: Local"),
    ]
    .concat();
    let snapshot = run(&yaml);
    assert!(snapshot.diagnostics.is_empty(), "{:?}", snapshot.diagnostics);
    let a = &snapshot.l4.announcements;
    let l2 = &a.addresses[&"198.18.11.1".parse::<IpAddr>().unwrap()];
    let l2_ann = l2.l2.as_ref().expect("announced in L2");
    assert_eq!(l2_ann.interfaces, L2Interfaces::Named(vec!["eth1".into()]));
    assert_eq!(l2_ann.nodes, NodeSet::Only(["n1".to_owned()].into()));
    assert!(l2.bgp.is_empty() && l2.local_nodes.is_none());
    let routed = &a.addresses[&"198.18.12.2".parse::<IpAddr>().unwrap()];
    assert!(routed.l2.is_none());
    let bgp = &routed.bgp[0];
    assert_eq!(bgp.prefix.to_string(), "198.18.12.0/24");
    assert_eq!(bgp.communities, [Community::Standard(64512, 7), Community::Large(1, 2, 3)]);
    assert_eq!(bgp.local_pref, Some(200));
    assert_eq!(bgp.peers, Some(["r1".to_owned()].into()));
    assert_eq!(routed.local_nodes, Some(Default::default()), "Local without endpoints: no node may announce");
    let peer = &a.bgp_peers[0];
    assert_eq!((peer.peer_asn, peer.my_asn, peer.hold_time.as_secs()), (64501, 64500, 90));
    assert!(peer.ebgp_multihop && peer.password.as_deref() == Some("s"));
    assert!(a.excluded_nodes.contains("n2"));
}

#[test]
fn lb_pool_addresses_are_never_announced() {
    let yaml = [
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all, namespace: metallb-system}\n---\n".into(),
        lb("local", "default", "", ""),
    ]
    .concat();
    let mut options = options();
    options.lb_pools = vec!["127.0.40.1/32".parse().unwrap()];
    let snapshot = translate(&store(&yaml), &options, &Allocations::new(), 1);
    assert_eq!(ips(&snapshot, "default", "local"), ["127.0.40.1"]);
    let announced = &snapshot.l4.announcements.addresses[&"127.0.40.1".parse::<IpAddr>().unwrap()];
    assert!(announced.l2.is_none() && announced.bgp.is_empty(), "{announced:?}");
}
