//! Controller ConfigMap keys that change how routes are compiled and backends resolved
//! (`no-tls-redirect-locations`, `server-snippet`, `location-snippet`, `service-upstream`,
//! `allow-cross-namespace-resources`), translated from real manifest YAML, from scratch and
//! incrementally as the ConfigMap changes.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use sluice_config::{Filter, Route, Snapshot};
use sluice_store::{ObjectKey, Store};

use crate::tests::{options, store};
use crate::{translate, Changed, Options, Translator};

const P: &str = "nginx.ingress.kubernetes.io";

fn with_configmap() -> Options {
    let mut options = options();
    options.configmap = Some(ObjectKey::new("ingress", "controller"));
    options
}

fn configmap(data: &[(&str, &str)]) -> String {
    let data: Vec<String> = data.iter().map(|(k, v)| format!("{k}: {v:?}")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: controller, namespace: ingress}}\ndata: {{{}}}\n---\n",
        data.join(", ")
    )
}

/// An Ingress of class `sluice` for `host` with one Prefix path per entry of `paths` to
/// Service `svc` port `port`.
fn ingress(name: &str, host: &str, paths: &[&str], port: u16, annotations: &[(&str, &str)], tls: bool) -> String {
    let annotations: Vec<String> = annotations.iter().map(|(k, v)| format!("{P}/{k}: {v:?}")).collect();
    let paths: Vec<String> = paths
        .iter()
        .map(|p| {
            format!("{{path: {p:?}, pathType: Prefix, backend: {{service: {{name: svc, port: {{number: {port}}}}}}}}}")
        })
        .collect();
    let tls = if tls { format!("tls: [{{hosts: [{host}], secretName: cert}}]") } else { String::new() };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}, annotations: {{{}}}}}\n\
         spec:\n  ingressClassName: sluice\n  {tls}\n  rules: [{{host: {host}, http: {{paths: [{}]}}}}]\n---\n",
        annotations.join(", "),
        paths.join(", ")
    )
}

fn service() -> String {
    "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n\
     spec: {clusterIP: 10.96.0.10, ports: [{port: 80, name: http}, {port: 443, name: https}]}\n---\n\
     apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
     metadata: {name: svc-1, labels: {kubernetes.io/service-name: svc}}\naddressType: IPv4\n\
     ports: [{port: 8080, name: http}, {port: 8443, name: https}]\nendpoints: [{addresses: [10.0.0.1]}]\n---\n"
        .to_owned()
}

fn route<'a>(snapshot: &'a Snapshot, host: &str, path: &str) -> &'a Route {
    let group = snapshot.routes.route(Some(host), path).unwrap();
    group.routes.last().unwrap()
}

fn redirects(route: &Route) -> bool {
    route.filters.iter().any(|f| matches!(f, Filter::HttpsRedirect { .. }))
}

fn endpoints(snapshot: &Snapshot, host: &str) -> Vec<SocketAddr> {
    let id = snapshot.routes.route(Some(host), "/").unwrap().backends().next().unwrap().id;
    snapshot.backend(id).unwrap().endpoints.clone()
}

/// Replaces the ConfigMap in `current` and builds incrementally, telling the translator only
/// that it changed; checks the result against a build from scratch.
fn rebuild(translator: &mut Translator, current: &mut Store, data: &[(&str, &str)], generation: u64) -> Snapshot {
    let key = ObjectKey::new("ingress", "controller");
    for object in store(&configmap(data)).config_maps.into_values() {
        current.config_maps.insert(key.clone(), object);
    }
    let changed = BTreeSet::from([("ConfigMap", key)]);
    let (snapshot, _) = translator.build(current, Changed::Objects(&changed), &Default::default(), generation);
    let scratch = translate(current, &with_configmap(), &Default::default(), generation);
    assert_eq!(format!("{:?}", snapshot.diagnostics), format!("{:?}", scratch.diagnostics));
    snapshot
}

