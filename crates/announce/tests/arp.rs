//! ARP in network namespaces: the node answers only where and for what it is told, with the
//! interface's MAC, and moves an address to another node with gratuitous ARP.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use prometheus_client::registry::Registry;
use sluice_announce::{Interfaces, L2Announcer, LocalAddresses};
use sluice_testnet::{attach, bridge, require_netns, veth, Netns};
use support::{arping, fetch, mac, metric, wait_for_neighbour, NodeRuntime};

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn named(interfaces: &[&str]) -> Interfaces {
    Interfaces::Named(interfaces.iter().map(|name| (*name).to_owned()).collect())
}

#[test]
fn arping_gets_the_node_mac_only_while_the_announcer_answers_not_from_the_kernel() {
    require_netns!();
    let node = Netns::new("arpn").unwrap();
    let client = Netns::new("arpc").unwrap();
    veth(&node, "n0", "198.18.1.1/24", &client, "c0", "198.18.1.2/24").unwrap();
    let runtime = NodeRuntime::new(&node);
    let mut registry = Registry::default();
    let announcer = L2Announcer::new(&mut registry);
    let vip = ip("198.18.1.10");

    let local = runtime.run(async move {
        let local = LocalAddresses::new().await.expect("netlink");
        let problems = local.apply(&BTreeSet::from([vip])).await;
        (local, problems)
    });
    let (local, problems) = local;
    assert!(problems.is_empty(), "{problems:?}");
    assert!(node.run(&["ip", "addr", "show", "lo"]).unwrap().contains("198.18.1.10/32"));
    assert!(!node.run(&["ip", "addr", "show", "n0"]).unwrap().contains("198.18.1.10"));
    assert_eq!(arping(&client, "c0", "198.18.1.10"), Vec::<String>::new(), "the node kernel must not answer");

    let answering = announcer.clone();
    let problems = runtime.run(async move { answering.apply(&BTreeMap::from([(vip, Interfaces::All)])).await });
    assert!(problems.is_empty(), "{problems:?}");
    let node_mac = mac(&node, "n0");
    assert_eq!(arping(&client, "c0", "198.18.1.10"), [node_mac.clone(), node_mac]);
    assert_eq!(announcer.status(), BTreeMap::from([(vip, vec!["n0".to_owned()])]));
    assert!(metric(&registry, "announce_arp_replies_total", "interface=\"n0\"") >= 2.0);
    assert_eq!(metric(&registry, "announce_addresses", ""), 1.0);

    let silent = announcer.clone();
    let problems = runtime.run(async move { silent.apply(&BTreeMap::new()).await });
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(announcer.status(), BTreeMap::new());
    assert_eq!(arping(&client, "c0", "198.18.1.10"), Vec::<String>::new(), "no longer answered");

    let stopping = announcer.clone();
    runtime.run(async move {
        stopping.shutdown().await;
        local.shutdown().await;
    });
}

