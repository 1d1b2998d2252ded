//! Status expectations of the upstream tests, as data, checked against Sluice's `/status`.
//!
//! `/status` lists `gatewayclasses`, `gateways`, `httproutes`, `grpcroutes`, `tlsroutes`,
//! `tcproutes` and `udproutes`, each entry `{"namespace", "name", "status"}` where `status`
//! is the object's Kubernetes `status` field. Each [`Check`] is one helper of
//! `conformance/utils/kubernetes/helpers.go`, with its semantics (conditions matched on type,
//! status and reason, an empty status or reason matching any; "latest" conditions carry the
//! object's `metadata.generation`, which the harness sets to 1 as the API server does on
//! create).

use serde_json::Value;

/// The namespace a bare object name in the tables lives in.
pub const INFRA: &str = "gateway-conformance-infra";

/// A condition to find: type, status (`""`: any) and reason (`""`: any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    /// `Accepted`, `ResolvedRefs`, …
    pub kind: &'static str,
    /// `True`, `False`, or `""`.
    pub status: &'static str,
    /// The reason, or `""`.
    pub reason: &'static str,
}

/// A condition that must hold with `reason` (`""`: any reason).
pub const fn yes(kind: &'static str, reason: &'static str) -> Cond {
    Cond { kind, status: "True", reason }
}

/// A condition that must not hold, with `reason` (`""`: any reason).
pub const fn no(kind: &'static str, reason: &'static str) -> Cond {
    Cond { kind, status: "False", reason }
}

/// The route kinds, with the `/status` list each is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteKind {
    /// `httproutes`.
    Http,
    /// `grpcroutes`.
    Grpc,
    /// `tlsroutes`.
    Tls,
    /// `tcproutes`.
    Tcp,
    /// `udproutes`.
    Udp,
}

impl RouteKind {
    /// The `/status` list.
    pub fn list(self) -> &'static str {
        match self {
            RouteKind::Http => "httproutes",
            RouteKind::Grpc => "grpcroutes",
            RouteKind::Tls => "tlsroutes",
            RouteKind::Tcp => "tcproutes",
            RouteKind::Udp => "udproutes",
        }
    }

    /// The Kubernetes kind.
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tls => "TLSRoute",
            RouteKind::Tcp => "TCPRoute",
            RouteKind::Udp => "UDPRoute",
        }
    }
}

/// A listener's expected status (`gatewayListenersMatch`).
#[derive(Clone, Copy, Debug)]
pub struct ListenerExpect {
    /// The listener.
    pub name: &'static str,
    /// Route kinds that must be supported; empty: the list must be empty.
    pub supported_kinds: &'static [&'static str],
    /// Exactly this many routes attached.
    pub attached_routes: i64,
    /// Conditions that must be present.
    pub conditions: &'static [Cond],
}

/// An expected `status.parents` entry of a route (`parentsForRouteMatch`).
#[derive(Clone, Copy, Debug)]
pub struct ParentExpect {
    /// The Gateway (`ns/name`, or a name in [`INFRA`]).
    pub gateway: &'static str,
    /// Conditions the entry must have.
    pub conditions: &'static [Cond],
}

