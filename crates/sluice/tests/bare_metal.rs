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

/// An Ingress routing `site.example` to Service `web`'s port `web`.
const SITE: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: site, namespace: default}
spec:
  ingressClassName: sluice
  rules:
  - host: site.example
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {name: web}}}}]}
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
    let _dns = udp_echo(&node, "127.0.0.1:3000");
    write(&dir, "pool.yaml", &format!("{POOL}---\n{L2}"));
    let dual = "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n";
    let web = service("web", 80, 3000, true, dual, "node-a").replace(
        "metadata: {name: web, namespace: default}",
        "metadata: {name: web, namespace: default, annotations: {metallb.io/loadBalancerIPs: '198.18.10.100,fd00:198:18:10::100'}}",
    );
    write(&dir, "web.yaml", &web);
    let ranges = "  loadBalancerSourceRanges: [198.18.10.2/32]\n";
    write(&dir, "guarded.yaml", &service("guarded", 81, 3000, true, ranges, "node-a"));
    write(&dir, "ingress.yaml", SITE);
    let sluice = Sluice::from_manifests(&node, &dir, "node-a", "0.0.0.0", &[]);

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

const BGP_POOL: &str = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: metallb-system}
spec:
  addresses: [198.18.41.0/28]
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: metallb-system}
spec:
  communities: [{name: edge, value: '64512:100'}]
";

/// A router namespace and a node namespace joined on 198.18.40.0/24; the node's Sluice
/// reads `manifests` (a directory in `dir`).
fn routed_pair() -> (Netns, Netns) {
    let node = Netns::new("bgpn").unwrap();
    let router = Netns::new("bgpr").unwrap();
    veth(&node, "eth0", "198.18.40.2/24", &router, "eth0", "198.18.40.1/24").unwrap();
    (node, router)
}

#[test]
fn bird_learns_the_address_with_md5_and_communities_and_loses_it_when_the_service_goes_and_on_stop() {
    require_netns!();
    let (node, router) = routed_pair();
    let bird = sluice_testnet::routers::Bird::start(
        &router,
        "router id 198.18.40.1;
protocol device {}
protocol kernel { ipv4 { export all; }; }
protocol bgp sluice {
  local 198.18.40.1 as 4200000002;
  neighbor 198.18.40.2 as 4200000001;
  password \"s3cret\";
  ipv4 { import all; export none; };
}
",
    );
    let dir = scratch("bgp");
    let _web = echo(&node, "127.0.0.1:3000", "web");
    let peer = "apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: bird, namespace: metallb-system}
spec: {myASN: 4200000001, peerASN: 4200000002, peerAddress: 198.18.40.1, password: s3cret, holdTime: 9s}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: metallb-system}
spec:
  ipAddressPools: [routed]
  communities: [edge, 'large:4200000001:7:8']
