//! What `sluice run` reads and how it reacts to changes, end-to-end:
//! which Ingresses are ours (`--ingress-class`, IngressClass resources with our
//! controller, the default-class annotation, the legacy `kubernetes.io/ingress.class`
//! annotation, `--watch-ingress-without-class`); legacy `Endpoints` v1; Services with
//! several ports selected by number and by name; multi-document files, `kind: List`,
//! nested directories and repeated `--manifests`; and SIGHUP reloads that add and
//! remove routes and endpoints while a broken file is present.

mod common;

use std::net::SocketAddr;

use common::*;

/// An IngressClass with the given controller, optionally the cluster default.
fn ingress_class_yaml(name: &str, controller: &str, default: bool) -> String {
    let annotations =
        if default { "  annotations:\n    ingressclass.kubernetes.io/is-default-class: \"true\"\n" } else { "" };
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: {name}\n{annotations}spec:\n  controller: {controller}\n"
    )
}

/// Status for `Host: host` and, on 200, the serving Service.
fn route(sluice: &Sluice, host: &str) -> String {
    let resp = sluice.get(host, "/");
    if resp.status == 200 {
        resp.try_echo().map(|e| e.service().to_owned()).unwrap_or_else(|e| e)
    } else {
        resp.status.to_string()
    }
}

/// Writes one Ingress per class variant (host `<name>.class.test`, Service `echo`)
/// and the IngressClasses `ours` (our controller) and `foreign` (another controller).
fn class_variants(fx: &Fixture) {
    // (name, spec.ingressClassName, kubernetes.io/ingress.class annotation)
    let variants: [(&str, Option<&str>, Option<&str>); 7] = [
        ("by-name", Some("sluice"), None),
        ("by-ours", Some("ours"), None),
        ("by-foreign", Some("foreign"), None),
        ("by-unknown", Some("nobody-defines-this"), None),
        ("legacy-ours", None, Some("sluice")),
        ("legacy-other", None, Some("nginx")),
        ("no-class", None, None),
    ];
    // A default backend in an Ingress that is not ours must not catch anything either.
    fx.ingress(&Ingress::new("foreign-default").class(Some("foreign")).default_backend("echo"));
    for (name, class, legacy) in variants {
        let mut ingress = Ingress::new(name).class(class);
        if let Some(legacy) = legacy {
            ingress = ingress.annotation("kubernetes.io/ingress.class", legacy);
        }
        let host = format!("{name}.class.test");
        fx.ingress(&ingress.path(Some(&host), "Prefix", "/", "echo"));
    }
    fx.write(
        "classes.yaml",
        &yaml_docs(&[
            ingress_class_yaml("ours", "sluice.dev/ingress-controller", false),
            ingress_class_yaml("foreign", "example.com/other-controller", false),
        ]),
    );
}

