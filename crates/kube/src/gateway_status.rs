//! The status of Gateway API objects (`snapshot.gateway_status`), written while leader with
//! JSON merge patches on the `/status` subresource, only where it differs.
//!
//! What is whose, as the Gateway API spec and other implementations have it:
//! - a GatewayClass's or Gateway's whole `status` belongs to the controller of its class;
//! - a route's `status.parents` (a policy's `status.ancestors`) is shared: each controller
//!   owns the entries carrying its `controllerName`. A merge patch replaces an array whole,
//!   so the writer sends the full list: the other controllers' entries as the object shows
//!   them, then ours.
//!
//! `lastTransitionTime` (required by the CRDs) is kept from the object for a condition whose
//! type and status did not change, and is the time of writing otherwise.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use sluice_config::{GatewayApiStatus, ObjectRef, ObjectStatus, SharedSnapshot, Snapshot};
use sluice_store::gateway_api::backendtlspolicies::BackendTlsPolicy;
use sluice_store::gateway_api::experimental::gatewayclasses::GatewayClass;
use sluice_store::gateway_api::experimental::gateways::Gateway;
use sluice_store::gateway_api::experimental::grpcroutes::GrpcRoute;
use sluice_store::gateway_api::experimental::httproutes::HttpRoute;
use sluice_store::gateway_api::experimental::tcproutes::TcpRoute;
use sluice_store::gateway_api::experimental::tlsroutes::TlsRoute;
use sluice_store::gateway_api::experimental::udproutes::UdpRoute;
use sluice_store::{ObjectKey, Store};
use tokio::sync::watch;

/// Longest wait before retrying failed writes.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// The group a parent reference means when it names none.
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// Keeps the status of Gateway API objects right while this replica is `leader`:
/// - every GatewayClass, Gateway and route in `snapshot.gateway_status` gets that status
///   (GatewayClasses and Gateways: the whole `status`; routes: our `status.parents` entries,
///   next to the other controllers' entries, which are kept);
/// - routes the snapshot no longer reports lose the entries of `controller` (ours, the
///   `--gateway-controller` name); GatewayClasses and Gateways it does not report are left
///   alone (another controller's, or none).
///
/// An object whose status (read from `store`, or as last written while the store has not
/// seen the write yet) already matches is not written. Checks again whenever `changed`
/// notifies, when this replica becomes leader, and after failed writes (with backoff up to
/// 30 s). Returns when `changed` or `leader` is closed.
pub async fn write_gateway_status(
    client: Client,
    snapshot: Arc<SharedSnapshot>,
    store: impl Fn() -> Store,
    controller: String,
    mut leader: watch::Receiver<bool>,
    mut changed: watch::Receiver<u64>,
) {
    let mut writer = Writer { client, controller, pending: BTreeMap::new() };
    let mut retry = None;
    loop {
        let is_leader = *leader.borrow_and_update();
        changed.borrow_and_update();
        if is_leader {
            let ok = writer.reconcile(&snapshot.load_full(), &store(), &leader).await;
            retry = if ok {
                None
            } else {
                Some(retry.map_or(Duration::from_secs(1), |d: Duration| (d * 2).min(MAX_RETRY)))
            };
        }
        tokio::select! {
            result = leader.changed() => if result.is_err() { return },
            result = changed.changed() => if result.is_err() { return },
            _ = tokio::time::sleep(retry.unwrap_or_default()), if retry.is_some() && is_leader => {}
        }
    }
}

/// A Gateway API kind whose status Sluice writes.
trait Reported: Resource<DynamicType = ()> + HasStatus<Status: Serialize + DeserializeOwned> {
    /// The kind, as `ObjectRef`s name it.
    const KIND: &'static str;
    /// The status list shared with other controllers (routes' `parents`, policies'
    /// `ancestors`) and the reference field of its entries; `None` when the whole status is
    /// ours.
    const SHARED: Option<Shared>;
    /// This kind's objects in the store.
    fn objects(store: &Store) -> &BTreeMap<ObjectKey, Arc<Self>>;
}

