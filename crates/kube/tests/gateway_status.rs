//! `write_gateway_status` against the fake API server, with the snapshot's `gateway_status`
//! built by hand (translation does not produce it yet).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::objects::{gateway, gateway_class, http_route};
use common::snapshot::{options, translate};
use common::{eventually, FakeApi, FakeClient, Recorded};
use serde_json::{json, Value};
use sluice_config::GATEWAY_CONTROLLER as GATEWAY_CONTROLLER_NAME;
use sluice_config::{
    GatewayAddress, GatewayApiStatus, ListenerStatus, ObjectRef, ObjectStatus, ParentRef, RouteKind, RouteParentStatus,
    SharedSnapshot, Snapshot, StatusCondition,
};
use sluice_kube::{write_gateway_status, KubeSource};
use sluice_store::{ObjectKey, Store};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);
const GROUP: &str = "gateway.networking.k8s.io";
const OTHER: &str = "example.com/other-controller";
/// A transition time written before the test, by us or by the other controller.
const THEN: &str = "2021-01-01T00:00:00Z";

fn condition(kind: &'static str, holds: bool) -> StatusCondition {
    match holds {
        true => StatusCondition::yes(kind, kind, "", 1),
        false => StatusCondition::no(kind, "Pending", "", 1),
    }
}

fn class_status(accepted: bool) -> ObjectStatus {
    ObjectStatus {
        object: ObjectRef::new("GatewayClass", "", "sluice"),
        generation: 1,
        status: GatewayApiStatus::GatewayClass { conditions: vec![condition("Accepted", accepted)] },
    }
}

fn gateway_status(accepted: bool, programmed: bool) -> ObjectStatus {
    ObjectStatus {
        object: ObjectRef::new("Gateway", "a", "gw"),
        generation: 1,
        status: GatewayApiStatus::Gateway {
            addresses: vec![GatewayAddress::ip("192.0.2.1".parse().unwrap())],
            conditions: vec![condition("Accepted", accepted), condition("Programmed", programmed)],
            listeners: vec![ListenerStatus {
                name: "http".into(),
                supported_kinds: vec![RouteKind { group: GROUP, kind: "HTTPRoute" }],
                attached_routes: 1,
                conditions: vec![condition("Accepted", true), condition("Programmed", programmed)],
            }],
        },
    }
}

fn route_status(name: &str, gateway: &str) -> ObjectStatus {
    let parent_ref = ParentRef {
        group: GROUP.into(),
        kind: "Gateway".into(),
        namespace: "a".into(),
        name: gateway.into(),
        section_name: None,
        port: None,
    };
    ObjectStatus {
        object: ObjectRef::new("HTTPRoute", "a", name),
        generation: 1,
        status: GatewayApiStatus::Route {
            parents: vec![RouteParentStatus {
                parent_ref,
                controller_name: GATEWAY_CONTROLLER_NAME.into(),
                conditions: vec![condition("Accepted", true), condition("ResolvedRefs", true)],
            }],
        },
    }
}

/// A route parent entry as a controller wrote it (`parentRef` as short as allowed).
fn parent_entry(controller: &str, gateway: &str, accepted: bool) -> Value {
    json!({
        "parentRef": {"name": gateway},
        "controllerName": controller,
        "conditions": [{"type": "Accepted", "status": if accepted { "True" } else { "False" }, "reason": "Accepted",
                        "message": "", "observedGeneration": 1, "lastTransitionTime": THEN}]
    })
}

/// A snapshot with only `statuses` in it.
fn snapshot(statuses: Vec<ObjectStatus>, generation: u64) -> Snapshot {
    let mut snapshot = translate(&Store::default(), &options(), generation);
    snapshot.gateway_status = statuses.into();
    snapshot
}

/// Swaps in a snapshot with `statuses` and tells the writer.
fn publish(shared: &Arc<SharedSnapshot>, changed: &watch::Sender<u64>, statuses: Vec<ObjectStatus>) {
    let generation = shared.load().generation + 1;
    shared.store(Arc::new(snapshot(statuses, generation)));
    changed.send_replace(generation);
}

fn status_patches(fake: &FakeApi) -> Vec<Recorded> {
    fake.requests().into_iter().filter(|r| r.method == "PATCH" && r.path.ends_with("/status")).collect()
}

fn stored_status(fake: &FakeApi, plural: &str, namespace: &str, name: &str) -> Value {
    fake.get(plural, namespace, name).unwrap()["status"].clone()
}

fn find<'a>(list: &'a Value, field: &str, value: &str) -> &'a Value {
    list.as_array().unwrap().iter().find(|item| item[field] == value).unwrap_or(&Value::Null)
}