/// One status expectation.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// `GWCMustHaveAcceptedConditionTrue`: our GatewayClass is accepted (a suite precondition).
    ClassAccepted,
    /// `GatewayAndHTTPRoutesMustBeAccepted` (and the TLS/TCP/UDP variants): the Gateway has an
    /// address and its latest conditions, every listener has `ResolvedRefs`, `Accepted` and
    /// `Programmed` true, and every route has a parent entry for it, from our controller,
    /// with `Accepted` true (reason `Accepted`).
    GatewayAndRoutesAccepted {
        /// The Gateway.
        gateway: &'static str,
        /// The routes' kind.
        kind: RouteKind,
        /// The routes (`ns/name` or a name in [`INFRA`]).
        routes: &'static [&'static str],
        /// Whether every listener must be ready (`GatewayAndTLSRoutesMustBeAccepted` does not
        /// check listeners).
        listeners_ready: bool,
    },
    /// `HTTPRouteMustHaveCondition` (and the other kinds'): the route's parent entry for the
    /// Gateway has the condition; every parent entry has its latest conditions.
    RouteCondition {
        /// The route's kind.
        kind: RouteKind,
        /// The route.
        route: &'static str,
        /// The Gateway.
        gateway: &'static str,
        /// The condition.
        cond: Cond,
    },
    /// `HTTPRouteMustHaveNoAcceptedParents`: no parent entry, or one with `Accepted` false.
    RouteNoAcceptedParents {
        /// The route's kind.
        kind: RouteKind,
        /// The route.
        route: &'static str,
    },
    /// `HTTPRouteMustHaveParents`: every expected parent entry is there.
    RouteParents {
        /// The route's kind.
        kind: RouteKind,
        /// The route.
        route: &'static str,
        /// Expected entries.
        parents: &'static [ParentExpect],
        /// Whether a parent entry must name the Gateway's namespace.
        namespace_required: bool,
    },
    /// `GatewayMustHaveZeroRoutes`: no listener status, or one listener with no route.
    GatewayZeroRoutes {
        /// The Gateway.
        gateway: &'static str,
    },
    /// `GatewayMustHaveCondition` (latest conditions first).
    GatewayCondition {
        /// The Gateway.
        gateway: &'static str,
        /// The condition.
        cond: Cond,
    },
    /// `GatewayMustHaveLatestConditions`.
    GatewayLatestConditions {
        /// The Gateway.
        gateway: &'static str,
    },
    /// `GatewayStatusMustHaveListeners`: exactly these listeners (latest conditions first).
    GatewayListeners {
        /// The Gateway.
        gateway: &'static str,
        /// The listeners.
        listeners: &'static [ListenerExpect],
    },
    /// `BackendTLSPolicyMustHaveCondition`: the policy's `ancestors` entry for the Gateway,
    /// from our controller, has the condition.
    PolicyCondition {
        /// The BackendTLSPolicy.
        policy: &'static str,
        /// The ancestor Gateway.
        gateway: &'static str,
        /// The condition.
        cond: Cond,
    },
    /// `GatewayListenerMustHaveConditions`: the named listener has every condition.
    ListenerConditions {
        /// The Gateway.
        gateway: &'static str,
        /// The listener.
        listener: &'static str,
        /// The conditions.
        conditions: &'static [Cond],
    },
}

impl Check {
    /// A one-line description for the report.
    pub fn label(&self) -> String {
        match self {
            Check::ClassAccepted => "GatewayClass Accepted=True".to_owned(),
            Check::GatewayAndRoutesAccepted { gateway, routes, .. } => {
                format!("Gateway {gateway} and routes {routes:?} accepted")
            }
            Check::RouteCondition { kind, route, gateway, cond } => {
                format!("{} {route} parent {gateway}: {}", kind.kind(), cond_label(cond))
            }
            Check::RouteNoAcceptedParents { kind, route } => format!("{} {route} has no accepted parent", kind.kind()),
            Check::RouteParents { kind, route, .. } => format!("{} {route} parents", kind.kind()),
            Check::GatewayZeroRoutes { gateway } => format!("Gateway {gateway} has no route attached"),
            Check::GatewayCondition { gateway, cond } => format!("Gateway {gateway}: {}", cond_label(cond)),
            Check::GatewayLatestConditions { gateway } => format!("Gateway {gateway} has its latest conditions"),
            Check::GatewayListeners { gateway, listeners } => {
                let names: Vec<&str> = listeners.iter().map(|l| l.name).collect();
                format!("Gateway {gateway} listeners {names:?}")
            }
            Check::ListenerConditions { gateway, listener, conditions } => {
                let conds: Vec<String> = conditions.iter().map(cond_label).collect();
                format!("Gateway {gateway} listener {listener}: {}", conds.join(", "))
            }
            Check::PolicyCondition { policy, gateway, cond } => {
                format!("BackendTLSPolicy {policy} ancestor {gateway}: {}", cond_label(cond))
            }
        }
    }

