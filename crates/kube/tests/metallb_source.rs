//! The watch source, Nodes and MetalLB's kinds: objects arrive slimmed, changes and deletions
//! are seen, a cluster without MetalLB (or whose ClusterRole predates Nodes) is ready anyway,
//! and MetalLB's CRDs installed later are picked up.

mod common;

use std::time::Duration;

use common::objects::{
    bgp_advertisement, bgp_peer, community, ingress, ingress_class, ip_address_pool, l2_advertisement, node,
};
use common::{eventually, FakeApi, FakeClient};
use serde_json::json;
use sluice_fake_apiserver::METALLB_CRDS;
use sluice_kube::{KubeSource, Notice};
use sluice_store::ObjectKey;
use tokio::sync::mpsc::UnboundedReceiver;

const SECOND: Duration = Duration::from_secs(1);
const METALLB: &str = "metallb-system";

/// A fake holding two Nodes, one object of each MetalLB kind in `metallb-system` (the
/// L2Advertisement without a spec, as MetalLB's documentation writes it), a pool in `other`,
/// and an Ingress.
async fn populated() -> FakeApi {
    let fake = FakeApi::start().await;
    fake.apply("ingressclasses", ingress_class("sluice"));
    fake.apply("ingresses", ingress("a", "web", "web.example.com"));
    fake.apply("nodes", node("worker-1", &[("rack", "a")], true, "198.18.0.11"));
    fake.apply("nodes", node("worker-2", &[("rack", "b")], false, "198.18.0.12"));
    fake.apply("ipaddresspools", ip_address_pool(METALLB, "first-pool", &["198.18.100.0/24", "fd00:198:18::/120"]));
    fake.apply("ipaddresspools", ip_address_pool("other", "second-pool", &["198.18.101.1-198.18.101.9"]));
    fake.apply("l2advertisements", json!({"metadata": {"namespace": METALLB, "name": "all"}}));
    fake.apply("bgpadvertisements", bgp_advertisement(METALLB, "local", &["first-pool"], &["no-advertise"]));
    fake.apply("bgppeers", bgp_peer(METALLB, "router", 64512, 64513, "198.18.0.1"));
    fake.apply("communities", community(METALLB, "aliases", "no-advertise", "65535:65282"));
    fake
}

async fn started(fake: &FakeApi, namespace: Option<&str>, retry: Duration) -> KubeSource {
    let source = KubeSource::start_with_retry(fake.client(), namespace, retry);
    tokio::time::timeout(5 * SECOND, source.ready()).await.expect("ready within 5 s");
    source
}

fn key(namespace: &str, name: &str) -> ObjectKey {
    ObjectKey::new(namespace, name)
}

/// The next notice, within a second.
async fn next(changes: &mut UnboundedReceiver<Notice>) -> Notice {
    tokio::time::timeout(SECOND, changes.recv()).await.expect("notified within 1 s").expect("a notice")
}

/// The paths of the list (not watch) requests answered 404.
fn not_found_lists(fake: &FakeApi) -> Vec<String> {
    fake.requests().into_iter().filter(|r| r.status == 404 && !r.is_watch()).map(|r| r.path).collect()
}

