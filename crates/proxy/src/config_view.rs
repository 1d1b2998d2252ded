//! `GET /config`: the routing table of the snapshot being served, as JSON.

use serde_json::{json, Value};
use sluice_config::Snapshot;

/// Generation, routes (host, path, match type, Ingress, backend with endpoints), L4
/// listeners, certificates by SNI, and diagnostics.
pub fn document(snapshot: &Snapshot) -> Value {
    let routes: Vec<Value> = snapshot
        .routes
        .entries()
        .into_iter()
        .map(|entry| {
            let backend = snapshot.backend(entry.route.backend);
            json!({
                "host": entry.host,
                "path": entry.path,
                "match": entry.match_type,
                "ingress": entry.route.ingress_label.as_ref(),
                "backend": backend.map(|b| b.label.as_ref()),
                "protocol": backend.map(|b| b.protocol),
                "endpoints": backend.map(|b| b.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>()),
            })
        })
        .collect();
    let l4: Vec<Value> = snapshot
        .l4
        .listeners
        .values()
        .map(|l| {
            json!({
                "address": l.address.to_string(),
                "protocol": l.protocol,
                "service": format!("{}/{}", l.service.namespace, l.service.name),
                "endpoints": l.backend.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
            })
        })
        .collect();
    let certificates: Vec<Value> = snapshot
        .certificates
        .entries()
        .into_iter()
        .map(|(sni, owner)| json!({ "sni": sni, "ingress": format!("{}/{}", owner.namespace, owner.name) }))
        .collect();
    let diagnostics: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    json!({
        "generation": snapshot.generation,
        "summary": snapshot.summary,
        "routes": routes,
        "l4": l4,
        "certificates": certificates,
        "diagnostics": diagnostics,
    })
}
