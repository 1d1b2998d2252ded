//! TLS towards backends (`backend-protocol: HTTPS`/`GRPCS`, `proxy-ssl-*`) and
//! `ssl-passthrough`, translated from real manifest YAML.

use std::collections::BTreeSet;

use sluice_config::{Backend, Snapshot, Transport};
use sluice_store::{ObjectKey, Store};

use crate::tests::{options, store};
use crate::{annotation_reports, translate, AnnotationVerdict, Changed, Options, Translator};

const P: &str = "nginx.ingress.kubernetes.io";

fn service() -> String {
    r#"
apiVersion: v1
kind: Service
metadata: {name: svc}
spec: {ports: [{port: 443, name: https}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: svc-1, labels: {kubernetes.io/service-name: svc}}
addressType: IPv4
ports: [{port: 8443, name: https}]
endpoints: [{addresses: [10.0.0.1]}]
---
"#
    .to_owned()
}

fn ingress(name: &str, host: &str, path: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: Vec<String> = annotations.iter().map(|(k, v)| format!("{P}/{k}: {v:?}")).collect();
    format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, annotations: {{{}}}}}
spec:
  ingressClassName: sluice
  rules:
  - host: "{host}"
    http:
      paths: [{{path: "{path}", pathType: Prefix, backend: {{service: {{name: svc, port: {{number: 443}}}}}}}}]
---
"#,
        annotations.join(", ")
    )
}

fn ca_secret(name: &str, with_ca: bool) -> String {
    let ca = rcgen::generate_simple_self_signed(vec!["backend.test".to_owned()]).unwrap();
    let field = if with_ca { "ca.crt" } else { "other" };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: Opaque\nstringData: {{{field}: {:?}, tls.crt: {:?}, tls.key: {:?}}}\n---\n",
        ca.cert.pem(),
        ca.cert.pem(),
        ca.signing_key.serialize_pem()
    )
}

fn backend<'a>(snapshot: &'a Snapshot, host: &str) -> &'a Backend {
    let group = snapshot.routes.route(Some(host), "/").unwrap();
    let id = group.backends().next().unwrap().id;
    snapshot.backend(id).unwrap()
}

fn tls_annotations(secret: &str) -> Vec<(&str, &str)> {
    vec![
        ("backend-protocol", "HTTPS"),
        ("proxy-ssl-secret", secret),
        ("proxy-ssl-verify", "on"),
        ("proxy-ssl-name", "backend.test"),
    ]
}

#[test]
fn https_and_grpcs_backends_get_a_tls_client_and_default_to_no_verification() {
    let yaml = [
        service(),
        ca_secret("ca", true),
        ingress("verified", "v.test", "/", &tls_annotations("default/ca")),
        ingress("plain-tls", "g.test", "/", &[("backend-protocol", "GRPCS")]),
    ]
    .concat();
    let snapshot = translate(&store(&yaml), &options(), &Default::default(), 1);
    assert!(snapshot.diagnostics.is_empty(), "{:?}", snapshot.diagnostics);
    let endpoint = "10.0.0.1:8443".parse().unwrap();
    let Transport::Tls(verified) = &backend(&snapshot, "v.test").transport else { panic!("not TLS") };
    assert_eq!(verified.server_name(endpoint).to_str(), "backend.test");
    assert!(!verified.config().enable_sni, "SNI only with proxy-ssl-server-name: on");
    assert!(!verified.http2());
    assert!(verified.config().client_auth_cert_resolver.has_certs(), "tls.crt is presented");
    let Transport::Tls(grpcs) = &backend(&snapshot, "g.test").transport else { panic!("not TLS") };
    assert!(grpcs.http2() && !grpcs.config().enable_sni);
    assert_eq!(grpcs.config().alpn_protocols, [b"h2".to_vec()]);
    assert!(!grpcs.config().client_auth_cert_resolver.has_certs());
    assert_eq!(backend(&snapshot, "v.test").endpoints.len(), 1);
}