#[test]
fn gratuitous_arp_creates_the_entry_and_moves_the_address_to_the_node_taking_over() {
    require_netns!();
    let hub = Netns::new("arph").unwrap();
    let a = Netns::new("arpa").unwrap();
    let b = Netns::new("arpb").unwrap();
    let client = Netns::new("arpc").unwrap();
    bridge(&hub, "br0", "").unwrap();
    attach(&hub, "br0", "pa", &a, "n0", "198.18.2.1/24").unwrap();
    attach(&hub, "br0", "pb", &b, "n0", "198.18.2.2/24").unwrap();
    attach(&hub, "br0", "pc", &client, "c0", "198.18.2.3/24").unwrap();
    client.run(&["sysctl", "-qw", "net.ipv4.conf.c0.arp_accept=1"]).unwrap();
    let (runtime_a, runtime_b) = (NodeRuntime::new(&a), NodeRuntime::new(&b));
    let mut registry_a = Registry::default();
    let mut registry_b = Registry::default();
    let (announcer_a, announcer_b) = (L2Announcer::new(&mut registry_a), L2Announcer::new(&mut registry_b));
    let vip = ip("198.18.2.10");
    let wanted = BTreeMap::from([(vip, named(&["n0"]))]);

    let (announcing, want) = (announcer_a.clone(), wanted.clone());
    let (local_a, problems) = runtime_a.run(async move {
        let local = LocalAddresses::new().await.expect("netlink");
        let mut problems = local.apply(&BTreeSet::from([vip])).await;
        problems.extend(announcing.apply(&want).await);
        (local, problems)
    });
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        wait_for_neighbour(&client, "c0", "198.18.2.10", &mac(&a, "n0")),
        "A's gratuitous ARP creates the client's entry: {:?}",
        client.run(&["ip", "neigh"])
    );

    let stopping = announcer_a.clone();
    runtime_a.run(async move {
        stopping.shutdown().await;
        local_a.shutdown().await;
    });
    assert!(!a.run(&["ip", "addr", "show", "lo"]).unwrap().contains("198.18.2.10"));

    let local_b = runtime_b.run(async move {
        let local = LocalAddresses::new().await.expect("netlink");
        let problems = local.apply(&BTreeSet::from([vip])).await;
        assert!(problems.is_empty(), "{problems:?}");
        local
    });
    runtime_b.serve_greeting(SocketAddr::new(vip, 8080), "B");
    let announcing = announcer_b.clone();
    let problems = runtime_b.run(async move { announcing.apply(&wanted).await });
    assert!(problems.is_empty(), "{problems:?}");
    assert!(
        wait_for_neighbour(&client, "c0", "198.18.2.10", &mac(&b, "n0")),
        "B's gratuitous ARP moves the client's entry: {:?}",
        client.run(&["ip", "neigh"])
    );
    assert!(metric(&registry_b, "announce_gratuitous_sent_total", "interface=\"n0\",family=\"ipv4\"") >= 2.0);
    assert_eq!(fetch(&client, SocketAddr::new(vip, 8080)), "B");

    let stopping = announcer_b.clone();
    runtime_b.run(async move {
        stopping.shutdown().await;
        local_b.shutdown().await;
    });
}

#[test]
fn named_interfaces_limit_where_the_address_is_answered() {
    require_netns!();
    let node = Netns::new("arpn").unwrap();
    let one = Netns::new("arp1").unwrap();
    let two = Netns::new("arp2").unwrap();
    veth(&node, "n1", "198.18.3.1/24", &one, "c1", "198.18.3.2/24").unwrap();
    veth(&node, "n2", "198.18.4.1/24", &two, "c2", "198.18.4.2/24").unwrap();
    let runtime = NodeRuntime::new(&node);
    let mut registry = Registry::default();
    let announcer = L2Announcer::new(&mut registry);
    let vip = ip("198.18.3.10");

    let (local, problems) = runtime.run(async move {
        let local = LocalAddresses::new().await.expect("netlink");
        let problems = local.apply(&BTreeSet::from([vip])).await;
        (local, problems)
    });
    assert!(problems.is_empty(), "{problems:?}");

    let applying = announcer.clone();
    let problems = runtime.run(async move { applying.apply(&BTreeMap::from([(vip, named(&["n1", "nope"]))])).await });
    assert_eq!(problems, ["198.18.3.10 on nope: no such interface"]);
    assert_eq!(announcer.status(), BTreeMap::from([(vip, vec!["n1".to_owned()])]));
    assert_eq!(arping(&one, "c1", "198.18.3.10"), [mac(&node, "n1"), mac(&node, "n1")]);
    assert_eq!(arping(&two, "c2", "198.18.3.10"), Vec::<String>::new(), "not advertised on n2");

    let applying = announcer.clone();
    let problems = runtime.run(async move { applying.apply(&BTreeMap::from([(vip, Interfaces::All)])).await });
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(announcer.status(), BTreeMap::from([(vip, vec!["n1".to_owned(), "n2".to_owned()])]));
    assert_eq!(arping(&two, "c2", "198.18.3.10"), [mac(&node, "n2"), mac(&node, "n2")]);

    let stopping = announcer.clone();
    runtime.run(async move {
        stopping.shutdown().await;
        local.shutdown().await;
    });
}
