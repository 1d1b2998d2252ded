//! `GET /status`: the addresses Sluice serves each resource on, in the Kubernetes status shape.

use serde_json::{json, Value};
use sluice_config::{IpMode, Snapshot};

/// The status document: `{"services": [...], "ingresses": [...]}`, each entry with
/// `loadBalancer.ingress` as `kubectl get -o json` would show it; and one list per Gateway
/// API kind (`gatewayclasses`, `gateways`, `httproutes`, …) of `{namespace, name, status}`
/// with `status` as the object's `status` field.
pub fn document(snapshot: &Snapshot, publish: &[String]) -> Value {
    let services: Vec<Value> = snapshot
        .l4
        .addresses
        .iter()
        .filter(|(object, _)| object.kind == "Service")
        .map(|(service, ips)| {
            let mode = snapshot.l4.ip_modes.get(service).copied().unwrap_or(IpMode::Vip);
            let ingress: Vec<Value> =
                ips.iter().map(|ip| json!({ "ip": ip.to_string(), "ipMode": mode.as_str() })).collect();
            entry(&service.namespace, &service.name, ingress)
        })
        .collect();
    let published: Vec<Value> = publish.iter().map(|address| load_balancer_ingress(address)).collect();
    let ingresses: Vec<Value> =
        snapshot.ingresses.iter().map(|ingress| entry(&ingress.namespace, &ingress.name, published.clone())).collect();
    let mut document = json!({ "services": services, "ingresses": ingresses });
    for (kind, list) in GATEWAY_KINDS {
        let entries: Vec<Value> = snapshot
            .gateway_status
            .iter()
            .filter(|status| status.object.kind == kind)
            .map(|status| json!({ "namespace": status.object.namespace, "name": status.object.name, "status": status }))
            .collect();
        document[list] = Value::Array(entries);
    }
    document
}

/// Gateway API kinds and the name of their list in the `/status` document (what
/// `sluice status` reads back).
pub const GATEWAY_KINDS: [(&str, &str); 8] = [
    ("GatewayClass", "gatewayclasses"),
    ("Gateway", "gateways"),
    ("HTTPRoute", "httproutes"),
    ("GRPCRoute", "grpcroutes"),
    ("TLSRoute", "tlsroutes"),
    ("TCPRoute", "tcproutes"),
    ("UDPRoute", "udproutes"),
    ("BackendTLSPolicy", "backendtlspolicies"),
];

fn entry(namespace: &str, name: &str, ingress: Vec<Value>) -> Value {
    json!({ "namespace": namespace, "name": name, "loadBalancer": { "ingress": ingress } })
}

/// `{"ip": ...}` for an address, `{"hostname": ...}` for a DNS name.
fn load_balancer_ingress(address: &str) -> Value {
    if address.parse::<std::net::IpAddr>().is_ok() {
        json!({ "ip": address })
    } else {
        json!({ "hostname": address })
    }
}
