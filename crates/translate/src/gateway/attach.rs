//! Attaching routes to Gateway listeners by their `parentRefs`, as the spec says: the
//! listeners a reference selects (`sectionName`, `port`), those whose `allowedRoutes` admit
//! the route's kind and namespace, and whose hostname intersects the route's.

use std::collections::BTreeMap;

use sluice_config::{
    Diagnostic, GatewayApiStatus, HostPattern, ObjectRef, ObjectStatus, ParentRef, RouteParentStatus, StatusCondition,
};
use sluice_store::{ObjectKey, Store};

use super::http_route::{self, CompiledMatch};
use super::listeners::{parse_host, ValidGateway};
use super::refs::BackendIds;
use super::GROUP;
use crate::regexes::Regexes;

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

/// Attaches every HTTPRoute that names a Gateway of ours.
pub(crate) fn http_routes(
    store: &Store,
    gateways: &BTreeMap<ObjectKey, ValidGateway>,
    controller: &str,
    _regexes: &Regexes,
    backends: &mut BackendIds,
    diagnostics: &mut Vec<Diagnostic>,
) -> Attached {
    let mut attached = Attached::default();
    for (key, route) in &store.http_routes {
        let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
        let ours =
            parents.iter().any(|p| parent_gateway(key, &p.group, &p.kind, &p.namespace, &p.name, gateways).is_some());
        if !ours {
            continue;
        }
        let generation = route.metadata.generation.unwrap_or(1);
        let compiled = http_route::compile(key, route, store, backends, diagnostics);
        let matches = std::sync::Arc::new(compiled.matches);
        let order = (route.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()), key.clone());
        let mut hostnames = Vec::new();
        let mut bad_hostname = None;
        for (i, host) in route.spec.hostnames.iter().flatten().enumerate() {
            match parse_host(host) {
                Ok(host) => hostnames.push(host),
                Err(reason) => bad_hostname = Some((format!("spec.hostnames[{i}]"), reason)),
            }
        }
        let object = ObjectRef::new("HTTPRoute", &key.namespace, &key.name);
        if let Some((field, reason)) = &bad_hostname {
            diagnostics.push(Diagnostic::object(object.clone(), field.clone(), reason.clone()));
        }
        let mut statuses = Vec::new();
        for parent in parents {
            let Some((gateway_key, gateway)) =
                parent_gateway(key, &parent.group, &parent.kind, &parent.namespace, &parent.name, gateways)
            else {
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
            } else if bad_hostname.is_some() {
                Err(("UnsupportedValue", "a hostname is invalid".to_owned()))
            } else {
                attach(store, key, "HTTPRoute", gateway, parent.section_name.as_deref(), port, &hostnames)
            };
            let accepted = match verdict {
                Ok(selected) => {
                    for (listener, hosts) in selected {
                        *attached.counts.entry((gateway.object.clone(), listener.clone())).or_default() += 1;
                        attached.routes.push(Attachment {
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
        attached.status.push(ObjectStatus {
            object,
            generation,
            status: GatewayApiStatus::Route { parents: statuses },
        });
    }
    attached
}

/// Why a route is not accepted by a parent: the spec's reason and a message.
type Refusal = (&'static str, String);

/// The Gateway of ours a parent reference names, if any.
fn parent_gateway<'g>(
    route: &ObjectKey,
    group: &Option<String>,
    kind: &Option<String>,
    namespace: &Option<String>,
    name: &str,
    gateways: &'g BTreeMap<ObjectKey, ValidGateway>,
) -> Option<(ObjectKey, &'g ValidGateway)> {
    if group.as_deref().unwrap_or(GROUP) != GROUP || kind.as_deref().unwrap_or("Gateway") != "Gateway" {
        return None;
    }
    let key = ObjectKey::new(namespace.as_deref().unwrap_or(&route.namespace), name);
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
