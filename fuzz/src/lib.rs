//! What Sluice's fuzz targets share: translation options as the controller runs with them
//! (every optional feature on), the objects every fuzzed store holds besides the input's (a
//! Service with ready endpoints, a TLS Secret, a CA Secret, the controller ConfigMap, ...),
//! and the walk over a translated snapshot that the data plane would do.

use std::sync::{Arc, OnceLock};

use sluice_config::Snapshot;
use sluice_store::{ObjectKey, Store};
use sluice_translate::{AddressPool, Allocations, Options};

/// The controller ConfigMap (`--configmap`) of every fuzzed store.
pub const CONFIGMAP: (&str, &str) = ("ingress", "controller");

/// Objects every fuzzed store starts with, so that the input's Ingresses have backends,
/// certificates and ConfigMaps to refer to. Ingresses in inputs use these names.
const BASE: &str = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: sluice}
spec: {controller: sluice.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: default}
spec:
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: https, port: 443, targetPort: 8443, appProtocol: https}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: svc-1
  namespace: default
  labels: {kubernetes.io/service-name: svc}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}, {name: https, port: 8443, protocol: TCP}]
endpoints:
- addresses: ["10.0.0.1"]
  conditions: {ready: true}
- addresses: ["10.0.0.2"]
  conditions: {ready: true}
---
apiVersion: v1
kind: Service
metadata: {name: errors, namespace: default}
spec:
  ports: [{port: 80}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: errors, namespace: default}
subsets:
- addresses: [{ip: "10.0.1.1"}]
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  type: LoadBalancer
  loadBalancerClass: sluice.dev/lb
  ports: [{name: dns, port: 53, protocol: UDP}, {name: tcp, port: 5353, protocol: TCP}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: custom-headers, namespace: default}
data: {X-Custom: "value", X-Other: "$host"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: controller, namespace: ingress}
data: {use-forwarded-headers: "true", proxy-real-ip-cidr: "10.0.0.0/8"}
"#;

/// Translation options: class `sluice`, Ingresses without a class served too, passthrough
/// on, the controller ConfigMap [`CONFIGMAP`], `default/errors` as default backend, an
/// address pool for LoadBalancer Services.
pub fn options() -> &'static Options {
    static OPTIONS: OnceLock<Options> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let (cert, key) = self_signed();
        let fallback = sluice_translate::certified_key_from_pem(cert.as_bytes(), key.as_bytes())
            .expect("the generated certificate loads");
        let mut options = Options::new(fallback);
        options.watch_without_class = true;
        options.enable_ssl_passthrough = true;
        options.configmap = Some(ObjectKey::new(CONFIGMAP.0, CONFIGMAP.1));
        options.default_backend_service = Some(ObjectKey::new("default", "errors"));
        options.lb_pools = vec!["192.0.2.0/29".parse::<AddressPool>().expect("a pool")];
        options
    })
}

/// A self-signed certificate and key (PEM) for `*.test` names.
fn self_signed() -> (String, String) {
    let names = vec!["a.test".to_owned(), "*.test".to_owned(), "fuzz.invalid".to_owned()];
    let c = rcgen::generate_simple_self_signed(names).expect("rcgen");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// The objects every fuzzed store starts with ([`BASE`], plus Secrets `default/tls`, a
/// `kubernetes.io/tls` certificate for `*.test`, and `default/ca`, a `ca.crt`).
pub fn base_store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| {
        let (cert, key) = self_signed();
        let secrets = serde_json::json!([
            {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
             "metadata": {"name": "tls", "namespace": "default"},
             "stringData": {"tls.crt": cert, "tls.key": key}},
            {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
             "metadata": {"name": "ca", "namespace": "default"},
             "stringData": {"ca.crt": cert}},
        ]);
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": secrets});
        let mut store = Store::default();
        for text in [BASE.to_owned(), list.to_string()] {
            let is_json = text.starts_with('{');
            let (objects, diagnostics) = sluice_manifests::decode_documents(&text, is_json).expect("base objects");
            assert!(diagnostics.is_empty(), "{diagnostics:?}");
            for object in objects {
                store.insert(object);
            }
        }
        store
    })
}

/// Request paths looked up in every translated route table.
const PATHS: [&str; 8] = ["/", "/api", "/api/v1/users", "/app/", "/static/a.css", "/.well-known/x", "/x/y/z", ""];

/// Translates `store` as the controller and `sluice check` do (snapshot, annotation and
/// ConfigMap reports), then reads the snapshot as the data plane would: routes for each
/// rule's host and a few paths, the certificate for each host, the passthrough table.
pub fn translate_and_serve(store: &Store) -> Arc<Snapshot> {
    let options = options();
    let snapshot = Arc::new(sluice_translate::translate(store, options, &Allocations::default(), 1));
    let _ = sluice_translate::annotation_reports(store, options);
    let _ = sluice_translate::configmap_report(store, options);
    let hosts = store
        .ingresses
        .values()
        .filter_map(|ingress| ingress.spec.as_ref()?.rules.as_ref())
        .flatten()
        .filter_map(|rule| rule.host.as_deref());
    for host in hosts.chain(["a.test", "unknown.invalid"]) {
        let host = host.replace('*', "x");
        for path in PATHS {
            let _ = snapshot.routes.route(Some(&host), path);
        }
        let _ = snapshot.certificates.resolve(Some(&host));
        let _ = snapshot.passthrough.lookup(&host);
    }
    let _ = snapshot.routes.route(None, "/");
    let _ = snapshot.routes.entries();
    snapshot
}
