//! The speaker against bird2 in network namespaces: eBGP and iBGP, MD5, IPv6, multihop, and
//! traffic following the announced route.

mod common;

use std::time::{Duration, Instant};

use common::{peer, route, session, Node, WAIT};
use sluice_bgp::SessionState;
use sluice_testnet::routers::Bird;
use sluice_testnet::{require_netns, veth, wait_until, Netns};
use tokio::io::AsyncWriteExt;

const EBGP_BIRD: &str = r#"
router id 198.18.1.1;
protocol device {}
protocol bgp node {
  local 198.18.1.1 as 4200000002;
  neighbor 198.18.1.2 as 4200000001;
  ipv4 { import all; export none; };
}
"#;

/// A node and a router joined by a veth pair: node 198.18.1.2, router 198.18.1.1.
fn pair() -> (Node, Netns) {
    let node = Node::new("bgn");
    let router = Netns::new("bgr").unwrap();
    veth(&node.ns, "n0", "198.18.1.2/24", &router, "r0", "198.18.1.1/24").unwrap();
    (node, router)
}

#[test]
fn ebgp_with_4_byte_asns_announces_refreshes_withdraws_and_shutdown_drops_routes_at_once() {
    require_netns!();
    let (node, router) = pair();
    let bird = Bird::start(&router, EBGP_BIRD);
    let name = "default/bird";
    let config = session("198.18.1.1", 4_200_000_002, 4_200_000_001);
    let vip = route("198.18.100.10/32", &["65535:65282", "large:4200000001:1:2"], None);
    let other = route("198.18.100.11/32", &[], None);
    node.apply(vec![peer(name, config.clone(), vec![vip.clone(), other.clone()])]);

    assert!(node.wait_established(name), "{:?}\n{}", node.status(name), bird.log());
    assert!(wait_until(WAIT, || bird.routes().contains("198.18.100.11/32")), "{}", bird.routes());
    let table = bird.routes();
    for expected in [
        "198.18.100.10/32",
        "BGP.as_path: 4200000001",
        "BGP.next_hop: 198.18.1.2",
        "BGP.community: (65535,65282)",
        "BGP.large_community: (4200000001, 1, 2)",
    ] {
        assert!(table.contains(expected), "{expected} missing in\n{table}");
    }
    assert!(bird.protocol("node").contains("external AS4"), "{}", bird.protocol("node"));
    let status = node.status(name);
    assert_eq!((status.announced, status.last_error.clone()), (2, None), "{status:?}");
    assert!(status.established_since.is_some());
    let metric = |name: &str| node.metric(&format!("sluice_bgp_{name}{{peer=\"default/bird\"}}"));
    assert_eq!(metric("session_up"), Some(1.0), "{}", node.metrics());
    assert_eq!(metric("announced_prefixes"), Some(2.0));
    assert_eq!(metric("session_established_total"), Some(1.0));
    assert_eq!(metric("updates_sent_total"), Some(2.0), "two attribute sets, two UPDATEs");

    // bird asks for the routes again (ROUTE-REFRESH): both UPDATEs are sent again.
    assert!(bird.cli(&["reload", "in", "node"]).contains("reload"), "{}", bird.cli(&["reload", "in", "node"]));
    assert!(wait_until(WAIT, || metric("updates_sent_total") >= Some(4.0)), "{}", node.metrics());
    let updates = metric("updates_sent_total").unwrap_or_default();

    // Without the VIP: withdrawn, the other route stays, the session is not restarted.
    node.apply(vec![peer(name, config.clone(), vec![other.clone()])]);
    assert!(wait_until(WAIT, || !bird.routes().contains("198.18.100.10/32")), "{}", bird.routes());
    assert!(bird.routes().contains("198.18.100.11/32"));
    assert!(wait_until(WAIT, || node.status(name).announced == 1));
    assert_eq!(metric("session_established_total"), Some(1.0), "not re-established");
    assert_eq!(metric("announced_prefixes"), Some(1.0));
    assert_eq!(metric("updates_sent_total"), Some(updates + 1.0), "one withdrawal");

    // Shutdown: bird hears Administrative Shutdown and drops the routes now, not after the
    // 30 s hold time.
    let started = Instant::now();
    node.shutdown();
    assert!(started.elapsed() < Duration::from_millis(2500), "shutdown took {:?}", started.elapsed());
    assert!(wait_until(Duration::from_secs(3), || !bird.routes().contains("198.18.100.11/32")), "{}", bird.routes());
    assert!(!bird.established("node"));
    assert!(bird.protocol("node").contains("Administrative shutdown"), "{}", bird.protocol("node"));
}

