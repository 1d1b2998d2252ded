//! Gateway API behaviour the conformance replay does not reach, end to end against a real
//! `sluice run` and `sluice echo` backends on loopback:
//! - an HTTPS listener answers 421 when a connection's SNI chose another listener than a
//!   request's `Host` (HTTP/2 connection reuse), and serves the one it chose;
//! - a Gateway keeps its address across a restart (`--state-dir`), and a route added while
//!   running is served within a second on the Gateway's own address;
//! - a TLS listener in Terminate mode relays the bytes inside TLS to the TLSRoute's backend;
//! - a gRPC request nothing routes is answered with a gRPC status, as gRPC clients read it.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// The pool every test draws Gateway addresses from (one address each).
fn pool(n: u8) -> String {
    format!("127.0.{n}.10-127.0.{n}.12")
}

const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec: {controllerName: sluice.dev/gateway-controller}
";

fn route(name: &str, listener: &str, hosts: &str, backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: {listener}}}]
  hostnames: [{hosts}]
  rules: [{{backendRefs: [{{name: {backend}, port: 8080}}]}}]
"
    )
}

#[test]
fn https_listeners_answer_421_when_the_sni_chose_another_listener() {
    let mut fx = Fixture::new("gw-421");
    let cert = test_cert(&["a.example.com", "b.example.com"]);
    fx.tls_secret("both", &cert);
    fx.backend("one");
    fx.backend("two");
    let gateway = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: a, port: 8443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: both}]}}
  - {name: b, port: 8443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{name: both}]}}
";
    let routes = [route("ra", "a", "a.example.com", "one"), route("rb", "b", "b.example.com", "two")].join("---\n");
    fx.write("gateway.yaml", &format!("{CLASS}---\n{gateway}---\n{routes}"));
    let _sluice = fx.start(&["--lb-pool", &pool(93)]);
    let address = "127.0.93.10:8443".parse().unwrap();
    let get = |sni: &str, host: &str| {
        let raw = http_request("GET", host, "/", &[], b"");
        https_exchange(address, sni, TlsOptions::default(), &raw).map(|(resp, _)| resp)
    };
    assert!(
        wait_until(Duration::from_secs(10), || get("a.example.com", "a.example.com").is_ok_and(|r| r.status == 200))
    );
    assert_eq!(get("a.example.com", "a.example.com").unwrap().echo().service(), "one");
    assert_eq!(get("b.example.com", "b.example.com").unwrap().echo().service(), "two");
    assert_eq!(get("a.example.com", "b.example.com").unwrap().status, 421, "SNI a, Host b: misdirected");
    assert_eq!(get("b.example.com", "a.example.com:8443").unwrap().status, 421);
    fx.assert_backends_running();
}

#[test]
fn a_gateway_keeps_its_address_across_restarts_and_new_routes_serve_within_a_second() {
    let mut fx = Fixture::new("gw-restart");
    fx.backend("web");
    let gateway = |name: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners: [{{name: http, port: 8080, protocol: HTTP}}]
"
        )
    };
    let state = fx.dir.path().join("state");
    let state_arg = state.to_str().expect("a UTF-8 temp path").to_owned();
    // `second` is allocated first, so `gw` gets the next address.
    fx.write("gateway.yaml", &format!("{CLASS}---\n{}---\n{}", gateway("second"), gateway("gw")));
    let args = ["--lb-pool", &pool(94), "--state-dir", &state_arg];
    let sluice = fx.start(&args);
    let status = |sluice: &Sluice| -> serde_json::Value {
        let raw = http_request("GET", "admin", "/status", &[], b"");
        serde_json::from_slice(&exchange(sluice.admin, &raw).expect("GET /status").body).expect("JSON")
    };
    let address_of = |doc: &serde_json::Value, name: &str| {
        let gateways = doc["gateways"].as_array().cloned().unwrap_or_default();
        let found = gateways.into_iter().find(|g| g["name"] == name).unwrap_or_default();
        found["status"]["addresses"][0]["value"].as_str().unwrap_or_default().to_owned()
    };
    let before = address_of(&status(&sluice), "gw");
    assert!(before.starts_with("127.0.94."), "{before:?}");

    // A route added while running is served on the Gateway's address within a second.
    fx.write("route.yaml", &route("r", "http", "web.example.com", "web"));
    let started = Instant::now();
    let address = format!("{before}:8080").parse().unwrap();
    let served = wait_until(Duration::from_secs(5), || {
        exchange(address, &http_request("GET", "web.example.com", "/", &[], b"")).is_ok_and(|r| r.status == 200)
    });
    assert!(served && started.elapsed() < Duration::from_secs(1), "served after {:?}", started.elapsed());

    // A gRPC request nothing routes gets a gRPC status (UNIMPLEMENTED), not a text 404.
    let grpc =
        http_request("POST", "nowhere.example.com", "/pkg.Svc/Call", &[("content-type", "application/grpc")], b"");
    let answer = exchange(address, &grpc).expect("request");
    assert_eq!((answer.status, answer.header("grpc-status")), (200, Some("12")), "{:?}", answer.headers);
    drop(sluice);

    // Restarted with `second` gone: `gw` keeps its address instead of taking the lowest.
    fx.write("gateway.yaml", &format!("{CLASS}---\n{}", gateway("gw")));
    let sluice = fx.start(&args);
    assert_eq!(address_of(&status(&sluice), "gw"), before, "the address survives the restart");
    let answer = exchange(address, &http_request("GET", "web.example.com", "/", &[], b"")).expect("request");
    assert_eq!(answer.echo().service(), "web");
    fx.assert_backends_running();
}

#[test]
fn tls_listeners_in_terminate_mode_relay_what_is_inside_to_the_tlsroute_backend() {
    let mut fx = Fixture::new("gw-tls-terminate");
    let cert = test_cert(&["t.example.com"]);
    fx.tls_secret("t", &cert);
    fx.backend("web");
    let objects = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: tls, port: 9443, protocol: TLS, tls: {mode: Terminate, certificateRefs: [{name: t}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TLSRoute
metadata: {name: t, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [t.example.com]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
";
    fx.write("gateway.yaml", &format!("{CLASS}---\n{objects}"));
    let _sluice = fx.start(&["--lb-pool", &pool(95)]);
    let address = "127.0.95.10:9443".parse().unwrap();
    let opts = TlsOptions { trust: Some(&cert.der), alpn: &[], ..TlsOptions::default() };
    let raw = http_request("GET", "t.example.com", "/inside", &[], b"");
    let served = wait_until(Duration::from_secs(10), || https_exchange(address, "t.example.com", opts, &raw).is_ok());
    assert!(served, "the TLS listener terminates with the route's certificate");
    let (answer, leaf) = https_exchange(address, "t.example.com", opts, &raw).expect("request");
    assert_eq!(leaf, cert.der, "the listener's certificate");
    let echo = answer.echo();
    assert_eq!((echo.service(), echo.str("path")), ("web", "/inside"));
    assert!(echo.header("x-forwarded-for").is_none(), "bytes relayed, not proxied as HTTP");
    assert!(https_exchange(address, "other.example.com", opts, &raw).is_err(), "no TLSRoute for this name");
    fx.assert_backends_running();
}
