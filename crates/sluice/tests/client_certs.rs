//! Client certificates (`auth-tls-*`) end to end with certificates made at test time by a
//! test CA: a valid certificate reaches the backend with the `ssl-client-*` headers; none
//! gets 400, another CA's fails the handshake, the wrong subject gets 403; a request whose
//! `Host` is not the SNI the certificate was verified for gets 421; `optional` serves
//! without one; the client's own `ssl-client-*` headers never pass. Real `sluice run`, echo
//! backends, curl.

mod common;
mod tls_backend;

use common::*;
use tls_backend::{opaque_secret_yaml, Ca, Issued};

const A: &str = "nginx.ingress.kubernetes.io";

struct Client {
    dir: TempDir,
}

impl Client {
    fn new() -> Client {
        Client { dir: TempDir::new("client-certs") }
    }

    /// `curl` over TLS with SNI `sni` and `Host: host`, presenting `cert` when given; the
    /// status (0 when the handshake failed) and the answer.
    fn get(
        &self,
        sluice: &Sluice,
        sni: &str,
        host: &str,
        cert: Option<(&str, &Issued)>,
        extra: &[&str],
    ) -> (u16, String) {
        let port = sluice.https.port();
        let resolve = format!("{sni}:{port}:127.0.0.1");
        let url = format!("https://{sni}:{port}/");
        let host_header = format!("Host: {host}");
        let mut args = vec!["-k", "--resolve", resolve.as_str(), "-H", host_header.as_str()];
        let files;
        if let Some((name, issued)) = cert {
            let cert_file = self.dir.write(&format!("{name}.crt"), &issued.cert_pem);
            let key_file = self.dir.write(&format!("{name}.key"), &issued.key_pem);
            files = [cert_file.display().to_string(), key_file.display().to_string()];
            args.extend(["--cert", files[0].as_str(), "--key", files[1].as_str()]);
        }
        args.extend_from_slice(extra);
        args.push(&url);
        curl_answer(&args)
    }
}

