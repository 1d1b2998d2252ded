//! TLS towards backends, end to end: `backend-protocol: HTTPS` and `GRPCS`, and
//! `proxy-ssl-secret` / `-verify` / `-name` / `-server-name`, against backends that terminate
//! TLS themselves (tokio-rustls on loopback, certificates from a test CA), through a real
//! `sluice run`. The backends report the SNI, ALPN and client certificate they saw.

mod common;
mod tls_backend;

use std::time::Duration;

use common::*;
use tls_backend::{opaque_secret_yaml, Ca, TlsBackend};

const P: &str = "nginx.ingress.kubernetes.io";

fn a(name: &str) -> String {
    format!("{P}/{name}")
}

/// Writes Service `service` with the backend as its one ready endpoint.
fn service(fx: &Fixture, service: &str, backend: &TlsBackend) {
    fx.write_service(service, None, None, backend.addr.port(), &[backend.addr.ip().to_string()], true);
}

fn check(fx: &Fixture) -> (Option<i32>, String) {
    let out = run_sluice_command(&["check", "--manifests", fx.manifests().to_str().unwrap()]);
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn backend_protocol_https_reaches_a_tls_backend_and_plain_http_does_not() {
    let fx = Fixture::new("tls-https");
    let ca = Ca::new("backend ca");
    let backend = TlsBackend::start("secure", &ca.issue(&["backend.internal"]), None);
    service(&fx, "secure", &backend);
    fx.ingress(&Ingress::new("tls").annotation(&a("backend-protocol"), "HTTPS").path(
        Some("tls.test"),
        "Prefix",
        "/",
        "secure",
    ));
    fx.ingress(&Ingress::new("plain").path(Some("plain.test"), "Prefix", "/", "secure"));
    let sluice = fx.start(&[]);

    for round in 0..3 {
        let resp = sluice.get("tls.test", &format!("/x{round}"));
        assert_eq!(resp.status, 200, "{resp:?}");
        let e = resp.echo();
        assert_eq!((e.service(), e.str("path"), e.str("host")), ("secure", format!("/x{round}").as_str(), "tls.test"));
        assert_eq!((e.str("proto"), e.str("alpn")), ("HTTP/1.1", "http/1.1"));
        assert!(e.0["sni"].is_null(), "no SNI by default, as ingress-nginx: {e:?}");
        assert_eq!(e.0["client_cert"], false);
    }
    let before = backend.requests();
    let resp = sluice.get("plain.test", "/x");
    assert_eq!(resp.status, 502, "plain HTTP to a TLS backend: {resp:?}");
    assert_eq!(backend.requests(), before, "no request reached the backend");

    let (code, stdout) = check(&fx);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains(&format!("honoured  {P}/backend-protocol")), "{stdout}");
}

#[test]
fn proxy_ssl_secret_verifies_the_backend_presents_a_client_certificate_and_sends_sni_on_request() {
    let fx = Fixture::new("tls-verify");
    let (backend_ca, client_ca, other_ca) = (Ca::new("backend ca"), Ca::new("client ca"), Ca::new("other ca"));
    let backend = TlsBackend::start("mtls", &backend_ca.issue(&["backend.internal"]), Some(&client_ca));
    service(&fx, "mtls", &backend);
    let client = client_ca.issue(&["sluice.client"]);
    let with_client = |ca: &str| {
        [("ca.crt", ca.to_owned()), ("tls.crt", client.cert_pem.clone()), ("tls.key", client.key_pem.clone())]
    };
    let secret = |name: &str, entries: &[(&str, String)]| {
        let entries: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (*k, v.as_str())).collect();
        fx.write(&format!("secret-{name}.yaml"), &opaque_secret_yaml(name, &entries));
    };
    secret("good", &with_client(&backend_ca.cert_pem));
    secret("wrong", &with_client(&other_ca.cert_pem));
    secret("ca-only", &[("ca.crt", backend_ca.cert_pem.clone())]);
    let tls = |name: &str, secret: &str, verify_name: &str| {
        Ingress::new(name)
            .annotation(&a("backend-protocol"), "HTTPS")
            .annotation(&a("proxy-ssl-secret"), secret)
            .annotation(&a("proxy-ssl-verify"), "on")
            .annotation(&a("proxy-ssl-name"), verify_name)
            .path(Some(&format!("{name}.test")), "Prefix", "/", "mtls")
    };
    fx.ingress(&tls("verified", "default/good", "backend.internal"));
    fx.ingress(&tls("sni", "default/good", "backend.internal").annotation(&a("proxy-ssl-server-name"), "on"));
    fx.ingress(&tls("wrong-ca", "default/wrong", "backend.internal"));
    fx.ingress(&tls("wrong-name", "default/good", "other.internal"));
    fx.ingress(&tls("no-client-cert", "default/ca-only", "backend.internal"));
    fx.ingress(&tls("bare", "good", "backend.internal"));
    let sluice = fx.start(&[]);

    let resp = sluice.get("verified.test", "/v");
    assert_eq!(resp.status, 200, "{resp:?}");
    let e = resp.echo();
    assert_eq!(e.0["client_cert"], true, "the Secret's tls.crt was presented: {e:?}");
    assert!(e.0["sni"].is_null(), "SNI only with proxy-ssl-server-name: on: {e:?}");
    let e = sluice.get("sni.test", "/s").echo();
    assert_eq!(e.str("sni"), "backend.internal", "proxy-ssl-name is sent as SNI: {e:?}");

    let before = backend.requests();
    for host in ["wrong-ca.test", "wrong-name.test", "no-client-cert.test"] {
        let resp = sluice.get(host, "/");
        assert_eq!(resp.status, 502, "{host}: {resp:?}");
    }
    assert_eq!(backend.requests(), before, "nothing was forwarded over a connection that failed its checks");
    assert_eq!(sluice.get("bare.test", "/").status, 503, "a bare Secret name: 503, as ingress-nginx");

    let (code, stdout) = check(&fx);
    assert_eq!(code, Some(1), "the bare name is an error: {stdout}");
    for name in ["proxy-ssl-secret", "proxy-ssl-verify", "proxy-ssl-name", "proxy-ssl-server-name"] {
        assert!(stdout.contains(&format!("honoured  {P}/{name}")), "{name}: {stdout}");
    }
    assert!(
        stdout.contains(&format!("Ingress default/bare: metadata.annotations[{P}/proxy-ssl-secret]"))
            && stdout.contains("is not namespace/name"),
        "{stdout}"
    );
}

