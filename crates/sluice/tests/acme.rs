//! Automatic HTTPS end to end: `sluice run` on manifests with a `kubernetes.io/tls-acme`
//! Ingress, a real CA (Debian's pebble, resolving every name to 127.0.0.1 and validating
//! against Sluice's own listeners), and a real TLS client that must see a certificate for
//! the host chaining to pebble's issuing root.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::acme::{acme_flags, start_sluice, wait_for_issued};
use common::*;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use sluice_testnet::pebble::{self, Pebble, PebbleOptions};

const HOST: &str = "shop.acme.test";
/// Long enough for an order after a retry or two (retry minimum 1 s).
const ISSUED_WITHIN: Duration = Duration::from_secs(60);

/// The app: an echo backend behind an Ingress for [`HOST`] that asks for a certificate.
fn app(fixture: &mut Fixture, annotations: &[(&str, &str)]) {
    fixture.backend("shop");
    let mut ingress = Ingress::new("shop").annotation("kubernetes.io/tls-acme", "true").tls(&[HOST], "shop-tls").path(
        Some(HOST),
        "Prefix",
        "/",
        "shop",
    );
    for (key, value) in annotations {
        ingress = ingress.annotation(key, value);
    }
    fixture.ingress(&ingress);
}

fn not_after(der: &[u8]) -> i64 {
    let (_, leaf) = x509_parser::parse_x509_certificate(der).expect("leaf");
    leaf.validity().not_after.timestamp()
}

#[test]
fn http_01_certificate_is_issued_stored_and_served() {
    let mut fixture = Fixture::new("acme-http01");
    // A redirect to HTTPS must not break HTTP-01 (answered before routing).
    app(&mut fixture, &[("nginx.ingress.kubernetes.io/force-ssl-redirect", "true")]);
    let (http, https) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    // pebble's default nonce rejection stays on: badNonce answers are retried.
    let pebble = Pebble::start(&PebbleOptions { http_port: http.port(), tls_port: https.port(), ..Default::default() });
    let state = fixture.dir.path().join("state");
    let flags = acme_flags(&pebble.directory_url(), &pebble.tls_root_file(), &state);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let sluice = start_sluice(&fixture, http, https, &flags);

    let leaf = wait_for_issued(&sluice, HOST, &pebble.issuing_root_pem(), ISSUED_WITHIN);
    let root = CertificateDer::from_pem_slice(pebble.issuing_root_pem().as_bytes()).unwrap();
    let opts = TlsOptions { trust: Some(root.as_ref()), ..TlsOptions::default() };
    let (answer, served) = https_exchange(https, HOST, opts, &http_request("GET", HOST, "/", &[], b"")).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.echo().service(), "shop");
    assert_eq!(served, leaf);
    // Plain HTTP is still redirected, as the Ingress says.
    assert_eq!(sluice.get(HOST, "/").status, 308);

    // Stored where the manifest source reads it back, the account beside it.
    let secret = std::fs::read_to_string(state.join("acme/objects/default_shop-tls.json")).unwrap();
    assert!(secret.contains("kubernetes.io/tls") && secret.contains("tls.crt"), "{secret}");
    assert!(state.join("acme/account.json").exists());
    // Every challenge answer was withdrawn.
    let challenges =
        std::fs::read_to_string(state.join("acme/objects/sluice-system_sluice-acme-challenges.json")).unwrap();
    assert!(!challenges.contains("http-01."), "{challenges}");
    let metrics = sluice.metrics();
    assert!(
        metric_value(&metrics, "sluice_acme_orders_total{result=\"issued\"}").is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    let expiry =
        format!("sluice_acme_certificate_expiry_timestamp_seconds{{secret=\"default/shop-tls\",host=\"{HOST}\"}}");
    assert_eq!(metric_value(&metrics, &expiry), Some(not_after(&leaf) as f64), "{metrics}");

    // A restart serves the stored certificate at once and orders nothing new.
    drop(sluice);
    let sluice = start_sluice(&fixture, http, https, &flags);
    let again = wait_for_issued(&sluice, HOST, &pebble.issuing_root_pem(), Duration::from_secs(5));
    assert_eq!(again, leaf);
    std::thread::sleep(Duration::from_secs(1));
    assert!(metric_value(&sluice.metrics(), "sluice_acme_orders_total{result=\"issued\"}").is_none());
}

