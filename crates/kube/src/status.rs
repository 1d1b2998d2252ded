//! `status.loadBalancer` of served Ingresses and of LoadBalancer Services, written while
//! leader with merge patches on the `/status` subresource, only where it differs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{json, Value};
use sluice_config::{ObjectRef, SharedSnapshot, Snapshot};
use sluice_store::{ObjectKey, Store};
use tokio::sync::watch;

/// The LoadBalancer class only Sluice implements: such Services' addresses are always ours.
const LOAD_BALANCER_CLASS: &str = "sluice.dev/lb";
/// Longest wait before retrying failed writes.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Keeps `status.loadBalancer.ingress` right while this replica is `leader`:
/// - every served Ingress gets `publish` (IP addresses as `{ip}`, names as `{hostname}`);
///   while `publish` is empty, served Ingresses are left as they are;
/// - every LoadBalancer Service with addresses in `snapshot.l4.addresses` gets them as `{ip}`;
/// - Ingresses and Services no longer served lose the addresses Sluice gave them (those written
///   by this process, Ingresses showing only `publish` addresses, Services of the
///   `sluice.dev/lb` class); other controllers' addresses are left alone.
///
/// An object whose status (read from `store`) already matches is not written. Checks again
/// whenever `changed` notifies, when this replica becomes leader, and after failed writes
/// (with backoff up to 30 s). Writes are merge patches on `/status`. Returns when `changed` or
/// `leader` is closed.
pub async fn write_status(
    client: Client,
    snapshot: Arc<SharedSnapshot>,
    store: impl Fn() -> Store,
    publish: Vec<String>,
    mut leader: watch::Receiver<bool>,
    mut changed: watch::Receiver<u64>,
) {
    let publish = publish.iter().map(|a| Address::parse(a)).collect();
    let mut writer = Writer { client, publish, ours: BTreeSet::new(), pending: BTreeMap::new() };
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

/// One address of `status.loadBalancer.ingress`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    /// An IP, with the Service's `ipMode` (Ingresses have none).
    Ip(String, Option<String>),
    Hostname(String),
}

impl Address {
    fn parse(text: &str) -> Self {
        match text.parse::<IpAddr>() {
            Ok(ip) => Address::Ip(ip.to_string(), None),
            Err(_) => Address::Hostname(text.to_owned()),
        }
    }

    fn from_status(ip: Option<&String>, hostname: Option<&String>, mode: Option<&String>) -> Option<Self> {
        let ip = ip.map(|ip| Address::Ip(ip.clone(), mode.cloned()));
        ip.or_else(|| hostname.map(|name| Address::Hostname(name.clone())))
    }

    fn to_json(&self) -> Value {
        match self {
            Address::Ip(ip, None) => json!({ "ip": ip }),
            Address::Ip(ip, Some(mode)) => json!({ "ip": ip, "ipMode": mode }),
            Address::Hostname(name) => json!({ "hostname": name }),
        }
    }
}

/// A write made whose watch event may not have reached the store yet.
#[derive(Debug)]
struct Pending {
    addresses: Vec<Address>,
    /// The object's resourceVersion before the write.
    resource_version: Option<String>,
}

struct Writer {
    client: Client,
    publish: Vec<Address>,
    /// Objects given addresses by this process (to clear when no longer ours).
    ours: BTreeSet<ObjectRef>,
    pending: BTreeMap<ObjectRef, Pending>,
}

/// The addresses in a `status.loadBalancer.ingress` list (Ingresses and Services use
/// different types with the same `ip`/`hostname` fields; Services' have `ipMode` too), as
/// `(ip, hostname, ipMode)`.
fn addresses<'a>(
    entries: impl Iterator<Item = (&'a Option<String>, &'a Option<String>, Option<&'a String>)>,
) -> Vec<Address> {
    entries.filter_map(|(ip, hostname, mode)| Address::from_status(ip.as_ref(), hostname.as_ref(), mode)).collect()
}