#[tokio::test]
async fn nodes_and_metallb_objects_arrive_at_their_real_paths() {
    let fake = populated().await;
    let source = started(&fake, None, 30 * SECOND).await;
    let store = source.store();

    assert_eq!(store.nodes.keys().collect::<Vec<_>>(), [&key("", "worker-1"), &key("", "worker-2")], "cluster-scoped");
    let worker = &store.nodes[&key("", "worker-1")];
    assert_eq!(worker.metadata.labels.as_ref().unwrap()["rack"], "a");
    let status = worker.status.as_ref().unwrap();
    assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Ready");
    assert_eq!(status.conditions.as_ref().unwrap()[0].status, "True");
    assert_eq!(status.addresses.as_ref().unwrap()[0].address, "198.18.0.11");
    assert!(status.images.is_none(), "images are dropped");
    assert!(status.volumes_in_use.is_none() && status.volumes_attached.is_none(), "volumes are dropped");
    assert!(worker.metadata.managed_fields.is_none());

    let pool = &store.ip_address_pools[&key(METALLB, "first-pool")];
    assert_eq!(pool.spec.addresses, ["198.18.100.0/24", "fd00:198:18::/120"]);
    assert!(store.ip_address_pools.contains_key(&key("other", "second-pool")));
    assert_eq!(store.l2_advertisements[&key(METALLB, "all")].spec, Default::default(), "no spec: every pool");
    assert_eq!(store.bgp_advertisements[&key(METALLB, "local")].spec.communities, ["no-advertise"]);
    let peer = &store.bgp_peers[&key(METALLB, "router")].spec;
    assert_eq!((peer.my_asn, peer.peer_asn, peer.peer_address.as_str()), (64512, 64513, "198.18.0.1"));
    assert_eq!(store.communities[&key(METALLB, "aliases")].spec.communities[0].value, "65535:65282");

    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    for path in [
        "/api/v1/nodes",
        "/apis/metallb.io/v1beta1/ipaddresspools",
        "/apis/metallb.io/v1beta1/l2advertisements",
        "/apis/metallb.io/v1beta1/bgpadvertisements",
        "/apis/metallb.io/v1beta1/communities",
        "/apis/metallb.io/v1beta2/bgppeers",
    ] {
        assert!(paths.iter().any(|p| p == path), "{path} listed");
    }
    assert!(not_found_lists(&fake).is_empty(), "{:?}", not_found_lists(&fake));
}

#[tokio::test]
async fn changes_and_deletions_of_nodes_and_metallb_objects_are_seen() {
    let fake = populated().await;
    let source = started(&fake, None, 30 * SECOND).await;
    let mut changes = source.subscribe();

    fake.apply("nodes", node("worker-2", &[("rack", "b")], true, "198.18.0.12"));
    assert_eq!(next(&mut changes).await, Notice { kind: "Node", key: Some(key("", "worker-2")) });
    let ready = source.read(|s| s.nodes[&key("", "worker-2")].status.as_ref().unwrap().conditions.clone().unwrap());
    assert_eq!(ready[0].status, "True");
    fake.apply("nodes", node("worker-3", &[], true, "198.18.0.13"));
    assert_eq!(next(&mut changes).await, Notice { kind: "Node", key: Some(key("", "worker-3")) });

    fake.apply("ipaddresspools", ip_address_pool(METALLB, "first-pool", &["198.18.102.0/24"]));
    assert_eq!(next(&mut changes).await, Notice { kind: "IPAddressPool", key: Some(key(METALLB, "first-pool")) });
    let addresses = source.read(|s| s.ip_address_pools[&key(METALLB, "first-pool")].spec.addresses.clone());
    assert_eq!(addresses, ["198.18.102.0/24"]);
    fake.apply("l2advertisements", l2_advertisement(METALLB, "all", &["first-pool"]));
    assert_eq!(next(&mut changes).await, Notice { kind: "L2Advertisement", key: Some(key(METALLB, "all")) });
    let pools = source.read(|s| s.l2_advertisements[&key(METALLB, "all")].spec.ip_address_pools.clone());
    assert_eq!(pools, ["first-pool"]);
    fake.apply("bgppeers", bgp_peer(METALLB, "router", 64512, 4_200_000_001, "198.18.0.1"));
    assert_eq!(next(&mut changes).await, Notice { kind: "BGPPeer", key: Some(key(METALLB, "router")) });
    assert_eq!(source.read(|s| s.bgp_peers[&key(METALLB, "router")].spec.peer_asn), 4_200_000_001);

    for (plural, kind, namespace, name) in [
        ("nodes", "Node", "", "worker-1"),
        ("ipaddresspools", "IPAddressPool", METALLB, "first-pool"),
        ("l2advertisements", "L2Advertisement", METALLB, "all"),
        ("bgpadvertisements", "BGPAdvertisement", METALLB, "local"),
        ("bgppeers", "BGPPeer", METALLB, "router"),
        ("communities", "Community", METALLB, "aliases"),
    ] {
        fake.delete(plural, namespace, name);
        assert_eq!(next(&mut changes).await, Notice { kind, key: Some(key(namespace, name)) }, "{kind} deleted");
        assert!(!source.read(|s| s.contains(kind, &key(namespace, name))), "{kind} gone from the store");
    }
    let store = source.store();
    assert_eq!(store.nodes.len(), 2);
    assert!(store.l2_advertisements.is_empty() && store.bgp_peers.is_empty() && store.communities.is_empty());
    assert_eq!(store.ip_address_pools.len(), 1, "the pool in `other` stays");
}