#[test]
fn ibgp_with_bird_carries_our_local_pref_and_a_removed_peer_hears_deconfigured() {
    require_netns!();
    let (node, router) = pair();
    let bird = Bird::start(
        &router,
        r#"
router id 198.18.1.1;
protocol device {}
protocol bgp node {
  local 198.18.1.1 as 64512;
  neighbor 198.18.1.2 as 64512;
  direct;
  ipv4 { import all; export none; };
}
"#,
    );
    let routes = vec![route("198.18.100.10/32", &[], Some(300)), route("198.18.100.11/32", &[], None)];
    node.apply(vec![peer("default/ibgp", session("198.18.1.1", 64512, 64512), routes)]);
    assert!(node.wait_established("default/ibgp"), "{:?}\n{}", node.status("default/ibgp"), bird.log());
    assert!(wait_until(WAIT, || bird.routes().contains("198.18.100.11/32")), "{}", bird.routes());
    let table = bird.routes();
    let block = |prefix: &str| {
        table.split(prefix).nth(1).unwrap_or_default().split("/32").next().unwrap_or_default().to_owned()
    };
    assert!(block("198.18.100.10/32").contains("BGP.local_pref: 300"), "{table}");
    assert!(block("198.18.100.11/32").contains("BGP.local_pref: 100"), "{table}");
    assert_eq!(table.matches("BGP.as_path: \n").count(), 2, "empty AS path to iBGP: {table}");
    assert!(bird.protocol("node").contains("Session:          internal AS4"), "{}", bird.protocol("node"));

    // The peer is removed: bird hears Peer De-configured and drops the routes.
    node.apply(Vec::new());
    assert!(wait_until(WAIT, || !bird.routes().contains("198.18.100.1")), "{}", bird.routes());
    assert!(bird.protocol("node").contains("Peer de-configured"), "{}", bird.protocol("node"));
    assert!(node.speaker.status().is_empty());
    assert!(!node.metrics().contains("default/ibgp"), "{}", node.metrics());
}

#[test]
fn md5_right_password_establishes_and_wrong_one_never_does() {
    require_netns!();
    let (node, router) = pair();
    let bird = Bird::start(&router, &EBGP_BIRD.replace("ipv4 {", "password \"sluice-md5-key\";\n  ipv4 {"));
    let name = "default/md5";
    let wrong = sluice_bgp::SessionConfig {
        password: Some("not-the-key".to_owned()),
        ..session("198.18.1.1", 4_200_000_002, 4_200_000_001)
    };
    let vip = vec![route("198.18.100.10/32", &[], None)];
    node.apply(vec![peer(name, wrong.clone(), vip.clone())]);
    assert!(
        wait_until(WAIT, || node.status(name).last_error.is_some_and(|e| e.contains("check the TCP MD5 password"))),
        "{:?}",
        node.status(name)
    );
    let status = node.status(name);
    assert_ne!(status.state, SessionState::Established);
    assert!(!bird.established("node"));

    let right = sluice_bgp::SessionConfig { password: Some("sluice-md5-key".to_owned()), ..wrong };
    node.apply(vec![peer(name, right, vip)]);
    assert!(node.wait_established(name), "{:?}\n{}", node.status(name), bird.log());
    assert!(wait_until(WAIT, || bird.routes().contains("198.18.100.10/32")), "{}", bird.routes());
    assert!(bird.established("node"));
}

#[test]
fn ipv6_session_with_md5_announces_through_mp_reach_with_our_next_hop() {
    require_netns!();
    let node = Node::new("bg6n");
    let router = Netns::new("bg6r").unwrap();
    veth(&node.ns, "n0", "fd00:198:18:1::2/64", &router, "r0", "fd00:198:18:1::1/64").unwrap();
    let bird = Bird::start(
        &router,
        r#"
router id 198.18.1.1;
protocol device {}
protocol bgp node {
  local fd00:198:18:1::1 as 4200000002;
  neighbor fd00:198:18:1::2 as 4200000001;
  password "v6-key";
  ipv6 { import all; export none; };
}
"#,
    );
    let name = "default/v6";
    let config = sluice_bgp::SessionConfig {
        password: Some("v6-key".to_owned()),
        ..session("fd00:198:18:1::1", 4_200_000_002, 4_200_000_001)
    };
    let routes = vec![route("fd00:198:18:64::10/128", &["64512:100"], None), route("198.18.100.10/32", &[], None)];
    node.apply(vec![peer(name, config, routes)]);
    assert!(node.wait_established(name), "{:?}\n{}", node.status(name), bird.log());
    assert!(wait_until(WAIT, || bird.routes().contains("fd00:198:18:64::10/128")), "{}", bird.routes());
    let table = bird.routes();
    assert!(table.contains("BGP.next_hop: fd00:198:18:1::2"), "{table}");
    assert!(table.contains("BGP.community: (64512,100)"), "{table}");
    assert!(!table.contains("198.18.100.10/32"), "{table}");
    // The IPv4 route cannot go over the IPv6 session: skipped, and said so.
    assert!(wait_until(WAIT, || node.status(name).announced == 1));
    let error = node.status(name).last_error.unwrap_or_default();
    assert!(error.contains("198.18.100.10/32") && error.contains("other address family"), "{error}");
}