    /// The Gateways this check reads.
    pub fn gateways(&self) -> Vec<&'static str> {
        match self {
            Check::ClassAccepted | Check::RouteNoAcceptedParents { .. } => Vec::new(),
            Check::GatewayAndRoutesAccepted { gateway, .. }
            | Check::RouteCondition { gateway, .. }
            | Check::GatewayZeroRoutes { gateway }
            | Check::GatewayCondition { gateway, .. }
            | Check::GatewayLatestConditions { gateway }
            | Check::GatewayListeners { gateway, .. }
            | Check::ListenerConditions { gateway, .. }
            | Check::PolicyCondition { gateway, .. } => vec![gateway],
            Check::RouteParents { parents, .. } => parents.iter().map(|p| p.gateway).collect(),
        }
    }

    /// The routes this check reads, with their kind.
    pub fn routes(&self) -> Vec<(RouteKind, &'static str)> {
        match self {
            Check::GatewayAndRoutesAccepted { kind, routes, .. } => routes.iter().map(|r| (*kind, *r)).collect(),
            Check::RouteCondition { kind, route, .. }
            | Check::RouteNoAcceptedParents { kind, route }
            | Check::RouteParents { kind, route, .. } => vec![(*kind, route)],
            _ => Vec::new(),
        }
    }
}

fn cond_label(c: &Cond) -> String {
    let status = if c.status.is_empty() { "any" } else { c.status };
    let reason = if c.reason.is_empty() { String::new() } else { format!(" ({})", c.reason) };
    format!("{}={status}{reason}", c.kind)
}

/// `ns/name` split; a bare name is in [`INFRA`].
pub fn split_name(name: &str) -> (&str, &str) {
    name.split_once('/').unwrap_or((INFRA, name))
}

/// What the checks need besides `/status`.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// Our controller name (`spec.controllerName` of our GatewayClass).
    pub controller: &'a str,
    /// Our GatewayClass.
    pub class: &'a str,
    /// `metadata.generation` of the objects as written.
    pub generation: i64,
}

/// The `status` of `ns/name` in list `list`.
pub fn find<'a>(doc: &'a Value, list: &str, ns: &str, name: &str) -> Result<&'a Value, String> {
    let entries = doc.get(list).and_then(Value::as_array).ok_or_else(|| format!("/status has no `{list}` list"))?;
    entries
        .iter()
        .find(|e| {
            e.get("name").and_then(Value::as_str) == Some(name)
                && e.get("namespace").and_then(Value::as_str).unwrap_or_default() == ns
        })
        .map(|e| e.get("status").unwrap_or(&Value::Null))
        .ok_or_else(|| {
            let shown = if ns.is_empty() { name.to_owned() } else { format!("{ns}/{name}") };
            format!("{shown} is not in /status `{list}`")
        })
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// `findConditionInList`.
pub fn has_condition(conditions: &[Value], want: &Cond) -> bool {
    conditions.iter().any(|c| {
        text(c, "type") == want.kind
            && (want.status.is_empty() || text(c, "status") == want.status)
            && (want.reason.is_empty() || text(c, "reason") == want.reason)
    })
}

/// `conditionsMatch`: at least as many conditions as expected, each expected one present.
fn conditions_match(actual: &[Value], expected: &[Cond]) -> Result<(), String> {
    if actual.len() < expected.len() {
        return Err(format!("expected at least {} conditions, got {}", expected.len(), actual.len()));
    }
    for want in expected {
        if !has_condition(actual, want) {
            return Err(format!("no condition {} in {}", cond_label(want), show_conditions(actual)));
        }
    }
    Ok(())
}

/// Conditions as `Type=Status(Reason)`.
pub fn show_conditions(conditions: &[Value]) -> String {
    let parts: Vec<String> = conditions
        .iter()
        .map(|c| format!("{}={}({})", text(c, "type"), text(c, "status"), text(c, "reason")))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// `ConditionsHaveLatestObservedGeneration`.
fn latest(conditions: &[Value], generation: i64, what: &str) -> Result<(), String> {
    let stale: Vec<String> = conditions
        .iter()
        .filter(|c| c.get("observedGeneration").and_then(Value::as_i64) != Some(generation))
        .map(|c| format!("{} (generation {})", text(c, "type"), c.get("observedGeneration").unwrap_or(&Value::Null)))
        .collect();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!("{what}: expected observedGeneration {generation} for all conditions, stale: {}", stale.join(", ")))
    }
}

