//! Kubernetes objects as the API server returns them, and waiting helpers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub fn ingress(namespace: &str, name: &str, host: &str) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "ingressClassName": "sluice",
            "rules": [{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]
        }
    })
}

pub fn ingress_class(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"controller": "sluice.dev/ingress-controller"}})
}

pub fn service(namespace: &str, name: &str, load_balancer: bool) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name},
        "spec": {
            "type": if load_balancer { "LoadBalancer" } else { "ClusterIP" },
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
        }
    })
}

pub fn endpoint_slice(namespace: &str, name: &str, service: &str) -> Value {
    json!({
        "metadata": {"namespace": namespace, "name": name,
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    })
}

pub fn secret(namespace: &str, name: &str, type_: &str) -> Value {
    json!({"metadata": {"namespace": namespace, "name": name}, "type": type_,
           "data": {"tls.crt": "", "tls.key": ""}})
}

/// Polls `check` every 10 ms until it holds or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
