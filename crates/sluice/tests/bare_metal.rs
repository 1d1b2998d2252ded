//! LoadBalancer addresses the network can reach, end to end with real kernel networking:
//! `sluice run` in node namespaces, clients and routers (bird2, FRR) in others, joined by
//! veth pairs and bridges, all on 198.18.0.0/15 inside the namespaces only.
//! - L2: `arping`/`ndisc6` from a client get the node's MAC for MetalLB-pool addresses, and
//!   TCP, UDP and HTTP (L4 and Ingress) reach the Services through them; source ranges.
//! - Failover: two replicas in a cluster (the fake API server in the hub namespace); the
//!   holder is killed and the other takes the address over (gratuitous ARP).
//! - BGP: bird2 and FRR learn the routes (communities, local preference, MD5), traffic
//!   follows them; withdrawn when the Service goes and when Sluice stops.
//! - External mode: `--upstream-mode nodeport` forwards to NodePorts on the Ready nodes.

mod bare_metal {
    pub mod harness;
}

use std::time::{Duration, Instant};

use bare_metal::harness::*;
use sluice_testnet::{require_netns, veth, wait_until, Netns};

const POOL: &str = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: metallb-system}
spec:
  addresses: [198.18.10.100-198.18.10.109, 'fd00:198:18:10::100/125']
";

const L2: &str = "apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: metallb-system}
spec:
  ipAddressPools: [lan]
  interfaces: [eth0]
";

/// One node with Sluice, one client with two addresses; L2 announcement on eth0.
#[test]
fn l2_answers_arp_and_ndp_and_serves_tcp_udp_and_http_through_the_address() {
    require_netns!();
    let node = Netns::new("node").unwrap();
    let client = Netns::new("clnt").unwrap();
    for ns in [&node, &client] {
        ns.run(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]).unwrap();
        ns.run(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]).unwrap();
    }
    veth(&node, "eth0", "198.18.10.1/24", &client, "eth0", "198.18.10.2/24").unwrap();
    node.address("eth0", "fd00:198:18:10::1/64").unwrap();
    client.address("eth0", "fd00:198:18:10::2/64").unwrap();
    client.address("eth0", "198.18.10.3/24").unwrap();
    let dir = scratch("l2");
    let _web = echo(&node, "127.0.0.1:3000", "web");
    let _dns = udp_echo(&node, "127.0.0.1:3053");
    write(&dir, "pool.yaml", &format!("{POOL}---\n{L2}"));
    let dual = "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n";
    write(&dir, "web.yaml", &service("web", 80, 3000, true, dual, "node-a"));
    let ranges = "  loadBalancerSourceRanges: [198.18.10.2/32]\n";
    write(&dir, "guarded.yaml", &service("guarded", 81, 3000, true, ranges, "node-a"));
    write(
        &dir,
        "ingress.yaml",
        "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: default}
spec:
  ingressClassName: sluice
  rules:
  - host: site.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: web}}}}]}
",
    );
    let manifests = dir.path().join("manifests");
    let sluice = Sluice::start(
        &node,
        dir.path(),
        "a",
        &[
            "--manifests",
            &manifests.to_string_lossy(),
            "--node-name",
            "node-a",
            "--http",
            "0.0.0.0:8080",
            "--https",
            "0.0.0.0:8443",
        ],
    );

    // The Service got one address per family, reported with how it is announced.
    let status = status(&node);
    let web = status["services"].as_array().unwrap().iter().find(|s| s["name"] == "web").cloned().unwrap_or_default();
    let ips: Vec<&str> =
        web["loadBalancer"]["ingress"].as_array().unwrap().iter().filter_map(|i| i["ip"].as_str()).collect();
    assert_eq!(ips, ["198.18.10.100", "fd00:198:18:10::100"], "{status:#}\n{}", sluice.log());
    let held = &status["announcements"]["l2"];
    assert!(held.to_string().contains("\"holder\":\"node-a\""), "{status:#}");

    // ARP and NDP answers carry the node's MAC; the address is not on eth0.
    let node_mac = mac(&node, "eth0");
    let arping =
        client.run(&["arping", "-c", "2", "-w", "5", "-I", "eth0", "198.18.10.100"]).unwrap_or_else(|e| e.to_string());
    assert!(arping.to_lowercase().contains(&node_mac), "arping: {arping}\nnode MAC {node_mac}\n{}", sluice.log());
    assert!(!node.run(&["ip", "addr", "show", "eth0"]).unwrap().contains("198.18.10.100"));
    let ndisc =
        client.run(&["ndisc6", "-1", "-r", "3", "fd00:198:18:10::100", "eth0"]).unwrap_or_else(|e| e.to_string());
    assert!(
        ndisc.to_lowercase().contains(&node_mac.to_uppercase().to_lowercase()),
        "ndisc6: {ndisc}\nnode MAC {node_mac}"
    );
    assert!(metrics(&node).contains("sluice_announce_arp_replies_total"));

    // L4 (TCP and UDP, both families) and L7 (the Ingress on the --http port).
    let body = get(&client, &[], "http://198.18.10.100/").expect("HTTP over L4 on the IPv4 address");
    assert!(body.contains("\"web\""), "{body}");
    assert!(get(&client, &["-g"], "http://[fd00:198:18:10::100]/").is_some(), "HTTP over L4 on the IPv6 address");
    assert_eq!(udp_ask(&client, "198.18.10.100:80", None, "ping").as_deref(), Some("ping"));
    let site = get(&client, &["-H", "Host: site.example"], "http://198.18.10.100:8080/").expect("the Ingress");
    assert!(site.contains("\"web\""), "{site}");

    // loadBalancerSourceRanges: 198.18.10.2 may, 198.18.10.3 may not (TCP and UDP).
    let guarded = "http://198.18.10.101:81/";
    assert!(get(&client, &["--interface", "198.18.10.2"], guarded).is_some(), "inside the ranges");
    assert!(get(&client, &["--interface", "198.18.10.3"], guarded).is_none(), "outside the ranges");
    assert_eq!(udp_ask(&client, "198.18.10.101:81", Some("198.18.10.2"), "in").as_deref(), Some("in"));
    assert_eq!(udp_ask(&client, "198.18.10.101:81", Some("198.18.10.3"), "out"), None);
    assert!(metrics(&node).contains("sluice_l4_refused_total"));

    // Deleting the Service stops the answers; stopping Sluice removes its addresses.
    std::fs::remove_file(dir.path().join("manifests/web.yaml")).unwrap();
    let gone =
        wait_until(WAIT, || client.run(&["arping", "-c", "1", "-w", "1", "-I", "eth0", "198.18.10.100"]).is_err());
    assert!(gone, "ARP still answered after the Service was deleted\n{}", sluice.log());
    let mut sluice = sluice;
    sluice.process.signal(libc::SIGTERM, WAIT).expect("exit on SIGTERM");
    let lo = node.run(&["ip", "addr", "show", "lo"]).unwrap();
    assert!(!lo.contains("198.18.10.101"), "addresses removed on exit: {lo}");
}
