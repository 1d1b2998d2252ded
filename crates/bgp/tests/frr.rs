//! The speaker against FRR's bgpd in a network namespace.

mod common;

use std::time::Duration;

use common::{peer, route, session, Node, WAIT};
use sluice_testnet::routers::Frr;
use sluice_testnet::{require_netns, veth, wait_until, Netns};

#[test]
fn frr_learns_the_ipv4_route_with_communities_and_drops_it_on_shutdown() {
    require_netns!();
    let node = Node::new("bgfn");
    let router = Netns::new("bgfr").unwrap();
    veth(&node.ns, "n0", "198.18.1.2/24", &router, "r0", "198.18.1.1/24").unwrap();
    let frr = Frr::start(
        &router,
        "frr defaults traditional
hostname router
router bgp 4200000002
 bgp router-id 198.18.1.1
 no bgp ebgp-requires-policy
 neighbor 198.18.1.2 remote-as 4200000001
!
",
    );
    let name = "default/frr";
    let routes = vec![route("198.18.100.10/32", &["64512:100", "large:4200000001:7:8"], None)];
    node.apply(vec![peer(name, session("198.18.1.1", 4_200_000_002, 4_200_000_001), routes)]);
    assert!(node.wait_established(name), "{:?}\n{}", node.status(name), frr.log());
    let table = || frr.vtysh("show bgp ipv4 unicast json");
    assert!(wait_until(WAIT, || table().contains("198.18.100.10/32")), "{}\n{}", table(), frr.log());
    let entry = frr.vtysh("show bgp ipv4 unicast 198.18.100.10/32 json");
    for expected in [
        "\"valid\":true",
        "\"bestpath\"",
        "\"string\":\"4200000001\"",
        "\"ip\":\"198.18.1.2\"",
        "\"string\":\"64512:100\"",
        "\"string\":\"4200000001:7:8\"",
    ] {
        assert!(entry.replace(' ', "").contains(expected), "{expected} missing in\n{entry}");
    }

    node.shutdown();
    assert!(wait_until(Duration::from_secs(3), || !table().contains("198.18.100.10/32")), "{}", table());
    let summary = frr.vtysh("show bgp neighbors 198.18.1.2 json");
    assert!(summary.contains("Administrative Shutdown") || summary.contains("Administratively shutdown"), "{summary}");
}
