//! The watch source and the Gateway API kinds: objects arrive, changes are seen, and a cluster
//! without (some of) the CRDs is ready anyway and picks them up once installed.

mod common;

use std::time::Duration;

use common::objects::{
    backend_tls_policy, gateway, gateway_class, grpc_route, http_route, ingress, ingress_class, l4_route, namespace,
    reference_grant, service, tls_route,
};
use common::{eventually, FakeApi, FakeClient};
use sluice_fake_apiserver::GATEWAY_API_CRDS;
use sluice_kube::{KubeSource, Notice};
use sluice_store::ObjectKey;

const SECOND: Duration = Duration::from_secs(1);
const CONTROLLER: &str = "sluice.dev/gateway-controller";

/// A fake holding one object of every Gateway API kind (and a Namespace) in `a`, a Gateway
/// and an HTTPRoute in `b`, and an Ingress.
async fn populated() -> FakeApi {
    let fake = FakeApi::start().await;
    fake.apply("ingressclasses", ingress_class("sluice"));
    fake.apply("ingresses", ingress("a", "web", "web.example.com"));
    fake.apply("services", service("a", "web", false));
    fake.apply("namespaces", namespace("a", &[("team", "blue")]));
    fake.apply("namespaces", namespace("b", &[]));
    fake.apply("gatewayclasses", gateway_class("sluice", CONTROLLER));
    for ns in ["a", "b"] {
        fake.apply("gateways", gateway(ns, "gw", "sluice"));
        fake.apply("httproutes", http_route(ns, "web", "web.example.com", &[(ns, "gw")]));
    }
    fake.apply("grpcroutes", grpc_route("a", "rpc", "rpc.example.com", &[("a", "gw")]));
    fake.apply("tlsroutes", tls_route("a", "tls", "tls.example.com", &[("a", "gw")]));
    fake.apply("tcproutes", l4_route("a", "tcp", 5432, &[("a", "gw")]));
    fake.apply("udproutes", l4_route("a", "udp", 53, &[("a", "gw")]));
    fake.apply("referencegrants", reference_grant("a", "grant", "b"));
    fake.apply("backendtlspolicies", backend_tls_policy("a", "tls", "web", "web.internal"));
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

/// The paths of the list (not watch) requests answered 404.
fn not_found_lists(fake: &FakeApi) -> Vec<String> {
    fake.requests().into_iter().filter(|r| r.status == 404 && !r.is_watch()).map(|r| r.path).collect()
}

#[tokio::test]
async fn gateway_api_objects_arrive_and_their_changes_are_seen() {
    let fake = populated().await;
    let source = started(&fake, None, 30 * SECOND).await;
    let store = source.store();
    assert_eq!(store.namespaces.keys().collect::<Vec<_>>(), [&key("", "a"), &key("", "b")], "cluster-scoped");
    assert_eq!(store.namespaces[&key("", "a")].metadata.labels.as_ref().unwrap()["team"], "blue");
    assert_eq!(store.gateway_classes.keys().collect::<Vec<_>>(), [&key("", "sluice")], "cluster-scoped");
    assert_eq!(store.gateway_classes[&key("", "sluice")].spec.controller_name, CONTROLLER);
    assert_eq!(store.gateways.keys().collect::<Vec<_>>(), [&key("a", "gw"), &key("b", "gw")]);
    assert_eq!(store.http_routes.len(), 2);
    assert!(store.grpc_routes.contains_key(&key("a", "rpc")));
    assert!(store.tls_routes.contains_key(&key("a", "tls")));
    assert!(store.tcp_routes.contains_key(&key("a", "tcp")));
    assert!(store.udp_routes.contains_key(&key("a", "udp")));
    assert!(store.reference_grants.contains_key(&key("a", "grant")));
    assert!(store.backend_tls_policies.contains_key(&key("a", "tls")));
    assert!(store.http_routes.values().all(|r| r.metadata.managed_fields.is_none()));
    // Each kind at its real version.
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    for path in [
        "/api/v1/namespaces",
        "/apis/gateway.networking.k8s.io/v1/gatewayclasses",
        "/apis/gateway.networking.k8s.io/v1/gateways",
        "/apis/gateway.networking.k8s.io/v1/httproutes",
        "/apis/gateway.networking.k8s.io/v1/grpcroutes",
        "/apis/gateway.networking.k8s.io/v1/tlsroutes",
        "/apis/gateway.networking.k8s.io/v1alpha2/tcproutes",
        "/apis/gateway.networking.k8s.io/v1alpha2/udproutes",
        "/apis/gateway.networking.k8s.io/v1/referencegrants",
        "/apis/gateway.networking.k8s.io/v1/backendtlspolicies",
    ] {
        assert!(paths.iter().any(|p| p == path), "{path} listed");
    }
    assert!(not_found_lists(&fake).is_empty(), "{:?}", not_found_lists(&fake));

    let mut changes = source.subscribe();
    fake.apply("httproutes", http_route("a", "web", "renamed.example.com", &[("a", "gw")]));
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.expect("notified within 1 s");
    assert_eq!(notice, Some(Notice { kind: "HTTPRoute", key: Some(key("a", "web")) }));
    let hostnames = source.read(|s| s.http_routes[&key("a", "web")].spec.hostnames.clone());
    assert_eq!(hostnames, Some(vec!["renamed.example.com".to_owned()]));

    fake.delete("gateways", "b", "gw");
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.unwrap();
    assert_eq!(notice, Some(Notice { kind: "Gateway", key: Some(key("b", "gw")) }), "deletion names the object");
    assert!(!source.read(|s| s.gateways.contains_key(&key("b", "gw"))));

    fake.apply("gatewayclasses", gateway_class("other", "example.com/other"));
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.unwrap();
    assert_eq!(notice, Some(Notice { kind: "GatewayClass", key: Some(key("", "other")) }));
    fake.apply("namespaces", namespace("b", &[("team", "red")]));
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.unwrap();
    assert_eq!(notice, Some(Notice { kind: "Namespace", key: Some(key("", "b")) }));
    fake.apply("tcproutes", l4_route("a", "tcp", 5433, &[("a", "gw")]));
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.unwrap();
    assert_eq!(notice, Some(Notice { kind: "TCPRoute", key: Some(key("a", "tcp")) }));
    fake.delete("backendtlspolicies", "a", "tls");
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.unwrap();
    assert_eq!(notice, Some(Notice { kind: "BackendTLSPolicy", key: Some(key("a", "tls")) }));
}

#[tokio::test]
async fn watch_namespace_keeps_cluster_scoped_gateway_kinds_cluster_wide() {
    let fake = populated().await;
    let source = started(&fake, Some("b"), 30 * SECOND).await;
    let store = source.store();
    assert_eq!(store.gateways.keys().collect::<Vec<_>>(), [&key("b", "gw")]);
    assert_eq!(store.http_routes.keys().collect::<Vec<_>>(), [&key("b", "web")]);
    assert!(store.grpc_routes.is_empty() && store.reference_grants.is_empty());
    assert_eq!(store.gateway_classes.len(), 1, "GatewayClasses are cluster-scoped");
    assert_eq!(store.namespaces.len(), 2, "Namespaces are cluster-scoped");
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.iter().any(|p| p == "/apis/gateway.networking.k8s.io/v1/namespaces/b/httproutes"));
    assert!(paths.iter().any(|p| p == "/apis/gateway.networking.k8s.io/v1alpha2/namespaces/b/udproutes"));
    assert!(paths.iter().any(|p| p == "/apis/gateway.networking.k8s.io/v1/gatewayclasses"));
}

