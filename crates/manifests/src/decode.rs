//! Decoding a manifest file's documents into typed objects.

use serde_json::Value;
use sluice_config::{Diagnostic, ObjectRef};
use sluice_store::gateway_api::backendtlspolicies::BackendTlsPolicy;
use sluice_store::gateway_api::experimental::{
    gatewayclasses::GatewayClass, gateways::Gateway, grpcroutes::GrpcRoute, httproutes::HttpRoute,
    referencegrants::ReferenceGrant, tcproutes::TcpRoute, tlsroutes::TlsRoute, udproutes::UdpRoute,
};
use sluice_store::k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Node, Secret, Service};
use sluice_store::k8s_openapi::api::discovery::v1::EndpointSlice;
use sluice_store::k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use sluice_store::{
    keeps_secret, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement, Object, DEFAULT_NAMESPACE,
};

const GATEWAY_V1: &str = "gateway.networking.k8s.io/v1";
const GATEWAY_V1BETA1: &str = "gateway.networking.k8s.io/v1beta1";
const GATEWAY_V1ALPHA3: &str = "gateway.networking.k8s.io/v1alpha3";
const GATEWAY_V1ALPHA2: &str = "gateway.networking.k8s.io/v1alpha2";
const METALLB_V1BETA1: &str = "metallb.io/v1beta1";
const METALLB_V1BETA2: &str = "metallb.io/v1beta2";

/// Kinds without a namespace.
const CLUSTER_SCOPED: [&str; 4] = ["IngressClass", "Namespace", "GatewayClass", "Node"];

/// Decodes every document of a YAML stream (or one JSON value). Returns the objects of the
/// kinds Sluice acts on and a diagnostic per document that failed; `Err` when the text is not
/// YAML/JSON at all.
pub fn decode_documents(text: &str, is_json: bool) -> Result<(Vec<Object>, Vec<Diagnostic>), String> {
    let documents: Vec<Value> = if is_json {
        vec![serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?]
    } else {
        // Counts scaled to MAX_FILE_BYTES (a `kubectl get -A -o yaml` dump of a large cluster
        // is tens of thousands of documents); alias and anchor limits, which stop expansion
        // bombs, keep their defaults.
        let options = serde_saphyr::options! {
            legacy_octal_numbers: true,
            budget: serde_saphyr::budget! {
                max_documents: 1_000_000,
                max_nodes: 50_000_000,
                max_events: 100_000_000,
            },
        };
        serde_saphyr::from_multiple_with_options(text, options)
            .map_err(|e| format!("cannot read as YAML: {}", first_line(&e.to_string())))?
    };
    let mut objects = Vec::new();
    let mut diagnostics = Vec::new();
    for document in documents {
        decode_value(document, &mut objects, &mut diagnostics);
    }
    Ok((objects, diagnostics))
}

