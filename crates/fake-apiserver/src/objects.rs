//! Kubernetes objects as JSON, the way clients create them (the fake fills in apiVersion,
//! kind, resourceVersion, uid and creationTimestamp on [`crate::FakeApi::apply`]).

use serde_json::{json, Value};

/// An Ingress of class `sluice`: `host`, path `/` (Prefix) to Service `web` port 80.
pub fn ingress(namespace: &str, name: &str, host: &str) -> Value {
    ingress_routes(namespace, name, host, &[("/", "web", 80)])
}

/// An Ingress of class `sluice` with one rule for `host` and one Prefix path per
/// `(path, service, service port number)`.
pub fn ingress_routes(namespace: &str, name: &str, host: &str, routes: &[(&str, &str, u16)]) -> Value {
    let paths: Vec<Value> = routes
        .iter()
        .map(|(path, service, port)| {
            json!({"path": path, "pathType": "Prefix",
                   "backend": {"service": {"name": service, "port": {"number": port}}}})
        })
        .collect();
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "ingressClassName": "sluice",
            "rules": [{"host": host, "http": {"paths": paths}}]
        }
    })
}

/// An IngressClass whose controller is Sluice's (`sluice.dev/ingress-controller`).
pub fn ingress_class(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"controller": "sluice.dev/ingress-controller"}})
}

/// A Service with one port `http` 80 → 8080, ClusterIP or LoadBalancer.
pub fn service(namespace: &str, name: &str, load_balancer: bool) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "type": if load_balancer { "LoadBalancer" } else { "ClusterIP" },
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        }
    })
}

/// An EndpointSlice of Service `service`: one ready endpoint 10.0.0.1, port `http` 8080.
pub fn endpoint_slice(namespace: &str, name: &str, service: &str) -> Value {
    endpoint_slice_at(namespace, name, service, &["10.0.0.1"], 8080)
}

/// An EndpointSlice of Service `service`: one ready endpoint per address, all on port
/// `http` = `port` (what [`service`]'s port `http` resolves to).
pub fn endpoint_slice_at(namespace: &str, name: &str, service: &str, addresses: &[&str], port: u16) -> Value {
    let endpoints: Vec<Value> =
        addresses.iter().map(|address| json!({"addresses": [address], "conditions": {"ready": true}})).collect();
    json!({
        "metadata": {"namespace": namespace, "name": name,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}]
    })
}

/// A Secret of type `type_` with empty `tls.crt` and `tls.key`.
pub fn secret(namespace: &str, name: &str, type_: &str) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "type": type_,
           "data": {"tls.crt": "", "tls.key": ""}})
}

/// The Gateway API group.
const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

/// A Namespace with labels (Gateway listeners select routes' namespaces by them).
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    let labels: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    json!({"metadata": {"name": name, "labels": labels}})
}

/// A GatewayClass whose `spec.controllerName` is `controller`.
pub fn gateway_class(name: &str, controller: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"controllerName": controller}})
}

/// A Gateway of class `class` with one listener `http`: HTTP on port 80.
pub fn gateway(namespace: &str, name: &str, class: &str) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "gatewayClassName": class,
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]
        }
    })
}

/// The `parentRefs` of a route attached to each Gateway `(namespace, name)`.
fn parent_refs(gateways: &[(&str, &str)]) -> Vec<Value> {
    gateways.iter().map(|(namespace, name)| json!({"namespace": namespace, "name": name})).collect()
}

/// An HTTPRoute for `host`, attached to each Gateway `(namespace, name)`: path `/` to
/// Service `web` port 80.
pub fn http_route(namespace: &str, name: &str, host: &str, gateways: &[(&str, &str)]) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "parentRefs": parent_refs(gateways),
            "hostnames": [host],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "backendRefs": [{"name": "web", "port": 80}]
            }]
        }
    })
}