#[test]
fn grpcs_speaks_http2_over_tls_with_alpn_h2() {
    let fx = Fixture::new("tls-grpcs");
    let ca = Ca::new("backend ca");
    let backend = TlsBackend::start("grpc", &ca.issue(&["grpc.internal"]), None);
    service(&fx, "grpc", &backend);
    fx.ingress(&Ingress::new("grpcs").annotation(&a("backend-protocol"), "GRPCS").path(
        Some("grpc.test"),
        "Prefix",
        "/",
        "grpc",
    ));
    let sluice = fx.start(&[]);
    for path in ["/pkg.Service/One", "/pkg.Service/Two"] {
        let resp = sluice.send(&http_request("POST", "grpc.test", path, &[("Content-Type", "application/grpc")], b"x"));
        assert_eq!(resp.status, 200, "{resp:?}");
        let e = resp.echo();
        assert_eq!((e.str("proto"), e.str("alpn"), e.str("path")), ("HTTP/2.0", "h2", path), "{e:?}");
        assert_eq!(e.str("host"), "grpc.test", "the client's host is the :authority");
    }
}

#[test]
fn tls_annotations_and_their_secret_apply_live() {
    let fx = Fixture::new("tls-live");
    let (backend_ca, other_ca) = (Ca::new("backend ca"), Ca::new("other ca"));
    let backend = TlsBackend::start("live", &backend_ca.issue(&["backend.internal"]), None);
    service(&fx, "live", &backend);
    let plain = Ingress::new("live").path(Some("live.test"), "Prefix", "/", "live");
    fx.ingress(&plain);
    let sluice = fx.start(&[]);
    let status_becomes = |status: u16, what: &str| {
        assert!(
            wait_until(Duration::from_secs(10), || sluice.get("live.test", "/").status == status),
            "{what}: still {:?}",
            sluice.get("live.test", "/")
        );
    };
    assert_eq!(sluice.get("live.test", "/").status, 502);

    let https = plain.clone().annotation(&a("backend-protocol"), "HTTPS");
    fx.ingress(&https);
    status_becomes(200, "backend-protocol: HTTPS added");

    let verified = https
        .annotation(&a("proxy-ssl-secret"), "default/trust")
        .annotation(&a("proxy-ssl-verify"), "on")
        .annotation(&a("proxy-ssl-name"), "backend.internal");
    fx.ingress(&verified);
    status_becomes(503, "proxy-ssl-secret names a Secret that does not exist yet");

    let secret = fx.write("secret-trust.yaml", &opaque_secret_yaml("trust", &[("ca.crt", &other_ca.cert_pem)]));
    status_becomes(502, "the Secret appears, with the wrong CA");

    replace_by_rename(&secret, &opaque_secret_yaml("trust", &[("ca.crt", &backend_ca.cert_pem)]));
    status_becomes(200, "the Secret now holds the backend's CA");
}