/// Evaluates one check against a `/status` document.
pub fn evaluate(check: &Check, doc: &Value, cx: &Context<'_>) -> Result<(), String> {
    match check {
        Check::PolicyCondition { policy, gateway, cond } => {
            let (ns, name) = split_name(policy);
            let (gw_ns, gw_name) = split_name(gateway);
            let status = find(doc, "backendtlspolicies", ns, name)?;
            let ancestor = list(status, "ancestors").iter().find(|a| {
                let reference = &a["ancestorRef"];
                reference["name"] == gw_name
                    && reference["namespace"].as_str().unwrap_or(ns) == gw_ns
                    && a["controllerName"] == cx.controller
            });
            let Some(ancestor) = ancestor else {
                return Err(format!("BackendTLSPolicy {policy} has no ancestor entry for Gateway {gateway}"));
            };
            let conditions = list(ancestor, "conditions");
            if has_condition(conditions, cond) {
                Ok(())
            } else {
                Err(format!(
                    "BackendTLSPolicy {policy} ancestor {gateway}: want {}, have {}",
                    cond_label(cond),
                    show_conditions(conditions)
                ))
            }
        }
        Check::ClassAccepted => {
            let status = find(doc, "gatewayclasses", "", cx.class)?;
            let conditions = list(status, "conditions");
            if has_condition(conditions, &yes("Accepted", "")) {
                Ok(())
            } else {
                Err(format!("GatewayClass {}: no Accepted=True in {}", cx.class, show_conditions(conditions)))
            }
        }
        Check::GatewayAndRoutesAccepted { gateway, kind, routes, listeners_ready } => {
            let (gw_ns, gw_name) = split_name(gateway);
            let status = find(doc, "gateways", gw_ns, gw_name)?;
            latest(list(status, "conditions"), cx.generation, &format!("Gateway {gateway}"))?;
            if !list(status, "addresses").iter().any(|a| a.get("type").is_some_and(|t| !t.is_null())) {
                return Err(format!("Gateway {gateway} has no address in status"));
            }
            for route in *routes {
                const ACCEPTED: &[Cond] = &[yes("Accepted", "Accepted")];
                let parents = [ParentExpect { gateway, conditions: ACCEPTED }];
                let (route_ns, _) = split_name(route);
                route_parents(doc, *kind, route, &parents, route_ns != gw_ns, cx)?;
            }
            let ready: &[Cond] = if *listeners_ready {
                &[yes("ResolvedRefs", ""), yes("Accepted", ""), yes("Programmed", "")]
            } else {
                &[]
            };
            for want in ready {
                for listener in list(status, "listeners") {
                    if !has_condition(list(listener, "conditions"), want) {
                        return Err(format!(
                            "Gateway {gateway} listener {}: no {} in {}",
                            text(listener, "name"),
                            cond_label(want),
                            show_conditions(list(listener, "conditions"))
                        ));
                    }
                }
            }
            Ok(())
        }
        Check::RouteCondition { kind, route, gateway, cond } => {
            let (ns, name) = split_name(route);
            let (gw_ns, gw_name) = split_name(gateway);
            let status = find(doc, kind.list(), ns, name)?;
            let parents = list(status, "parents");
            for parent in parents {
                latest(list(parent, "conditions"), cx.generation, &format!("{} {route}", kind.kind()))?;
            }
            let found = parents.iter().any(|p| {
                let pref = p.get("parentRef").unwrap_or(&Value::Null);
                let pref_ns = pref.get("namespace").and_then(Value::as_str);
                text(pref, "name") == gw_name
                    && pref_ns.is_none_or(|n| n == gw_ns)
                    && has_condition(list(p, "conditions"), cond)
            });
            if found {
                Ok(())
            } else {
                Err(format!(
                    "{} {route}: no parent {gateway} with {} (parents: {})",
                    kind.kind(),
                    cond_label(cond),
                    show_parents(parents)
                ))
            }
        }
        Check::RouteNoAcceptedParents { kind, route } => {
            let (ns, name) = split_name(route);
            let status = find(doc, kind.list(), ns, name)?;
            let parents = list(status, "parents");
            match parents {
                [] => Ok(()),
                [only] => {
                    latest(list(only, "conditions"), cx.generation, &format!("{} {route}", kind.kind()))?;
                    conditions_match(list(only, "conditions"), &[no("Accepted", "")])
                        .map_err(|e| format!("{} {route}: {e}", kind.kind()))
                }
                more => Err(format!("{} {route}: expected at most one parent, got {}", kind.kind(), more.len())),
            }
        }
        Check::RouteParents { kind, route, parents, namespace_required } => {
            route_parents(doc, *kind, route, parents, *namespace_required, cx)
        }
        Check::GatewayZeroRoutes { gateway } => {
            let (ns, name) = split_name(gateway);
            let status = find(doc, "gateways", ns, name)?;
            latest(list(status, "conditions"), cx.generation, &format!("Gateway {gateway}"))?;
            match list(status, "listeners") {
                [] => Ok(()),
                [only] if only.get("attachedRoutes").and_then(Value::as_i64) == Some(0) => Ok(()),
                listeners => Err(format!(
                    "Gateway {gateway}: want no listener status or one listener with 0 routes, got {}",
                    show_listeners(listeners)
                )),
            }
        }
        Check::GatewayCondition { gateway, cond } => {
            let (ns, name) = split_name(gateway);
            let status = find(doc, "gateways", ns, name)?;
            let conditions = list(status, "conditions");
            latest(conditions, cx.generation, &format!("Gateway {gateway}"))?;
            if has_condition(conditions, cond) {
                Ok(())
            } else {
                Err(format!("Gateway {gateway}: no {} in {}", cond_label(cond), show_conditions(conditions)))
            }
        }
        Check::GatewayLatestConditions { gateway } => {
            let (ns, name) = split_name(gateway);
            let status = find(doc, "gateways", ns, name)?;
            latest(list(status, "conditions"), cx.generation, &format!("Gateway {gateway}"))
        }
        Check::GatewayListeners { gateway, listeners } => {
            let (ns, name) = split_name(gateway);
            let status = find(doc, "gateways", ns, name)?;
            latest(list(status, "conditions"), cx.generation, &format!("Gateway {gateway}"))?;
            listeners_match(gateway, listeners, list(status, "listeners"))
        }
        Check::ListenerConditions { gateway, listener, conditions } => {
            let (ns, name) = split_name(gateway);
            let status = find(doc, "gateways", ns, name)?;
            let entry = list(status, "listeners")
                .iter()
                .find(|l| text(l, "name") == *listener)
                .ok_or_else(|| format!("Gateway {gateway}: listener {listener} not in status"))?;
            for want in *conditions {
                if !has_condition(list(entry, "conditions"), want) {
                    return Err(format!(
                        "Gateway {gateway} listener {listener}: no {} in {}",
                        cond_label(want),
                        show_conditions(list(entry, "conditions"))
                    ));
                }
            }
            Ok(())
        }
    }
}