macro_rules! reported {
    ($ty:ty, $kind:literal, $shared:expr, $field:ident) => {
        impl Reported for $ty {
            const KIND: &'static str = $kind;
            const SHARED: Option<Shared> = $shared;
            fn objects(store: &Store) -> &BTreeMap<ObjectKey, Arc<Self>> {
                &store.$field
            }
        }
    };
}

/// A status list several controllers write entries of.
#[derive(Debug, Clone, Copy)]
struct Shared {
    /// `parents` or `ancestors`.
    list: &'static str,
    /// `parentRef` or `ancestorRef`.
    reference: &'static str,
}

const PARENTS: Option<Shared> = Some(Shared { list: "parents", reference: "parentRef" });
const ANCESTORS: Option<Shared> = Some(Shared { list: "ancestors", reference: "ancestorRef" });

reported!(GatewayClass, "GatewayClass", None, gateway_classes);
reported!(Gateway, "Gateway", None, gateways);
reported!(HttpRoute, "HTTPRoute", PARENTS, http_routes);
reported!(GrpcRoute, "GRPCRoute", PARENTS, grpc_routes);
reported!(TlsRoute, "TLSRoute", PARENTS, tls_routes);
reported!(TcpRoute, "TCPRoute", PARENTS, tcp_routes);
reported!(UdpRoute, "UDPRoute", PARENTS, udp_routes);
reported!(BackendTlsPolicy, "BackendTLSPolicy", ANCESTORS, backend_tls_policies);

/// A write made whose watch event may not have reached the store yet.
#[derive(Debug)]
struct Pending {
    /// The object's resourceVersion before the write.
    resource_version: Option<String>,
    /// The status as written (routes: `{"parents": [...]}`, policies: `{"ancestors": [...]}`).
    status: Value,
}

struct Writer {
    client: Client,
    /// Our `controllerName`.
    controller: String,
    pending: BTreeMap<ObjectRef, Pending>,
}

impl Writer {
    /// One pass over every object of the reported kinds; false when some write failed.
    async fn reconcile(&mut self, snapshot: &Snapshot, store: &Store, leader: &watch::Receiver<bool>) -> bool {
        self.pending.retain(|object, _| store.contains(object.kind, &ObjectKey::new(&object.namespace, &object.name)));
        let desired: BTreeMap<&ObjectRef, &ObjectStatus> =
            snapshot.gateway_status.iter().map(|status| (&status.object, status)).collect();
        let now = now();
        let mut ok = true;
        ok &= self.pass::<GatewayClass>(store, &desired, &now, leader).await;
        ok &= self.pass::<Gateway>(store, &desired, &now, leader).await;
        ok &= self.pass::<HttpRoute>(store, &desired, &now, leader).await;
        ok &= self.pass::<GrpcRoute>(store, &desired, &now, leader).await;
        ok &= self.pass::<TlsRoute>(store, &desired, &now, leader).await;
        ok &= self.pass::<TcpRoute>(store, &desired, &now, leader).await;
        ok &= self.pass::<UdpRoute>(store, &desired, &now, leader).await;
        ok &= self.pass::<BackendTlsPolicy>(store, &desired, &now, leader).await;
        ok
    }