fn time_of<'a>(conditions: &'a Value, kind: &str) -> &'a str {
    find(conditions, "type", kind)["lastTransitionTime"].as_str().unwrap_or_default()
}

/// The parents of an HTTPRoute as stored, as `(controller, gateway)` pairs in order.
fn parents(fake: &FakeApi, name: &str) -> Vec<(String, String)> {
    let status = stored_status(fake, "httproutes", "a", name);
    let entries = status["parents"].as_array().cloned().unwrap_or_default();
    let pair = |e: &Value| {
        (e["controllerName"].as_str().unwrap().to_owned(), e["parentRef"]["name"].as_str().unwrap().to_owned())
    };
    entries.iter().map(pair).collect()
}

/// A fake holding: our GatewayClass `sluice` (with a `supportedFeatures` nobody sets any
/// more) and Gateway `a/gw`; another controller's Gateway `a/theirs`; HTTPRoute `a/web`
/// attached to `gw` and to the other controller's `theirs`, showing the other controller's
/// entry, an entry of ours for `gw` and a stale one of ours for `old`; HTTPRoute
/// `a/detached`, no longer reported, with an entry of ours and one of the other controller.
fn populate(fake: &FakeApi) {
    let mut class = gateway_class("sluice", GATEWAY_CONTROLLER_NAME);
    class["status"] = json!({"supportedFeatures": [{"name": "HTTPRoute"}]});
    fake.apply("gatewayclasses", class);
    fake.apply("gatewayclasses", gateway_class("other", OTHER));
    let mut gw = gateway("a", "gw", "sluice");
    gw["status"] = json!({"conditions": [
        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "observedGeneration": 1, "lastTransitionTime": THEN},
        {"type": "Programmed", "status": "False", "reason": "Pending", "message": "", "observedGeneration": 1, "lastTransitionTime": THEN},
    ]});
    fake.apply("gateways", gw);
    let mut theirs = gateway("a", "theirs", "other");
    theirs["status"] = json!({"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                                               "lastTransitionTime": THEN}]});
    fake.apply("gateways", theirs);
    let mut web = http_route("a", "web", "web.example.com", &[("a", "gw"), ("a", "theirs")]);
    web["status"] = json!({"parents": [
        parent_entry(OTHER, "theirs", true),
        parent_entry(GATEWAY_CONTROLLER_NAME, "gw", true),
        parent_entry(GATEWAY_CONTROLLER_NAME, "old", true),
    ]});
    fake.apply("httproutes", web);
    let mut detached = http_route("a", "detached", "detached.example.com", &[("a", "theirs")]);
    detached["status"] =
        json!({"parents": [parent_entry(GATEWAY_CONTROLLER_NAME, "gw", true), parent_entry(OTHER, "theirs", false)]});
    fake.apply("httproutes", detached);
}

#[tokio::test]
async fn gateway_status_is_written_while_leader_only_where_it_differs_and_shares_route_parents() {
    let fake = FakeApi::start().await;
    populate(&fake);
    let source = Arc::new(KubeSource::start(fake.client(), None));
    tokio::time::timeout(5 * SECOND, source.ready()).await.unwrap();
    let shared = sluice_config::share(snapshot(
        vec![class_status(true), gateway_status(true, true), route_status("web", "gw")],
        1,
    ));
    let (leader_tx, leader) = watch::channel(false);
    let (changed_tx, changed) = watch::channel(1u64);
    let store = {
        let source = source.clone();
        move || source.store()
    };
    let controller = GATEWAY_CONTROLLER_NAME.to_owned();
    let task = tokio::spawn(write_gateway_status(fake.client(), shared.clone(), store, controller, leader, changed));

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(status_patches(&fake).is_empty(), "no writes before leading");

    leader_tx.send_replace(true);
    assert!(eventually(2 * SECOND, || status_patches(&fake).len() == 4).await, "{:#?}", status_patches(&fake));
    // Asked again at once, before the store has seen the writes: nothing written twice.
    publish(&shared, &changed_tx, vec![class_status(true), gateway_status(true, true), route_status("web", "gw")]);
    let patches = status_patches(&fake);
    assert!(patches.iter().all(|p| p.content_type == "application/merge-patch+json"));
    let paths: Vec<&str> = patches.iter().map(|p| p.path.as_str()).collect();
    for path in [
        "/apis/gateway.networking.k8s.io/v1/gatewayclasses/sluice/status",
        "/apis/gateway.networking.k8s.io/v1/namespaces/a/gateways/gw/status",
        "/apis/gateway.networking.k8s.io/v1/namespaces/a/httproutes/web/status",
        "/apis/gateway.networking.k8s.io/v1/namespaces/a/httproutes/detached/status",
    ] {
        assert!(paths.contains(&path), "{path} in {paths:?}");
    }

    // GatewayClass: the whole status is ours; the field we do not set is gone.
    let class = stored_status(&fake, "gatewayclasses", "", "sluice");
    assert_eq!(find(&class["conditions"], "type", "Accepted")["status"], "True");
    assert!(class.get("supportedFeatures").is_none(), "{class}");
    assert!(stored_status(&fake, "gatewayclasses", "", "other").is_null(), "another controller's class untouched");

    // Gateway: the unchanged condition keeps its time, the changed one and the new ones get
    // the time of writing (RFC 3339).
    let gw = stored_status(&fake, "gateways", "a", "gw");
    assert_eq!(time_of(&gw["conditions"], "Accepted"), THEN, "unchanged condition keeps its time");
    let programmed = time_of(&gw["conditions"], "Programmed");
    assert!(programmed > THEN && programmed.ends_with('Z') && programmed.len() == 20, "{programmed}");
    assert_eq!(find(&gw["conditions"], "type", "Programmed")["status"], "True");
    assert_eq!(gw["addresses"], json!([{"type": "IPAddress", "value": "192.0.2.1"}]));
    let listener = find(&gw["listeners"], "name", "http");
    assert_eq!(listener["attachedRoutes"], 1);
    assert_eq!(listener["supportedKinds"], json!([{"group": GROUP, "kind": "HTTPRoute"}]));
    assert!(time_of(&listener["conditions"], "Accepted") > THEN);
    assert!(!patches.iter().any(|p| p.path.ends_with("/gateways/theirs/status")), "another controller's Gateway");

    // Routes: the other controller's entry kept as it was, ours replaced (its unchanged
    // Accepted keeps its time, whatever shape the parentRef had), our stale entry gone.
    let owner = |c: &str, g: &str| (c.to_owned(), g.to_owned());
    assert_eq!(parents(&fake, "web"), [owner(OTHER, "theirs"), owner(GATEWAY_CONTROLLER_NAME, "gw")]);
    let web = stored_status(&fake, "httproutes", "a", "web");
    assert_eq!(web["parents"][0], parent_entry(OTHER, "theirs", true), "foreign entry untouched");
    let ours = &web["parents"][1];
    assert_eq!(ours["parentRef"], json!({"group": GROUP, "kind": "Gateway", "namespace": "a", "name": "gw"}));
    assert_eq!(time_of(&ours["conditions"], "Accepted"), THEN);
    assert!(time_of(&ours["conditions"], "ResolvedRefs") > THEN);
    // A route no longer reported loses our entry only.
    assert_eq!(parents(&fake, "detached"), [owner(OTHER, "theirs")]);
    assert_eq!(stored_status(&fake, "httproutes", "a", "detached")["parents"][0], parent_entry(OTHER, "theirs", false));

    // Nothing changes: no more writes, however often asked, even across a leader change.
    let route_key = ObjectKey::new("a", "detached");
    assert!(
        eventually(SECOND, || source.read(|s| s.http_routes[&route_key].status.as_ref().unwrap().parents.len() == 1))
            .await
    );
    let gw_key = ObjectKey::new("a", "gw");
    assert!(
        eventually(SECOND, || source.read(|s| s.gateways[&gw_key].status.as_ref().unwrap().addresses.is_some())).await
    );
    for _ in 0..3 {
        publish(&shared, &changed_tx, vec![class_status(true), gateway_status(true, true), route_status("web", "gw")]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    leader_tx.send_replace(false);
    leader_tx.send_replace(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_patches(&fake).len(), 4, "no write when the status matches");

    // A change while not leader is written only once leading again.
    leader_tx.send_replace(false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    publish(&shared, &changed_tx, vec![class_status(true), gateway_status(false, true), route_status("web", "gw")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_patches(&fake).len(), 4, "no write while not leader");
    leader_tx.send_replace(true);
    assert!(eventually(2 * SECOND, || status_patches(&fake).len() == 5).await);
    let gw_after = stored_status(&fake, "gateways", "a", "gw");
    assert!(time_of(&gw_after["conditions"], "Accepted") > THEN, "Accepted changed: a new time");
    assert_eq!(time_of(&gw_after["conditions"], "Programmed"), programmed, "Programmed unchanged: its time kept");
    assert_eq!(find(&gw_after["conditions"], "type", "Accepted")["status"], "False");

    // The route is detached from our Gateway: our entry goes, the other controller's stays.
    publish(&shared, &changed_tx, vec![class_status(true), gateway_status(false, true)]);
    assert!(
        eventually(2 * SECOND, || parents(&fake, "web") == [owner(OTHER, "theirs")]).await,
        "{:?}",
        parents(&fake, "web")
    );
    assert_eq!(status_patches(&fake).len(), 6);
    // The other controller rewrites its entry; nothing of ours to do.
    let mut web = fake.get("httproutes", "a", "web").unwrap();
    web["status"]["parents"] = json!([parent_entry(OTHER, "theirs", false)]);
    fake.apply("httproutes", web);
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish(&shared, &changed_tx, vec![class_status(true), gateway_status(false, true)]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_patches(&fake).len(), 6, "other controllers' changes are theirs");
    assert_eq!(source.store().gateways.len(), 2);

    drop(changed_tx);
    tokio::time::timeout(SECOND, task).await.expect("returns when `changed` closes").unwrap();
}

#[tokio::test]
async fn failed_gateway_status_writes_are_retried() {
    let fake = FakeApi::start().await;
    fake.apply("gateways", gateway("a", "gw", "sluice"));
    let source = Arc::new(KubeSource::start(fake.client(), None));
    tokio::time::timeout(5 * SECOND, source.ready()).await.unwrap();
    let shared = sluice_config::share(snapshot(vec![gateway_status(true, true)], 1));
    fake.set_down(true);
    let (_leader_tx, leader) = watch::channel(true);
    let (_changed_tx, changed) = watch::channel(1u64);
    let store = {
        let source = source.clone();
        move || source.store()
    };
    let controller = GATEWAY_CONTROLLER_NAME.to_owned();
    tokio::spawn(write_gateway_status(fake.client(), shared, store, controller, leader, changed));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(status_patches(&fake).iter().all(|p| p.status == 503), "tried while down");
    fake.set_down(false);
    assert!(
        eventually(5 * SECOND, || !stored_status(&fake, "gateways", "a", "gw")["conditions"].is_null()).await,
        "retried"
    );
    let conditions = stored_status(&fake, "gateways", "a", "gw")["conditions"].clone();
    assert_eq!(find(&conditions, "type", "Programmed")["status"], "True");
}

#[tokio::test]
async fn backend_tls_policy_ancestors_are_shared_like_route_parents() {
    let fake = FakeApi::start().await;
    let mut policy = common::objects::backend_tls_policy("a", "tls", "web", "web.internal");
    let foreign = json!({"ancestorRef": {"name": "theirs"}, "controllerName": OTHER,
                         "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
                                         "lastTransitionTime": THEN}]});
    policy["status"] = json!({"ancestors": [foreign]});
    fake.apply("backendtlspolicies", policy);
    let source = Arc::new(KubeSource::start(fake.client(), None));
    tokio::time::timeout(5 * SECOND, source.ready()).await.unwrap();
    let ancestor_ref = ParentRef {
        group: GROUP.into(),
        kind: "Gateway".into(),
        namespace: "a".into(),
        name: "gw".into(),
        section_name: None,
        port: None,
    };
    let ours = ObjectStatus {
        object: ObjectRef::new("BackendTLSPolicy", "a", "tls"),
        generation: 1,
        status: GatewayApiStatus::Policy {
            ancestors: vec![sluice_config::PolicyAncestorStatus {
                ancestor_ref,
                controller_name: GATEWAY_CONTROLLER_NAME.into(),
                conditions: vec![condition("Accepted", true)],
            }],
        },
    };
    let shared = sluice_config::share(snapshot(vec![ours], 1));
    let (_leader_tx, leader) = watch::channel(true);
    let (changed_tx, changed) = watch::channel(1u64);
    let store = {
        let source = source.clone();
        move || source.store()
    };
    let controller = GATEWAY_CONTROLLER_NAME.to_owned();
    tokio::spawn(write_gateway_status(fake.client(), shared.clone(), store, controller, leader, changed));
    let controllers = || -> Vec<String> {
        let status = stored_status(&fake, "backendtlspolicies", "a", "tls");
        let entries = status["ancestors"].as_array().cloned().unwrap_or_default();
        entries.iter().map(|e| e["controllerName"].as_str().unwrap_or_default().to_owned()).collect()
    };
    assert!(eventually(5 * SECOND, || controllers() == [OTHER, GATEWAY_CONTROLLER_NAME]).await, "{:?}", controllers());
    // No longer reported: only our entry goes.
    publish(&shared, &changed_tx, Vec::new());
    assert!(eventually(5 * SECOND, || controllers() == [OTHER]).await, "{:?}", controllers());
}