#[test]
fn tls_alpn_01_certificate_is_issued_and_served() {
    let mut fixture = Fixture::new("acme-alpn");
    app(&mut fixture, &[]);
    let (http, https) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    let options =
        PebbleOptions { http_port: http.port(), tls_port: https.port(), nonce_reject: Some(0), ..Default::default() };
    let pebble = Pebble::start(&options);
    let state = fixture.dir.path().join("state");
    let mut flags = acme_flags(&pebble.directory_url(), &pebble.tls_root_file(), &state);
    flags.extend(["--acme-challenge".to_owned(), "tls-alpn-01".to_owned()]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let sluice = start_sluice(&fixture, http, https, &flags);
    wait_for_issued(&sluice, HOST, &pebble.issuing_root_pem(), ISSUED_WITHIN);
    let log = sluice.proc.log();
    assert!(log.contains("challenge=tls-alpn-01") || log.contains("challenge: tls-alpn-01"), "{log}");
}

#[test]
fn certificates_are_renewed_before_they_expire() {
    let mut fixture = Fixture::new("acme-renew");
    app(&mut fixture, &[]);
    let (http, https) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    // 30 s certificates: renewal is due after 20 s.
    let options = PebbleOptions {
        http_port: http.port(),
        tls_port: https.port(),
        nonce_reject: Some(0),
        validity_seconds: Some(30),
        ..Default::default()
    };
    let pebble = Pebble::start(&options);
    let state = fixture.dir.path().join("state");
    let flags = acme_flags(&pebble.directory_url(), &pebble.tls_root_file(), &state);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let sluice = start_sluice(&fixture, http, https, &flags);
    let root = pebble.issuing_root_pem();
    let first = wait_for_issued(&sluice, HOST, &root, ISSUED_WITHIN);
    let deadline = Instant::now() + Duration::from_secs(60);
    let renewed = loop {
        let leaf = wait_for_issued(&sluice, HOST, &root, ISSUED_WITHIN);
        if leaf != first {
            break leaf;
        }
        assert!(Instant::now() < deadline, "not renewed; log:\n{}", sluice.proc.log());
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(not_after(&renewed) > not_after(&first));
    assert!(metric_value(&sluice.metrics(), "sluice_acme_orders_total{result=\"issued\"}").is_some_and(|n| n >= 2.0));
}

#[test]
fn a_ca_that_is_down_leaves_serving_alone_and_is_tried_again() {
    let mut fixture = Fixture::new("acme-down");
    app(&mut fixture, &[]);
    let (http, https) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    let identity = pebble::tls_identity();
    let root_file = fixture.dir.write("pebble-tls.pem", &identity.0);
    let port = pebble::free_port();
    let state = fixture.dir.path().join("state");
    let flags = acme_flags(&format!("https://127.0.0.1:{port}/dir"), &root_file, &state);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let sluice = start_sluice(&fixture, http, https, &flags);

    // Orders fail while the CA is down; the host is served with the default certificate.
    assert!(
        wait_until(Duration::from_secs(20), || {
            metric_value(&sluice.metrics(), "sluice_acme_orders_total{result=\"failed\"}").is_some_and(|n| n >= 1.0)
        }),
        "no failed order counted; log:\n{}",
        sluice.proc.log()
    );
    let (answer, served) =
        https_exchange(https, HOST, TlsOptions::default(), &http_request("GET", HOST, "/", &[], b"")).unwrap();
    assert_eq!(answer.status, 200);
    let (_, leaf) = x509_parser::parse_x509_certificate(&served).unwrap();
    assert!(!leaf
        .subject_alternative_name()
        .ok()
        .flatten()
        .is_some_and(|san| format!("{:?}", san.value).contains(HOST)));
    assert!(sluice.proc.log().contains("certificate order failed"));

    // The CA comes up: the next attempt gets the certificate.
    let pebble = Pebble::start(&PebbleOptions {
        http_port: http.port(),
        tls_port: https.port(),
        nonce_reject: Some(0),
        listen_port: Some(port),
        tls_identity: Some(identity),
        ..Default::default()
    });
    wait_for_issued(&sluice, HOST, &pebble.issuing_root_pem(), ISSUED_WITHIN);
}

#[test]
fn orders_that_cannot_be_made_are_diagnostics_naming_the_field() {
    let fixture = Fixture::new("acme-check");
    fixture.ingress(
        &Ingress::new("wild").annotation("kubernetes.io/tls-acme", "true").tls(&["*.wild.acme.test"], "wild-tls").path(
            Some("*.wild.acme.test"),
            "Prefix",
            "/",
            "shop",
        ),
    );
    fixture.ingress(&Ingress::new("typo").annotation("kubernetes.io/tls-acme", "yes").tls(&[HOST], "typo-tls").path(
        Some(HOST),
        "Prefix",
        "/",
        "shop",
    ));
    let manifests = fixture.manifests().display().to_string();
    let output = run_sluice_command(&["check", "--manifests", &manifests]);
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    // `check` has no ACME issuer: the annotation is reported as not acted on.
    assert!(text.contains("Ingress default/wild") && text.contains("automatic HTTPS is off"), "{text}");
    assert!(text.contains("Ingress default/typo") && text.contains("must be \"true\" or \"false\""), "{text}");
}

#[test]
fn gateway_https_listener_gets_its_certificate_by_tls_alpn_01() {
    let mut fixture = Fixture::new("acme-gateway");
    fixture.backend("shop");
    let tls_port = pebble::free_port();
    let gateway = format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: sluice}}
spec: {{controllerName: sluice.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners:
  - {{name: https, port: {tls_port}, protocol: HTTPS, hostname: gw.acme.test, tls: {{certificateRefs: [{{name: gw-tls}}]}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: shop, namespace: default}}
spec:
  parentRefs: [{{name: gw}}]
  rules: [{{backendRefs: [{{name: shop, port: 8080}}]}}]
"
    );
    fixture.write("gateway.yaml", &gateway);
    let (http, https) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    let address: SocketAddr = format!("127.0.97.10:{tls_port}").parse().unwrap();
    let pebble = Pebble::start(&PebbleOptions {
        http_port: http.port(),
        tls_port,
        nonce_reject: Some(0),
        default_ipv4: Some("127.0.97.10".into()),
        ..Default::default()
    });
    let state = fixture.dir.path().join("state");
    let mut flags = acme_flags(&pebble.directory_url(), &pebble.tls_root_file(), &state);
    flags.extend(
        ["--acme-challenge", "tls-alpn-01", "--acme-gateways", "--lb-pool", "127.0.97.10/32"].map(String::from),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let sluice = start_sluice(&fixture, http, https, &flags);

    // Served with the default certificate until the order completes, then with pebble's.
    let root = CertificateDer::from_pem_slice(pebble.issuing_root_pem().as_bytes()).unwrap();
    let opts = TlsOptions { trust: Some(root.as_ref()), ..TlsOptions::default() };
    let raw = http_request("GET", "gw.acme.test", "/", &[], b"");
    let issued = wait_until(ISSUED_WITHIN, || https_exchange(address, "gw.acme.test", opts, &raw).is_ok());
    assert!(issued, "no certificate for the Gateway listener; log:\n{}", sluice.proc.log());
    let (answer, _) = https_exchange(address, "gw.acme.test", opts, &raw).unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.echo().service(), "shop");
    assert!(state.join("acme/objects/default_gw-tls.json").exists());
}