#[tokio::test]
async fn a_cluster_without_the_gateway_api_is_ready_and_serves_core_kinds_quietly() {
    let fake = FakeApi::start().await;
    fake.uninstall(GATEWAY_API_CRDS);
    fake.apply("ingressclasses", ingress_class("sluice"));
    fake.apply("ingresses", ingress("a", "web", "web.example.com"));
    fake.apply("namespaces", namespace("a", &[]));
    let source = started(&fake, None, 30 * SECOND).await;
    let store = source.store();
    assert_eq!(store.ingresses.len(), 1);
    assert_eq!(store.namespaces.len(), 1);
    assert!(store.gateways.is_empty() && store.http_routes.is_empty() && store.gateway_classes.is_empty());
    // Discovery said so: no list request answered "404 page not found" (which kube's client
    // would log as a warning every time).
    assert!(not_found_lists(&fake).is_empty(), "{:?}", not_found_lists(&fake));
    assert_eq!(fake.lists("httproutes"), 0);
    assert!(fake.requests().iter().any(|r| r.path == "/apis"), "asked discovery");
    // Watching the core kinds goes on.
    let mut changes = source.subscribe();
    fake.apply("ingresses", ingress("a", "new", "new.example.com"));
    let notice = tokio::time::timeout(SECOND, changes.recv()).await.expect("notified within 1 s");
    assert_eq!(notice, Some(Notice { kind: "Ingress", key: Some(key("a", "new")) }));
}

#[tokio::test]
async fn only_some_gateway_crds_installed() {
    let fake = populated().await;
    // The standard channel: no TCPRoutes, UDPRoutes.
    fake.uninstall(&["tcproutes", "udproutes"]);
    let source = started(&fake, None, 30 * SECOND).await;
    let store = source.store();
    assert_eq!(store.http_routes.len(), 2);
    assert_eq!(store.gateways.len(), 2);
    assert!(store.tcp_routes.is_empty() && store.udp_routes.is_empty());
    assert_eq!(fake.lists("tcproutes"), 0);
}

#[tokio::test]
async fn gateway_crds_installed_later_are_picked_up_and_removed_ones_empty_their_kind() {
    let fake = FakeApi::start().await;
    fake.uninstall(GATEWAY_API_CRDS);
    fake.apply("ingresses", ingress("a", "web", "web.example.com"));
    let retry = Duration::from_millis(200);
    let source = started(&fake, None, retry).await;
    let mut changes = source.subscribe();
    tokio::time::sleep(3 * retry).await;
    assert!(source.store().http_routes.is_empty());

    fake.install(GATEWAY_API_CRDS);
    fake.apply("gateways", gateway("a", "gw", "sluice"));
    fake.apply("httproutes", http_route("a", "web", "web.example.com", &[("a", "gw")]));
    assert!(
        eventually(5 * SECOND, || source
            .read(|s| s.http_routes.contains_key(&key("a", "web")) && s.gateways.contains_key(&key("a", "gw"))))
        .await,
        "picked up after installation"
    );
    let mut kinds = Vec::new();
    while let Ok(notice) = changes.try_recv() {
        kinds.push(notice.kind);
    }
    assert!(kinds.contains(&"HTTPRoute") && kinds.contains(&"Gateway"), "{kinds:?}");
    // Watched from then on.
    fake.apply("httproutes", http_route("a", "more", "more.example.com", &[("a", "gw")]));
    assert!(eventually(SECOND, || source.read(|s| s.http_routes.contains_key(&key("a", "more")))).await);

    // The CRD deleted (its objects go with it): the kind empties.
    fake.uninstall(&["httproutes"]);
    assert!(eventually(15 * SECOND, || source.read(|s| s.http_routes.is_empty())).await, "emptied");
    assert_eq!(source.store().gateways.len(), 1, "other kinds untouched");
    assert_eq!(source.store().ingresses.len(), 1);
}
