//! The controller ConfigMap (`--configmap`), end to end: ingress-nginx's global keys change
//! every route's defaults live; forwarding headers and the PROXY protocol are believed only
//! when it says so. Real `sluice run` processes, echo backends, raw TCP and TLS clients.

mod common;

use std::io::{BufReader, Write};
use std::time::Duration;

use common::*;

fn configmap_yaml(data: &[(&str, &str)]) -> String {
    let mut yaml =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: controller, namespace: ingress}\ndata:\n");
    for (key, value) in data {
        yaml.push_str(&format!("  {key}: {value:?}\n"));
    }
    if data.is_empty() {
        yaml.push_str("  {}\n");
    }
    yaml
}

const FLAG: [&str; 2] = ["--configmap", "ingress/controller"];

#[test]
fn global_keys_set_defaults_and_apply_live() {
    let mut fx = Fixture::new("cm-defaults");
    fx.backend("echo");
    let cert = test_cert(&["secure.test"]);
    fx.tls_secret("secure-tls", &cert);
    fx.ingress(&Ingress::new("secure").tls(&["secure.test"], "secure-tls").path(
        Some("secure.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.write(
        "configmap.yaml",
        &configmap_yaml(&[
            ("ssl-redirect", "false"),
            ("hsts-max-age", "86400"),
            ("hsts-include-subdomains", "false"),
            ("proxy-body-size", "10"),
            ("no-such-key", "1"),
        ]),
    );
    let sluice = fx.start(&FLAG);

    assert_eq!(sluice.get("secure.test", "/").status, 200, "ssl-redirect off for every Ingress");
    let request = http_request("POST", "secure.test", "/", &[], b"more than ten bytes");
    assert_eq!(sluice.send(&request).status, 413, "proxy-body-size from the ConfigMap");
    let raw = http_request("GET", "secure.test", "/", &[], b"");
    let (resp, _) = https_exchange(sluice.https, "secure.test", TlsOptions::default(), &raw).unwrap();
    assert_eq!(resp.header("strict-transport-security"), Some("max-age=86400"));

    let out = run_sluice_command(&["check", "--manifests", fx.manifests().to_str().unwrap(), "--configmap", FLAG[1]]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "unknown keys are warnings: {stdout}");
    assert!(stdout.contains("ConfigMap ingress/controller: data.no-such-key"), "{stdout}");
    assert!(stdout.contains("ConfigMap ingress/controller:\n"), "a paragraph for the ConfigMap: {stdout}");
    assert!(stdout.contains("  honoured  hsts-max-age\n"), "{stdout}");
    assert!(stdout.contains("  ignored   no-such-key: no-such-key is not supported"), "{stdout}");

    fx.write("configmap.yaml", &configmap_yaml(&[("http-redirect-code", "301")]));
    assert!(
        wait_until(Duration::from_secs(5), || sluice.get("secure.test", "/a").status == 301),
        "the default ssl-redirect is back, with the ConfigMap's code, without a restart"
    );
    assert_eq!(
        sluice.get("secure.test", "/a").header("location"),
        Some(&*format!("https://secure.test:{}/a", sluice.https.port()))
    );
    std::fs::remove_file(fx.manifests().join("configmap.yaml")).unwrap();
    assert!(wait_until(Duration::from_secs(5), || sluice.get("secure.test", "/a").status == 308));
}

#[test]
fn forwarding_headers_are_replaced_unless_the_configmap_trusts_them() {
    let mut fx = Fixture::new("cm-forwarded");
    fx.backend("echo");
    let cert = test_cert(&["fwd.test"]);
    fx.tls_secret("fwd-tls", &cert);
    fx.ingress(&Ingress::new("fwd").tls(&["fwd.test"], "fwd-tls").path(Some("fwd.test"), "Prefix", "/", "echo"));
    fx.write("configmap.yaml", &configmap_yaml(&[]));
    let sluice = fx.start(&FLAG);
    let forged = [
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "front.example"),
        ("X-Forwarded-Port", "443"),
    ];
    let request = http_request("GET", "fwd.test", "/p", &forged, b"");
    let resp = sluice.send(&request);
    assert_eq!(resp.status, 308, "X-Forwarded-Proto from a client is not believed: {resp:?}");

    fx.write(
        "configmap.yaml",
        &configmap_yaml(&[("use-forwarded-headers", "true"), ("compute-full-forwarded-for", "true")]),
    );
    assert!(wait_until(Duration::from_secs(5), || sluice.send(&request).status == 200));
    let e = sluice.send(&request).echo();
    assert_eq!(e.header("x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(e.header("x-real-ip"), Some("203.0.113.9"));
    assert_eq!(e.header("x-forwarded-proto"), Some("https"));
    assert_eq!(e.header("x-forwarded-port"), Some("443"));
    assert_eq!(e.header("host"), Some("front.example"), "the first X-Forwarded-Host is the upstream Host");

    fx.write("configmap.yaml", &configmap_yaml(&[("enable-real-ip", "true"), ("ssl-redirect", "false")]));
    assert!(wait_until(Duration::from_secs(5), || {
        sluice.send(&request).try_echo().is_ok_and(|e| e.header("x-forwarded-proto") == Some("http"))
    }));
    let e = sluice.send(&request).echo();
    assert_eq!(e.header("x-real-ip"), Some("203.0.113.9"), "enable-real-ip believes only the address");
    assert_eq!(e.header("x-forwarded-for"), Some("203.0.113.9"));
    assert_eq!(e.header("x-original-forwarded-for"), Some("203.0.113.9"));
    assert_eq!(e.header("host"), Some("fwd.test"));
}

#[test]
fn use_proxy_protocol_reads_the_client_from_the_header() {
    let mut fx = Fixture::new("cm-proxy");
    fx.backend("echo");
    let cert = test_cert(&["pp.test"]);
    fx.tls_secret("pp-tls", &cert);
    fx.ingress(&Ingress::new("pp").tls(&["pp.test"], "pp-tls").path(Some("pp.test"), "Prefix", "/", "echo"));
    fx.write("configmap.yaml", &configmap_yaml(&[("use-proxy-protocol", "true")]));
    let sluice = fx.start(&FLAG);

    let header = b"PROXY TCP4 203.0.113.7 198.18.0.1 5555 443\r\n";
    let request = [&header[..], &http_request("GET", "pp.test", "/", &[], b"")].concat();
    let e = sluice.send(&request).echo();
    assert_eq!(e.header("x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(e.header("x-forwarded-proto"), Some("https"), "taken on port 443 by the balancer");
    assert_eq!(e.header("x-forwarded-port"), Some("443"));
    assert!(
        exchange(sluice.http, &http_request("GET", "pp.test", "/", &[], b"")).is_err(),
        "a connection without the header is closed"
    );

    // v2 in front of TLS, the way a cloud balancer sends it.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[0x21, 0x11, 0, 12, 192, 0, 2, 44, 198, 18, 0, 1, 0x30, 0x39, 0x01, 0xbb]);
    let mut tcp = connect(sluice.https).unwrap();
    tcp.write_all(&v2).unwrap();
    let config = tls_client_config(TlsOptions::default()).unwrap();
    let connection = rustls::ClientConnection::new(config, "pp.test".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(&http_request("GET", "pp.test", "/", &[], b"")).unwrap();
    let resp = read_response(&mut BufReader::new(tls), false).unwrap();
    assert_eq!(resp.echo().header("x-real-ip"), Some("192.0.2.44"));

    let (ok, out, err) = curl(&[
        "--haproxy-protocol",
        "-H",
        "Host: pp.test",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://{}/", sluice.http),
    ]);
    assert!(ok && out == "308", "curl --haproxy-protocol (v1): {out} {err}");
}

#[test]
fn custom_headers_come_from_a_configmap_allowed_by_the_controller_configmap() {
    let mut fx = Fixture::new("cm-custom-headers");
    fx.backend("echo");
    let headers = |value: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: custom, namespace: default}}\ndata:\n  X-Custom: {value:?}\n  X-Two: \"2\"\n")
    };
    fx.write("headers.yaml", &headers("$remote_addr"));
    fx.write("configmap.yaml", &configmap_yaml(&[("global-allowed-response-headers", "X-Custom, X-Two")]));
    let annotation = "nginx.ingress.kubernetes.io/custom-headers";
    fx.ingress(&Ingress::new("app").annotation(annotation, "default/custom").path(
        Some("h.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("lost").annotation(annotation, "missing").path(Some("lost.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&FLAG);

    let resp = sluice.get("h.test", "/?status=500");
    assert_eq!(resp.status, 500);
    assert_eq!(resp.header("x-custom"), Some("$remote_addr"), "values are literal, on every status");
    assert_eq!(resp.header("x-two"), Some("2"));
    assert_eq!(sluice.get("lost.test", "/").status, 503, "a missing ConfigMap fails closed");

    fx.write("headers.yaml", &headers("changed"));
    assert!(wait_until(Duration::from_secs(5), || sluice.get("h.test", "/").header("x-custom") == Some("changed")));
    fx.write("configmap.yaml", &configmap_yaml(&[("global-allowed-response-headers", "X-Custom")]));
    assert!(
        wait_until(Duration::from_secs(5), || sluice.get("h.test", "/").status == 503),
        "a header the controller ConfigMap does not allow: 503"
    );
    let out = run_sluice_command(&["check", "--manifests", fx.manifests().to_str().unwrap(), "--configmap", FLAG[1]]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("X-Two is not listed in global-allowed-response-headers"), "{stdout}");
    assert!(stdout.contains("ConfigMap default/missing not found"), "{stdout}");
}

#[test]
fn no_tls_redirect_locations_keep_acme_challenges_on_plain_http() {
    let mut fx = Fixture::new("cm-acme");
    fx.backend("site");
    fx.backend("solver");
    let cert = test_cert(&["acme.test"]);
    fx.tls_secret("acme-tls", &cert);
    fx.ingress(
        &Ingress::new("site").tls(&["acme.test"], "acme-tls").path(Some("acme.test"), "Prefix", "/", "site").path(
            Some("acme.test"),
            "Prefix",
            "/public",
            "site",
        ),
    );
    // cert-manager's HTTP-01 solver: its own Ingress for the challenge path of the TLS host.
    fx.ingress(&Ingress::new("solver").annotation("nginx.ingress.kubernetes.io/force-ssl-redirect", "true").path(
        Some("acme.test"),
        "Exact",
        "/.well-known/acme-challenge/token-1",
        "solver",
    ));
    fx.write("configmap.yaml", &configmap_yaml(&[]));
    let sluice = fx.start(&FLAG);

    let challenge = sluice.get("acme.test", "/.well-known/acme-challenge/token-1");
    assert_eq!(challenge.status, 200, "the default list exempts the challenge path: {challenge:?}");
    assert_eq!(challenge.echo().service(), "solver");
    assert_eq!(sluice.get("acme.test", "/public/a").status, 308, "the rest of the host is redirected");

    // The test is on the Ingress path (a string prefix), not on the request's.
    fx.write("configmap.yaml", &configmap_yaml(&[("no-tls-redirect-locations", "/pub")]));
    assert!(
        wait_until(Duration::from_secs(5), || {
            sluice.get("acme.test", "/.well-known/acme-challenge/token-1").status == 308
        }),
        "the ConfigMap's list replaces the default, live"
    );
    let page = sluice.get("acme.test", "/public/a");
    assert_eq!((page.status, page.echo().service()), (200, "site"), "the route of path /public starts with /pub");
    assert_eq!(sluice.get("acme.test", "/pub").status, 308, "/pub is served by the route of path /");
}

#[test]
fn server_and_location_snippets_change_headers_on_every_route() {
    let mut fx = Fixture::new("cm-snippets");
    fx.backend("echo");
    fx.ingress(&Ingress::new("plain").path(Some("a.test"), "Prefix", "/", "echo"));
    fx.ingress(
        &Ingress::new("own")
            .annotation("nginx.ingress.kubernetes.io/configuration-snippet", "more_set_headers \\\"X-Own: b\\\";")
            .path(Some("b.test"), "Prefix", "/", "echo"),
    );
    fx.write(
        "configmap.yaml",
        &configmap_yaml(&[
            ("server-snippet", "more_set_headers \"X-Server: s\";"),
            ("location-snippet", "proxy_set_header X-Location l;\nmore_clear_headers Content-Type;"),
        ]),
    );
    let sluice = fx.start(&FLAG);

    for host in ["a.test", "b.test"] {
        let resp = sluice.get(host, "/");
        assert_eq!(resp.header("x-server"), Some("s"), "{host}: server-snippet on every response");
        assert_eq!(resp.header("content-type"), None, "{host}: more_clear_headers");
        assert_eq!(resp.echo().header("x-location"), Some("l"), "{host}: location-snippet's request header");
    }
    assert_eq!(sluice.get("b.test", "/").header("x-own"), Some("b"), "the Ingress's own snippet too");
    assert_eq!(sluice.get("a.test", "/").header("x-own"), None);

    // A snippet with anything but header lines is an error, and only that key is dropped.
    fx.write(
        "configmap.yaml",
        &configmap_yaml(&[
            ("server-snippet", "more_set_headers \"X-Server: s\"; return 403;"),
            ("location-snippet", "proxy_set_header X-Location l;"),
        ]),
    );
    assert!(wait_until(Duration::from_secs(5), || sluice.get("a.test", "/").header("x-server").is_none()));
    let resp = sluice.get("a.test", "/");
    assert_eq!((resp.status, resp.echo().header("x-location")), (200, Some("l")));
    assert!(resp.header("content-type").is_some(), "the location-snippet no longer clears it");
    let out = run_sluice_command(&["check", "--manifests", fx.manifests().to_str().unwrap(), "--configmap", FLAG[1]]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "an unreadable snippet is an error: {stdout}");
    assert!(stdout.contains("ConfigMap ingress/controller: data.server-snippet: directive \"return\""), "{stdout}");
}

/// Service `web` whose ClusterIP (127.0.0.2) and endpoint (127.0.0.1) are two echo backends
/// on one port, named after how they are reached.
fn cluster_ip_service(fx: &mut Fixture) -> u16 {
    let port = free_port();
    fx.spawn_echo(format!("127.0.0.1:{port}").parse().unwrap(), "endpoint");
    fx.spawn_echo(format!("127.0.0.2:{port}").parse().unwrap(), "cluster-ip");
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: default}}\n\
         spec: {{clusterIP: 127.0.0.2, ports: [{{port: {port}}}]}}\n"
    );
    fx.write(
        "svc-web.yaml",
        &yaml_docs(&[service, endpoint_slice_yaml("web", None, port, &["127.0.0.1".into()], true)]),
    );
    port
}

#[test]
fn service_upstream_from_the_configmap_is_the_default_for_the_annotation() {
    let mut fx = Fixture::new("cm-service-upstream");
    let port = cluster_ip_service(&mut fx);
    let annotation = "nginx.ingress.kubernetes.io/service-upstream";
    fx.ingress(&Ingress::new("unset").path_port(Some("unset.test"), "Prefix", "/", "web", Port::Number(port)));
    fx.ingress(&Ingress::new("pods").annotation(annotation, "false").path_port(
        Some("pods.test"),
        "Prefix",
        "/",
        "web",
        Port::Number(port),
    ));
    fx.write("configmap.yaml", &configmap_yaml(&[]));
    let sluice = fx.start(&FLAG);
    assert_eq!(sluice.get("unset.test", "/").echo().service(), "endpoint", "ingress-nginx's default: endpoints");

    fx.write("configmap.yaml", &configmap_yaml(&[("service-upstream", "true")]));
    assert!(
        wait_until(Duration::from_secs(5), || {
            sluice.get("unset.test", "/").try_echo().is_ok_and(|e| e.service() == "cluster-ip")
        }),
        "the ConfigMap's default reaches the ClusterIP, live"
    );
    for _ in 0..5 {
        assert_eq!(sluice.get("unset.test", "/").echo().service(), "cluster-ip");
        assert_eq!(sluice.get("pods.test", "/").echo().service(), "endpoint", "the annotation wins");
    }
}