#[test]
fn acme_challenges_are_never_redirected_to_https() {
    let yaml = [
        service(),
        ingress("site", "s.test", &["/", "/.well-known/acme-challenge-x"], 80, &[], true),
        ingress("solver", "s.test", &["/.well-known/acme-challenge"], 80, &[("force-ssl-redirect", "true")], true),
        ingress("health", "s.test", &["/healthz"], 80, &[], true),
    ]
    .concat();
    let mut current = store(&yaml);
    let mut translator = Translator::new(with_configmap());
    let (snapshot, _) = translator.build(&current, Changed::All, &Default::default(), 1);
    assert!(redirects(route(&snapshot, "s.test", "/")));
    assert!(!redirects(route(&snapshot, "s.test", "/.well-known/acme-challenge/token")), "even force-ssl-redirect");
    assert!(!redirects(route(&snapshot, "s.test", "/.well-known/acme-challenge-x")), "a string prefix, as nginx");
    assert!(redirects(route(&snapshot, "s.test", "/healthz")));

    let snapshot = rebuild(&mut translator, &mut current, &[("no-tls-redirect-locations", "/healthz")], 2);
    assert!(
        redirects(route(&snapshot, "s.test", "/.well-known/acme-challenge/token")),
        "the list replaces the default"
    );
    assert!(!redirects(route(&snapshot, "s.test", "/healthz")));
}

#[test]
fn configmap_snippets_apply_to_every_route_around_the_ingress_own() {
    let own = [("configuration-snippet", "more_set_headers \"X-Order: ingress\"; proxy_set_header X-Own o;")];
    let yaml = [
        service(),
        ingress("plain", "a.test", &["/"], 80, &[], false),
        ingress("snippet", "b.test", &["/"], 80, &own, false),
    ]
    .concat();
    let mut current = store(&yaml);
    let mut translator = Translator::new(with_configmap());
    let data = [
        ("server-snippet", "more_set_headers \"X-Order: server\" \"X-Server: s\"; proxy_set_header X-Up u;"),
        ("location-snippet", "more_set_headers \"X-Order: location\";"),
    ];
    let snapshot = rebuild(&mut translator, &mut current, &data, 1);
    let response_sets = |route: &Route| -> Vec<String> {
        let edits = route.filters.iter().filter_map(|f| match f {
            Filter::ResponseHeaders(edits) => Some(edits),
            _ => None,
        });
        edits.flat_map(|e| e.set.iter().map(|(n, v)| format!("{n}: {v}"))).collect()
    };
    let request_sets = |route: &Route| -> Vec<String> {
        let edits = route.filters.iter().find_map(|f| match f {
            Filter::RequestHeaders(edits) => Some(edits),
            _ => None,
        });
        edits.into_iter().flat_map(|e| e.set.iter().map(|(n, _)| n.to_string())).collect::<Vec<_>>()
    };
    let plain = route(&snapshot, "a.test", "/");
    assert_eq!(response_sets(plain), ["x-order: server", "x-server: s", "x-order: location"]);
    assert_eq!(request_sets(plain), ["x-up"]);
    let own = route(&snapshot, "b.test", "/");
    assert_eq!(response_sets(own), ["x-order: server", "x-server: s", "x-order: ingress", "x-order: location"]);
    assert_eq!(request_sets(own), ["x-up", "x-own"], "one list of request edits per route");

    // A snippet Sluice cannot read is an error, and only that key is dropped.
    let data = [("server-snippet", "return 403;"), ("location-snippet", "more_set_headers \"X-Order: location\";")];
    let snapshot = rebuild(&mut translator, &mut current, &data, 2);
    assert_eq!(response_sets(route(&snapshot, "a.test", "/")), ["x-order: location"]);
    let errors: Vec<String> = snapshot.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("ConfigMap ingress/controller: data.server-snippet: directive \"return\""));
}