    /// The objects of one kind; false when some write failed.
    async fn pass<K: Reported>(
        &mut self,
        store: &Store,
        desired: &BTreeMap<&ObjectRef, &ObjectStatus>,
        now: &str,
        leader: &watch::Receiver<bool>,
    ) -> bool {
        let mut ok = true;
        for (key, object) in K::objects(store) {
            let target = ObjectRef::new(K::KIND, &key.namespace, &key.name);
            let version = object.meta().resource_version.clone();
            let current = match self.pending.get(&target) {
                Some(pending) if pending.resource_version == version => pending.status.clone(),
                _ => {
                    self.pending.remove(&target);
                    serde_json::to_value(object.status()).unwrap_or(Value::Null)
                }
            };
            let next = match desired.get(&target) {
                Some(entry) if fits::<K>(&entry.status) => {
                    desired_status(&current, &entry.status, &self.controller, now, &key.namespace, K::SHARED)
                }
                Some(entry) => {
                    tracing::warn!(object = %target, status = ?entry.status, "a status of the wrong shape; not written");
                    continue;
                }
                None => match K::SHARED.and_then(|shared| without_ours(&current, &self.controller, shared)) {
                    Some(next) => next,
                    None => continue,
                },
            };
            let next = normalise::<K>(next);
            if same(&current, &next, K::SHARED) {
                continue;
            }
            if !*leader.borrow() {
                return ok;
            }
            ok &= self.write::<K>(target, version, &current, next).await;
        }
        ok
    }

    /// Patches `next` onto the object's status; false on failure.
    async fn write<K: Reported>(
        &mut self,
        object: ObjectRef,
        resource_version: Option<String>,
        current: &Value,
        next: Value,
    ) -> bool {
        let status = if let Some(Shared { list, .. }) = K::SHARED {
            json!({ list: next[list].clone() })
        } else {
            // The whole status is ours: fields we no longer set go.
            let mut status = next.clone();
            if let (Some(status), Some(current)) = (status.as_object_mut(), current.as_object()) {
                for field in current.keys() {
                    status.entry(field.clone()).or_insert(Value::Null);
                }
            }
            status
        };
        let patch = json!({ "status": status });
        let resource = ApiResource::erase::<K>(&());
        let api: Api<DynamicObject> = if object.namespace.is_empty() {
            Api::all_with(self.client.clone(), &resource)
        } else {
            Api::namespaced_with(self.client.clone(), &object.namespace, &resource)
        };
        match api.patch_status(&object.name, &PatchParams::default(), &Patch::Merge(&patch)).await {
            Ok(_) => {
                tracing::info!(%object, "Gateway API status written");
                self.pending.insert(object, Pending { resource_version, status: next });
                true
            }
            // Deleted meanwhile (or its CRD): nothing left to write.
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(error) => {
                tracing::warn!(%object, %error, "cannot write Gateway API status");
                false
            }
        }
    }
}

/// Whether a status has the shape of `K`'s.
fn fits<K: Reported>(status: &GatewayApiStatus) -> bool {
    match status {
        GatewayApiStatus::GatewayClass { .. } => K::KIND == "GatewayClass",
        GatewayApiStatus::Gateway { .. } => K::KIND == "Gateway",
        GatewayApiStatus::Route { .. } => K::SHARED.is_some_and(|s| s.list == "parents"),
        GatewayApiStatus::Policy { .. } => K::SHARED.is_some_and(|s| s.list == "ancestors"),
    }
}

