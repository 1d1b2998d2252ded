//! Attaching routes to Gateway listeners by their `parentRefs`, as the spec says: the
//! listeners a reference selects (`sectionName`, `port`), those whose `allowedRoutes` admit
//! the route's kind and namespace, and whose hostname intersects the route's.

use std::collections::BTreeMap;

use sluice_config::{
    Diagnostic, GatewayApiStatus, HostPattern, ObjectRef, ObjectStatus, ParentRef, RouteParentStatus, StatusCondition,
};
use sluice_store::{ObjectKey, Store};

use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::http_route::{CompiledMatch, CompiledRoute};
use super::listeners::{parse_host, ValidGateway};
use super::GROUP;

/// One route attached to one listener, for some of its hosts.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub gateway: ObjectKey,
    pub listener: String,
    /// The hosts it serves there: its hostnames narrowed to the listener's.
    pub hosts: Vec<HostPattern>,
    /// Route age and name, which order matches of equal precedence across routes.
    pub order: (Option<String>, ObjectKey),
    pub matches: std::sync::Arc<Vec<CompiledMatch>>,
}

/// Routes attached, how many per listener, and the routes' status.
#[derive(Debug, Default)]
pub(crate) struct Attached {
    pub routes: Vec<Attachment>,
    pub counts: BTreeMap<(ObjectRef, String), i32>,
    pub status: Vec<ObjectStatus>,
}

/// A parent reference, whatever the route kind.
#[derive(Debug, Clone)]
pub(crate) struct ParentSpec {
    pub group: Option<String>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: String,
    pub section_name: Option<String>,
    pub port: Option<i32>,
}

/// What attaching needs of a route of any kind.
pub(crate) struct RouteInput<'a> {
    /// `HTTPRoute`, `GRPCRoute`, …
    pub kind: &'static str,
    pub key: &'a ObjectKey,
    pub meta: &'a ObjectMeta,
    pub parents: Vec<ParentSpec>,
    pub hostnames: &'a [String],
}