/// A GRPCRoute for `host`, attached to each Gateway `(namespace, name)`: everything to
/// Service `web` port 80.
pub fn grpc_route(namespace: &str, name: &str, host: &str, gateways: &[(&str, &str)]) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "parentRefs": parent_refs(gateways),
            "hostnames": [host],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]
        }
    })
}

/// A TLSRoute (passthrough) for `host`, attached to each Gateway `(namespace, name)`:
/// Service `web` port 443.
pub fn tls_route(namespace: &str, name: &str, host: &str, gateways: &[(&str, &str)]) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "parentRefs": parent_refs(gateways),
            "hostnames": [host],
            "rules": [{"backendRefs": [{"name": "web", "port": 443}]}]
        }
    })
}

/// A TCPRoute or UDPRoute (same shape), attached to each Gateway `(namespace, name)`:
/// Service `web` port `port`.
pub fn l4_route(namespace: &str, name: &str, port: u16, gateways: &[(&str, &str)]) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "parentRefs": parent_refs(gateways),
            "rules": [{"backendRefs": [{"name": "web", "port": port}]}]
        }
    })
}

/// A ReferenceGrant in `namespace` letting HTTPRoutes of `from_namespace` refer to its
/// Services.
pub fn reference_grant(namespace: &str, name: &str, from_namespace: &str) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "from": [{"group": GATEWAY_GROUP, "kind": "HTTPRoute", "namespace": from_namespace}],
            "to": [{"group": "", "kind": "Service"}]
        }
    })
}

/// A BackendTLSPolicy for Service `service`: verify it as `hostname` with the system's
/// trust anchors.
pub fn backend_tls_policy(namespace: &str, name: &str, service: &str, hostname: &str) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": service}],
            "validation": {"hostname": hostname, "wellKnownCACertificates": "System"}
        }
    })
}

/// A Node with labels, a `Ready` condition, an `InternalIP`, and the bulky status parts a
/// kubelet reports (`images`, `volumesInUse`, `volumesAttached`).
pub fn node(name: &str, labels: &[(&str, &str)], ready: bool, internal_ip: &str) -> Value {
    let labels: serde_json::Map<String, Value> = labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    json!({
        "metadata": {"name": name, "labels": labels},
        "status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                            "reason": "KubeletReady", "lastHeartbeatTime": "2026-01-01T00:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": internal_ip}, {"type": "Hostname", "address": name}],
            "images": [{"names": ["registry.example/app@sha256:0000", "registry.example/app:1"], "sizeBytes": 1000}],
            "volumesInUse": ["kubernetes.io/csi/driver^volume-1"],
            "volumesAttached": [{"name": "kubernetes.io/csi/driver^volume-1", "devicePath": ""}]
        }
    })
}

/// A MetalLB IPAddressPool with these `addresses` (CIDRs or `first-last` ranges).
pub fn ip_address_pool(namespace: &str, name: &str, addresses: &[&str]) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "spec": {"addresses": addresses}})
}

/// A MetalLB L2Advertisement of the pools named `pools` (empty: every pool).
pub fn l2_advertisement(namespace: &str, name: &str, pools: &[&str]) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "spec": {"ipAddressPools": pools}})
}

/// A MetalLB BGPAdvertisement of the pools named `pools` with `communities` (values or
/// Community aliases).
pub fn bgp_advertisement(namespace: &str, name: &str, pools: &[&str], communities: &[&str]) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name},
           "spec": {"ipAddressPools": pools, "communities": communities}})
}

/// A MetalLB BGPPeer (`metallb.io/v1beta2`): our ASN `my_asn`, the router `address` in AS
/// `peer_asn`.
pub fn bgp_peer(namespace: &str, name: &str, my_asn: u32, peer_asn: u32, address: &str) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name},
           "spec": {"myASN": my_asn, "peerASN": peer_asn, "peerAddress": address}})
}

/// A MetalLB Community naming one community `value` `alias`.
pub fn community(namespace: &str, name: &str, alias: &str, value: &str) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name},
           "spec": {"communities": [{"name": alias, "value": value}]}})
}
