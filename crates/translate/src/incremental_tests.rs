//! A [`Translator`] fed a long random stream of edits must always build what translating the
//! store from scratch builds.

use std::collections::BTreeSet;
use std::fmt::Write;

use sluice_config::Snapshot;
use sluice_store::{Object, Store};

use crate::tests::options;
use crate::{translate, AddressPool, Allocations, Changed, Rebuilt, Translator};

/// A small deterministic generator (64-bit LCG), so that a failure replays exactly.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: usize) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % sides as u64) as usize
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[self.roll(choices.len())]
    }
}

fn decode(yaml: &str) -> Object {
    let (mut objects, diagnostics) = sluice_manifests::decode_documents(yaml, false).unwrap();
    assert!(diagnostics.is_empty() && objects.len() == 1, "{yaml}\n{diagnostics:?}");
    objects.remove(0)
}

fn random_ingress(dice: &mut Dice) -> Object {
    let name = dice.pick(&["i0", "i1", "i2", "i3", "i4"]);
    let namespace = dice.pick(&["default", "default", "other"]);
    let class = dice.pick(&["ingressClassName: sluice", "ingressClassName: mine", "ingressClassName: nginx", ""]);
    let created =
        dice.pick(&["", "creationTimestamp: 2024-01-01T00:00:00Z", "creationTimestamp: 2025-01-01T00:00:00Z"]);
    let host = dice.pick(&["host: a.test", "host: b.test", "host: '*.w.test'", "", "host: Bad_Host"]);
    let path = dice.pick(&["/", "/x", "/x/y"]);
    let path_type = dice.pick(&["Prefix", "Exact"]);
    let service = dice.pick(&["s0", "s1", "s2"]);
    let port = dice.pick(&["number: 80", "name: http", "number: 81", "number: 0"]);
    let default_backend = dice.pick(&["", "defaultBackend: {service: {name: s1, port: {number: 80}}}"]);
    let tls = dice.pick(&["", "tls: [{hosts: [a.test], secretName: t0}]", "tls: [{secretName: t1}]"]);
    let annotations = dice.pick(&[
        "",
        "",
        "annotations: {nginx.ingress.kubernetes.io/use-regex: 'true'},",
        "annotations: {nginx.ingress.kubernetes.io/rewrite-target: /$1, nginx.ingress.kubernetes.io/app-root: /app},",
        "annotations: {nginx.ingress.kubernetes.io/canary: 'true', nginx.ingress.kubernetes.io/canary-weight: '30', \
         nginx.ingress.kubernetes.io/canary-by-header: x-c},",
        "annotations: {nginx.ingress.kubernetes.io/server-alias: 'alias.test, b.test'},",
        "annotations: {nginx.ingress.kubernetes.io/from-to-www-redirect: 'true', nginx.ingress.kubernetes.io/ssl-redirect: 'false'},",
        "annotations: {nginx.ingress.kubernetes.io/auth-url: 'http://auth.test'},",
        "annotations: {nginx.ingress.kubernetes.io/backend-protocol: GRPC, nginx.ingress.kubernetes.io/proxy-body-size: 8m},",
        "annotations: {nginx.ingress.kubernetes.io/permanent-redirect: 'https://x.test$request_uri'},",
        "annotations: {nginx.ingress.kubernetes.io/backend-protocol: HTTPS, nginx.ingress.kubernetes.io/proxy-ssl-secret: \
         default/t0, nginx.ingress.kubernetes.io/proxy-ssl-verify: 'on'},",
        "annotations: {nginx.ingress.kubernetes.io/backend-protocol: GRPCS, nginx.ingress.kubernetes.io/proxy-ssl-secret: \
         default/t1},",
        "annotations: {nginx.ingress.kubernetes.io/ssl-passthrough: 'true'},",
        "annotations: {nginx.ingress.kubernetes.io/service-upstream: 'false'},",
        "annotations: {nginx.ingress.kubernetes.io/affinity: cookie, nginx.ingress.kubernetes.io/upstream-hash-by: \
         $request_uri, nginx.ingress.kubernetes.io/upstream-hash-by-subset: 'true'},",
        "annotations: {nginx.ingress.kubernetes.io/canary: 'true', nginx.ingress.kubernetes.io/canary-weight: '30', \
         nginx.ingress.kubernetes.io/affinity-canary-behavior: legacy},",
        "annotations: {nginx.ingress.kubernetes.io/backend-protocol: HTTPS, nginx.ingress.kubernetes.io/proxy-ssl-secret: \
         other/t0},",
    ]);
    decode(&format!(
        r#"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: {namespace}, {annotations} {created}}}
spec:
  {class}
  {default_backend}
  {tls}
  rules:
  - {host}
    http:
      paths: [{{path: "{path}", pathType: {path_type}, backend: {{service: {{name: {service}, port: {{{port}}}}}}}}}]
"#
    ))
}