";
    write(&dir, "bgp.yaml", &format!("{BGP_POOL}---\n{peer}"));
    let mut sluice = Sluice::from_manifests(&node, &dir, "node-a", "127.0.0.1", &[]);
    let established = wait_until(WAIT, || bird.established("sluice"));
    assert!(established, "{}\n{}\n{}", bird.protocol("sluice"), bird.log(), sluice.log());

    // From the Service's creation to the route in the router's table.
    let created = Instant::now();
    write(&dir, "web.yaml", &service("web", 80, 3000, false, "", "node-a"));
    let learned = wait_until(WAIT, || bird.routes().contains("198.18.41.0/32"));
    let took = created.elapsed();
    assert!(learned, "{}\n{}", bird.routes(), sluice.log());
    eprintln!("bare-metal: Service created -> route in bird's table in {} ms", took.as_millis());
    let routes = bird.routes();
    assert!(routes.contains("(64512,100)") && routes.contains("(4200000001, 7, 8)"), "{routes}");
    assert!(routes.contains("4200000001"), "AS path: {routes}");

    // Traffic from the router's namespace follows the route to the Service.
    let reached = wait_until(WAIT, || get(&router, &[], "http://198.18.41.0/").is_some_and(|b| b.contains("\"web\"")));
    assert!(reached, "{}", router.run(&["ip", "route"]).unwrap_or_default());
    let announced = status(&node);
    assert!(announced["announcements"]["bgp_peers"].to_string().contains("Established"), "{announced:#}");
    assert!(metrics(&node).contains("sluice_bgp_session_up{peer=\"metallb-system/bird\"} 1"));

    // externalTrafficPolicy: Local is announced only while this node has a ready endpoint.
    let local = |node: &str| service("local", 82, 3000, false, "  externalTrafficPolicy: Local\n", node);
    write(&dir, "local.yaml", &local("node-b"));
    let allocated = wait_until(WAIT, || status(&node)["services"].to_string().contains("198.18.41.1"));
    assert!(allocated, "{:#}", status(&node));
    std::thread::sleep(Duration::from_millis(500));
    assert!(!bird.routes().contains("198.18.41.1/32"), "no local endpoint, no route: {}", bird.routes());
    write(&dir, "local.yaml", &local("node-a"));
    assert!(wait_until(WAIT, || bird.routes().contains("198.18.41.1/32")), "{}", bird.routes());
    write(&dir, "local.yaml", &local("node-b"));
    assert!(wait_until(WAIT, || !bird.routes().contains("198.18.41.1/32")), "withdrawn when the local endpoint goes");

    // Deleting the Service withdraws the route; re-creating announces it again.
    std::fs::remove_file(dir.path().join("manifests/web.yaml")).unwrap();
    assert!(wait_until(WAIT, || !bird.routes().contains("198.18.41.0/32")), "{}", bird.routes());
    write(&dir, "web.yaml", &service("web", 80, 3000, false, "", "node-a"));
    assert!(wait_until(WAIT, || bird.routes().contains("198.18.41.0/32")), "{}", bird.routes());

    // Stopping Sluice withdraws at once, not after the hold time.
    let stopping = Instant::now();
    sluice.process.signal(libc::SIGTERM, WAIT).expect("exit on SIGTERM");
    assert!(wait_until(Duration::from_secs(5), || !bird.routes().contains("198.18.41.0/32")), "{}", bird.routes());
    assert!(stopping.elapsed() < Duration::from_secs(8));
}

#[test]
fn frr_learns_the_address_over_ibgp_with_local_preference_and_md5() {
    require_netns!();
    let (node, router) = routed_pair();
    let frr = sluice_testnet::routers::Frr::start(
        &router,
        "frr defaults traditional
hostname router
router bgp 64512
 bgp router-id 198.18.40.1
 no bgp ebgp-requires-policy
 neighbor 198.18.40.2 remote-as 64512
 neighbor 198.18.40.2 password s3cret
!
",
    );
    let dir = scratch("frr");
    let _web = echo(&node, "127.0.0.1:3000", "web");
    let peer = "apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: frr, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 198.18.40.1, password: s3cret, routerID: 198.18.40.2}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: metallb-system}
spec: {ipAddressPools: [routed], localPref: 150, aggregationLength: 28}
";
    write(&dir, "bgp.yaml", &format!("{BGP_POOL}---\n{peer}"));
    write(&dir, "web.yaml", &service("web", 80, 3000, false, "", "node-a"));
    let sluice = Sluice::from_manifests(&node, &dir, "node-a", "127.0.0.1", &[]);
    let table = || frr.vtysh("show bgp ipv4 unicast json");
    assert!(wait_until(WAIT, || table().contains("198.18.41.0/28")), "{}\n{}\n{}", table(), frr.log(), sluice.log());
    let entry = frr.vtysh("show bgp ipv4 unicast 198.18.41.0/28 json").replace(' ', "");
    assert!(entry.contains("\"locPrf\":150") || entry.contains("\"localpref\":150"), "{entry}");
}

fn node_object(name: &str, address: &str, ready: bool) -> String {
    let status = if ready { "True" } else { "False" };
    format!(
        "apiVersion: v1
kind: Node
metadata: {{name: {name}, labels: {{kubernetes.io/hostname: {name}}}}}
status:
  conditions: [{{type: Ready, status: '{status}'}}]
  addresses: [{{type: InternalIP, address: {address}}}, {{type: Hostname, address: {name}}}]
"
    )
}