impl Writer {
    /// One pass over every Ingress and Service; false when some write failed.
    async fn reconcile(&mut self, snapshot: &Snapshot, store: &Store, leader: &watch::Receiver<bool>) -> bool {
        self.pending.retain(|object, _| store.contains(object.kind, &ObjectKey::new(&object.namespace, &object.name)));
        let served: BTreeSet<&ObjectRef> = snapshot.ingresses.iter().map(|i| &**i).collect();
        let mut ok = true;
        for (key, ingress) in &store.ingresses {
            let object = ObjectRef::new("Ingress", &key.namespace, &key.name);
            let status = ingress.status.iter().filter_map(|s| s.load_balancer.as_ref());
            let entries = status.flat_map(|lb| lb.ingress.iter().flatten());
            let current = addresses(entries.map(|i| (&i.ip, &i.hostname, None)));
            let desired = if served.contains(&object) {
                if self.publish.is_empty() {
                    // Nothing known to publish: leave what is there.
                    continue;
                }
                self.publish.clone()
            } else if !current.is_empty()
                && (self.ours.contains(&object) || current.iter().all(|a| self.publish.contains(a)))
            {
                Vec::new()
            } else {
                continue;
            };
            let version = ingress.metadata.resource_version.clone();
            ok &= !*leader.borrow() || self.write(object, version, &current, desired).await;
        }
        for (key, service) in &store.services {
            let object = ObjectRef::new("Service", &key.namespace, &key.name);
            let status = service.status.iter().filter_map(|s| s.load_balancer.as_ref());
            let entries = status.flat_map(|lb| lb.ingress.iter().flatten());
            let current = addresses(entries.map(|i| (&i.ip, &i.hostname, i.ip_mode.as_ref())));
            let class = service.spec.as_ref().and_then(|s| s.load_balancer_class.as_deref());
            let desired = match snapshot.l4.addresses.get(&object) {
                Some(ips) => {
                    let mode = snapshot.l4.ip_modes.get(&object).map(|m| m.as_str().to_owned());
                    ips.iter().map(|ip| Address::Ip(ip.to_string(), mode.clone())).collect()
                }
                None if !current.is_empty() && (self.ours.contains(&object) || class == Some(LOAD_BALANCER_CLASS)) => {
                    Vec::new()
                }
                None => continue,
            };
            let version = service.metadata.resource_version.clone();
            ok &= !*leader.borrow() || self.write(object, version, &current, desired).await;
        }
        ok
    }

    /// Writes `desired` unless it is already there or already on its way; false on failure.
    async fn write(
        &mut self,
        object: ObjectRef,
        resource_version: Option<String>,
        current: &[Address],
        desired: Vec<Address>,
    ) -> bool {
        if current == desired {
            self.pending.remove(&object);
            self.remember(&object, &desired);
            return true;
        }
        if self.pending.get(&object).is_some_and(|p| p.addresses == desired && p.resource_version == resource_version) {
            return true;
        }
        let client = self.client.clone();
        let entries: Vec<Value> = desired.iter().map(Address::to_json).collect();
        let ingress = if entries.is_empty() { Value::Null } else { Value::Array(entries) };
        let patch = json!({ "status": { "loadBalancer": { "ingress": ingress } } });
        let (params, patch) = (PatchParams::default(), Patch::Merge(&patch));
        let result = match object.kind {
            "Ingress" => {
                let api: Api<Ingress> = Api::namespaced(client, &object.namespace);
                api.patch_status(&object.name, &params, &patch).await.map(drop)
            }
            _ => {
                let api: Api<Service> = Api::namespaced(client, &object.namespace);
                api.patch_status(&object.name, &params, &patch).await.map(drop)
            }
        };
        match result {
            Ok(()) => {
                tracing::info!(%object, addresses = ?desired, "status written");
                self.remember(&object, &desired);
                self.pending.insert(object, Pending { addresses: desired, resource_version });
                true
            }
            // Deleted meanwhile: nothing left to write.
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(error) => {
                tracing::warn!(%object, %error, "cannot write status");
                false
            }
        }
    }

    fn remember(&mut self, object: &ObjectRef, addresses: &[Address]) {
        if addresses.is_empty() {
            self.ours.remove(object);
        } else {
            self.ours.insert(object.clone());
        }
    }
}
