//! `emit_events` against the fake API server, with diagnostics from the real translation.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::objects::{ingress, ingress_class, service};
use common::snapshot::{options, rebuild, translate};
use common::{eventually, FakeApi, FakeClient};
use sluice_kube::{emit_events, KubeSource};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);

async fn source_of(fake: &FakeApi) -> Arc<KubeSource> {
    let source = Arc::new(KubeSource::start(fake.client(), None));
    tokio::time::timeout(5 * SECOND, source.ready()).await.unwrap();
    source
}

#[tokio::test]
async fn one_event_per_rejected_ingress_and_not_again() {
    let fake = FakeApi::start().await;
    fake.apply("ingressclasses", ingress_class("sluice"));
    fake.apply("services", service("a", "web", false));
    fake.apply("ingresses", ingress("a", "good", "good.example.com"));
    fake.apply("ingresses", ingress("a", "bad", "Bad_Host!"));
    let source = source_of(&fake).await;
    let options = options();
    let snapshot = sluice_config::share(translate(&source.store(), &options, 1));
    assert_eq!(snapshot.load().diagnostics.len(), 1, "{:?}", snapshot.load().diagnostics);
    let (leader_tx, leader) = watch::channel(false);
    let (changed_tx, changed) = watch::channel(1u64);
    tokio::spawn(emit_events(fake.client(), snapshot.clone(), leader, changed));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.writes("POST", "/events").is_empty(), "no Events before leading");
    leader_tx.send_replace(true);
    assert!(eventually(2 * SECOND, || fake.writes("POST", "/events").len() == 1).await);
    let post = &fake.writes("POST", "/events")[0];
    assert_eq!(post.path, "/apis/events.k8s.io/v1/namespaces/a/events");
    let event = &post.body;
    assert_eq!(event["apiVersion"], "events.k8s.io/v1");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "Rejected");
    assert_eq!(event["reportingController"], "sluice.dev/ingress-controller");
    assert!(event["eventTime"].is_string() && event["action"].is_string() && event["reportingInstance"].is_string());
    assert_eq!(event["regarding"]["kind"], "Ingress");
    assert_eq!(event["regarding"]["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(event["regarding"]["namespace"], "a");
    assert_eq!(event["regarding"]["name"], "bad");
    assert_eq!(event["regarding"]["uid"], "uid-ingresses-a-bad");
    let note = event["note"].as_str().unwrap();
    assert!(note.starts_with("spec.rules[0].host: "), "{note}");
    assert_eq!(fake.all("events").len(), 1);

    // The same diagnostic again and again: no second Event.
    for _ in 0..3 {
        changed_tx.send_replace(rebuild(&snapshot, &source.store(), &options));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    leader_tx.send_replace(false);
    leader_tx.send_replace(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.writes("POST", "/events").len(), 1);

    // A new problem while not leader waits for leadership.
    leader_tx.send_replace(false);
    fake.apply("ingresses", ingress("b", "worse", "Worse_Host!"));
    assert!(eventually(SECOND, || source.store().ingresses.len() == 3).await);
    changed_tx.send_replace(rebuild(&snapshot, &source.store(), &options));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.writes("POST", "/events").len(), 1);
    leader_tx.send_replace(true);
    assert!(eventually(2 * SECOND, || fake.writes("POST", "/events").len() == 2).await);
    assert_eq!(fake.writes("POST", "/events")[1].path, "/apis/events.k8s.io/v1/namespaces/b/events");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.writes("POST", "/events").len(), 2);
}

#[tokio::test]
async fn events_are_rate_limited() {
    let fake = FakeApi::start().await;
    fake.apply("ingressclasses", ingress_class("sluice"));
    for i in 0..15 {
        fake.apply("ingresses", ingress("a", &format!("bad{i}"), "Bad_Host!"));
    }
    let source = source_of(&fake).await;
    let snapshot = sluice_config::share(translate(&source.store(), &options(), 1));
    assert_eq!(snapshot.load().diagnostics.len(), 15);
    let (_leader_tx, leader) = watch::channel(true);
    let (_changed_tx, changed) = watch::channel(1u64);
    let start = std::time::Instant::now();
    tokio::spawn(emit_events(fake.client(), snapshot, leader, changed));
    assert!(eventually(5 * SECOND, || fake.writes("POST", "/events").len() == 15).await);
    assert!(start.elapsed() >= Duration::from_millis(1400), "15 Events at ≤ 10/s took {:?}", start.elapsed());
}