fn decode_value(document: Value, objects: &mut Vec<Object>, diagnostics: &mut Vec<Diagnostic>) {
    if document.is_null() {
        return;
    }
    let kind = document.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let api_version = document.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_owned();
    if kind.ends_with("List") && document.get("items").is_some_and(Value::is_array) {
        if let Some(Value::Array(items)) = document.get("items").cloned() {
            for item in items {
                decode_value(item, objects, diagnostics);
            }
        }
        return;
    }
    let result = match (api_version.as_str(), kind.as_str()) {
        ("networking.k8s.io/v1", "Ingress") => typed(document, "Ingress", |o: Ingress| Object::Ingress(Box::new(o))),
        ("networking.k8s.io/v1", "IngressClass") => {
            typed(document, "IngressClass", |o: IngressClass| Object::IngressClass(Box::new(o)))
        }
        ("v1", "Service") => typed(document, "Service", |o: Service| Object::Service(Box::new(o))),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            typed(document, "EndpointSlice", |o: EndpointSlice| Object::EndpointSlice(Box::new(o)))
        }
        ("v1", "Endpoints") => typed(document, "Endpoints", |o: Endpoints| Object::Endpoints(Box::new(o))),
        ("v1", "Secret") => typed(document, "Secret", |o: Secret| Object::Secret(Box::new(o))),
        ("v1", "ConfigMap") => typed(document, "ConfigMap", |o: ConfigMap| Object::ConfigMap(Box::new(o))),
        ("v1", "Namespace") => typed(document, "Namespace", |o: Namespace| Object::Namespace(Box::new(o))),
        ("v1", "Node") => typed(document, "Node", |o: Node| Object::Node(Box::new(o))),
        (GATEWAY_V1, "GatewayClass") => {
            typed(document, "GatewayClass", |o: GatewayClass| Object::GatewayClass(Box::new(o)))
        }
        (GATEWAY_V1, "Gateway") => typed(document, "Gateway", |o: Gateway| Object::Gateway(Box::new(o))),
        (GATEWAY_V1, "HTTPRoute") => typed(document, "HTTPRoute", |o: HttpRoute| Object::HttpRoute(Box::new(o))),
        (GATEWAY_V1, "GRPCRoute") => typed(document, "GRPCRoute", |o: GrpcRoute| Object::GrpcRoute(Box::new(o))),
        (GATEWAY_V1 | GATEWAY_V1ALPHA2 | GATEWAY_V1ALPHA3, "TLSRoute") => {
            typed(document, "TLSRoute", |o: TlsRoute| Object::TlsRoute(Box::new(o)))
        }
        (GATEWAY_V1ALPHA2, "TCPRoute") => typed(document, "TCPRoute", |o: TcpRoute| Object::TcpRoute(Box::new(o))),
        (GATEWAY_V1ALPHA2, "UDPRoute") => typed(document, "UDPRoute", |o: UdpRoute| Object::UdpRoute(Box::new(o))),
        (GATEWAY_V1 | GATEWAY_V1BETA1, "ReferenceGrant") => {
            typed(document, "ReferenceGrant", |o: ReferenceGrant| Object::ReferenceGrant(Box::new(o)))
        }
        (GATEWAY_V1 | GATEWAY_V1ALPHA3, "BackendTLSPolicy") => {
            typed(document, "BackendTLSPolicy", |o: BackendTlsPolicy| Object::BackendTlsPolicy(Box::new(o)))
        }
        (METALLB_V1BETA1, "IPAddressPool") => {
            typed(with_spec(document), "IPAddressPool", |o: IPAddressPool| Object::IpAddressPool(Box::new(o)))
        }
        (METALLB_V1BETA1, "L2Advertisement") => {
            typed(with_spec(document), "L2Advertisement", |o: L2Advertisement| Object::L2Advertisement(Box::new(o)))
        }
        (METALLB_V1BETA1, "BGPAdvertisement") => {
            typed(with_spec(document), "BGPAdvertisement", |o: BGPAdvertisement| Object::BgpAdvertisement(Box::new(o)))
        }
        (METALLB_V1BETA1, "Community") => {
            typed(with_spec(document), "Community", |o: Community| Object::Community(Box::new(o)))
        }
        // v1beta1 is the older version of the same resource; the fields Sluice reads are alike.
        (METALLB_V1BETA1 | METALLB_V1BETA2, "BGPPeer") => {
            typed(with_spec(document), "BGPPeer", |o: BGPPeer| Object::BgpPeer(Box::new(o)))
        }
        _ => {
            tracing::debug!(%api_version, %kind, "skipping a manifest of a kind Sluice does not act on");
            return;
        }
    };
    match result {
        Ok(Some(object)) => objects.push(object),
        Ok(None) => {}
        Err(diagnostic) => diagnostics.push(diagnostic),
    }
}

/// Decodes `document` as `T`, naming the failing field path; checks metadata.name.
fn typed<T: serde::de::DeserializeOwned>(
    document: Value,
    kind: &'static str,
    wrap: impl FnOnce(T) -> Object,
) -> Result<Option<Object>, Diagnostic> {
    let meta = document.get("metadata");
    let field = |name: &str| meta.and_then(|m| m.get(name)).and_then(Value::as_str).map(str::to_owned);
    let namespace = if CLUSTER_SCOPED.contains(&kind) {
        String::new()
    } else {
        field("namespace").unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
    };
    let name = field("name").unwrap_or_default();
    let object_ref = ObjectRef { kind, namespace, name };
    if object_ref.name.is_empty() {
        return Err(Diagnostic::object(object_ref, "metadata.name", "Required value: name is required"));
    }
    let object = serde_path_to_error::deserialize(document)
        .map(wrap)
        .map_err(|e| Diagnostic::object(object_ref.clone(), e.path().to_string(), e.inner().to_string()))?;
    match object {
        Object::Secret(secret) if !keeps_secret(&secret) => {
            tracing::debug!(secret = %object_ref, "skipping a Secret that holds no certificate or htpasswd data");
            Ok(None)
        }
        object => Ok(Some(object)),
    }
}

