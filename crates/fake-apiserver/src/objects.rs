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
