//! The collections the fake serves and the discovery documents listing them.

use std::collections::BTreeMap;

use http::Response;
use serde_json::{json, Value};

use crate::serve::{not_served, respond, Body};
use crate::State;

/// The Gateway API collections, each defined by a CustomResourceDefinition that a cluster may
/// lack: see [`crate::FakeApi::uninstall`]. All are installed when the fake starts.
pub const GATEWAY_API_CRDS: &[&str] = &[
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "tlsroutes",
    "tcproutes",
    "udproutes",
    "referencegrants",
    "backendtlspolicies",
];

/// MetalLB's collections (`metallb.io`), CustomResourceDefinitions like the Gateway API's: see
/// [`crate::FakeApi::uninstall`]. All are installed when the fake starts.
pub const METALLB_CRDS: &[&str] =
    &["ipaddresspools", "l2advertisements", "bgpadvertisements", "bgppeers", "communities"];

/// Every collection the fake serves: plural, apiVersion, kind, namespaced.
pub(crate) const COLLECTIONS: &[(&str, &str, &str, bool)] = &[
    ("ingresses", "networking.k8s.io/v1", "Ingress", true),
    ("ingressclasses", "networking.k8s.io/v1", "IngressClass", false),
    ("services", "v1", "Service", true),
    ("secrets", "v1", "Secret", true),
    ("configmaps", "v1", "ConfigMap", true),
    ("endpoints", "v1", "Endpoints", true),
    ("namespaces", "v1", "Namespace", false),
    ("nodes", "v1", "Node", false),
    ("endpointslices", "discovery.k8s.io/v1", "EndpointSlice", true),
    ("leases", "coordination.k8s.io/v1", "Lease", true),
    ("events", "events.k8s.io/v1", "Event", true),
    ("gatewayclasses", "gateway.networking.k8s.io/v1", "GatewayClass", false),
    ("gateways", "gateway.networking.k8s.io/v1", "Gateway", true),
    ("httproutes", "gateway.networking.k8s.io/v1", "HTTPRoute", true),
    ("grpcroutes", "gateway.networking.k8s.io/v1", "GRPCRoute", true),
    ("tlsroutes", "gateway.networking.k8s.io/v1", "TLSRoute", true),
    ("tcproutes", "gateway.networking.k8s.io/v1alpha2", "TCPRoute", true),
    ("udproutes", "gateway.networking.k8s.io/v1alpha2", "UDPRoute", true),
    ("referencegrants", "gateway.networking.k8s.io/v1", "ReferenceGrant", true),
    ("backendtlspolicies", "gateway.networking.k8s.io/v1", "BackendTLSPolicy", true),
    ("ipaddresspools", "metallb.io/v1beta1", "IPAddressPool", true),
    ("l2advertisements", "metallb.io/v1beta1", "L2Advertisement", true),
    ("bgpadvertisements", "metallb.io/v1beta1", "BGPAdvertisement", true),
    ("communities", "metallb.io/v1beta1", "Community", true),
    ("bgppeers", "metallb.io/v1beta2", "BGPPeer", true),
];

/// apiVersion and kind of the objects of a collection.
pub(crate) fn type_of(plural: &str) -> (&'static str, &'static str) {
    COLLECTIONS
        .iter()
        .find(|(name, ..)| *name == plural)
        .map_or(("v1", "Unknown"), |(_, api_version, kind, _)| (*api_version, *kind))
}

/// The discovery documents of the API groups (`GET /apis`: the groups and versions serving
/// some installed collection; `GET /apis/GROUP/VERSION`: its resources), as `kubectl` and
/// clients checking for CustomResourceDefinitions read them. `None` for other paths.
pub(crate) fn discovery(state: &State, path: &str) -> Option<Response<Body>> {
    let served = || {
        COLLECTIONS
            .iter()
            .filter(|(plural, api_version, ..)| api_version.contains('/') && !state.uninstalled.contains(*plural))
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["apis"] => {
            let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
            for (_, api_version, ..) in served() {
                let (group, version) = api_version.split_once('/')?;
                let versions = groups.entry(group).or_default();
                let entry = json!({"groupVersion": api_version, "version": version});
                if !versions.contains(&entry) {
                    versions.push(entry);
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(name, versions)| {
                    json!({"name": name, "preferredVersion": versions[0].clone(), "versions": versions})
                })
                .collect();
            Some(respond(200, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})))
        }
        ["apis", group, version] => {
            let group_version = format!("{group}/{version}");
            let mut resources = Vec::new();
            for (plural, _, kind, namespaced) in served().filter(|(_, v, ..)| *v == group_version) {
                let verbs = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
                resources.push(json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced,
                                      "kind": kind, "verbs": verbs}));
                resources
                    .push(json!({"name": format!("{plural}/status"), "singularName": "", "namespaced": namespaced,
                                      "kind": kind, "verbs": ["get", "patch", "update"]}));
            }
            if resources.is_empty() {
                return Some(not_served());
            }
            let list = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                              "resources": resources});
            Some(respond(200, &list))
        }
        _ => None,
    }
}
