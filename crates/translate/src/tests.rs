//! Translation tests on stores decoded from real manifest YAML.

use std::sync::Arc;

use sluice_config::{Balance, Condition, Snapshot, Subject, ValueMatch};
use sluice_store::Store;

use crate::{translate, Options};

pub(crate) fn store(yaml: &str) -> Store {
    let (objects, diagnostics) = sluice_manifests::decode_documents(yaml, false).unwrap();
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let mut store = Store::default();
    for object in objects {
        store.insert(object);
    }
    store
}

pub(crate) fn self_signed(names: &[&str]) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let c = rcgen::generate_simple_self_signed(names).unwrap();
    (c.cert.pem(), c.signing_key.serialize_pem())
}

pub(crate) fn options() -> Options {
    let (cert, key) = self_signed(&["default.invalid"]);
    Options::new(crate::certified_key_from_pem(cert.as_bytes(), key.as_bytes()).unwrap())
}

fn served_by(snapshot: &Snapshot, host: &str, path: &str) -> Option<String> {
    snapshot.routes.route(Some(host), path).map(|r| r.owner.name.clone())
}

fn ingress(name: &str, class: &str, host: &str, path: &str, created: &str) -> String {
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, creationTimestamp: "{created}"}}
spec:
  {class}
  rules:
  - host: {host}
    http:
      paths:
      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: svc, port: {{number: 80}}}}}}}}
---
"#
    )
}

#[test]
fn selects_ingresses_by_class_name_controller_annotation_and_default() {
    let yaml = [
        ingress("by-name", "ingressClassName: sluice", "a.test", "/", "2024-01-01T00:00:00Z"),
        ingress("by-controller", "ingressClassName: mine", "b.test", "/", "2024-01-01T00:00:00Z"),
        ingress("foreign", "ingressClassName: nginx", "c.test", "/", "2024-01-01T00:00:00Z"),
        ingress("classless", "", "d.test", "/", "2024-01-01T00:00:00Z"),
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: legacy
  annotations: {kubernetes.io/ingress.class: sluice}
spec:
  rules: [{host: e.test, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}]}}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: mine}
spec: {controller: sluice.dev/ingress-controller}
"#
        .to_owned(),
    ]
    .concat();
    let snapshot = translate(&store(&yaml), &options(), &Default::default(), 1);
    let served: Vec<_> = ["a.test", "b.test", "c.test", "d.test", "e.test"]
        .iter()
        .map(|h| served_by(&snapshot, h, "/").is_some())
        .collect();
    assert_eq!(served, [true, true, false, false, true]);

    let mut with_classless = options();
    with_classless.watch_without_class = true;
    assert!(served_by(&translate(&store(&yaml), &with_classless, &Default::default(), 1), "d.test", "/").is_some());

    let default_class = r#"
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: default-one
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
spec: {controller: sluice.dev/ingress-controller}
"#;
    let snapshot = translate(&store(&format!("{yaml}---{default_class}")), &options(), &Default::default(), 1);
    assert!(served_by(&snapshot, "d.test", "/").is_some());
}

#[test]
fn older_ingress_wins_a_conflict_and_the_loser_is_reported() {
    let yaml = [
        ingress("newer", "ingressClassName: sluice", "a.test", "/x", "2024-06-01T00:00:00Z"),
        ingress("older", "ingressClassName: sluice", "a.test", "/x", "2024-01-01T00:00:00Z"),
    ]
    .concat();
    let snapshot = translate(&store(&yaml), &options(), &Default::default(), 1);
    assert_eq!(served_by(&snapshot, "a.test", "/x/y").as_deref(), Some("older"));
    let loser = snapshot
        .diagnostics
        .iter()
        .find(|d| matches!(&d.subject, Subject::Object(o) if o.name == "newer"))
        .expect("loser reported");
    assert_eq!(loser.field, "spec.rules[0].http.paths[0]");
    assert!(loser.reason.contains("Ingress default/older"), "{}", loser.reason);
}

#[test]
fn an_invalid_ingress_is_rejected_alone_with_field_paths() {
    let yaml = [
        ingress("good", "ingressClassName: sluice", "good.test", "/", "2024-01-01T00:00:00Z"),
        ingress("bad-host", "ingressClassName: sluice", "Bad_Host.test", "/", "2024-01-01T00:00:00Z"),
        ingress("bad-path", "ingressClassName: sluice", "bad.test", "relative", "2024-01-01T00:00:00Z"),
    ]
    .concat();
    let snapshot = translate(&store(&yaml), &options(), &Default::default(), 1);
    assert!(served_by(&snapshot, "good.test", "/").is_some());
    assert!(served_by(&snapshot, "bad.test", "/").is_none());
    assert_eq!(snapshot.summary.ingresses, 1);
    assert_eq!(snapshot.summary.rejected_ingresses, 2);
    let text: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|d| d.starts_with("Ingress default/bad-host: spec.rules[0].host: ")), "{text:?}");
    assert!(
        text.iter().any(|d| d.starts_with("Ingress default/bad-path: spec.rules[0].http.paths[0].path: ")),
        "{text:?}"
    );
}