#[test]
fn service_upstream_defaults_from_the_configmap_and_the_annotation_wins() {
    let yaml = [
        service(),
        ingress("unset", "unset.test", &["/"], 80, &[], false),
        ingress("disabled", "off.test", &["/"], 80, &[("service-upstream", "false")], false),
        ingress("enabled", "on.test", &["/"], 80, &[("service-upstream", "true")], false),
        ingress("invalid", "invalid.test", &["/"], 80, &[("service-upstream", "yes")], false),
        ingress(
            "errors",
            "errors.test",
            &["/"],
            80,
            &[("default-backend", "svc"), ("custom-http-errors", "503")],
            false,
        ),
    ]
    .concat();
    let cluster_ip: Vec<SocketAddr> = vec!["10.96.0.10:80".parse().unwrap()];
    let pods: Vec<SocketAddr> = vec!["10.0.0.1:8080".parse().unwrap()];
    let mut current = store(&yaml);
    let mut translator = Translator::new(with_configmap());
    let (snapshot, _) = translator.build(&current, Changed::All, &Default::default(), 1);
    assert_eq!(endpoints(&snapshot, "unset.test"), pods);
    assert_eq!(endpoints(&snapshot, "on.test"), cluster_ip);

    // The ConfigMap changes: every backend is resolved again with the new default.
    let snapshot = rebuild(&mut translator, &mut current, &[("service-upstream", "true")], 2);
    assert_eq!(endpoints(&snapshot, "unset.test"), cluster_ip);
    assert_eq!(endpoints(&snapshot, "off.test"), pods, "the annotation wins");
    assert_eq!(endpoints(&snapshot, "on.test"), cluster_ip);
    assert_eq!(endpoints(&snapshot, "invalid.test"), pods, "an invalid value means false, as ingress-nginx");
    let route = snapshot.routes.route(Some("errors.test"), "/").unwrap().routes[0].forward().unwrap();
    let errors = snapshot.backend(route.errors.as_ref().unwrap().backend).unwrap();
    assert_eq!(errors.endpoints, pods, "a default-backend is always reached at its endpoints, as ingress-nginx");
    let snapshot = rebuild(&mut translator, &mut current, &[("service-upstream", "false")], 3);
    assert_eq!(endpoints(&snapshot, "unset.test"), pods);
}

fn ca_secret(namespace: &str) -> String {
    let ca = rcgen::generate_simple_self_signed(vec!["backend.test".to_owned()]).unwrap();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: ca, namespace: {namespace}}}\ntype: Opaque\n\
         stringData: {{ca.crt: {:?}}}\n---\n",
        ca.cert.pem()
    )
}

#[test]
fn a_proxy_ssl_secret_in_another_namespace_needs_allow_cross_namespace_resources() {
    let annotations = [("backend-protocol", "HTTPS"), ("proxy-ssl-secret", "shared/ca"), ("proxy-ssl-verify", "on")];
    let yaml = [service(), ca_secret("shared"), ingress("tls", "t.test", &["/"], 443, &annotations, false)].concat();
    let mut current = store(&yaml);
    let mut translator = Translator::new(with_configmap());
    let (snapshot, _) = translator.build(&current, Changed::All, &Default::default(), 1);
    assert!(endpoints(&snapshot, "t.test").is_empty(), "another namespace: 503");
    assert!(snapshot.diagnostics.iter().any(|d| d.reason.contains("allow-cross-namespace-resources")));

    let snapshot = rebuild(&mut translator, &mut current, &[("allow-cross-namespace-resources", "true")], 2);
    assert_eq!(endpoints(&snapshot, "t.test"), ["10.0.0.1:8443".parse::<SocketAddr>().unwrap()]);
    assert!(snapshot.diagnostics.iter().all(|d| !d.is_error()), "{:?}", snapshot.diagnostics);

    // The Secret in the other namespace is followed like any other.
    let key = ObjectKey::new("shared", "ca");
    current.secrets.remove(&key);
    let changed = BTreeSet::from([("Secret", key)]);
    let (snapshot, _) = translator.build(&current, Changed::Objects(&changed), &Default::default(), 3);
    assert!(endpoints(&snapshot, "t.test").is_empty());
    assert!(snapshot.diagnostics.iter().any(|d| d.reason.contains("Secret shared/ca: not found")));

    let snapshot = rebuild(&mut translator, &mut current, &[("allow-cross-namespace-resources", "false")], 4);
    assert!(endpoints(&snapshot, "t.test").is_empty());
}