/// The parent references of a route, as [`ParentSpec`]s (every route kind has the same
/// fields under a different type).
macro_rules! parent_specs {
    ($refs:expr) => {
        $refs
            .iter()
            .flatten()
            .map(|p| $crate::gateway::attach::ParentSpec {
                group: p.group.clone(),
                kind: p.kind.clone(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                section_name: p.section_name.clone(),
                port: p.port,
            })
            .collect::<Vec<_>>()
    };
}
pub(crate) use parent_specs;

impl Attached {
    /// Attaches `route` to the Gateways of ours its parent references name (none: nothing
    /// is compiled, no status is written); `compile` turns it into matches.
    pub(crate) fn route(
        &mut self,
        store: &Store,
        gateways: &BTreeMap<ObjectKey, ValidGateway>,
        controller: &str,
        route: RouteInput<'_>,
        compile: impl FnOnce(&mut Vec<Diagnostic>) -> CompiledRoute,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let RouteInput { kind, key, meta, parents, hostnames } = route;
        if !parents.iter().any(|p| parent_gateway(key, p, gateways).is_some()) {
            return;
        }
        let generation = meta.generation.unwrap_or(1);
        let compiled = compile(diagnostics);
        let matches = std::sync::Arc::new(compiled.matches);
        let order = (meta.creation_timestamp.as_ref().map(|t| t.0.to_string()), key.clone());
        let object = ObjectRef::new(kind, &key.namespace, &key.name);
        let mut parsed = Vec::new();
        let mut bad_hostname = false;
        for (i, host) in hostnames.iter().enumerate() {
            match parse_host(host) {
                Ok(host) => parsed.push(host),
                Err(reason) => {
                    diagnostics.push(Diagnostic::object(object.clone(), format!("spec.hostnames[{i}]"), reason));
                    bad_hostname = true;
                }
            }
        }
        let mut statuses = Vec::new();
        for parent in &parents {
            let Some((gateway_key, gateway)) = parent_gateway(key, parent, gateways) else {
                continue;
            };
            let port = parent.port.and_then(|p| u16::try_from(p).ok());
            let parent_ref = ParentRef {
                group: GROUP.into(),
                kind: "Gateway".into(),
                namespace: gateway_key.namespace.clone(),
                name: gateway_key.name.clone(),
                section_name: parent.section_name.clone(),
                port,
            };
            let verdict = if let Some(reason) = &compiled.unsupported {
                Err(("UnsupportedValue", reason.clone()))
            } else if bad_hostname {
                Err(("UnsupportedValue", "a hostname is invalid".to_owned()))
            } else {
                attach(store, key, kind, gateway, parent.section_name.as_deref(), port, &parsed)
            };
            let accepted = match verdict {
                Ok(selected) => {
                    for (listener, hosts) in selected {
                        *self.counts.entry((gateway.object.clone(), listener.clone())).or_default() += 1;
                        self.routes.push(Attachment {
                            gateway: gateway_key.clone(),
                            listener,
                            hosts,
                            order: order.clone(),
                            matches: matches.clone(),
                        });
                    }
                    StatusCondition::yes("Accepted", "Accepted", "attached", generation)
                }
                Err((reason, message)) => StatusCondition::no("Accepted", reason, message, generation),
            };
            let resolved = match &compiled.unresolved {
                None => StatusCondition::yes("ResolvedRefs", "ResolvedRefs", "", generation),
                Some((reason, message)) => StatusCondition::no("ResolvedRefs", reason, message.clone(), generation),
            };
            statuses.push(RouteParentStatus {
                parent_ref,
                controller_name: controller.to_owned(),
                conditions: vec![accepted, resolved],
            });
        }
        self.status.push(ObjectStatus { object, generation, status: GatewayApiStatus::Route { parents: statuses } });
    }
}

/// Why a route is not accepted by a parent: the spec's reason and a message.
type Refusal = (&'static str, String);

/// The Gateway of ours a parent reference names, if any.
fn parent_gateway<'g>(
    route: &ObjectKey,
    parent: &ParentSpec,
    gateways: &'g BTreeMap<ObjectKey, ValidGateway>,
) -> Option<(ObjectKey, &'g ValidGateway)> {
    if parent.group.as_deref().unwrap_or(GROUP) != GROUP || parent.kind.as_deref().unwrap_or("Gateway") != "Gateway" {
        return None;
    }
    let key = ObjectKey::new(parent.namespace.as_deref().unwrap_or(&route.namespace), &parent.name);
    gateways.get(&key).map(|gateway| (key, gateway))
}

/// The listeners of `gateway` a route attaches to, with the hosts it serves on each; or
/// why it attaches to none (reason, message).
fn attach(
    store: &Store,
    route: &ObjectKey,
    kind: &str,
    gateway: &ValidGateway,
    section: Option<&str>,
    port: Option<u16>,
    hostnames: &[HostPattern],
) -> Result<Vec<(String, Vec<HostPattern>)>, Refusal> {
    let named: Vec<_> = gateway
        .listeners
        .iter()
        .filter(|l| section.is_none_or(|s| s == l.name) && port.is_none_or(|p| p == l.port))
        .collect();
    if named.is_empty() {
        return Err(("NoMatchingParent", "no listener has this sectionName and port".into()));
    }
    let allowed: Vec<_> = named
        .into_iter()
        .filter(|l| {
            l.accepts_routes()
                && l.kinds.contains(&kind)
                && l.admits_namespace(&route.namespace, &gateway.object.namespace, store)
        })
        .collect();
    if allowed.is_empty() {
        return Err(("NotAllowedByListeners", "no listener admits this route's kind and namespace".into()));
    }
    let selected: Vec<_> = allowed
        .into_iter()
        .filter_map(|l| {
            let hosts = intersect(&l.hostname, hostnames);
            (!hosts.is_empty()).then(|| (l.name.clone(), hosts))
        })
        .collect();
    if selected.is_empty() {
        return Err(("NoMatchingListenerHostname", "no listener hostname matches the route's hostnames".into()));
    }
    Ok(selected)
}

/// The route's hostnames as served by a listener with hostname `listener`: each narrowed to
/// the listener's (the more specific of two that overlap), those that do not overlap
/// dropped; a route without hostnames serves the listener's.
pub(crate) fn intersect(listener: &HostPattern, route: &[HostPattern]) -> Vec<HostPattern> {
    if route.is_empty() {
        return vec![listener.clone()];
    }
    let mut hosts: Vec<HostPattern> = route.iter().filter_map(|host| narrower(listener, host)).collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

fn narrower(a: &HostPattern, b: &HostPattern) -> Option<HostPattern> {
    match (a, b) {
        (HostPattern::Any, other) | (other, HostPattern::Any) => Some(other.clone()),
        (HostPattern::Exact(x), HostPattern::Exact(y)) => (x == y).then(|| a.clone()),
        (HostPattern::Suffix(_), HostPattern::Exact(host)) => a.matches(host.as_str()).then(|| b.clone()),
        (HostPattern::Exact(host), HostPattern::Suffix(_)) => b.matches(host.as_str()).then(|| a.clone()),
        (HostPattern::Suffix(x), HostPattern::Suffix(y)) => {
            if x == y || HostPattern::Suffix(y.clone()).matches(x.as_str()) {
                Some(a.clone())
            } else if HostPattern::Suffix(x.clone()).matches(y.as_str()) {
                Some(b.clone())
            } else {
                None
            }
        }
    }
}