#[test]
fn backends_resolve_named_ports_ready_endpoints_and_legacy_endpoints() {
    let yaml = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: sluice
  rules:
  - host: a.test
    http:
      paths:
      - {path: /named, pathType: Prefix, backend: {service: {name: svc, port: {name: web}}}}
      - {path: /legacy, pathType: Prefix, backend: {service: {name: old, port: {number: 80}}}}
      - {path: /h2c, pathType: Prefix, backend: {service: {name: svc, port: {number: 9000}}}}
      - {path: /missing, pathType: Prefix, backend: {service: {name: nope, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec:
  ports:
  - {name: web, port: 80}
  - {name: grpc, port: 9000, appProtocol: kubernetes.io/h2c}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-1, labels: {kubernetes.io/service-name: svc}}
addressType: IPv4
ports: [{name: web, port: 8080}, {name: grpc, port: 9090}]
endpoints:
- {addresses: ["10.0.0.1"], conditions: {ready: true}}
- {addresses: ["10.0.0.2"], conditions: {ready: false}}
- {addresses: ["10.0.0.3"]}
---
apiVersion: v1
kind: Service
metadata: {name: old}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: old}
subsets:
- addresses: [{ip: "10.1.0.1"}]
  notReadyAddresses: [{ip: "10.1.0.2"}]
  ports: [{port: 8000}]
"#;
    let snapshot = translate(&store(yaml), &options(), &Default::default(), 1);
    let endpoints = |path: &str| {
        let route = snapshot.routes.route(Some("a.test"), path).unwrap();
        snapshot
            .backend(route.backends().next().unwrap().id)
            .unwrap()
            .endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(endpoints("/named"), ["10.0.0.1:8080", "10.0.0.3:8080"]);
    assert_eq!(endpoints("/legacy"), ["10.1.0.1:8000"]);
    assert_eq!(endpoints("/h2c"), ["10.0.0.1:9090", "10.0.0.3:9090"]);
    let h2c = snapshot.routes.route(Some("a.test"), "/h2c").unwrap();
    let h2c = snapshot.backend(h2c.backends().next().unwrap().id).unwrap();
    assert_eq!(h2c.protocol(), sluice_config::UpstreamProtocol::H2c);

    assert!(endpoints("/missing").is_empty());
    assert!(snapshot.diagnostics.iter().any(|d| d.reason.contains("Service default/nope not found")));
}

#[test]
fn tls_entries_select_certificates_and_broken_secrets_drop_only_their_entry() {
    let (cert, key) = self_signed(&["a.test"]);
    let (wild_cert, wild_key) = self_signed(&["*.wild.test"]);
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let yaml = format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  ingressClassName: sluice
  tls:
  - {{hosts: [a.test], secretName: a-tls}}
  - {{hosts: ["*.wild.test"], secretName: wild-tls}}
  - {{hosts: [broken.test], secretName: broken-tls}}
  rules:
  - host: a.test
    http: {{paths: [{{path: /, pathType: Prefix, backend: {{service: {{name: svc, port: {{number: 80}}}}}}}}]}}
---
apiVersion: v1
kind: Secret
metadata: {{name: a-tls}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}---
apiVersion: v1
kind: Secret
metadata: {{name: wild-tls}}
type: kubernetes.io/tls
stringData:
  tls.crt: |
{}  tls.key: |
{}---
apiVersion: v1
kind: Secret
metadata: {{name: broken-tls}}
type: kubernetes.io/tls
stringData: {{tls.crt: garbage, tls.key: garbage}}
"#,
        indent(&cert),
        indent(&key),
        indent(&wild_cert),
        indent(&wild_key)
    );
    let options = options();
    let snapshot = translate(&store(&yaml), &options, &Default::default(), 1);
    let leaf = |sni: Option<&str>| snapshot.certificates.resolve(sni).cert[0].clone();
    let default_leaf = options.fallback_certificate.cert[0].clone();
    assert_ne!(leaf(Some("a.test")), default_leaf);
    assert_ne!(leaf(Some("x.wild.test")), default_leaf);
    assert_ne!(leaf(Some("x.wild.test")), leaf(Some("a.test")));
    assert_eq!(leaf(Some("x.y.wild.test")), default_leaf);
    assert_eq!(leaf(Some("broken.test")), default_leaf);
    assert_eq!(leaf(None), default_leaf);
    assert!(served_by(&snapshot, "a.test", "/").is_some(), "the Ingress still serves");
    let broken: Vec<_> =
        snapshot.diagnostics.iter().map(ToString::to_string).filter(|d| d.contains("Secret")).collect();
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0].contains("spec.tls[2].secretName") && broken[0].contains("Secret default/broken-tls"));
    assert_eq!(snapshot.summary.certificates, 2);
    let _: &Arc<_> = &options.fallback_certificate;
}