#[test]
fn client_certificates_are_required_verified_and_bound_to_their_host() {
    let ca = Ca::new("Partners CA");
    let rogue_ca = Ca::new("Rogue CA");
    let partner_a = ca.issue(&["partner-a"]);
    let partner_b = ca.issue(&["partner-b"]);
    let rogue = rogue_ca.issue(&["partner-a"]);

    let mut fx = Fixture::new("client-certs");
    fx.backend("echo");
    fx.tls_secret("server", &test_cert(&["mtls.test", "opt.test", "other.test", "paged.test", "noca.test"]));
    fx.write("ca.yaml", &opaque_secret_yaml("partners-ca", &[("ca.crt", &ca.cert_pem)]));
    fx.ingress(
        &Ingress::new("mtls")
            .annotation(&format!("{A}/auth-tls-secret"), "default/partners-ca")
            .annotation(&format!("{A}/auth-tls-pass-certificate-to-upstream"), "true")
            .annotation(&format!("{A}/auth-tls-match-cn"), "CN=partner-a")
            .tls(&["mtls.test"], "server")
            .path(Some("mtls.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(
        &Ingress::new("opt")
            .annotation(&format!("{A}/auth-tls-secret"), "partners-ca")
            .annotation(&format!("{A}/auth-tls-verify-client"), "optional")
            .tls(&["opt.test"], "server")
            .path(Some("opt.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(&Ingress::new("other").tls(&["other.test"], "server").path(Some("other.test"), "Prefix", "/", "echo"));
    fx.ingress(
        &Ingress::new("paged")
            .annotation(&format!("{A}/auth-tls-secret"), "partners-ca")
            .annotation(&format!("{A}/auth-tls-error-page"), "https://help.test/certificates")
            .tls(&["paged.test"], "server")
            .path(Some("paged.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(
        &Ingress::new("noca")
            .annotation(&format!("{A}/auth-tls-secret"), "partners-ca")
            .annotation(&format!("{A}/auth-tls-verify-client"), "optional_no_ca")
            .tls(&["noca.test"], "server")
            .path(Some("noca.test"), "Prefix", "/", "echo"),
    );
    let sluice = fx.start(&[]);
    let client = Client::new();

    let (status, answer) = client.get(&sluice, "mtls.test", "mtls.test", Some(("a", &partner_a)), &[]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer_header(&answer, "ssl-client-verify").as_deref(), Some("SUCCESS"), "{answer}");
    assert_eq!(answer_header(&answer, "ssl-client-subject-dn").as_deref(), Some("CN=partner-a"), "{answer}");
    assert_eq!(answer_header(&answer, "ssl-client-issuer-dn").as_deref(), Some("CN=Partners CA"), "{answer}");
    let cert = answer_header(&answer, "ssl-client-cert").unwrap_or_default();
    assert!(cert.starts_with("-----BEGIN%20CERTIFICATE-----%0A"), "{answer}");
    let (status, answer) = client.get(&sluice, "mtls.test", "mtls.test", Some(("a", &partner_a)), &["--http2"]);
    assert_eq!(status, 200, "HTTP/2: {answer}");

    for (what, sni, host, cert, expected) in [
        ("no certificate", "mtls.test", "mtls.test", None, 400),
        ("the wrong subject", "mtls.test", "mtls.test", Some(("b", &partner_b)), 403),
        ("another CA's certificate", "mtls.test", "mtls.test", Some(("rogue", &rogue)), 0),
        ("a certificate verified for another host", "opt.test", "mtls.test", Some(("a", &partner_a)), 421),
        ("a connection that asked for none", "other.test", "mtls.test", Some(("a", &partner_a)), 421),
    ] {
        let (status, answer) = client.get(&sluice, sni, host, cert, &[]);
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(!answer.contains("\"service\""), "{what} reached the backend: {answer}");
    }

    let spoof = ["-H", "ssl-client-verify: SUCCESS", "-H", "ssl-client-subject-dn: CN=admin"];
    let (status, answer) = client.get(&sluice, "opt.test", "opt.test", None, &spoof);
    assert_eq!(status, 200, "optional serves without a certificate: {answer}");
    assert_eq!(answer_header(&answer, "ssl-client-verify").as_deref(), Some("NONE"), "{answer}");
    assert!(!answer.contains("CN=admin"), "the client's own header never passes: {answer}");
    let (status, answer) = client.get(&sluice, "opt.test", "opt.test", Some(("a", &partner_a)), &[]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer_header(&answer, "ssl-client-verify").as_deref(), Some("SUCCESS"), "{answer}");
    let (status, answer) = client.get(&sluice, "other.test", "other.test", None, &[]);
    assert_eq!(status, 200, "hosts without auth-tls are untouched: {answer}");

    let (status, answer) = client.get(&sluice, "paged.test", "paged.test", None, &[]);
    assert_eq!(status, 302, "{answer}");
    assert!(answer.contains("location: https://help.test/certificates"), "{answer}");
    let (status, answer) = client.get(&sluice, "noca.test", "noca.test", Some(("rogue", &rogue)), &[]);
    assert_eq!(status, 200, "optional_no_ca takes any certificate: {answer}");
    assert!(answer_header(&answer, "ssl-client-verify").is_some_and(|v| v.starts_with("FAILED:")), "{answer}");
    assert_ne!(sluice.get("mtls.test", "/").status, 200, "never over plain HTTP");
    let denied = metric_value(
        &sluice.metrics(),
        "sluice_http_requests_denied_total{ingress=\"default/mtls\",reason=\"client_certificate\"}",
    );
    assert!(denied >= Some(4.0), "{denied:?}");
}

#[test]
fn a_missing_ca_keeps_the_host_closed() {
    let mut fx = Fixture::new("client-certs-missing");
    fx.backend("echo");
    fx.tls_secret("server", &test_cert(&["mtls.test"]));
    fx.ingress(
        &Ingress::new("mtls")
            .annotation(&format!("{A}/auth-tls-secret"), "no-such-ca")
            .tls(&["mtls.test"], "server")
            .path(Some("mtls.test"), "Prefix", "/", "echo"),
    );
    let sluice = fx.start(&[]);
    let (status, answer) = Client::new().get(&sluice, "mtls.test", "mtls.test", None, &[]);
    assert_eq!(status, 503, "{answer}");
}