fn random_object(dice: &mut Dice, certificate: &(String, String)) -> Object {
    match dice.roll(8) {
        0 | 1 => random_ingress(dice),
        7 => {
            // The controller ConfigMap: every key that changes routes or backends.
            let data = dice.pick(&[
                "",
                "service-upstream: 'true'",
                "allow-cross-namespace-resources: 'true', no-tls-redirect-locations: /x",
                "server-snippet: 'more_set_headers \"X-S: s\";', location-snippet: 'proxy_set_header X-L l;'",
                "location-snippet: 'return 200;', ssl-redirect: 'false'",
            ]);
            decode(&format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: controller, namespace: default}}\ndata: {{{data}}}\n"
            ))
        }
        2 => {
            let name = dice.pick(&["s0", "s1", "s2"]);
            let kind = dice.pick(&[
                "",
                "type: LoadBalancer,",
                "type: ExternalName, externalName: x.test,",
                "clusterIP: 10.96.0.1,",
            ]);
            let port = dice.pick(&[
                "{port: 80, name: http}",
                "{port: 80}",
                "{port: 80, name: http, appProtocol: kubernetes.io/h2c}",
                "{port: 81, name: other}",
            ]);
            decode(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{{kind} ports: [{port}]}}\n"
            ))
        }
        3 | 4 => {
            let name = dice.pick(&["e0", "e1", "e2", "e3"]);
            let service = dice.pick(&["s0", "s1", "s2"]);
            let port = dice.pick(&["{port: 8080, name: http}", "{port: 8080}", "{port: 9090, name: http}"]);
            let ip = dice.pick(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "not-an-ip"]);
            let ready = dice.pick(&["true", "false"]);
            decode(&format!(
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, labels: \
                 {{kubernetes.io/service-name: {service}}}}}\naddressType: IPv4\nports: [{port}]\n\
                 endpoints: [{{addresses: [{ip}], conditions: {{ready: {ready}}}}}]\n"
            ))
        }
        5 => {
            let name = dice.pick(&["s0", "s1", "s2"]);
            let ip = dice.pick(&["10.1.0.1", "10.1.0.2"]);
            decode(&format!(
                "apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\n\
                 subsets: [{{addresses: [{{ip: {ip}}}], ports: [{{port: 7070, name: http}}, {{port: 7071}}]}}]\n"
            ))
        }
        _ => {
            if dice.roll(2) == 0 {
                let default = dice.pick(&["true", "false"]);
                let controller = dice.pick(&["sluice.dev/ingress-controller", "k8s.io/ingress-nginx"]);
                decode(&format!(
                    "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {{name: mine, annotations: \
                     {{ingressclass.kubernetes.io/is-default-class: \"{default}\"}}}}\nspec: {{controller: {controller}}}\n"
                ))
            } else {
                let name = dice.pick(&["t0", "t1"]);
                let namespace = dice.pick(&["default", "default", "other"]);
                let (cert, key) = certificate;
                let cert = if dice.roll(3) == 0 { "broken" } else { cert.as_str() };
                let ca = if dice.roll(2) == 0 { format!("ca.crt: {cert:?},") } else { String::new() };
                decode(&format!(
                    "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\ntype: kubernetes.io/tls\n\
                     stringData: {{{ca} tls.crt: {cert:?}, tls.key: {key:?}}}\n"
                ))
            }
        }
    }
}