/// Sluice outside the cluster (`--upstream-mode nodeport`): L4 and Ingress traffic goes to
/// the Service's nodePort on the Ready nodes, never to pod addresses or a NotReady node; a
/// node that stops answering is skipped after one failed connect.
#[test]
fn external_mode_forwards_to_node_ports_of_ready_nodes() {
    require_netns!();
    let lb = Netns::new("xlb").unwrap();
    let cluster = Netns::new("xcl").unwrap();
    let client = Netns::new("xcli").unwrap();
    veth(&lb, "eth0", "198.18.50.1/24", &cluster, "eth0", "198.18.50.11/24").unwrap();
    cluster.address("eth0", "198.18.50.12/24").unwrap();
    veth(&lb, "eth1", "198.18.51.1/24", &client, "eth0", "198.18.51.2/24").unwrap();
    let _one = echo(&cluster, "198.18.50.11:30080", "node-1");
    let mut two = echo(&cluster, "198.18.50.12:30080", "node-2");
    let dir = scratch("nodeport");
    let nodes = [
        node_object("node-1", "198.18.50.11", true),
        node_object("node-2", "198.18.50.12", true),
        node_object("node-3", "198.18.50.13", false),
    ]
    .join("---\n");
    write(&dir, "nodes.yaml", &nodes);
    write(
        &dir,
        "pool.yaml",
        "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: edge, namespace: metallb-system}
spec: {addresses: [198.18.51.100/32]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: edge, namespace: metallb-system}
spec: {interfaces: [eth1]}
",
    );
    write(
        &dir,
        "web.yaml",
        "apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  ports: [{name: web, port: 80, nodePort: 30080, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: web, port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.244.1.5], conditions: {ready: true}, nodeName: node-1}]
",
    );
    write(&dir, "ingress.yaml", SITE);
    let sluice = Sluice::from_manifests(&lb, &dir, "lb", "0.0.0.0", &["--upstream-mode", "nodeport"]);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let l4 =
            get(&client, &[], "http://198.18.51.100/").unwrap_or_else(|| panic!("L4 request failed\n{}", sluice.log()));
        let l7 = get(&client, &["-H", "Host: site.example"], "http://198.18.51.100:8080/").expect("Ingress request");
        for body in [l4, l7] {
            seen.extend(["node-1", "node-2"].into_iter().filter(|n| body.contains(&format!("\"{n}\""))));
        }
    }
    assert_eq!(seen.len(), 2, "both Ready nodes serve: {seen:?}");
    let routes = lb.run(&["curl", "-s", &format!("http://127.0.0.1:{ADMIN}/config")]).unwrap_or_default();
    assert!(routes.contains("198.18.50.11:30080") && routes.contains("198.18.50.12:30080"), "{routes}");
    assert!(
        !routes.contains("10.244.1.5") && !routes.contains("198.18.50.13"),
        "no pod address, no NotReady node: {routes}"
    );

    // node-2 stops answering: every request still succeeds, served by node-1.
    two.kill();
    for _ in 0..10 {
        let l4 = get(&client, &[], "http://198.18.51.100/").expect("L4 request with a node down");
        let l7 = get(&client, &["-H", "Host: site.example"], "http://198.18.51.100:8080/")
            .expect("Ingress with a node down");
        assert!(l4.contains("\"node-1\"") && l7.contains("\"node-1\""));
    }
}