#[test]
fn only_our_ingress_classes_are_served() {
    let mut fx = Fixture::new("classes");
    fx.backend("echo");
    class_variants(&fx);
    let sluice = fx.start(&[]);
    let mut wrong = Vec::new();
    for (host, want) in [
        ("by-name", "echo"),
        ("by-ours", "echo"),
        ("by-foreign", "404"),
        ("by-unknown", "404"),
        ("legacy-ours", "echo"),
        ("legacy-other", "404"),
        ("no-class", "404"),
    ] {
        let got = route(&sluice, &format!("{host}.class.test"));
        if got != want {
            wrong.push(format!("{host}: want {want}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "class selection:\n{}", wrong.join("\n"));
}

#[test]
fn ingresses_without_class() {
    // With the flag.
    let mut fx = Fixture::new("no-class-flag");
    fx.backend("echo");
    class_variants(&fx);
    let sluice = fx.start(&["--watch-ingress-without-class"]);
    assert_eq!(route(&sluice, "no-class.class.test"), "echo");
    assert_eq!(route(&sluice, "by-foreign.class.test"), "404");
    drop(sluice);

    // With one of our IngressClasses marked as the cluster default.
    let mut fx = Fixture::new("no-class-default");
    fx.backend("echo");
    fx.write("default-class.yaml", &ingress_class_yaml("the-default", "sluice.dev/ingress-controller", true));
    fx.ingress(&Ingress::new("no-class").class(None).path(Some("no-class.class.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);
    assert_eq!(route(&sluice, "no-class.class.test"), "echo");
}

#[test]
fn legacy_endpoints_and_multi_port_services() {
    let mut fx = Fixture::new("ports");
    let web = free_addr("127.0.0.1");
    let admin = free_addr("127.0.0.1");
    fx.spawn_echo(web, "multi-web");
    fx.spawn_echo(admin, "multi-admin");
    let legacy = free_addr("127.0.0.1");
    fx.spawn_echo(legacy, "legacy");
    fx.write(
        "multi.yaml",
        &format!(
            r#"apiVersion: v1
kind: Service
metadata: {{name: multi, namespace: default}}
spec:
  ports:
    - {{name: web, port: 8080, targetPort: 3000}}
    - {{name: admin, port: 9090, targetPort: 3001}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: multi-xyz
  namespace: default
  labels: {{kubernetes.io/service-name: multi}}
addressType: IPv4
ports:
  - {{name: web, port: {}, protocol: TCP}}
  - {{name: admin, port: {}, protocol: TCP}}
endpoints:
  - addresses: ["127.0.0.1"]
    conditions: {{ready: true}}
---
apiVersion: v1
kind: Service
metadata: {{name: legacy, namespace: default}}
spec:
  ports: [{{port: 8080, targetPort: 3000}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: legacy, namespace: default}}
subsets:
  - addresses: [{{ip: 127.0.0.1}}]
    ports: [{{port: {}}}]
"#,
            web.port(),
            admin.port(),
            legacy.port()
        ),
    );
    fx.ingress(
        &Ingress::new("ports")
            .path_port(None, "Prefix", "/web-by-number", "multi", Port::Number(8080))
            .path_port(None, "Prefix", "/admin-by-number", "multi", Port::Number(9090))
            .path_port(None, "Prefix", "/admin-by-name", "multi", Port::Name("admin".into()))
            .path_port(None, "Prefix", "/web-by-name", "multi", Port::Name("web".into()))
            .path(None, "Prefix", "/legacy", "legacy"),
    );
    let sluice = fx.start(&[]);
    for (path, want) in [
        ("/web-by-number", "multi-web"),
        ("/web-by-name", "multi-web"),
        ("/admin-by-number", "multi-admin"),
        ("/admin-by-name", "multi-admin"),
        ("/legacy", "legacy"),
    ] {
        let resp = sluice.get("ports.test", path);
        assert_eq!(resp.status, 200, "{path}: {resp:?}");
        assert_eq!(resp.echo().service(), want, "{path}");
    }
}

#[test]
fn lists_multi_documents_nested_dirs_and_several_sources() {
    let mut fx = Fixture::new("sources");
    let a = free_addr("127.0.0.1");
    let b = free_addr("127.0.0.1");
    fx.spawn_echo(a, "svc-a");
    fx.spawn_echo(b, "svc-b");
    // Source 1 (a directory): a `kind: List` in a nested directory, and a .yml file.
    fx.write(
        "nested/deeper/list.yaml",
        &format!(
            "apiVersion: v1\nkind: List\nitems:\n{}",
            [
                service_yaml("svc-a", None, None),
                endpoint_slice_yaml("svc-a", None, a.port(), &["127.0.0.1".into()], true),
            ]
            .iter()
            .map(|doc| {
                let mut lines = doc.lines();
                let first = lines.next().unwrap_or_default();
                let rest: String = lines.map(|l| format!("    {l}\n")).collect();
                format!("  - {first}\n{rest}")
            })
            .collect::<String>()
        ),
    );
    fx.write("ingress-a.yml", &Ingress::new("a").path(Some("a.sources.test"), "Prefix", "/", "svc-a").yaml());
    // Source 2 (a single file elsewhere): several documents, one of them empty.
    let other = fx.dir.write(
        "elsewhere/b.yaml",
        &format!(
            "{}---\n# only a comment\n---\n{}",
            yaml_docs(&[
                service_yaml("svc-b", None, None),
                endpoint_slice_yaml("svc-b", None, b.port(), &["127.0.0.1".into()], true),
            ]),
            Ingress::new("b").path(Some("b.sources.test"), "Prefix", "/", "svc-b").yaml()
        ),
    );
    let sluice = Sluice::start(fx.dir.path(), &[fx.manifests(), other], &[]);
    assert_eq!(route(&sluice, "a.sources.test"), "svc-a");
    assert_eq!(route(&sluice, "b.sources.test"), "svc-b");
}

#[test]
fn sighup_applies_changes_and_keeps_serving_through_a_broken_file() {
    let mut fx = Fixture::new("reload");
    let first = fx.backend("echo");
    fx.ingress(&Ingress::new("one").path(Some("one.reload.test"), "Prefix", "/", "echo"));
    fx.ingress(&Ingress::new("two").path(Some("two.reload.test"), "Prefix", "/", "echo"));
    let mut sluice = fx.start(&[]);
    assert_eq!(route(&sluice, "one.reload.test"), "echo");
    assert_eq!(route(&sluice, "two.reload.test"), "echo");
    assert_eq!(route(&sluice, "three.reload.test"), "404");

    // Add an Ingress, remove one, move the endpoint, and add a broken file.
    fx.ingress(&Ingress::new("three").path(Some("three.reload.test"), "Prefix", "/", "echo"));
    std::fs::remove_file(fx.manifests().join("ingress-two.yaml")).expect("remove ingress-two");
    let second: SocketAddr = free_addr("127.0.0.1");
    fx.spawn_echo(second, "echo");
    fx.write_service("echo", None, None, second.port(), &[second.ip().to_string()], true);
    fx.write("zz-broken.yaml", "kind: [unclosed\n");
    sluice.reload();

    assert_eq!(route(&sluice, "three.reload.test"), "echo");
    assert_eq!(route(&sluice, "two.reload.test"), "404");
    for _ in 0..5 {
        let e = sluice.get("one.reload.test", "/").echo();
        assert_eq!(e.str("pod"), second.to_string(), "traffic still goes to the old endpoint {first}");
    }
}