/// The time of writing, as `lastTransitionTime` is written (RFC 3339, whole seconds).
fn now() -> String {
    let time = Time(k8s_openapi::jiff::Timestamp::now());
    serde_json::to_value(time).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The status to write: `desired` with transition times, and for a route the other
/// controllers' entries of `current` followed by ours.
fn desired_status(
    current: &Value,
    desired: &GatewayApiStatus,
    controller: &str,
    now: &str,
    namespace: &str,
    shared: Option<Shared>,
) -> Value {
    let mut next = serde_json::to_value(desired).unwrap_or(Value::Null);
    match desired {
        GatewayApiStatus::GatewayClass { .. } => stamp(&mut next["conditions"], &current["conditions"], now),
        GatewayApiStatus::Gateway { .. } => {
            stamp(&mut next["conditions"], &current["conditions"], now);
            let before = current["listeners"].as_array().map(Vec::as_slice).unwrap_or_default();
            for listener in next["listeners"].as_array_mut().into_iter().flatten() {
                let prior = before.iter().find(|b| b["name"] == listener["name"]);
                stamp(&mut listener["conditions"], prior.map_or(&Value::Null, |p| &p["conditions"]), now);
            }
        }
        GatewayApiStatus::Route { .. } | GatewayApiStatus::Policy { .. } => {
            let Some(Shared { list, reference }) = shared else {
                return next;
            };
            let names: Vec<&str> = next[list]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|entry| entry["controllerName"].as_str())
                .collect();
            // Ours: our name, and whatever name the entries carry (so that they are never
            // mistaken for another controller's and kept twice).
            let ours = |entry: &Value| {
                let name = entry["controllerName"].as_str().unwrap_or_default();
                name == controller || names.contains(&name)
            };
            let before = current[list].as_array().map(Vec::as_slice).unwrap_or_default();
            let mut merged: Vec<Value> = before.iter().filter(|entry| !ours(entry)).cloned().collect();
            let mut ours_next = next[list].as_array().cloned().unwrap_or_default();
            for entry in &mut ours_next {
                let key = parent_key(&entry[reference], namespace);
                let prior = before.iter().find(|b| {
                    ours(b)
                        && b["controllerName"] == entry["controllerName"]
                        && parent_key(&b[reference], namespace) == key
                });
                stamp(&mut entry["conditions"], prior.map_or(&Value::Null, |p| &p["conditions"]), now);
            }
            merged.extend(ours_next);
            next = json!({ list: merged });
        }
    }
    next
}

/// A route's (policy's) status without `controller`'s entries; `None` when it has none.
fn without_ours(current: &Value, controller: &str, shared: Shared) -> Option<Value> {
    let entries = current[shared.list].as_array()?;
    let ours = |entry: &&Value| entry["controllerName"].as_str() == Some(controller);
    if !entries.iter().any(|entry| ours(&entry)) {
        return None;
    }
    let kept: Vec<Value> = entries.iter().filter(|entry| !ours(entry)).cloned().collect();
    Some(json!({ shared.list: kept }))
}

/// Gives each condition of `conditions` a `lastTransitionTime`: the one of the condition of
/// the same type in `before` if its status is the same, else `now`.
fn stamp(conditions: &mut Value, before: &Value, now: &str) {
    let before = before.as_array().map(Vec::as_slice).unwrap_or_default();
    for condition in conditions.as_array_mut().into_iter().flatten() {
        let prior = before.iter().find(|b| b["type"] == condition["type"]);
        let time = match prior {
            Some(prior) if prior["status"] == condition["status"] && prior["lastTransitionTime"].is_string() => {
                prior["lastTransitionTime"].clone()
            }
            _ => json!(now),
        };
        condition["lastTransitionTime"] = time;
    }
}

/// A parent reference with its defaults filled in (group, kind `Gateway`, the route's
/// namespace), for matching entries however they were written.
fn parent_key(reference: &Value, namespace: &str) -> (String, String, String, String, Option<String>, Option<i64>) {
    let text = |field: &str, default: &str| reference[field].as_str().unwrap_or(default).to_owned();
    (
        text("group", GATEWAY_GROUP),
        text("kind", "Gateway"),
        text("namespace", namespace),
        text("name", ""),
        reference["sectionName"].as_str().map(str::to_owned),
        reference["port"].as_i64(),
    )
}

/// `status` as `K`'s typed status reads it back (the store's objects are typed), so that
/// what is compared is what the store will show.
fn normalise<K: Reported>(status: Value) -> Value {
    serde_json::from_value::<K::Status>(status.clone()).and_then(serde_json::to_value).unwrap_or(status)
}

/// Whether the object already shows `next`: the whole status, or for routes (policies) the
/// shared entries in any order.
fn same(current: &Value, next: &Value, shared: Option<Shared>) -> bool {
    let Some(Shared { list, .. }) = shared else {
        return current == next;
    };
    let sorted = |status: &Value| {
        let mut entries: Vec<String> = status[list].as_array().into_iter().flatten().map(Value::to_string).collect();
        entries.sort();
        entries
    };
    sorted(current) == sorted(next)
}