/// `document` with an empty `spec` when it has none: MetalLB's kinds may leave it out (an
/// L2Advertisement without one announces every pool), and their types require one.
fn with_spec(mut document: Value) -> Value {
    if let Some(fields) = document.as_object_mut() {
        let spec = fields.entry("spec").or_insert(Value::Null);
        if spec.is_null() {
            *spec = Value::Object(serde_json::Map::new());
        }
    }
    document
}

/// The first line of a parser message (its source snippet follows on later lines), so that
/// every diagnostic stays one line.
fn first_line(message: &str) -> &str {
    message.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_streams_lists_and_reports_bad_documents_alone() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: a}
spec: {ports: [{port: 80}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: bad, namespace: web}
spec:
  rules: 5
---
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Secret
  metadata: {name: s}
  type: kubernetes.io/tls
  stringData: {tls.crt: "x", tls.key: "y"}
- apiVersion: v1
  kind: Secret
  metadata: {name: opaque}
  type: Opaque
  stringData: {password: "x"}
- apiVersion: v1
  kind: Secret
  metadata: {name: ca}
  type: Opaque
  stringData: {ca.crt: "x"}
- apiVersion: v1
  kind: Secret
  metadata: {name: users}
  type: Opaque
  stringData: {alice: "$apr1$salt$hash", bob: "{SHA}x"}
- apiVersion: v1
  kind: Secret
  metadata: {name: mixed}
  type: Opaque
  stringData: {alice: "$apr1$salt$hash", token: "plain"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
"#;
        let (objects, diagnostics) = decode_documents(yaml, false).unwrap();
        let kinds: Vec<_> = objects.iter().map(|o| (o.kind(), o.key().namespace, o.key().name)).collect();
        assert_eq!(
            kinds,
            [
                ("Service", "default".into(), "a".into()),
                ("Secret", "default".into(), "s".into()),
                ("Secret", "default".into(), "ca".into()),
                ("Secret", "default".into(), "users".into())
            ],
            "Opaque Secrets only with a certificate, trust anchors or password hashes"
        );
        assert_eq!(diagnostics.len(), 1);
        let text = diagnostics[0].to_string();
        assert!(text.starts_with("Ingress web/bad: spec.rules: invalid type"), "{text}");
    }

    #[test]
    fn large_streams_are_read_whole() {
        let service = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n---\n";
        let (objects, diagnostics) = decode_documents(&service.repeat(3000), false).unwrap();
        assert_eq!((objects.len(), diagnostics.len()), (3000, 0));
    }

    #[test]
    fn syntax_errors_fail_the_file() {
        assert!(decode_documents("a: [1, 2", false).is_err());
        assert!(decode_documents("{", true).is_err());
    }

    #[test]
    fn reads_every_gateway_api_conformance_manifest() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/gateway-api");
        let mut files: Vec<_> = std::fs::read_dir(dir.join("tests")).unwrap().map(|e| e.unwrap().path()).collect();
        files.push(dir.join("base/manifests.yaml"));
        let mut kinds = std::collections::BTreeSet::new();
        for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
            let text = std::fs::read_to_string(file).unwrap();
            let (objects, diagnostics) = decode_documents(&text, false).unwrap();
            assert!(diagnostics.is_empty(), "{}: {diagnostics:?}", file.display());
            kinds.extend(objects.iter().map(Object::kind));
        }
        for kind in ["GatewayClass", "Gateway", "HTTPRoute", "GRPCRoute", "TLSRoute", "TCPRoute", "UDPRoute"] {
            assert!(kinds.contains(kind), "no {kind} read");
        }
        for kind in ["ReferenceGrant", "BackendTLSPolicy", "Namespace"] {
            assert!(kinds.contains(kind), "no {kind} read");
        }
    }
}