/// `RouteMustHaveParents` with `parentsForRouteMatch`.
fn route_parents(
    doc: &Value,
    kind: RouteKind,
    route: &str,
    expected: &[ParentExpect],
    namespace_required: bool,
    cx: &Context<'_>,
) -> Result<(), String> {
    let (ns, name) = split_name(route);
    let status = find(doc, kind.list(), ns, name)?;
    let actual = list(status, "parents");
    for parent in actual {
        latest(list(parent, "conditions"), cx.generation, &format!("{} {route}", kind.kind()))?;
    }
    for want in expected {
        let (gw_ns, gw_name) = split_name(want.gateway);
        let matched = actual.iter().any(|p| {
            let pref = p.get("parentRef").unwrap_or(&Value::Null);
            let pref_ns = pref.get("namespace").and_then(Value::as_str);
            text(p, "controllerName") == cx.controller
                && pref.get("group").and_then(Value::as_str) == Some("gateway.networking.k8s.io")
                && pref.get("kind").and_then(Value::as_str) == Some("Gateway")
                && text(pref, "name") == gw_name
                && (pref_ns == Some(gw_ns) || (!namespace_required && pref_ns.is_none()))
                && conditions_match(list(p, "conditions"), want.conditions).is_ok()
        });
        if !matched {
            let conds: Vec<String> = want.conditions.iter().map(cond_label).collect();
            return Err(format!(
                "{} {route}: no parent entry for Gateway {} from {} with {} (parents: {})",
                kind.kind(),
                want.gateway,
                cx.controller,
                conds.join(", "),
                show_parents(actual)
            ));
        }
    }
    Ok(())
}

