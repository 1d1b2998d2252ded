//! The watch source against the fake API server: list, watch, relist after 410, outages.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::objects::{endpoint_slice, ingress, ingress_class, secret, service};
use common::{eventually, FakeApi, Gone};
use serde_json::json;
use sluice_kube::{connect, KubeOptions, KubeSource, Notice};
use sluice_store::ObjectKey;

const SECOND: Duration = Duration::from_secs(1);

/// A fake holding a few objects of every kind, in two namespaces.
async fn populated() -> FakeApi {
    let fake = FakeApi::start().await;
    fake.apply("ingressclasses", ingress_class("sluice"));
    for (ns, name) in [("a", "one"), ("a", "two"), ("a", "three"), ("b", "four")] {
        fake.apply("ingresses", ingress(ns, name, &format!("{name}.example.com")));
    }
    fake.apply("services", service("a", "web", false));
    fake.apply("services", service("b", "web", true));
    fake.apply("endpointslices", endpoint_slice("a", "web-abc", "web"));
    fake.apply("secrets", secret("a", "cert", "kubernetes.io/tls"));
    fake.apply("secrets", password("a", "password"));
    fake.apply(
        "secrets",
        json!({"metadata": {"namespace": "b", "name": "ca"}, "type": "Opaque",
                                 "data": {"ca.crt": ""}}),
    );
    fake
}

/// An Opaque Secret with no certificate in it: never kept.
fn password(namespace: &str, name: &str) -> serde_json::Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "type": "Opaque", "data": {"password": ""}})
}