/// Everything a snapshot serves, as text.
fn render(snapshot: &Snapshot) -> String {
    let mut out = format!("{:?}\n{:?}\n", snapshot.summary, snapshot.ingresses);
    for entry in snapshot.routes.entries() {
        for route in &*entry.routes.routes {
            let redirect = route.forward().is_none();
            let (conditions, filters) = (route.conditions.len(), route.filters.len());
            let _ = writeln!(
                out,
                "{} {} by {}: {conditions} conditions {filters} filters, redirect {redirect}",
                entry.host, entry.path, route.owner
            );
        }
        for weighted in entry.routes.backends() {
            let backend = snapshot.backend(weighted.id).unwrap();
            let _ = writeln!(
                out,
                "{} {} {} -> {} {} {:?} {:?} {:?} {}",
                entry.host,
                entry.path,
                entry.match_type,
                entry.routes.owner,
                backend.label,
                backend.port_name,
                backend.protocol(),
                backend.endpoints,
                weighted.weight,
            );
        }
    }
    for (name, owner) in snapshot.certificates.entries() {
        let _ = writeln!(out, "tls {name} {owner}");
    }
    for (name, backend, owner) in snapshot.passthrough.entries() {
        let backend = snapshot.backend(backend).map(|b| (&b.label, &b.endpoints));
        let _ = writeln!(out, "passthrough {name} {owner} {backend:?}");
    }
    for diagnostic in &snapshot.diagnostics {
        let _ = writeln!(out, "{diagnostic}");
    }
    for listener in snapshot.l4.listeners.values() {
        let _ = writeln!(
            out,
            "l4 {} {} {:?}",
            listener.service,
            listener.address,
            listener.backends.endpoints().collect::<Vec<_>>()
        );
    }
    let _ = writeln!(out, "{:?}", snapshot.l4.addresses);
    out
}

#[test]
fn incremental_builds_equal_builds_from_scratch() {
    let mut options = options();
    options.enable_ssl_passthrough = true;
    options.configmap = Some(sluice_store::ObjectKey::new("default", "controller"));
    options.lb_pools = vec!["127.0.9.0/30".parse::<AddressPool>().unwrap()];
    let certificate = {
        let c = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    };
    let mut builds = [0usize; 2];
    for seed in [7, 1009, 65_537] {
        replay(seed, &options, &certificate, &mut builds);
    }
    // Both kinds of build were exercised.
    assert!(builds[0] > 150 && builds[1] > 150, "{builds:?}");
}

fn replay(seed: u64, options: &crate::Options, certificate: &(String, String), builds: &mut [usize; 2]) {
    let mut dice = Dice(seed);
    let mut store = Store::default();
    let mut translator = Translator::new(options.clone());
    let mut allocations = Allocations::default();
    for step in 1..=600u64 {
        // A burst of one to three edits between builds, as the debounce gives; the
        // translator is told their kinds, as sources do (or, sometimes, nothing).
        let mut kinds = BTreeSet::new();
        let mut objects = BTreeSet::new();
        for _ in 0..=dice.roll(3) {
            let object = random_object(&mut dice, certificate);
            kinds.insert(object.kind());
            objects.insert((object.kind(), object.key()));
            if dice.roll(4) == 0 {
                store.remove(object.kind(), &object.key());
            } else {
                store.insert(object);
            }
        }
        let changed = match dice.roll(5) {
            0 => Changed::All,
            1 | 2 => Changed::Kinds(&kinds),
            _ => Changed::Objects(&objects),
        };
        let (incremental, rebuilt) = translator.build(&store, changed, &allocations, step);
        let scratch = translate(&store, options, &allocations, step);
        assert_eq!(render(&incremental), render(&scratch), "seed {seed} step {step}");
        builds[usize::from(rebuilt == Rebuilt::Backends)] += 1;
        allocations = incremental.l4.addresses.clone();
    }
}
