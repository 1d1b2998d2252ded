//! Wildcard certificates end to end: `sluice run` on manifests with a `kubernetes.io/tls-acme`
//! Ingress for `*.wild.acme.test` and `wild.acme.test`, a real CA (Debian's pebble) that
//! resolves through a real BIND 9 ([`sluice_testnet::named`]) serving `wild.acme.test`, and
//! Sluice publishing the DNS-01 answers there by RFC 2136 updates signed with TSIG. A real TLS
//! client must then see a certificate for both names chaining to pebble's issuing root.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::acme::{acme_flags, start_sluice, wait_for_issued};
use common::*;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use sluice_testnet::named::Named;
use sluice_testnet::pebble::{self, Pebble, PebbleOptions};

/// The zone named serves, and the Ingress's apex host.
const ZONE: &str = "wild.acme.test";
const WILDCARD: &str = "*.wild.acme.test";
/// A name only the wildcard covers.
const UNDER_WILDCARD: &str = "anything.wild.acme.test";
/// The TSIG key named accepts updates with (base64 of "sluice-e2e-dns01-key-0123456789ab").
const KEY_NAME: &str = "sluice-e2e-key";
const SECRET: &str = "c2x1aWNlLWUyZS1kbnMwMS1rZXktMDEyMzQ1Njc4OWFi";
/// Another valid base64 secret, which named does not know.
const WRONG_SECRET: &str = "d3JvbmctZTJlLXNlY3JldC0wMTIzNDU2Nzg5YWJjZA==";
/// Long enough for an order after a retry or two (retry minimum 1 s).
const ISSUED_WITHIN: Duration = Duration::from_secs(60);

/// The app: an echo backend `wild` behind an Ingress for both hosts that asks for one
/// certificate (Secret `wild-tls`) covering them.
fn app(fixture: &mut Fixture) {
    fixture.backend("wild");
    fixture.ingress(
        &Ingress::new("wild")
            .annotation("kubernetes.io/tls-acme", "true")
            .tls(&[WILDCARD, ZONE], "wild-tls")
            .path(Some(WILDCARD), "Prefix", "/", "wild")
            .path(Some(ZONE), "Prefix", "/", "wild"),
    );
}

/// The DNS-01 flags: updates to `named`, signed with [`KEY_NAME`] and `secret`.
fn dns_flags(named: &Named, secret: &str) -> Vec<String> {
    vec![
        "--acme-dns-rfc2136".to_owned(),
        named.addr().to_string(),
        "--acme-dns-tsig".to_owned(),
        format!("{KEY_NAME}:hmac-sha256:{secret}"),
    ]
}

/// pebble resolving through `named`, its VA ports on Sluice's listeners (unused by DNS-01).
fn pebble_for(named: &Named, http: SocketAddr, https: SocketAddr) -> Pebble {
    Pebble::start(&PebbleOptions {
        http_port: http.port(),
        tls_port: https.port(),
        dns_server: Some(named.addr()),
        nonce_reject: Some(0),
        ..PebbleOptions::default()
    })
}