#[test]
fn unusable_secrets_answer_503_with_the_annotation_named_and_secret_changes_apply() {
    let base = [service(), ingress("tls", "t.test", "/", &tls_annotations("default/ca"))].concat();
    let mut current = store(&base);
    let mut translator = Translator::new(options());
    let (snapshot, _) = translator.build(&current, Changed::All, &Default::default(), 1);
    assert!(backend(&snapshot, "t.test").endpoints.is_empty(), "a missing Secret: 503");
    let problem = snapshot.diagnostics.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(
        problem.contains(&format!("Ingress default/tls: metadata.annotations[{P}/proxy-ssl-secret]"))
            && problem.contains("Secret default/ca: not found"),
        "{problem}"
    );

    // The Secret appears: only it is named as changed, and the backend is resolved again.
    let secret_key = ObjectKey::new("default", "ca");
    let changed = BTreeSet::from([("Secret", secret_key.clone())]);
    for object in store(&ca_secret("ca", true)).secrets.into_values() {
        current.secrets.insert(secret_key.clone(), object);
    }
    let (snapshot, _) = translator.build(&current, Changed::Objects(&changed), &Default::default(), 2);
    assert!(snapshot.diagnostics.is_empty(), "{:?}", snapshot.diagnostics);
    assert!(matches!(backend(&snapshot, "t.test").transport, Transport::Tls(_)));
    assert_eq!(backend(&snapshot, "t.test").endpoints.len(), 1);

    // Without ca.crt, verification cannot happen: 503, never an unverified connection.
    for object in store(&ca_secret("ca", false)).secrets.into_values() {
        current.secrets.insert(secret_key.clone(), object);
    }
    let (snapshot, _) = translator.build(&current, Changed::Objects(&changed), &Default::default(), 3);
    assert!(backend(&snapshot, "t.test").endpoints.is_empty());
    assert!(snapshot.diagnostics[0].reason.contains("has no ca.crt"), "{:?}", snapshot.diagnostics);
    let scratch = translate(&current, &options(), &Default::default(), 3);
    assert_eq!(scratch.diagnostics, snapshot.diagnostics);
}

#[test]
fn bare_and_foreign_secret_names_answer_503() {
    let yaml = [
        service(),
        ca_secret("ca", true),
        ingress("bare", "b.test", "/", &[("backend-protocol", "HTTPS"), ("proxy-ssl-secret", "ca")]),
        ingress("foreign", "f.test", "/", &[("backend-protocol", "HTTPS"), ("proxy-ssl-secret", "other/ca")]),
        ingress("plain", "p.test", "/", &[("proxy-ssl-secret", "default/ca"), ("proxy-ssl-verify", "on")]),
    ]
    .concat();
    let snapshot = translate(&store(&yaml), &options(), &Default::default(), 1);
    assert!(backend(&snapshot, "b.test").endpoints.is_empty());
    assert!(backend(&snapshot, "f.test").endpoints.is_empty());
    let text: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    assert!(text.iter().any(|d| d.contains("default/bare") && d.contains("is not namespace/name")), "{text:?}");
    assert!(text.iter().any(|d| d.contains("default/foreign") && d.contains("another namespace")), "{text:?}");
    // Without HTTPS or GRPCS the settings do nothing: a warning, and plain HTTP as asked.
    assert!(matches!(backend(&snapshot, "p.test").transport, Transport::Http1));
    assert!(text.iter().any(|d| d.starts_with("warning: Ingress default/plain") && d.contains("has no effect")));
}

fn passthrough_yaml() -> String {
    [
        service(),
        ingress("pass", "pass.test", "/", &[("ssl-passthrough", "true")]),
        ingress("deep", "deep.test", "/api", &[("ssl-passthrough", "true")]),
        ingress("wild", "*.wild.test", "/", &[("ssl-passthrough", "true")]),
        ingress("plain", "plain.test", "/", &[]),
    ]
    .concat()
}

#[test]
fn ssl_passthrough_maps_exact_hosts_to_their_root_backend() {
    let store: Store = store(&passthrough_yaml());
    let options = Options { enable_ssl_passthrough: true, ..options() };
    let snapshot = translate(&store, &options, &Default::default(), 1);
    let entries: Vec<_> =
        snapshot.passthrough.entries().into_iter().map(|(h, id, o)| (h, id, o.name.clone())).collect();
    let root = snapshot.routes.route(Some("pass.test"), "/").unwrap().backends().next().unwrap().id;
    assert_eq!(entries, [("pass.test", root, "pass".to_owned())]);
    assert_eq!(snapshot.passthrough.lookup("Pass.Test"), Some(root));
    let warnings: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    assert!(warnings.iter().any(|w| w.contains("default/deep") && w.contains("no `/` path")), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.contains("default/wild") && w.contains("exactly")), "{warnings:?}");
    let reports = annotation_reports(&store, &options);
    assert!(reports.iter().flat_map(|(_, r)| r).all(|r| r.verdict == AnnotationVerdict::Honoured));
}

#[test]
fn ssl_passthrough_is_ignored_without_the_flag() {
    let store: Store = store(&passthrough_yaml());
    let snapshot = translate(&store, &options(), &Default::default(), 1);
    assert!(snapshot.passthrough.is_empty());
    let warnings: Vec<String> = snapshot.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.iter().filter(|w| w.contains("without --enable-ssl-passthrough")).count(), 3, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.starts_with("warning:")), "{warnings:?}");
    let reports = annotation_reports(&store, &options());
    let ignored = reports.iter().flat_map(|(_, r)| r).filter(|r| matches!(r.verdict, AnnotationVerdict::Ignored(_)));
    assert_eq!(ignored.count(), 3);
}
