//! The status of Gateway API objects as translation decided it, in the shape of their
//! `status` field, so that the admin `/status`, `sluice status` and the Kubernetes status
//! writer show the same thing. `lastTransitionTime` is the writer's business.

use std::net::IpAddr;

use serde::Serialize;

use crate::ObjectRef;

/// The GatewayClass `spec.controllerName` Sluice implements by default
/// (`--gateway-controller`), and the `controllerName` of the route status entries it writes.
pub const GATEWAY_CONTROLLER: &str = "sluice.dev/gateway-controller";

/// The status of one Gateway API object of ours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectStatus {
    /// The object (kind, namespace, name; cluster-scoped kinds have an empty namespace).
    #[serde(skip)]
    pub object: ObjectRef,
    /// `metadata.generation` the status describes.
    #[serde(skip)]
    pub generation: i64,
    /// The `status` field's content.
    #[serde(flatten)]
    pub status: GatewayApiStatus,
}

/// The `status` field of a GatewayClass, a Gateway or a route.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum GatewayApiStatus {
    /// A GatewayClass: `Accepted` (and `SupportedVersion`).
    GatewayClass {
        /// The class's conditions.
        conditions: Vec<Condition>,
    },
    /// A Gateway: its addresses, conditions and one entry per listener.
    Gateway {
        /// The addresses it is served on.
        addresses: Vec<GatewayAddress>,
        /// `Accepted`, `Programmed`.
        conditions: Vec<Condition>,
        /// Per listener, in spec order.
        listeners: Vec<ListenerStatus>,
    },
    /// A route (HTTPRoute, GRPCRoute, TLSRoute, TCPRoute, UDPRoute): one entry per parent
    /// reference that names a Gateway of ours.
    Route {
        /// Per parent reference.
        parents: Vec<RouteParentStatus>,
    },
    /// A policy (BackendTLSPolicy): one entry per Gateway of ours whose routes reach what it
    /// targets.
    Policy {
        /// Per Gateway.
        ancestors: Vec<PolicyAncestorStatus>,
    },
}

/// A policy's status towards one ancestor (a Gateway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAncestorStatus {
    /// The Gateway.
    pub ancestor_ref: ParentRef,
    /// The controller that wrote this entry (`--gateway-controller`).
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs`.
    pub conditions: Vec<Condition>,
}

/// One condition, as `metav1.Condition` without its transition time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Accepted`, `Programmed`, `ResolvedRefs`, `Conflicted`, …
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Whether it holds.
    pub status: ConditionStatus,
    /// A CamelCase reason from the spec (`Accepted`, `NotAllowedByListeners`, …).
    pub reason: &'static str,
    /// For humans.
    pub message: String,
    /// The generation it was computed for.
    pub observed_generation: i64,
}

impl Condition {
    /// A condition that holds.
    pub fn yes(kind: &'static str, reason: &'static str, message: impl Into<String>, generation: i64) -> Self {
        Self { kind, status: ConditionStatus::True, reason, message: message.into(), observed_generation: generation }
    }

    /// A condition that does not hold.
    pub fn no(kind: &'static str, reason: &'static str, message: impl Into<String>, generation: i64) -> Self {
        Self { kind, status: ConditionStatus::False, reason, message: message.into(), observed_generation: generation }
    }
}

/// `True`, `False` or `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// Not known (yet).
    Unknown,
}

/// One address of a Gateway's `status.addresses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayAddress {
    /// Always `IPAddress`: Sluice gives Gateways addresses from its pools.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The address.
    pub value: IpAddr,
}

impl GatewayAddress {
    /// An `IPAddress` entry.
    pub fn ip(value: IpAddr) -> Self {
        Self { kind: "IPAddress", value }
    }
}

/// A listener's entry in a Gateway's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    /// The listener's name.
    pub name: String,
    /// The route kinds it accepts.
    pub supported_kinds: Vec<RouteKind>,
    /// How many routes attached to it.
    pub attached_routes: i32,
    /// `Accepted`, `Programmed`, `ResolvedRefs`, `Conflicted`.
    pub conditions: Vec<Condition>,
}

/// A route kind (`group` is always `gateway.networking.k8s.io`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteKind {
    /// The API group.
    pub group: &'static str,
    /// `HTTPRoute`, `GRPCRoute`, `TLSRoute`, `TCPRoute` or `UDPRoute`.
    pub kind: &'static str,
}

/// A route's status towards one parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    /// The parent reference as the route wrote it (defaults filled in).
    pub parent_ref: ParentRef,
    /// The controller that wrote this entry (`--gateway-controller`).
    pub controller_name: String,
    /// `Accepted`, `ResolvedRefs`.
    pub conditions: Vec<Condition>,
}

/// A parent reference of a route's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// `gateway.networking.k8s.io`.
    pub group: String,
    /// `Gateway`.
    pub kind: String,
    /// The Gateway's namespace.
    pub namespace: String,
    /// The Gateway's name.
    pub name: String,
    /// The listener named, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// The port named, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_in_the_kubernetes_shape() {
        let status = ObjectStatus {
            object: ObjectRef::new("Gateway", "ns", "gw"),
            generation: 2,
            status: GatewayApiStatus::Gateway {
                addresses: vec![GatewayAddress::ip("198.18.0.1".parse().unwrap())],
                conditions: vec![Condition::yes("Accepted", "Accepted", "", 2)],
                listeners: vec![ListenerStatus {
                    name: "http".into(),
                    supported_kinds: vec![RouteKind { group: "gateway.networking.k8s.io", kind: "HTTPRoute" }],
                    attached_routes: 1,
                    conditions: vec![Condition::no("Conflicted", "NoConflicts", "", 2)],
                }],
            },
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(json["addresses"][0], serde_json::json!({"type": "IPAddress", "value": "198.18.0.1"}));
        assert_eq!(json["conditions"][0]["observedGeneration"], 2);
        assert_eq!(json["conditions"][0]["status"], "True");
        assert_eq!(json["listeners"][0]["attachedRoutes"], 1);
        assert_eq!(json["listeners"][0]["supportedKinds"][0]["kind"], "HTTPRoute");
    }
}
