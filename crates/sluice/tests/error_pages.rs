//! `custom-http-errors` and `default-backend`, end to end, with the headers ingress-nginx's
//! e2e tests check: error answers (from the backend or Sluice's own) are replaced by the
//! error backend's answer to `/`; a backend without endpoints sends the whole request there.

mod common;

use std::time::Duration;

use common::*;

const P: &str = "nginx.ingress.kubernetes.io";

fn a(name: &str) -> String {
    format!("{P}/{name}")
}

#[test]
fn listed_errors_are_answered_by_the_default_backend_annotation() {
    let mut fx = Fixture::new("err-annotation");
    fx.backend("web");
    fx.backend("errors");
    fx.ingress(
        &Ingress::new("app")
            .annotation(&a("custom-http-errors"), "404, 503")
            .annotation(&a("default-backend"), "errors")
            .path(Some("err.test"), "Prefix", "/", "web"),
    );
    let sluice = fx.start(&[]);

    let request = http_request("POST", "err.test", "/missing?status=404", &[("Accept", "application/json")], b"");
    let resp = sluice.send(&request);
    assert_eq!(resp.status, 200, "the error backend's status is returned as is: {resp:?}");
    let e = resp.echo();
    assert_eq!((e.service(), e.str("method"), e.str("path")), ("errors", "POST", "/"));
    assert_eq!(e.header("x-code"), Some("404"));
    assert_eq!(e.header("x-format"), Some("application/json"));
    assert_eq!(e.header("x-original-uri"), Some("/missing?status=404"));
    assert_eq!(e.header("x-namespace"), Some("default"));
    assert_eq!(e.header("x-ingress-name"), Some("app"));
    assert_eq!(e.header("x-service-name"), Some("web"));
    assert_eq!(e.header("x-service-port"), Some("8080"));
    assert_eq!(e.header("x-request-id").map(str::len), Some(32));
    assert_eq!(e.header("host"), Some("err.test"));

    let passed = sluice.get("err.test", "/x?status=500");
    assert_eq!(passed.status, 500, "codes not listed pass through");
    assert_eq!(passed.echo().service(), "web");
    assert_eq!(sluice.get("err.test", "/ok").echo().service(), "web");
}

#[test]
fn a_backend_without_endpoints_sends_the_request_to_the_default_backend() {
    let mut fx = Fixture::new("err-unavailable");
    fx.backend("errors");
    fx.write_service("gone", None, None, free_port(), &["127.0.0.1".into()], false);
    fx.ingress(&Ingress::new("down").annotation(&a("default-backend"), "errors").path(
        Some("down.test"),
        "Prefix",
        "/",
        "gone",
    ));
    fx.ingress(&Ingress::new("plain").path(Some("plain.test"), "Prefix", "/", "gone"));
    let sluice = fx.start(&[]);
    let resp = sluice.send(&http_request("PUT", "down.test", "/v1/items?id=7", &[], b"body"));
    assert_eq!(resp.status, 200, "{resp:?}");
    let e = resp.echo();
    assert_eq!((e.service(), e.str("method"), e.str("path")), ("errors", "PUT", "/v1/items?id=7"));
    assert_eq!(e.body_bytes(), 4, "the body goes along");
    assert_eq!(e.header("x-code"), Some("503"));
    assert_eq!(e.header("x-service-name"), Some("gone"));
    assert_eq!(sluice.get("plain.test", "/").status, 503, "without the annotation: 503");
}

#[test]
fn configmap_errors_go_to_the_default_backend_service() {
    let mut fx = Fixture::new("err-global");
    fx.backend("web");
    fx.backend("errors");
    fx.ingress(&Ingress::new("app").path(Some("g.test"), "Prefix", "/", "web"));
    fx.ingress(&Ingress::new("own").annotation(&a("custom-http-errors"), "418").path(
        Some("own.test"),
        "Prefix",
        "/",
        "web",
    ));
    let configmap = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: controller, namespace: ingress}\ndata:\n  custom-http-errors: \"413,502\"\n  proxy-body-size: \"4\"\n";
    fx.write("configmap.yaml", configmap);
    let sluice = fx.start(&["--configmap", "ingress/controller", "--default-backend-service", "default/errors"]);

    let too_big = sluice.send(&http_request("POST", "g.test", "/upload", &[], b"0123456789"));
    let e = too_big.echo();
    assert_eq!((e.service(), e.header("x-code")), ("errors", Some("413")), "Sluice's own 413 too");
    assert_eq!(e.header("x-original-uri"), Some("/upload"));
    assert_eq!(sluice.get("g.test", "/?status=502").echo().header("x-code"), Some("502"));
    assert_eq!(sluice.get("g.test", "/?status=404").status, 404);
    // The annotation replaces the ConfigMap's list.
    assert_eq!(sluice.get("own.test", "/?status=502").status, 502);
    assert_eq!(sluice.get("own.test", "/?status=418").echo().header("x-code"), Some("418"));

    // Live: the list follows the ConfigMap.
    fx.write("configmap.yaml", &configmap.replace("413,502", "404"));
    assert!(wait_until(Duration::from_secs(5), || sluice.get("g.test", "/?status=404").status == 200));
    assert_eq!(sluice.get("g.test", "/?status=502").status, 502);
}