/// The DNS names of the leaf's subjectAltName.
fn san_names(der: &[u8]) -> Vec<String> {
    let (_, leaf) = x509_parser::parse_x509_certificate(der).expect("leaf");
    let Ok(Some(san)) = leaf.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

/// Log lines containing every one of `parts`.
fn log_lines(log: &str, parts: &[&str]) -> Vec<String> {
    log.lines().filter(|line| parts.iter().all(|part| line.contains(part))).map(str::to_owned).collect()
}

#[test]
fn wildcard_certificate_is_issued_through_rfc_2136_and_served() {
    let mut fixture = Fixture::new("acme-dns01");
    app(&mut fixture);
    let named = Named::start(ZONE, KEY_NAME, SECRET);
    let (http, https) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    let pebble = pebble_for(&named, http, https);
    let state = fixture.dir.path().join("state");
    let mut flags = acme_flags(&pebble.directory_url(), &pebble.tls_root_file(), &state);
    flags.extend(dns_flags(&named, SECRET));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let sluice = start_sluice(&fixture, http, https, &flags);

    // Both names verify against pebble's issuing root alone, with one certificate.
    let root_pem = pebble.issuing_root_pem();
    let under = wait_for_issued(&sluice, UNDER_WILDCARD, &root_pem, ISSUED_WITHIN);
    let apex = wait_for_issued(&sluice, ZONE, &root_pem, Duration::from_secs(5));
    assert_eq!(under, apex);
    let mut names = san_names(&under);
    names.sort();
    assert_eq!(names, [WILDCARD, ZONE]);

    // The backend answers over HTTPS, for both names.
    let root = CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap();
    let opts = TlsOptions { trust: Some(root.as_ref()), ..TlsOptions::default() };
    for host in [UNDER_WILDCARD, ZONE] {
        let (answer, served) = https_exchange(https, host, opts, &http_request("GET", host, "/", &[], b"")).unwrap();
        assert_eq!(answer.status, 200, "{host}");
        assert_eq!(answer.echo().service(), "wild", "{host}");
        assert_eq!(served, under, "{host}");
    }

    // Ordered once, with DNS-01, and both answers withdrawn from the zone.
    let log = sluice.proc.log();
    assert!(!log_lines(&log, &["ordering a certificate", "dns-01"]).is_empty(), "{log}");
    let metrics = sluice.metrics();
    assert_eq!(metric_value(&metrics, "sluice_acme_orders_total{result=\"issued\"}"), Some(1.0), "{metrics}");
    assert_eq!(named.txt(&format!("_acme-challenge.{ZONE}.")), Vec::<String>::new());
    assert!(named.log().contains("updating zone"), "named saw no update:\n{}", named.log());
    let secret = std::fs::read_to_string(state.join("acme/objects/default_wild-tls.json")).unwrap();
    assert!(secret.contains("kubernetes.io/tls") && secret.contains("tls.crt"), "{secret}");
}

#[test]
fn a_wrong_tsig_secret_fails_the_order_and_leaves_serving_alone() {
    let mut fixture = Fixture::new("acme-dns01-tsig");
    app(&mut fixture);
    let named = Named::start(ZONE, KEY_NAME, SECRET);
    let (http, https) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    let pebble = pebble_for(&named, http, https);
    let state = fixture.dir.path().join("state");
    let mut flags = acme_flags(&pebble.directory_url(), &pebble.tls_root_file(), &state);
    flags.extend(dns_flags(&named, WRONG_SECRET));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut sluice = start_sluice(&fixture, http, https, &flags);

    assert!(
        wait_until(Duration::from_secs(30), || {
            metric_value(&sluice.metrics(), "sluice_acme_orders_total{result=\"failed\"}").is_some_and(|n| n >= 1.0)
        }),
        "no failed order counted; log:\n{}",
        sluice.proc.log()
    );
    let log = sluice.proc.log();
    assert!(!log_lines(&log, &["certificate order failed", "TSIG key rejected"]).is_empty(), "{log}");
    assert!(metric_value(&sluice.metrics(), "sluice_acme_orders_total{result=\"issued\"}").is_none());

    // Both hosts are still served, with the default certificate.
    for host in [UNDER_WILDCARD, ZONE] {
        let (answer, served) =
            https_exchange(https, host, TlsOptions::default(), &http_request("GET", host, "/", &[], b"")).unwrap();
        assert_eq!(answer.status, 200, "{host}");
        assert_eq!(answer.echo().service(), "wild", "{host}");
        let names = san_names(&served);
        assert!(!names.iter().any(|n| n.contains(ZONE)), "{host} got {names:?}");
    }
    // Nothing reached the zone, and Sluice keeps running, trying again after its backoff.
    assert_eq!(named.txt(&format!("_acme-challenge.{ZONE}.")), Vec::<String>::new());
    assert!(
        wait_until(Duration::from_secs(15), || {
            metric_value(&sluice.metrics(), "sluice_acme_orders_total{result=\"failed\"}").is_some_and(|n| n >= 2.0)
        }),
        "not tried again; log:\n{}",
        sluice.proc.log()
    );
    sluice.proc.assert_running();
    assert_eq!(sluice.readyz(), Ok(200));
    assert!(!state.join("acme/objects/default_wild-tls.json").exists());
}

#[test]
fn without_a_dns_server_the_wildcard_entry_is_a_diagnostic_and_not_ordered() {
    let mut fixture = Fixture::new("acme-dns01-off");
    app(&mut fixture);
    // A second Ingress that can be ordered (HTTP-01), to show the issuer is at work.
    fixture.ingress(
        &Ingress::new("shop").annotation("kubernetes.io/tls-acme", "true").tls(&["shop.acme.test"], "shop-tls").path(
            Some("shop.acme.test"),
            "Prefix",
            "/",
            "wild",
        ),
    );
    let (http, https) = (free_addr("127.0.0.1"), free_addr("127.0.0.1"));
    // No CA is needed: orders fail at once (nothing listens), which is counted.
    let identity = pebble::tls_identity();
    let root_file = fixture.dir.write("pebble-tls.pem", &identity.0);
    let state = fixture.dir.path().join("state");
    let flags = acme_flags(&format!("https://127.0.0.1:{}/dir", pebble::free_port()), &root_file, &state);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut sluice = start_sluice(&fixture, http, https, &flags);

    assert!(
        wait_until(Duration::from_secs(20), || {
            metric_value(&sluice.metrics(), "sluice_acme_orders_total{result=\"failed\"}").is_some_and(|n| n >= 1.0)
        }),
        "no order attempted for shop.acme.test; log:\n{}",
        sluice.proc.log()
    );
    let log = sluice.proc.log();
    let warnings = log_lines(&log, &["resource problem", "Ingress default/wild", "spec.tls[0].hosts", "DNS-01"]);
    assert!(!warnings.is_empty(), "{log}");
    assert!(warnings.iter().all(|line| line.contains("WARN")), "{warnings:?}");
    let orders = log_lines(&log, &["ordering a certificate"]);
    assert!(!orders.is_empty(), "{log}");
    assert!(orders.iter().all(|line| line.contains("shop.acme.test") && !line.contains(ZONE)), "{orders:?}");
    // The hosts are served all the same.
    let (answer, _) =
        https_exchange(https, ZONE, TlsOptions::default(), &http_request("GET", ZONE, "/", &[], b"")).unwrap();
    assert_eq!(answer.status, 200);
    sluice.proc.assert_running();
}