/// `gatewayListenersMatch`.
fn listeners_match(gateway: &str, expected: &[ListenerExpect], actual: &[Value]) -> Result<(), String> {
    if expected.len() != actual.len() {
        return Err(format!(
            "Gateway {gateway}: expected {} listener statuses, got {}: {}",
            expected.len(),
            actual.len(),
            show_listeners(actual)
        ));
    }
    for want in expected {
        let got = actual
            .iter()
            .find(|l| text(l, "name") == want.name)
            .ok_or_else(|| format!("Gateway {gateway}: no status for listener {}", want.name))?;
        let kinds: Vec<(&str, &str)> = list(got, "supportedKinds")
            .iter()
            .map(|k| {
                let group = k.get("group").and_then(Value::as_str).unwrap_or("gateway.networking.k8s.io");
                (group, text(k, "kind"))
            })
            .collect();
        if want.supported_kinds.is_empty() && !kinds.is_empty() {
            return Err(format!("Gateway {gateway} listener {}: expected no supportedKinds, got {kinds:?}", want.name));
        }
        for kind in want.supported_kinds {
            if !kinds.contains(&("gateway.networking.k8s.io", *kind)) {
                return Err(format!(
                    "Gateway {gateway} listener {}: {kind} not in supportedKinds {kinds:?}",
                    want.name
                ));
            }
        }
        let attached = got.get("attachedRoutes").and_then(Value::as_i64).unwrap_or(0);
        if attached != want.attached_routes {
            return Err(format!(
                "Gateway {gateway} listener {}: expected attachedRoutes {}, got {attached}",
                want.name, want.attached_routes
            ));
        }
        conditions_match(list(got, "conditions"), want.conditions)
            .map_err(|e| format!("Gateway {gateway} listener {}: {e}", want.name))?;
    }
    Ok(())
}

fn show_parents(parents: &[Value]) -> String {
    let parts: Vec<String> = parents
        .iter()
        .map(|p| {
            let pref = p.get("parentRef").unwrap_or(&Value::Null);
            format!(
                "{}/{}{} by {:?} {}",
                text(pref, "namespace"),
                text(pref, "name"),
                pref.get("sectionName").and_then(Value::as_str).map(|s| format!("#{s}")).unwrap_or_default(),
                text(p, "controllerName"),
                show_conditions(list(p, "conditions"))
            )
        })
        .collect();
    format!("[{}]", parts.join("; "))
}

fn show_listeners(listeners: &[Value]) -> String {
    let parts: Vec<String> = listeners
        .iter()
        .map(|l| {
            format!(
                "{} routes={} {}",
                text(l, "name"),
                l.get("attachedRoutes").unwrap_or(&Value::Null),
                show_conditions(list(l, "conditions"))
            )
        })
        .collect();
    format!("[{}]", parts.join("; "))
}

