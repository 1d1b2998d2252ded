//! `write_status` against the fake API server, with snapshots from the real translation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::objects::{ingress, ingress_class, service};
use common::snapshot::{options, rebuild, translate};
use common::{eventually, FakeApi, FakeClient, Recorded};
use serde_json::{json, Value};
use sluice_kube::{write_status, KubeSource};
use sluice_store::ObjectKey;
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);

fn with_status(mut object: Value, ips: &[&str]) -> Value {
    let entries: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    object["status"] = json!({"loadBalancer": {"ingress": entries}});
    object
}

fn status_patches(fake: &FakeApi) -> Vec<Recorded> {
    fake.requests().into_iter().filter(|r| r.method == "PATCH" && r.path.ends_with("/status")).collect()
}

fn addresses(fake: &FakeApi, plural: &str, name: &str) -> Value {
    fake.get(plural, "a", name).unwrap()["status"]["loadBalancer"]["ingress"].clone()
}

#[tokio::test]
async fn writes_status_once_and_only_while_leader() {
    let fake = FakeApi::start().await;
    fake.apply("ingressclasses", ingress_class("sluice"));
    fake.apply("ingresses", ingress("a", "web", "web.example.com"));
    // Ours before, no longer served: our address is taken away.
    let mut foreign = with_status(ingress("a", "foreign", "f.example.com"), &["192.0.2.10"]);
    foreign["spec"]["ingressClassName"] = json!("other");
    fake.apply("ingresses", foreign);
    // Another controller's: left alone.
    let mut alien = with_status(ingress("a", "alien", "x.example.com"), &["203.0.113.5"]);
    alien["spec"]["ingressClassName"] = json!("other");
    fake.apply("ingresses", alien);
    fake.apply("services", service("a", "lb", true));
    // Sluice's LoadBalancer class, but no longer a LoadBalancer: its address goes.
    let mut old = with_status(service("a", "old", false), &["192.0.2.3"]);
    old["spec"]["loadBalancerClass"] = json!("sluice.dev/lb");
    fake.apply("services", old);
    // Another implementation's LoadBalancer: left alone.
    let mut cloud = with_status(service("a", "cloud", true), &["198.51.100.1"]);
    cloud["spec"]["loadBalancerClass"] = json!("cloud.example/lb");
    fake.apply("services", cloud);

    let source = Arc::new(KubeSource::start(fake.client(), None));
    tokio::time::timeout(5 * SECOND, source.ready()).await.unwrap();
    let options = options();
    let snapshot = sluice_config::share(translate(&source.store(), &options, 1));
    assert_eq!(snapshot.load().ingresses.len(), 1);
    assert_eq!(snapshot.load().l4.addresses.len(), 1);
    let (leader_tx, leader) = watch::channel(false);
    let (changed_tx, changed) = watch::channel(1u64);
    let publish = vec!["192.0.2.10".to_owned(), "lb.example.com".to_owned()];
    let store = {
        let source = source.clone();
        move || source.store()
    };
    let task = tokio::spawn(write_status(fake.client(), snapshot.clone(), store, publish, leader, changed));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(status_patches(&fake).is_empty(), "no writes before leading");

    leader_tx.send_replace(true);
    assert!(eventually(2 * SECOND, || status_patches(&fake).len() == 4).await, "{:?}", status_patches(&fake));
    let patches = status_patches(&fake);
    assert!(patches.iter().all(|p| p.content_type == "application/merge-patch+json"));
    let web = patches.iter().find(|p| p.path == "/apis/networking.k8s.io/v1/namespaces/a/ingresses/web/status");
    let expected = json!([{"ip": "192.0.2.10"}, {"hostname": "lb.example.com"}]);
    assert_eq!(web.unwrap().body["status"]["loadBalancer"]["ingress"], expected);
    assert_eq!(addresses(&fake, "ingresses", "web"), expected);
    assert!(patches.iter().any(|p| p.path == "/api/v1/namespaces/a/services/lb/status"));
    assert_eq!(addresses(&fake, "services", "lb"), json!([{"ip": "192.0.2.0", "ipMode": "VIP"}]));
    assert_eq!(addresses(&fake, "ingresses", "foreign"), Value::Null, "cleared");
    assert_eq!(addresses(&fake, "services", "old"), Value::Null, "cleared");
    assert_eq!(addresses(&fake, "ingresses", "alien"), json!([{"ip": "203.0.113.5"}]));
    assert_eq!(addresses(&fake, "services", "cloud"), json!([{"ip": "198.51.100.1"}]));

    // Nothing changes: no more writes, however often asked, even across a leader change.
    let web_key = ObjectKey::new("a", "web");
    assert!(eventually(SECOND, || source.store().ingresses[&web_key].status.is_some()).await);
    for _ in 0..3 {
        let generation = rebuild(&snapshot, &source.store(), &options);
        changed_tx.send_replace(generation);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    leader_tx.send_replace(false);
    leader_tx.send_replace(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_patches(&fake).len(), 4, "no write when the status matches");

    // Someone overwrites the status while this replica is not leader: nothing is written
    // until it leads again, then once.
    leader_tx.send_replace(false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    fake.apply("ingresses", with_status(ingress("a", "web", "web.example.com"), &["203.0.113.9"]));
    assert!(
        eventually(SECOND, || source.store().ingresses[&web_key]
            .status
            .as_ref()
            .unwrap()
            .load_balancer
            .as_ref()
            .unwrap()
            .ingress
            .as_ref()
            .unwrap()[0]
            .ip
            .as_deref()
            == Some("203.0.113.9"))
        .await
    );
    changed_tx.send_replace(rebuild(&snapshot, &source.store(), &options));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_patches(&fake).len(), 4, "no write while not leader");
    leader_tx.send_replace(true);
    assert!(eventually(2 * SECOND, || status_patches(&fake).len() == 5).await);
    assert_eq!(addresses(&fake, "ingresses", "web"), expected);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_patches(&fake).len(), 5);

    // The Ingress stops being ours: its addresses are taken away.
    let mut moved = ingress("a", "web", "web.example.com");
    moved["spec"]["ingressClassName"] = json!("other");
    moved["status"] = fake.get("ingresses", "a", "web").unwrap()["status"].clone();
    fake.apply("ingresses", moved);
    assert!(
        eventually(SECOND, || source.store().ingresses[&web_key].spec.as_ref().unwrap().ingress_class_name.as_deref()
            == Some("other"))
        .await
    );
    changed_tx.send_replace(rebuild(&snapshot, &source.store(), &options));
    assert!(eventually(2 * SECOND, || addresses(&fake, "ingresses", "web").is_null()).await);
    assert_eq!(status_patches(&fake).len(), 6);

    drop(changed_tx);
    tokio::time::timeout(SECOND, task).await.expect("returns when `changed` closes").unwrap();
}

#[tokio::test]
async fn failed_writes_are_retried() {
    let fake = FakeApi::start().await;
    fake.apply("ingressclasses", ingress_class("sluice"));
    fake.apply("ingresses", ingress("a", "web", "web.example.com"));
    let source = Arc::new(KubeSource::start(fake.client(), None));
    tokio::time::timeout(5 * SECOND, source.ready()).await.unwrap();
    let options = options();
    let snapshot = sluice_config::share(translate(&source.store(), &options, 1));
    fake.set_down(true);
    let (_leader_tx, leader) = watch::channel(true);
    let (_changed_tx, changed) = watch::channel(1u64);
    let store = {
        let source = source.clone();
        move || source.store()
    };
    let publish = vec!["192.0.2.10".to_owned()];
    tokio::spawn(write_status(fake.client(), snapshot, store, publish, leader, changed));
    tokio::time::sleep(Duration::from_millis(500)).await;
    fake.set_down(false);
    assert!(eventually(5 * SECOND, || !addresses(&fake, "ingresses", "web").is_null()).await, "retried");
    assert!(source.store().ingresses.contains_key(&ObjectKey::new("a", "web")));
}
