//! `ssl-passthrough` behind `--enable-ssl-passthrough`, end to end: real TLS clients (rustls)
//! on Sluice's HTTPS listener, a backend that terminates TLS with its own certificate, and
//! hosts terminated by Sluice on the same listener. Also: garbage and cut-off ClientHellos,
//! the annotation without the flag, and a live change of the annotation.

mod common;
mod tls_backend;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::*;
use rustls::pki_types::ServerName;
use tls_backend::{Ca, Issued, TlsBackend};

const P: &str = "nginx.ingress.kubernetes.io";

fn a(name: &str) -> String {
    format!("{P}/{name}")
}

/// A passthrough backend for `pass.test`, an echo for `term.test`, and Sluice's certificate
/// for both names (so a terminated `pass.test` shows Sluice's certificate).
struct Setup {
    fx: Fixture,
    backend: TlsBackend,
    backend_cert: Issued,
    sluice_cert: TestCert,
}

fn setup(tag: &str, passthrough: bool) -> Setup {
    let mut fx = Fixture::new(tag);
    let backend_cert = Ca::new("backend ca").issue(&["pass.test"]);
    let backend = TlsBackend::start("pass", &backend_cert, None);
    fx.write_service("pass", None, None, backend.addr.port(), &[backend.addr.ip().to_string()], true);
    fx.backend("echo");
    let sluice_cert = test_cert(&["term.test", "pass.test"]);
    fx.tls_secret("sluice-tls", &sluice_cert);
    fx.ingress(&pass_ingress(passthrough));
    fx.ingress(&Ingress::new("term").tls(&["term.test", "pass.test"], "sluice-tls").path(
        Some("term.test"),
        "Prefix",
        "/",
        "echo",
    ));
    Setup { fx, backend, backend_cert, sluice_cert }
}

/// The Ingress of `pass.test`: its backend speaks TLS (for plain HTTP, which Sluice routes).
/// Sluice's certificate for the name comes from the `term` Ingress, so plain HTTP to it is
/// not redirected.
fn pass_ingress(passthrough: bool) -> Ingress {
    let ingress = Ingress::new("pass").annotation(&a("backend-protocol"), "HTTPS");
    let ingress = if passthrough { ingress.annotation(&a("ssl-passthrough"), "true") } else { ingress };
    ingress.path(Some("pass.test"), "Prefix", "/", "pass")
}

/// One request over TLS with SNI `sni`: the response and the certificate the client saw.
fn over_tls(sluice: &Sluice, sni: &str, host: &str, path: &str) -> (HttpResponse, Vec<u8>) {
    https_exchange(sluice.https, sni, TlsOptions::default(), &http_request("GET", host, path, &[], b""))
        .unwrap_or_else(|e| panic!("{sni}: {e}"))
}

/// The first bytes a rustls client sends: its ClientHello for `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let config = tls_client_config(TlsOptions::default()).unwrap();
    let mut client = rustls::ClientConnection::new(config, ServerName::try_from(name.to_owned()).unwrap()).unwrap();
    let mut bytes = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut bytes).unwrap();
    }
    bytes
}

/// Sends `bytes` to the HTTPS listener, closes the sending side and waits (bounded) for
/// Sluice to close the connection.
fn send_and_close(sluice: &Sluice, bytes: &[u8]) {
    let mut stream = connect(sluice.https).expect("connect to the HTTPS listener");
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
}