#[tokio::test]
async fn watch_namespace_keeps_nodes_cluster_wide_and_metallb_kinds_in_the_namespace() {
    let fake = populated().await;
    let source = started(&fake, Some(METALLB), 30 * SECOND).await;
    let store = source.store();
    assert_eq!(store.nodes.len(), 2, "Nodes are cluster-scoped");
    assert_eq!(store.ip_address_pools.keys().collect::<Vec<_>>(), [&key(METALLB, "first-pool")]);
    assert_eq!(store.bgp_peers.len(), 1);
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p == "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools"));
    assert!(paths.iter().any(|p| p == "/apis/metallb.io/v1beta2/namespaces/metallb-system/bgppeers"));
    assert!(paths.iter().any(|p| p == "/api/v1/nodes"));
}

#[tokio::test]
async fn a_cluster_without_metallb_is_ready_and_picks_its_crds_up_once_installed() {
    let fake = FakeApi::start().await;
    fake.uninstall(METALLB_CRDS);
    fake.apply("ingresses", ingress("a", "web", "web.example.com"));
    fake.apply("nodes", node("worker-1", &[], true, "198.18.0.11"));
    let retry = Duration::from_millis(200);
    let source = started(&fake, None, retry).await;
    let store = source.store();
    assert_eq!((store.ingresses.len(), store.nodes.len()), (1, 1));
    assert!(store.ip_address_pools.is_empty() && store.bgp_peers.is_empty());
    // Discovery said so: nothing was listed to find out.
    assert!(not_found_lists(&fake).is_empty(), "{:?}", not_found_lists(&fake));
    assert_eq!(fake.lists("ipaddresspools"), 0);
    tokio::time::sleep(3 * retry).await;

    fake.install(METALLB_CRDS);
    fake.apply("ipaddresspools", ip_address_pool(METALLB, "first-pool", &["198.18.100.0/24"]));
    fake.apply("l2advertisements", l2_advertisement(METALLB, "l2", &[]));
    fake.apply("bgpadvertisements", bgp_advertisement(METALLB, "bgp", &[], &[]));
    fake.apply("bgppeers", bgp_peer(METALLB, "router", 64512, 64513, "198.18.0.1"));
    fake.apply("communities", community(METALLB, "aliases", "a", "1:1"));
    let all_there = || {
        source.read(|s| {
            s.ip_address_pools.len() == 1
                && s.l2_advertisements.len() == 1
                && s.bgp_advertisements.len() == 1
                && s.bgp_peers.len() == 1
                && s.communities.len() == 1
        })
    };
    assert!(eventually(5 * SECOND, all_there).await, "picked up after installation");
    // Watched from then on.
    fake.apply("ipaddresspools", ip_address_pool(METALLB, "more", &["198.18.103.0/24"]));
    assert!(eventually(SECOND, || source.read(|s| s.ip_address_pools.contains_key(&key(METALLB, "more")))).await);
    assert_eq!(source.store().nodes.len(), 1, "Nodes untouched");
}

#[tokio::test]
async fn nodes_forbidden_to_an_older_cluster_role_are_none_and_readiness_does_not_wait() {
    let fake = populated().await;
    fake.forbid(&["nodes"]);
    let source = started(&fake, None, 30 * SECOND).await;
    let store = source.store();
    assert!(store.nodes.is_empty());
    assert_eq!(store.ingresses.len(), 1);
    assert_eq!(store.ip_address_pools.len(), 2);
    let forbidden = fake.requests().into_iter().filter(|r| r.path == "/api/v1/nodes" && r.status == 403).count();
    assert_eq!(forbidden, 1, "asked once, then only every missing_kind_retry");
}
