//! The fake API server on a listener bound inside a network namespace (as the namespace tests
//! of L2 and BGP announcement run it): the source and the memberships reach it there.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::objects::{ip_address_pool, node};
use common::{eventually, FakeApi, FakeClient};
use sluice_kube::{KubeSource, Membership};
use sluice_store::ObjectKey;
use sluice_testnet::{require_netns, Netns};

#[test]
fn the_fake_serves_from_a_listener_bound_inside_a_namespace() {
    require_netns!();
    let ns = Netns::new("kapi").unwrap();
    ns.address("lo", "198.18.0.1/32").unwrap();
    ns.enter(|| {
        let listener = std::net::TcpListener::bind("198.18.0.1:0").expect("bind inside the namespace");
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async move {
            let fake = FakeApi::start_on(listener);
            assert_eq!(fake.addr.ip().to_string(), "198.18.0.1");
            fake.apply("nodes", node("worker-1", &[], true, "198.18.0.11"));
            fake.apply("ipaddresspools", ip_address_pool("metallb-system", "pool", &["198.18.100.0/24"]));
            let source = KubeSource::start(fake.client(), None);
            tokio::time::timeout(Duration::from_secs(10), source.ready()).await.expect("ready within 10 s");
            let store = source.store();
            assert!(store.nodes.contains_key(&ObjectKey::new("", "worker-1")));
            assert!(store.ip_address_pools.contains_key(&ObjectKey::new("metallb-system", "pool")));

            let membership = Membership::start(fake.client(), "sluice", "worker-1", Duration::from_secs(1));
            let live = membership.live();
            let wanted: BTreeSet<String> = ["worker-1".to_owned()].into();
            assert!(eventually(Duration::from_secs(10), || *live.borrow() == wanted).await, "{:?}", *live.borrow());
            membership.stop().await;
            assert!(fake.get("leases", "sluice", "sluice-node-worker-1").is_none());
        });
    })
    .expect("ran inside the namespace");
}