#[test]
fn endpoint_refresh_shares_routes_and_updates_endpoints() {
    let service = r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  ingressClassName: sluice
  defaultBackend: {service: {name: svc, port: {number: 80}}}
---
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-1, labels: {kubernetes.io/service-name: svc}}
addressType: IPv4
ports: [{port: 8080}]
"#;
    let mut translator = crate::Translator::new(options());
    let mut objects = store(&format!("{service}endpoints: [{{addresses: [10.0.0.1]}}]\n"));
    let (first, rebuilt) = translator.build(&objects, crate::Changed::All, &Default::default(), 1);
    assert_eq!(rebuilt, crate::Rebuilt::Routes);
    let changed = store(&format!("{service}endpoints: [{{addresses: [10.0.0.2]}}, {{addresses: [10.0.0.3]}}]\n"));
    objects.endpoint_slices = changed.endpoint_slices;
    let (next, rebuilt) = translator.build(&objects, crate::Changed::All, &Default::default(), 2);
    assert_eq!(rebuilt, crate::Rebuilt::Backends);
    assert!(Arc::ptr_eq(&first.routes, &next.routes), "route table shared");
    assert!(Arc::ptr_eq(&first.certificates, &next.certificates));
    let endpoints = |s: &Snapshot| {
        let route = s.routes.route(Some("any"), "/").unwrap();
        s.backend(route.backends().next().unwrap().id)
            .unwrap()
            .endpoints
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(endpoints(&first), ["10.0.0.1:8080"]);
    assert_eq!(endpoints(&next), ["10.0.0.2:8080", "10.0.0.3:8080"]);
    assert_eq!(next.generation, 2);
}

#[test]
fn a_legacy_canary_is_balanced_without_the_main_affinity_cookie() {
    let ingress = |name: &str, annotations: &str| {
        format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, annotations: {{{annotations}}}}}\n\
             spec:\n  ingressClassName: sluice\n  rules: [{{host: c.test, http: {{paths: [{{path: /, pathType: Prefix, \
             backend: {{service: {{name: {name}, port: {{number: 80}}}}}}}}]}}}}]\n---\n"
        )
    };
    let p = "nginx.ingress.kubernetes.io";
    let main = ingress("main", &format!("{p}/affinity: cookie"));
    let canary = |behaviour: &str| {
        let annotations = format!(
            "{p}/canary: 'true', {p}/canary-by-header: x-canary, {p}/canary-weight: '30', \
             {p}/affinity-canary-behavior: {behaviour}"
        );
        ingress("canary", &annotations)
    };
    let describe = |behaviour: &str| -> Vec<String> {
        let snapshot =
            translate(&store(&[main.clone(), canary(behaviour)].concat()), &options(), &Default::default(), 1);
        let group = snapshot.routes.route(Some("c.test"), "/").unwrap();
        group
            .routes
            .iter()
            .map(|route| {
                let forward = route.forward().unwrap();
                let balance = match &forward.balance {
                    Balance::Cookie(_) => "cookie",
                    Balance::RoundRobin => "round_robin",
                    _ => "other",
                };
                let condition = match route.conditions.first() {
                    Some(Condition::Header { value: ValueMatch::Exact(v), .. }) => format!("header {v}"),
                    Some(Condition::Random { weight, total }) => format!("random {weight}/{total}"),
                    Some(_) => "other".to_owned(),
                    None => "always".to_owned(),
                };
                format!("{condition}: {} backends, {balance}", forward.backends.len())
            })
            .collect()
    };
    assert_eq!(
        describe("sticky"),
        ["header always: 1 backends, cookie", "header never: 1 backends, cookie", "always: 2 backends, cookie"]
    );
    assert_eq!(
        describe("legacy"),
        [
            "header always: 1 backends, round_robin",
            "header never: 1 backends, cookie",
            "random 30/100: 1 backends, round_robin",
            "always: 1 backends, cookie",
        ]
    );
}
