//! NDP in network namespaces: the node answers neighbour solicitations for its IPv6
//! addresses with the interface's MAC, and its unsolicited advertisements update neighbours.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use prometheus_client::registry::Registry;
use sluice_announce::{Interfaces, L2Announcer, LocalAddresses};
use sluice_testnet::{require_netns, veth, Netns};
use support::{fetch, mac, metric, neighbour, wait_for_link_local, wait_for_neighbour, without_dad, NodeRuntime};

#[test]
fn ndisc6_gets_the_node_mac_advertisements_update_neighbours_and_tcp_reaches_the_address() {
    require_netns!();
    let node = Netns::new("ndpn").unwrap();
    let client = Netns::new("ndpc").unwrap();
    without_dad(&node);
    without_dad(&client);
    veth(&node, "n0", "fd00:198:18:5::1/64", &client, "c0", "fd00:198:18:5::2/64").unwrap();
    wait_for_link_local(&node, "n0");
    wait_for_link_local(&client, "c0");
    let runtime = NodeRuntime::new(&node);
    let mut registry = Registry::default();
    let announcer = L2Announcer::new(&mut registry);
    let vip: IpAddr = "fd00:198:18:5::10".parse().unwrap();
    let wanted = BTreeMap::from([(vip, Interfaces::Named(vec!["n0".into()]))]);
    let node_mac = mac(&node, "n0");

    let (announcing, want) = (announcer.clone(), wanted.clone());
    let (local, problems) = runtime.run(async move {
        let local = LocalAddresses::new().await.expect("netlink");
        let mut problems = local.apply(&BTreeSet::from([vip])).await;
        problems.extend(announcing.apply(&want).await);
        (local, problems)
    });
    assert!(problems.is_empty(), "{problems:?}");
    assert!(node.run(&["ip", "-6", "addr", "show", "lo"]).unwrap().contains("fd00:198:18:5::10/128"));
    assert!(!node.run(&["ip", "-6", "addr", "show", "n0"]).unwrap().contains("fd00:198:18:5::10"));

    let answer = client.run(&["ndisc6", "-1", "-r", "3", "fd00:198:18:5::10", "c0"]).unwrap();
    assert!(answer.to_lowercase().contains(&node_mac), "ndisc6 said: {answer}");
    assert!(metric(&registry, "announce_ndp_replies_total", "interface=\"n0\"") >= 1.0);

    // A stale entry pointing elsewhere is corrected by the advertisement a new apply sends.
    client
        .run(&[
            "ip",
            "-6",
            "neigh",
            "replace",
            "fd00:198:18:5::10",
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "c0",
            "nud",
            "stale",
        ])
        .unwrap();
    assert_eq!(neighbour(&client, "c0", "fd00:198:18:5::10").as_deref(), Some("02:00:00:00:00:99"));
    let announcing = announcer.clone();
    let problems = runtime.run(async move {
        let mut problems = announcing.apply(&BTreeMap::new()).await;
        problems.extend(announcing.apply(&wanted).await);
        problems
    });
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        wait_for_neighbour(&client, "c0", "fd00:198:18:5::10", &node_mac),
        "the unsolicited advertisement updates the client: {:?}",
        client.run(&["ip", "-6", "neigh"])
    );
    assert!(metric(&registry, "announce_gratuitous_sent_total", "interface=\"n0\",family=\"ipv6\"") >= 2.0);

    runtime.serve_greeting(SocketAddr::new(vip, 8080), "node");
    assert_eq!(fetch(&client, SocketAddr::new(vip, 8080)), "node");

    let stopping = announcer.clone();
    runtime.run(async move {
        stopping.shutdown().await;
        local.shutdown().await;
    });
    assert!(!node.run(&["ip", "-6", "addr", "show", "lo"]).unwrap().contains("fd00:198:18:5::10"));
}