/// Two replicas in a cluster (the fake API server in the hub namespace, reachable from both
/// nodes): one holds the address; when it dies (SIGKILL) the other takes it over within the
/// membership lease, announcing it with gratuitous ARP, and traffic resumes there.
#[test]
fn a_second_replica_takes_the_address_over_when_the_holder_dies() {
    use sluice_fake_apiserver::{objects, FakeApi};
    require_netns!();
    let hub = Netns::new("hub").unwrap();
    sluice_testnet::bridge(&hub, "br0", "198.18.60.254/24").unwrap();
    let nodes = [Netns::new("na").unwrap(), Netns::new("nb").unwrap()];
    let client = Netns::new("cli").unwrap();
    for (i, node) in nodes.iter().enumerate() {
        sluice_testnet::attach(&hub, "br0", &format!("p{i}"), node, "eth0", &format!("198.18.60.{}/24", i + 1))
            .unwrap();
    }
    sluice_testnet::attach(&hub, "br0", "pc", &client, "eth0", "198.18.60.10/24").unwrap();
    client.run(&["sysctl", "-qw", "net.ipv4.conf.eth0.arp_accept=1"]).unwrap();

    // The API server listens inside the hub namespace; its tasks run on this runtime.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = hub.enter(|| std::net::TcpListener::bind("198.18.60.254:0")).unwrap().unwrap();
    let fake = runtime.block_on(async { FakeApi::start_on(listener) });
    let dir = scratch("failover");
    let kubeconfig = fake.kubeconfig(dir.path());
    fake.apply("nodes", objects::node("node-a", &[], true, "198.18.60.1"));
    fake.apply("nodes", objects::node("node-b", &[], true, "198.18.60.2"));
    fake.apply("ipaddresspools", objects::ip_address_pool("metallb-system", "lan", &["198.18.60.100/32"]));
    fake.apply("l2advertisements", objects::l2_advertisement("metallb-system", "lan", &[]));
    fake.apply("services", objects::service("default", "web", true));
    fake.apply("endpointslices", objects::endpoint_slice_at("default", "web-1", "web", &["127.0.0.1"], 3000));

    let mut replicas = Vec::new();
    let mut echoes = Vec::new();
    for (node, name) in nodes.iter().zip(["node-a", "node-b"]) {
        echoes.push(echo(node, "127.0.0.1:3000", name));
        let args = [
            "--kubernetes",
            "--kubeconfig",
            &*kubeconfig.to_string_lossy(),
            "--node-name",
            name,
            "--member-lease-duration",
            "3s",
            "--lease-namespace",
            "default",
            "--http",
            "127.0.0.1:8080",
            "--https",
            "127.0.0.1:8443",
        ];
        replicas.push(Sluice::start(node, dir.path(), name, &args));
    }
    let holder = || -> Option<String> {
        let status = status(&nodes[0]);
        let l2 = status["announcements"]["l2"].as_array()?.first()?.clone();
        l2["holder"].as_str().map(str::to_owned)
    };
    let held = wait_until(WAIT, || {
        holder().is_some_and(|h| status(&nodes[1]).to_string().contains(&format!("\"holder\":\"{h}\"")))
    });
    assert!(held, "{:#}\n{}\n{}", status(&nodes[0]), replicas[0].log(), replicas[1].log());
    let first = holder().unwrap();
    let (dead, survivor) = if first == "node-a" { (0, 1) } else { (1, 0) };
    let survivor_name = ["node-a", "node-b"][survivor];
    let body = get(&client, &[], "http://198.18.60.100/").expect("the Service through the holder");
    assert!(body.contains(&format!("\"{first}\"")), "{body}");
    let neighbour = || client.run(&["ip", "neigh", "show", "198.18.60.100"]).unwrap_or_default().to_lowercase();
    assert!(neighbour().contains(&mac(&nodes[dead], "eth0")), "{}", neighbour());
    let service = fake.get("services", "default", "web").unwrap_or_default();
    assert_eq!(service["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP", "{service:#}");

    // The holder dies without a word.
    let killed = Instant::now();
    replicas[dead].process.kill();
    let survivor_mac = mac(&nodes[survivor], "eth0");
    let moved = wait_until(WAIT, || neighbour().contains(&survivor_mac));
    let takeover = killed.elapsed();
    assert!(moved, "{}\n{}", neighbour(), replicas[survivor].log());
    eprintln!("bare-metal: holder killed -> gratuitous ARP from the survivor in {} ms", takeover.as_millis());
    assert!(takeover < Duration::from_secs(10), "took {takeover:?} with a 3 s lease");
    let served =
        wait_until(WAIT, || get(&client, &[], "http://198.18.60.100/").is_some_and(|b| b.contains(survivor_name)));
    assert!(served, "traffic resumes on the survivor");
    drop(fake);
    drop(runtime);
}