#[test]
fn passthrough_relays_its_host_untouched_and_terminates_every_other_connection() {
    let mut s = setup("pass", true);
    let mut sluice = s.fx.start(&["--enable-ssl-passthrough"]);

    // The client sees the backend's certificate and talks to the backend itself.
    for round in 0..3 {
        let (resp, leaf) = over_tls(&sluice, "pass.test", "pass.test", &format!("/deep/{round}"));
        assert_eq!(leaf, s.backend_cert.der, "the backend's certificate, not Sluice's");
        assert_eq!(resp.status, 200, "{resp:?}");
        let e = resp.echo();
        assert_eq!(
            (e.service(), e.str("sni"), e.str("path")),
            ("pass", "pass.test", format!("/deep/{round}").as_str())
        );
        assert_eq!(e.header("x-forwarded-for"), None, "nothing of Sluice's in between: {e:?}");
    }
    // Another SNI, and no SNI, on the same listener: terminated by Sluice and routed.
    let (resp, leaf) = over_tls(&sluice, "term.test", "term.test", "/t");
    assert_eq!((leaf, resp.status), (s.sluice_cert.der.clone(), 200));
    assert_eq!(resp.echo().service(), "echo");
    let (resp, leaf) = over_tls(&sluice, "127.0.0.1", "term.test", "/no-sni");
    assert_ne!(leaf, s.backend_cert.der);
    assert_eq!(resp.echo().service(), "echo");
    // Plain HTTP to the passthrough host is routed as its Ingress says (TLS to the backend).
    let resp = sluice.get("pass.test", "/plain");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.echo().0["sni"].is_null(), "Sluice's own connection to the backend");
    let relayed = s.backend.requests();

    // Garbage, cut-off and odd ClientHellos are handled (closed) without harm.
    let hello = client_hello("pass.test");
    let mut rng_state = 0x9e37_79b9_u32;
    let random: Vec<u8> = (0..3000)
        .map(|_| {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 17;
            rng_state ^= rng_state << 5;
            rng_state as u8
        })
        .collect();
    let mut claims_too_much = hello[..5].to_vec();
    claims_too_much[3..5].copy_from_slice(&[0xff, 0xff]);
    for bytes in [
        &random[..],
        &hello[..hello.len() / 2],
        &hello[..3],
        &claims_too_much[..],
        b"GET / HTTP/1.1\r\nHost: pass.test\r\n\r\n",
        &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00][..],
    ] {
        send_and_close(&sluice, bytes);
    }
    sluice.proc.assert_running();
    s.fx.assert_backends_running();
    assert_eq!(s.backend.requests(), relayed, "no garbage reached the backend as a request");
    let (resp, leaf) = over_tls(&sluice, "pass.test", "pass.test", "/after");
    assert_eq!((leaf, resp.status), (s.backend_cert.der.clone(), 200));
    let (resp, _) = over_tls(&sluice, "term.test", "term.test", "/after");
    assert_eq!(resp.status, 200);

    let config = sluice.config();
    let entries = config["passthrough"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{config}");
    assert_eq!((entries[0]["sni"].as_str(), entries[0]["ingress"].as_str()), (Some("pass.test"), Some("default/pass")));

    let out =
        run_sluice_command(&["check", "--enable-ssl-passthrough", "--manifests", s.fx.manifests().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("honoured  {P}/ssl-passthrough")), "{stdout}");
}

#[test]
fn without_the_flag_passthrough_is_ignored_and_the_host_is_terminated() {
    let s = setup("pass-off", true);
    let sluice = s.fx.start(&[]);
    let (resp, leaf) = over_tls(&sluice, "pass.test", "pass.test", "/x");
    assert_eq!(leaf, s.sluice_cert.der, "Sluice terminates TLS for the host");
    assert_eq!(resp.status, 200, "{resp:?}");
    let e = resp.echo();
    assert_eq!(e.service(), "pass", "and routes it to the backend, over its own TLS connection");
    assert!(e.0["sni"].is_null() && e.header("x-forwarded-proto") == Some("https"), "{e:?}");

    let out = run_sluice_command(&["check", "--manifests", s.fx.manifests().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a warning only: {stdout}");
    assert!(stdout.contains(&format!("ignored   {P}/ssl-passthrough")), "{stdout}");
    assert!(
        stdout.contains(&format!("warning: Ingress default/pass: metadata.annotations[{P}/ssl-passthrough]"))
            && stdout.contains("without --enable-ssl-passthrough"),
        "{stdout}"
    );
}

#[test]
fn passthrough_changes_apply_live() {
    let s = setup("pass-live", false);
    let sluice = s.fx.start(&["--enable-ssl-passthrough"]);
    let leaf = |sluice: &Sluice| over_tls(sluice, "pass.test", "pass.test", "/").1;
    assert_eq!(leaf(&sluice), s.sluice_cert.der);

    s.fx.ingress(&pass_ingress(true));
    assert!(
        wait_until(Duration::from_secs(10), || leaf(&sluice) == s.backend_cert.der),
        "ssl-passthrough added: the backend's certificate"
    );
    // A connection relayed before the change keeps going after it.
    let mut open = tls_connect(sluice.https, "pass.test", TlsOptions::default()).unwrap();
    s.fx.ingress(&pass_ingress(false));
    assert!(
        wait_until(Duration::from_secs(10), || leaf(&sluice) == s.sluice_cert.der),
        "ssl-passthrough removed: terminated by Sluice again"
    );
    open.write_all(&http_request("GET", "pass.test", "/still", &[], b"")).unwrap();
    let resp = read_response(&mut std::io::BufReader::new(open), false).unwrap();
    assert_eq!((resp.status, resp.echo().str("sni")), (200, "pass.test"));
}
