//! Kubernetes Events (`events.k8s.io/v1`) for resources Sluice rejects, so that
//! `kubectl describe` shows why an Ingress or Service is not served.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, Resource};
use sluice_config::{Diagnostic, ObjectRef, SharedSnapshot, Subject};
use tokio::sync::watch;
use tokio::time::Instant;

/// The same problem of the same object is reported at most once in this long.
const DEDUP_WINDOW: Duration = Duration::from_secs(600);
/// At most ten Events a second.
const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Failed posts are tried again after this long (or at the next change).
const RETRY: Duration = Duration::from_secs(10);
/// The API server's limit on an Event's note.
const MAX_NOTE: usize = 1024;

/// While this replica is `leader`, posts a Warning Event (reason `Rejected`, note: field and
/// reason) on the object of every diagnostic of the current snapshot, checked again whenever
/// `changed` notifies. The same diagnostic is posted once per 10 minutes at most, and no more
/// than 10 Events a second. Returns when `changed` or `leader` is closed.
pub async fn emit_events(
    client: Client,
    snapshot: Arc<SharedSnapshot>,
    mut leader: watch::Receiver<bool>,
    mut changed: watch::Receiver<u64>,
) {
    let mut emitter =
        Emitter { client, instance: crate::default_identity(), posted: BTreeMap::new(), next_slot: Instant::now() };
    let mut failed = false;
    loop {
        let is_leader = *leader.borrow_and_update();
        changed.borrow_and_update();
        if is_leader {
            failed = !emitter.emit(&snapshot.load_full().diagnostics, &leader).await;
        }
        tokio::select! {
            result = leader.changed() => if result.is_err() { return },
            result = changed.changed() => if result.is_err() { return },
            _ = tokio::time::sleep(RETRY), if failed && is_leader => {}
        }
    }
}

struct Emitter {
    client: Client,
    /// `reportingInstance` of the Events.
    instance: String,
    /// When each diagnostic was last posted.
    posted: BTreeMap<Diagnostic, Instant>,
    /// The earliest time the next Event may be posted.
    next_slot: Instant,
}

impl Emitter {
    /// Posts the diagnostics not posted recently; false when a post failed.
    async fn emit(&mut self, diagnostics: &[Diagnostic], leader: &watch::Receiver<bool>) -> bool {
        self.posted.retain(|_, at| at.elapsed() < DEDUP_WINDOW);
        let mut ok = true;
        for diagnostic in diagnostics {
            let Subject::Object(object) = &diagnostic.subject else { continue };
            if self.posted.contains_key(diagnostic) {
                continue;
            }
            tokio::time::sleep_until(self.next_slot).await;
            if !*leader.borrow() {
                return ok;
            }
            self.next_slot = Instant::now() + MIN_INTERVAL;
            match self.post(object, diagnostic).await {
                Ok(()) => {
                    self.posted.insert(diagnostic.clone(), Instant::now());
                }
                Err(error) => {
                    tracing::warn!(%object, %error, "cannot post an Event");
                    ok = false;
                }
            }
        }
        ok
    }

    async fn post(&self, object: &ObjectRef, diagnostic: &Diagnostic) -> Result<(), kube::Error> {
        let note = if diagnostic.field.is_empty() {
            diagnostic.reason.clone()
        } else {
            format!("{}: {}", diagnostic.field, diagnostic.reason)
        };
        let event = EventFacts { warning: true, reason: "Rejected", action: "Translate", note };
        post_event(&self.client, &self.instance, object, event).await
    }
}

/// What one Event says.
#[derive(Debug, Clone)]
pub struct EventFacts {
    /// `Warning` when true, else `Normal`.
    pub warning: bool,
    /// The Event's reason (one CamelCase word, e.g. `Issued`).
    pub reason: &'static str,
    /// What Sluice was doing (e.g. `Translate`, `Order`).
    pub action: &'static str,
    /// The human-readable note (cut to the API server's limit).
    pub note: String,
}

/// Posts one Event about `object`, for outcomes that are not a snapshot's diagnostics (an
/// ACME order's, say); `instance` is the `reportingInstance`.
pub async fn post_event(
    client: &Client,
    instance: &str,
    object: &ObjectRef,
    facts: EventFacts,
) -> Result<(), kube::Error> {
    let namespace = if object.namespace.is_empty() { "default" } else { object.namespace.as_str() };
    let now = Timestamp::now();
    let mut note = facts.note;
    truncate(&mut note, MAX_NOTE);
    let mut prefix = object.name.clone();
    truncate(&mut prefix, 200);
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{prefix}.{:x}", now.as_nanosecond())),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        event_time: Some(MicroTime(now)),
        type_: Some(if facts.warning { "Warning" } else { "Normal" }.to_owned()),
        reason: Some(facts.reason.to_owned()),
        action: Some(facts.action.to_owned()),
        note: Some(note),
        regarding: Some(regarding(client, object).await),
        reporting_controller: Some(crate::CONTROLLER_NAME.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.create(&PostParams::default(), &event).await.map(drop)
}

/// A reference to `object` with its uid when it can be read (`kubectl describe` matches
/// Events by uid).
async fn regarding(client: &Client, object: &ObjectRef) -> ObjectReference {
    let client = client.clone();
    let (ns, name) = (object.namespace.as_str(), object.name.as_str());
    let (api_version, meta) = match object.kind {
        "Ingress" => lookup::<Ingress>(Api::namespaced(client, ns), name).await,
        "IngressClass" => lookup::<IngressClass>(Api::all(client), name).await,
        "Service" => lookup::<Service>(Api::namespaced(client, ns), name).await,
        "EndpointSlice" => lookup::<EndpointSlice>(Api::namespaced(client, ns), name).await,
        "Endpoints" => lookup::<Endpoints>(Api::namespaced(client, ns), name).await,
        _ => lookup::<Secret>(Api::namespaced(client, ns), name).await,
    };
    ObjectReference {
        api_version: Some(api_version),
        kind: Some(object.kind.to_owned()),
        namespace: (!ns.is_empty()).then(|| ns.to_owned()),
        name: Some(name.to_owned()),
        uid: meta.as_ref().and_then(|m| m.uid.clone()),
        resource_version: meta.and_then(|m| m.resource_version),
        ..ObjectReference::default()
    }
}

/// The kind's apiVersion and, if it can be read, the object's metadata.
async fn lookup<K>(api: Api<K>, name: &str) -> (String, Option<ObjectMeta>)
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let meta = match api.get_opt(name).await {
        Ok(object) => object.map(|o| o.meta().clone()),
        Err(error) => {
            tracing::debug!(%error, name, "cannot read the object of an Event");
            None
        }
    };
    (K::api_version(&()).into_owned(), meta)
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}