/// The first address of a Gateway in `/status` whose type is set.
pub fn gateway_address(doc: &Value, gateway: &str) -> Result<String, String> {
    let (ns, name) = split_name(gateway);
    let status = find(doc, "gateways", ns, name)?;
    list(status, "addresses")
        .iter()
        .find(|a| a.get("type").is_some_and(|t| !t.is_null()))
        .and_then(|a| a.get("value").and_then(Value::as_str))
        .map(str::to_owned)
        .ok_or_else(|| format!("Gateway {gateway} has no address in /status"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CX: Context<'static> =
        Context { controller: "sluice.dev/gateway-controller", class: "sluice-conformance", generation: 1 };

    fn c(kind: &str, status: &str, reason: &str) -> Value {
        json!({"type": kind, "status": status, "reason": reason, "message": "", "observedGeneration": 1})
    }

    fn parent(gw: &str, conditions: Vec<Value>) -> Value {
        json!({
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": INFRA, "name": gw},
            "controllerName": "sluice.dev/gateway-controller",
            "conditions": conditions
        })
    }

    fn listener(name: &str, routes: i64, conditions: Vec<Value>) -> Value {
        json!({"name": name, "supportedKinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}],
            "attachedRoutes": routes, "conditions": conditions})
    }

    fn ready_listener(name: &str, routes: i64) -> Value {
        listener(
            name,
            routes,
            vec![
                c("Accepted", "True", "Accepted"),
                c("ResolvedRefs", "True", "ResolvedRefs"),
                c("Programmed", "True", "Programmed"),
            ],
        )
    }

    fn doc(gateways: Vec<Value>, routes: Vec<Value>) -> Value {
        json!({
            "services": [], "ingresses": [],
            "gatewayclasses": [{"namespace": "", "name": "sluice-conformance",
                "status": {"conditions": [c("Accepted", "True", "Accepted")]}}],
            "gateways": gateways, "httproutes": routes, "grpcroutes": [], "tlsroutes": [], "tcproutes": [], "udproutes": []
        })
    }

    fn gateway(name: &str, address: bool, listeners: Vec<Value>) -> Value {
        let addresses = if address { json!([{"type": "IPAddress", "value": "127.0.90.1"}]) } else { json!([]) };
        json!({"namespace": INFRA, "name": name, "status": {
            "addresses": addresses,
            "conditions": [c("Accepted", "True", "Accepted"), c("Programmed", "True", "Programmed")],
            "listeners": listeners}})
    }

    fn route(name: &str, parents: Vec<Value>) -> Value {
        json!({"namespace": INFRA, "name": name, "status": {"parents": parents}})
    }

    const ACCEPTED: Check = Check::GatewayAndRoutesAccepted {
        gateway: "same-namespace",
        kind: RouteKind::Http,
        routes: &["matching"],
        listeners_ready: true,
    };

    #[test]
    fn gateway_and_routes_accepted() {
        let good = doc(
            vec![gateway("same-namespace", true, vec![ready_listener("http", 1)])],
            vec![route(
                "matching",
                vec![parent(
                    "same-namespace",
                    vec![c("Accepted", "True", "Accepted"), c("ResolvedRefs", "True", "ResolvedRefs")],
                )],
            )],
        );
        assert_eq!(evaluate(&ACCEPTED, &good, &CX), Ok(()));
        assert_eq!(evaluate(&Check::ClassAccepted, &good, &CX), Ok(()));
        assert_eq!(gateway_address(&good, "same-namespace").as_deref(), Ok("127.0.90.1"));

        let no_address = doc(
            vec![gateway("same-namespace", false, vec![ready_listener("http", 1)])],
            vec![route("matching", vec![parent("same-namespace", vec![c("Accepted", "True", "Accepted")])])],
        );
        assert!(evaluate(&ACCEPTED, &no_address, &CX).unwrap_err().contains("no address"));

        let not_programmed = doc(
            vec![gateway(
                "same-namespace",
                true,
                vec![listener(
                    "http",
                    1,
                    vec![c("Accepted", "True", "Accepted"), c("ResolvedRefs", "True", "ResolvedRefs")],
                )],
            )],
            vec![route("matching", vec![parent("same-namespace", vec![c("Accepted", "True", "Accepted")])])],
        );
        assert!(evaluate(&ACCEPTED, &not_programmed, &CX).unwrap_err().contains("Programmed=True"));

        let wrong_reason = doc(
            vec![gateway("same-namespace", true, vec![ready_listener("http", 1)])],
            vec![route("matching", vec![parent("same-namespace", vec![c("Accepted", "True", "Whatever")])])],
        );
        assert!(evaluate(&ACCEPTED, &wrong_reason, &CX).unwrap_err().contains("no parent entry"));

        let mut other_controller = parent("same-namespace", vec![c("Accepted", "True", "Accepted")]);
        other_controller["controllerName"] = json!("example.com/other");
        let foreign =
            doc(vec![gateway("same-namespace", true, vec![])], vec![route("matching", vec![other_controller])]);
        assert!(evaluate(&ACCEPTED, &foreign, &CX).is_err());

        let missing = doc(vec![gateway("same-namespace", true, vec![])], vec![]);
        assert!(evaluate(&ACCEPTED, &missing, &CX).unwrap_err().contains("not in /status"));
        let no_lists = json!({"services": [], "ingresses": []});
        assert!(evaluate(&ACCEPTED, &no_lists, &CX).unwrap_err().contains("no `gateways` list"));
    }

    #[test]
    fn stale_generations_fail() {
        let mut gw = gateway("same-namespace", true, vec![ready_listener("http", 0)]);
        gw["status"]["conditions"][0]["observedGeneration"] = json!(0);
        let d = doc(vec![gw], vec![]);
        let err = evaluate(&Check::GatewayLatestConditions { gateway: "same-namespace" }, &d, &CX).unwrap_err();
        assert!(err.contains("stale: Accepted (generation 0)"), "{err}");
    }

    #[test]
    fn route_conditions_and_parents() {
        let d = doc(
            vec![gateway("same-namespace", true, vec![ready_listener("http", 0)])],
            vec![
                route(
                    "invalid",
                    vec![parent(
                        "same-namespace",
                        vec![c("Accepted", "True", "Accepted"), c("ResolvedRefs", "False", "BackendNotFound")],
                    )],
                ),
                route("refused", vec![parent("same-namespace", vec![c("Accepted", "False", "NotAllowedByListeners")])]),
                route("orphan", vec![]),
            ],
        );
        let resolved = |route, reason| Check::RouteCondition {
            kind: RouteKind::Http,
            route,
            gateway: "same-namespace",
            cond: no("ResolvedRefs", reason),
        };
        assert_eq!(evaluate(&resolved("invalid", "BackendNotFound"), &d, &CX), Ok(()));
        assert!(evaluate(&resolved("invalid", "RefNotPermitted"), &d, &CX)
            .unwrap_err()
            .contains("no parent same-namespace"));
        let other_gateway = Check::RouteCondition {
            kind: RouteKind::Http,
            route: "invalid",
            gateway: "gateway-conformance-web-backend/same-namespace",
            cond: no("ResolvedRefs", ""),
        };
        assert!(evaluate(&other_gateway, &d, &CX).is_err(), "the namespace must match");
        for route in ["refused", "orphan"] {
            assert_eq!(evaluate(&Check::RouteNoAcceptedParents { kind: RouteKind::Http, route }, &d, &CX), Ok(()));
        }
        assert!(evaluate(&Check::RouteNoAcceptedParents { kind: RouteKind::Http, route: "invalid" }, &d, &CX).is_err());
        const PARENTS: &[ParentExpect] =
            &[ParentExpect { gateway: "same-namespace", conditions: &[no("Accepted", "NotAllowedByListeners")] }];
        let parents =
            Check::RouteParents { kind: RouteKind::Http, route: "refused", parents: PARENTS, namespace_required: true };
        assert_eq!(evaluate(&parents, &d, &CX), Ok(()));
    }

    #[test]
    fn listeners_exactly() {
        const TWO: &[ListenerExpect] = &[
            ListenerExpect {
                name: "http",
                supported_kinds: &["HTTPRoute"],
                attached_routes: 1,
                conditions: &[yes("Accepted", "")],
            },
            ListenerExpect {
                name: "invalid",
                supported_kinds: &[],
                attached_routes: 0,
                conditions: &[no("Accepted", "UnsupportedProtocol")],
            },
        ];
        let check = Check::GatewayListeners { gateway: "gw", listeners: TWO };
        let invalid = json!({"name": "invalid", "supportedKinds": [], "attachedRoutes": 0,
            "conditions": [c("Accepted", "False", "UnsupportedProtocol")]});
        let good = doc(vec![gateway("gw", false, vec![ready_listener("http", 1), invalid.clone()])], vec![]);
        assert_eq!(evaluate(&check, &good, &CX), Ok(()));
        let one = doc(vec![gateway("gw", false, vec![ready_listener("http", 1)])], vec![]);
        assert!(evaluate(&check, &one, &CX).unwrap_err().contains("expected 2 listener statuses, got 1"));
        let attached = doc(vec![gateway("gw", false, vec![ready_listener("http", 2), invalid.clone()])], vec![]);
        assert!(evaluate(&check, &attached, &CX).unwrap_err().contains("attachedRoutes 1, got 2"));
        let mut kinds = invalid;
        kinds["supportedKinds"] = json!([{"kind": "HTTPRoute"}]);
        let kinded = doc(vec![gateway("gw", false, vec![ready_listener("http", 1), kinds])], vec![]);
        assert!(evaluate(&check, &kinded, &CX).unwrap_err().contains("expected no supportedKinds"));

        let zero = Check::GatewayZeroRoutes { gateway: "gw" };
        assert_eq!(
            evaluate(&zero, &doc(vec![gateway("gw", false, vec![ready_listener("http", 0)])], vec![]), &CX),
            Ok(())
        );
        assert!(
            evaluate(&zero, &doc(vec![gateway("gw", false, vec![ready_listener("http", 1)])], vec![]), &CX).is_err()
        );

        const PROGRAMMED: &[Cond] = &[yes("Programmed", "")];
        let listener_conds = Check::ListenerConditions { gateway: "gw", listener: "http", conditions: PROGRAMMED };
        assert_eq!(evaluate(&listener_conds, &good, &CX), Ok(()));
        let missing = Check::ListenerConditions { gateway: "gw", listener: "nope", conditions: &[] };
        assert!(evaluate(&missing, &good, &CX).is_err());
    }
}