async fn connected(fake: &FakeApi, dir: &std::path::Path, namespace: Option<&str>) -> KubeSource {
    let options = KubeOptions {
        kubeconfig: Some(fake.kubeconfig(dir)),
        watch_namespace: namespace.map(str::to_owned),
        ..KubeOptions::default()
    };
    let source = connect(&options).await.expect("connect");
    tokio::time::timeout(5 * SECOND, source.ready()).await.expect("ready within 5 s");
    source
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-kube-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn has_ingress(source: &KubeSource, ns: &str, name: &str) -> bool {
    source.store().ingresses.contains_key(&ObjectKey::new(ns, name))
}

#[tokio::test]
async fn initial_list_fills_the_store_then_watch_events_apply() {
    let fake = populated().await;
    let source = connected(&fake, &temp_dir("list"), None).await;
    let store = source.store();
    assert_eq!(store.ingresses.len(), 4);
    assert_eq!(store.ingress_classes.keys().collect::<Vec<_>>(), [&ObjectKey::new("", "sluice")]);
    assert_eq!(store.services.len(), 2);
    assert_eq!(store.endpoint_slices.len(), 1);
    assert_eq!(
        store.secrets.keys().collect::<Vec<_>>(),
        [&ObjectKey::new("a", "cert"), &ObjectKey::new("b", "ca")],
        "only Secrets holding certificates or trust anchors"
    );
    assert!(store.ingresses.values().all(|i| i.metadata.managed_fields.is_none()));
    // Pages of at most 2: three requests for four Ingresses, continue tokens followed.
    assert!(fake.lists("ingresses") >= 2, "paged list");

    let mut changes = source.subscribe();
    fake.apply("ingresses", ingress("a", "new", "new.example.com"));
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.expect("notified within 1 s");
    assert_eq!(notice, Some(Notice { kind: "Ingress", key: Some(ObjectKey::new("a", "new")) }));
    assert!(has_ingress(&source, "a", "new"));

    fake.apply("ingresses", ingress("a", "new", "renamed.example.com"));
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.unwrap();
    assert_eq!(notice.map(|n| n.kind), Some("Ingress"));
    let host = |s: &KubeSource| {
        let store = s.store();
        let spec = store.ingresses[&ObjectKey::new("a", "new")].spec.clone().unwrap();
        spec.rules.unwrap()[0].host.clone()
    };
    assert_eq!(host(&source).as_deref(), Some("renamed.example.com"));

    fake.delete("ingresses", "a", "new");
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.unwrap();
    assert_eq!(
        notice,
        Some(Notice { kind: "Ingress", key: Some(ObjectKey::new("a", "new")) }),
        "deletion names the object"
    );
    assert!(!has_ingress(&source, "a", "new"));

    fake.apply("endpointslices", endpoint_slice("a", "web-def", "web"));
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.unwrap();
    assert_eq!(notice, Some(Notice { kind: "EndpointSlice", key: Some(ObjectKey::new("a", "web-def")) }));
    // A Secret that no longer holds a certificate leaves the store.
    fake.apply("secrets", password("a", "cert"));
    assert!(eventually(SECOND, || source.store().secrets.len() == 1).await);
}

#[tokio::test]
async fn watch_namespace_restricts_namespaced_kinds() {
    let fake = populated().await;
    let source = connected(&fake, &temp_dir("ns"), Some("b")).await;
    let store = source.store();
    assert_eq!(store.ingresses.keys().collect::<Vec<_>>(), [&ObjectKey::new("b", "four")]);
    assert_eq!(store.services.len(), 1);
    assert_eq!(store.ingress_classes.len(), 1, "IngressClasses are cluster-scoped");
    assert!(fake.requests().iter().any(|r| r.path == "/apis/networking.k8s.io/v1/namespaces/b/ingresses"));
}

/// A 410 Gone makes the source list again; objects that still exist never leave the store,
/// and an object deleted while the history was lost goes once the list completes.
async fn relist_after_gone(gone: Gone) {
    let fake = populated().await;
    let source = connected(&fake, &temp_dir(&format!("gone-{gone:?}")), None).await;
    let lists_before = fake.lists("ingresses");
    let (stop, missing) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let source = Arc::new(source);
    let sampler = {
        let (source, stop, missing) = (source.clone(), stop.clone(), missing.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if !has_ingress(&source, "a", "one") || !has_ingress(&source, "b", "four") {
                    missing.store(true, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    fake.delete_silently("ingresses", "a", "two");
    fake.compact(gone);
    assert!(eventually(10 * SECOND, || !has_ingress(&source, "a", "two")).await, "relisted after 410 ({gone:?})");
    assert!(fake.lists("ingresses") > lists_before);
    // Watching resumes after the relist.
    fake.apply("ingresses", ingress("a", "after", "after.example.com"));
    assert!(eventually(SECOND, || has_ingress(&source, "a", "after")).await);
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert!(!missing.load(Ordering::Relaxed), "objects that still exist stayed in the store");
    assert_eq!(source.store().ingresses.len(), 4);
}

#[tokio::test]
async fn watch_error_event_410_relists_keeping_objects() {
    relist_after_gone(Gone::Event).await;
}

#[tokio::test]
async fn http_410_on_watch_relists_keeping_objects() {
    relist_after_gone(Gone::Http).await;
}

#[tokio::test]
async fn api_server_outage_keeps_the_store_and_the_watch_resumes() {
    let fake = populated().await;
    let source = connected(&fake, &temp_dir("down"), None).await;
    let mut changes = source.subscribe();
    let before = source.store();
    fake.set_down(true);
    tokio::time::sleep(2 * SECOND).await;
    let during = source.store();
    assert_eq!(during.len(), before.len(), "nothing dropped while the API server is down");
    assert!(changes.try_recv().is_err(), "no change reported during the outage");
    let watches = fake.watches("ingresses");
    // Backoff, not a busy loop: a handful of attempts in 2 s.
    let attempts = fake.requests().iter().filter(|r| r.path.ends_with("/ingresses")).count();
    assert!(attempts < 40, "{attempts} requests in 2 s");

    // A change made while the source could not see it arrives once the server is back.
    fake.apply("ingresses", ingress("a", "later", "later.example.com"));
    fake.set_down(false);
    assert!(eventually(15 * SECOND, || has_ingress(&source, "a", "later")).await, "watch resumed");
    assert!(fake.watches("ingresses") > watches);
    assert_eq!(source.store().ingresses.len(), 5);
}

#[tokio::test]
async fn ready_waits_for_the_api_server() {
    let fake = populated().await;
    fake.set_down(true);
    let options = KubeOptions { kubeconfig: Some(fake.kubeconfig(&temp_dir("wait"))), ..KubeOptions::default() };
    let source = connect(&options).await.expect("connect does not need the server");
    assert!(tokio::time::timeout(SECOND, source.ready()).await.is_err(), "not ready while down");
    assert!(source.store().is_empty());
    fake.set_down(false);
    tokio::time::timeout(10 * SECOND, source.ready()).await.expect("ready once the server answers");
    assert_eq!(source.store().ingresses.len(), 4);
}

#[tokio::test]
async fn connect_reports_a_missing_kubeconfig() {
    let options = KubeOptions { kubeconfig: Some("/nonexistent/kubeconfig".into()), ..KubeOptions::default() };
    let error = connect(&options).await.unwrap_err();
    assert!(error.contains("/nonexistent/kubeconfig"), "{error}");
}