#[test]
fn ebgp_multihop_reaches_bird_two_hops_away_and_ttl_1_does_not() {
    require_netns!();
    let node = Node::new("bgmn");
    let middle = Netns::new("bgmm").unwrap();
    let router = Netns::new("bgmr").unwrap();
    veth(&node.ns, "n0", "198.18.2.2/24", &middle, "m0", "198.18.2.1/24").unwrap();
    veth(&middle, "m1", "198.18.3.1/24", &router, "r0", "198.18.3.2/24").unwrap();
    middle.run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]).unwrap();
    node.ns.run(&["ip", "route", "add", "198.18.3.0/24", "via", "198.18.2.1"]).unwrap();
    router.run(&["ip", "route", "add", "198.18.2.0/24", "via", "198.18.3.1"]).unwrap();
    let bird = Bird::start(
        &router,
        r#"
router id 198.18.3.2;
protocol device {}
protocol static { ipv4; route 198.18.2.0/24 via 198.18.3.1; }
protocol bgp node {
  local 198.18.3.2 as 4200000002;
  neighbor 198.18.2.2 as 4200000001;
  multihop;
  ipv4 { import all; export none; };
}
"#,
    );
    let name = "default/far";
    let single_hop = session("198.18.3.2", 4_200_000_002, 4_200_000_001);
    let vip = vec![route("198.18.100.10/32", &[], None)];
    // TTL 1 dies in the middle namespace, which answers ICMP time exceeded.
    node.apply(vec![peer(name, single_hop.clone(), vip.clone())]);
    assert!(
        wait_until(WAIT, || node.status(name).last_error.is_some_and(|e| e.contains("set ebgp_multihop"))),
        "{:?}",
        node.status(name)
    );
    assert_ne!(node.status(name).state, SessionState::Established);

    node.apply(vec![peer(name, sluice_bgp::SessionConfig { ebgp_multihop: true, ..single_hop }, vip)]);
    assert!(node.wait_established(name), "{:?}\n{}", node.status(name), bird.log());
    assert!(wait_until(WAIT, || bird.routes().contains("198.18.100.10/32")), "{}", bird.routes());
    assert!(bird.protocol("node").contains("Established"));
}

#[test]
fn traffic_to_the_announced_address_reaches_the_node() {
    require_netns!();
    let (node, router) = pair();
    let _bird = Bird::start(&router, &format!("{EBGP_BIRD}\nprotocol kernel {{ ipv4 {{ export all; }}; }}\n"));
    node.ns.run(&["ip", "addr", "add", "198.18.100.10/32", "dev", "lo"]).unwrap();
    let listener = node
        .block_on(node.spawn(async { tokio::net::TcpListener::bind("198.18.100.10:8080").await }))
        .unwrap()
        .unwrap();
    node.spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"hello from the node\n").await;
        }
    });
    let fetch = || router.run(&["socat", "-u", "TCP:198.18.100.10:8080,connect-timeout=2", "-"]);
    assert!(fetch().is_err(), "no route before the announcement");

    let name = "default/bird";
    node.apply(vec![peer(
        name,
        session("198.18.1.1", 4_200_000_002, 4_200_000_001),
        vec![route("198.18.100.10/32", &[], None)],
    )]);
    assert!(node.wait_established(name), "{:?}", node.status(name));
    assert!(wait_until(WAIT, || router
        .run(&["ip", "route", "show", "198.18.100.10"])
        .is_ok_and(|r| r.contains("bird"))));
    assert_eq!(fetch().unwrap(), "hello from the node\n");
}
