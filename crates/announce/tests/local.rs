//! LocalAddresses in a network namespace: addresses come and go on `lo`, addresses that were
//! already there are never touched, and the kernel's ARP settings follow the IPv4 addresses.

mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use sluice_announce::LocalAddresses;
use sluice_testnet::{require_netns, veth, Netns};
use support::NodeRuntime;

fn addresses(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|text| text.parse().expect("an address")).collect()
}

fn sysctl(ns: &Netns, name: &str) -> String {
    ns.run(&["sysctl", "-n", name]).expect("sysctl").trim().to_owned()
}

#[test]
fn addresses_come_and_go_on_lo_pre_existing_ones_stay_and_arp_settings_follow() {
    require_netns!();
    let node = Netns::new("locn").unwrap();
    let peer = Netns::new("locp").unwrap();
    veth(&node, "n0", "198.18.6.1/24", &peer, "p0", "198.18.6.2/24").unwrap();
    let runtime = NodeRuntime::new(&node);
    let lo = || node.run(&["ip", "addr", "show", "lo"]).unwrap();
    let n0 = || node.run(&["ip", "addr", "show", "n0"]).unwrap();
    let ignore = || sysctl(&node, "net.ipv4.conf.all.arp_ignore");
    assert_eq!(ignore(), "0");

    let local = Arc::new(runtime.run(async { LocalAddresses::new().await }).expect("netlink"));
    let apply = |wanted: BTreeSet<IpAddr>| apply(&runtime, &local, wanted);

    let all = addresses(&["198.18.6.10", "fd00:198:18:6::10", "198.18.6.1"]);
    assert_eq!(apply(all.clone()), Vec::<String>::new());
    assert!(lo().contains("198.18.6.10/32"), "{}", lo());
    assert!(lo().contains("fd00:198:18:6::10/128"), "{}", lo());
    assert!(!lo().contains("198.18.6.1/"), "an address already on n0 is not added again: {}", lo());
    assert!(n0().contains("198.18.6.1/24"));
    assert_eq!(ignore(), "1");
    assert_eq!(sysctl(&node, "net.ipv4.conf.all.arp_announce"), "2");
    assert_eq!(apply(all), Vec::<String>::new(), "applying again changes nothing");

    assert_eq!(apply(addresses(&["198.18.6.1"])), Vec::<String>::new());
    assert!(!lo().contains("198.18.6.10"), "{}", lo());
    assert!(!lo().contains("fd00:198:18:6::10"), "{}", lo());
    assert!(n0().contains("198.18.6.1/24"), "not ours, so never removed: {}", n0());
    assert_eq!(ignore(), "0", "restored once no IPv4 address is held");

    assert_eq!(apply(addresses(&["198.18.6.10", "198.18.6.1"])), Vec::<String>::new());
    assert!(lo().contains("198.18.6.10/32"));
    assert_eq!(ignore(), "1");
    let stopping = local.clone();
    runtime.run(async move { stopping.shutdown().await });
    assert!(!lo().contains("198.18.6.10"), "{}", lo());
    assert!(n0().contains("198.18.6.1/24"), "shutdown leaves what was not ours: {}", n0());
    assert_eq!(ignore(), "0");
}

fn apply(runtime: &NodeRuntime, local: &Arc<LocalAddresses>, wanted: BTreeSet<IpAddr>) -> Vec<String> {
    let local = local.clone();
    runtime.run(async move { local.apply(&wanted).await })
}

#[test]
fn addresses_left_by_a_run_that_stopped_without_shutdown_are_removed_by_the_next() {
    require_netns!();
    let node = Netns::new("locn").unwrap();
    let runtime = NodeRuntime::new(&node);
    let lo = || node.run(&["ip", "addr", "show", "lo"]).unwrap();
    let wanted = addresses(&["198.18.6.20", "fd00:198:18:6::20"]);

    let crashed = Arc::new(runtime.run(async { LocalAddresses::new().await }).expect("netlink"));
    assert_eq!(apply(&runtime, &crashed, wanted.clone()), Vec::<String>::new());
    drop(crashed);
    assert!(lo().contains("198.18.6.20/32") && lo().contains("fd00:198:18:6::20/128"), "{}", lo());

    let next = Arc::new(runtime.run(async { LocalAddresses::new().await }).expect("netlink"));
    assert_eq!(apply(&runtime, &next, BTreeSet::new()), Vec::<String>::new());
    assert!(!lo().contains("198.18.6.20") && !lo().contains("fd00:198:18:6::20"), "{}", lo());
}
