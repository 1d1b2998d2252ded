//! Clusters that already run cert-manager keep working with Sluice unchanged ("cert-manager
//! keeps working" in the automatic-HTTPS issue), end to end: a real `sluice run` on a
//! manifests directory holding the objects cert-manager writes, real clients on loopback.
//!
//! What cert-manager does, from its source (cert-manager/cert-manager @ 2d0d7f7f):
//! - `pkg/issuer/acme/http/ingress.go` `buildIngressResource`: for each HTTP-01 challenge an
//!   Ingress `generateName: cm-acme-http-solver-` in the Certificate's namespace, labels
//!   `acme.cert-manager.io/http-domain` / `http-token` (adler32 of the domain / token, `pod.go`
//!   `podLabels`) and `acme.cert-manager.io/http01-solver: "true"`, the one annotation
//!   `nginx.ingress.kubernetes.io/whitelist-source-range: 0.0.0.0/0,::/0`,
//!   `spec.ingressClassName` = the issuer's `ingressClassName`, one rule for the domain with
//!   the path `/.well-known/acme-challenge/<token>` (`solverPathFn`), pathType
//!   `ImplementationSpecific` (or `Exact` with the feature gate `ACMEHTTP01IngressPathTypeExact`,
//!   on by default since v1.18), backend: the solver Service, port number 8089.
//! - `service.go` `buildService`: Service `cm-acme-http-solver-…`, NodePort, port `http`
//!   8089 → 8089, annotation `auth.istio.io/8089: NONE`, selector = the same labels.
//! - `solver/solver.go` `challengeHandler`: answers `/` and `/healthz` with 200; otherwise 404
//!   unless the path's directory is `/.well-known/acme-challenge`, the Host (port stripped) is
//!   the domain and the last segment is the token; then 200 with the key authorization.
//! - `pkg/controller/certificates/issuing/internal/secret.go` `setValues` and
//!   `internal/controller/certificates/secrets.go`: the certificate Secret is
//!   `kubernetes.io/tls` with `tls.crt` (leaf and chain), `tls.key`, annotations
//!   `cert-manager.io/{alt-names,certificate-name,common-name,ip-sans,uri-sans,issuer-name,
//!   issuer-kind,issuer-group}` and label `controller.cert-manager.io/fao: "true"`.
//!
//! What ingress-nginx does with them (the semantics Sluice follows; see
//! `crates/translate/src/compile.rs`, `ACME_CHALLENGE_PATH`):
//! - ConfigMap `no-tls-redirect-locations` (default `/.well-known/acme-challenge`): a location
//!   whose Ingress path starts with an entry is never redirected to https, even when another
//!   Ingress of the same host forces it; the test is on the location's path, so the app's `/`
//!   location still redirects requests for other tokens.
//! - `ImplementationSpecific` without regex mode is a Prefix path: segment-wise, so
//!   `/…/<token>/x` reaches the solver and `/…/<token>x` does not.
//! - One server block per host serves both listeners: the challenge is also answered over
//!   https; a `spec.tls` Secret that does not exist yet means the default certificate, and a
//!   Secret written later is picked up live.

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// The application's host.
const HOST: &str = "shop.example.test";
/// The ACME token of the challenge in flight (base64url, 43 characters, as CAs send).
const TOKEN: &str = "Zr2hJ8fN1mQ4tXw7KpL0sVb3YcD6gE9aHuRiOjT5n-_";
/// The key authorization the solver answers: `<token>.<account key thumbprint>`.
const KEY_AUTHORIZATION: &str =
    "Zr2hJ8fN1mQ4tXw7KpL0sVb3YcD6gE9aHuRiOjT5n-_.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
/// cert-manager's challenge path prefix (`solver.HTTPChallengePath`).
const CHALLENGE_DIR: &str = "/.well-known/acme-challenge";
/// The solver Ingress (its own `generateName` suffix).
const SOLVER_INGRESS: &str = "cm-acme-http-solver-7x2kq";
/// The solver Service (another `generateName` suffix).
const SOLVER_SERVICE: &str = "cm-acme-http-solver-r5m2p";
/// How long a file change may take to be served ("within a few seconds").
const APPLY: Duration = Duration::from_secs(5);
/// The default certificate's name (`crates/sluice/src/default_cert.rs`).
const DEFAULT_CERT_NAME: &str = "sluice-default-certificate.invalid";

fn challenge_path(token: &str) -> String {
    format!("{CHALLENGE_DIR}/{token}")
}

// ---------------------------------------------------------------------------
// The HTTP-01 solver pod
// ---------------------------------------------------------------------------

/// An in-test twin of cert-manager's solver (`acmesolver`): same checks, same answers.
/// Stopped on drop.
struct SolverPod {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SolverPod {
    fn start(domain: &'static str, token: &'static str, key: &'static str) -> SolverPod {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind solver");
        let addr = listener.local_addr().expect("solver address");
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (hits2, stop2) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let hits = hits2.clone();
                std::thread::spawn(move || serve_solver(conn, domain, token, key, &hits));
            }
        });
        SolverPod { addr, hits, stop, thread: Some(thread) }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for SolverPod {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection of the solver: `challengeHandler` of cert-manager's `solver.go`.
fn serve_solver(conn: TcpStream, domain: &str, token: &str, key: &str, hits: &AtomicUsize) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let mut writer = match conn.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(conn);
    while let Ok(Some(request)) = read_request(&mut reader) {
        hits.fetch_add(1, Ordering::SeqCst);
        let path = request.target().split('?').next().unwrap_or("").to_owned();
        let host = request.header("host").unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
        let dir = if dir.is_empty() { "/" } else { dir };
        let (status, body) = if path == "/" || path == "/healthz" {
            ("200 OK", "")
        } else if dir != CHALLENGE_DIR || host != domain || base != token {
            ("404 Not Found", "404 page not found\n")
        } else {
            ("200 OK", key)
        };
        let extra = if status.starts_with("200") {
            "Cache-Control: no-cache, no-store, must-revalidate\r\n"
        } else {
            "X-Content-Type-Options: nosniff\r\n"
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// The objects cert-manager writes
// ---------------------------------------------------------------------------

/// zlib's Adler-32, which cert-manager's `podLabels` uses for the domain and token labels.
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for byte in data {
        a = (a + u32::from(*byte)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// `podLabels`: the labels of the solver's pod, Service and Ingress, as YAML map lines.
fn solver_labels(indent: &str) -> String {
    format!(
        "{indent}acme.cert-manager.io/http-domain: \"{}\"\n{indent}acme.cert-manager.io/http-token: \"{}\"\n{indent}acme.cert-manager.io/http01-solver: \"true\"\n",
        adler32(HOST.as_bytes()),
        adler32(TOKEN.as_bytes())
    )
}

/// The owner reference cert-manager sets on its solver objects: the Challenge.
const OWNER: &str = "  ownerReferences:\n    - apiVersion: acme.cert-manager.io/v1\n      kind: Challenge\n      name: shop-tls-1-2875123461-1409214425\n      uid: 0f4c3a4e-6a5b-4f55-9d1e-2b7e0c1f9a31\n      controller: true\n      blockOwnerDeletion: true\n";

/// The solver Ingress exactly as `buildIngressResource` makes it for issuer
/// `ingressClassName: sluice`.
fn solver_ingress_yaml(path_type: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {SOLVER_INGRESS}\n  generateName: cm-acme-http-solver-\n  namespace: {NS}\n  labels:\n{labels}  annotations:\n    nginx.ingress.kubernetes.io/whitelist-source-range: 0.0.0.0/0,::/0\n{OWNER}spec:\n  ingressClassName: sluice\n  rules:\n    - host: {HOST}\n      http:\n        paths:\n          - path: {path}\n            pathType: {path_type}\n            backend:\n              service:\n                name: {SOLVER_SERVICE}\n                port:\n                  number: 8089\n",
        labels = solver_labels("    "),
        path = challenge_path(TOKEN),
    )
}

/// The solver Service as `buildService` makes it, and an EndpointSlice putting its pod at
/// `pod` (the in-test solver).
fn solver_service_yaml(pod: SocketAddr) -> String {
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {SOLVER_SERVICE}\n  generateName: cm-acme-http-solver-\n  namespace: {NS}\n  labels:\n{labels}  annotations:\n    auth.istio.io/8089: NONE\n{OWNER}spec:\n  type: NodePort\n  selector:\n{selector}  ports:\n    - name: http\n      port: 8089\n      targetPort: 8089\n      protocol: TCP\n",
        labels = solver_labels("    "),
        selector = solver_labels("    "),
    );
    yaml_docs(&[service, endpoint_slice_yaml(SOLVER_SERVICE, Some("http"), pod.port(), &[pod.ip().to_string()], true)])
}

/// Writes the solver's Service and Ingress; returns (Service file, Ingress file).
fn write_solver(fx: &Fixture, pod: SocketAddr, path_type: &str) -> (PathBuf, PathBuf) {
    let service = fx.write(&format!("svc-{SOLVER_SERVICE}.yaml"), &solver_service_yaml(pod));
    let ingress = fx.write(&format!("ingress-{SOLVER_INGRESS}.yaml"), &solver_ingress_yaml(path_type));
    (service, ingress)
}

/// The application's Ingress: TLS from Secret `shop-tls` (cert-manager's ingress-shim reads
/// `cert-manager.io/cluster-issuer`), https forced.
fn app_ingress() -> Ingress {
    Ingress::new("shop")
        .annotation("cert-manager.io/cluster-issuer", "letsencrypt-prod")
        .annotation("nginx.ingress.kubernetes.io/force-ssl-redirect", "true")
        .annotation("nginx.ingress.kubernetes.io/ssl-redirect", "true")
        .tls(&[HOST], "shop-tls")
        .path(Some(HOST), "Prefix", "/", "shop")
}

/// A certificate as cert-manager issues it through an ACME CA.
struct Issued {
    /// `tls.crt`: the leaf, then the issuing CA.
    chain_pem: String,
    /// `tls.key`: PKCS#1 (`RSA PRIVATE KEY`), cert-manager's default encoding and algorithm.
    key_pem: String,
    /// DER of the leaf.
    leaf_der: Vec<u8>,
}

/// A stand-in for the ACME CA's issuing certificate.
struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Sluice Test ACME Intermediate R3");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        TestCa { issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate") }
    }

    fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A fresh RSA-2048 key and a leaf for [`HOST`] with this serial number.
    fn issue(&self, serial: u64) -> Issued {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let mut params = rcgen::CertificateParams::new(vec![HOST.to_owned()]).expect("leaf params");
        params.distinguished_name.push(rcgen::DnType::CommonName, HOST);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params.signed_by(&key, &self.issuer).expect("sign leaf");
        Issued {
            chain_pem: format!("{}{}", leaf.pem(), self.issuer.pem()),
            key_pem: pem("RSA PRIVATE KEY", &pkcs1_from_pkcs8(&key.serialize_der())),
            leaf_der: leaf.der().to_vec(),
        }
    }
}

/// One DER element: (tag, contents, rest).
fn der_element(input: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = input[0];
    let (len, header) = match input[1] {
        short if short < 0x80 => (usize::from(short), 2),
        long => {
            let n = usize::from(long & 0x7f);
            (input[2..2 + n].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), 2 + n)
        }
    };
    (tag, &input[header..header + len], &input[header + len..])
}

/// The RSAPrivateKey inside a PKCS#8 PrivateKeyInfo (its `privateKey` OCTET STRING).
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_element(pkcs8);
    let (_, _, rest) = der_element(info); // version
    let (_, _, rest) = der_element(rest); // algorithm
    let (tag, private_key, _) = der_element(rest);
    assert_eq!(tag, 0x04, "PKCS#8 privateKey must be an OCTET STRING");
    private_key.to_vec()
}

/// PEM with 64-character lines.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64(der);
    let lines: Vec<&str> =
        b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// The certificate Secret as cert-manager's issuing controller writes it.
fn cert_manager_secret_yaml(name: &str, issued: &Issued) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NS}\n  labels:\n    controller.cert-manager.io/fao: \"true\"\n  annotations:\n    cert-manager.io/alt-names: {HOST}\n    cert-manager.io/certificate-name: {name}\n    cert-manager.io/common-name: {HOST}\n    cert-manager.io/ip-sans: \"\"\n    cert-manager.io/issuer-group: cert-manager.io\n    cert-manager.io/issuer-kind: ClusterIssuer\n    cert-manager.io/issuer-name: letsencrypt-prod\n    cert-manager.io/uri-sans: \"\"\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        base64(issued.chain_pem.as_bytes()),
        base64(issued.key_pem.as_bytes())
    )
}

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// The certificates presented to a handshake with this SNI (any certificate accepted).
fn served_chain(sluice: &Sluice, sni: &str) -> Result<Vec<Vec<u8>>, String> {
    let stream = tls_connect(sluice.https, sni, TlsOptions::default())?;
    Ok(stream.conn.peer_certificates().unwrap_or_default().iter().map(|c| c.to_vec()).collect())
}

/// `GET <path>` over https with SNI and Host [`HOST`].
fn https_get(sluice: &Sluice, opts: TlsOptions<'_>, path: &str) -> Result<(HttpResponse, Vec<u8>), String> {
    https_exchange(sluice.https, HOST, opts, &http_request("GET", HOST, path, &[], b""))
}

/// Where a forced https redirect of `path` of [`HOST`] goes: as ingress-nginx, the request
/// URI without one trailing `/` (no `preserve-trailing-slash`); unlike ingress-nginx (which
/// adds no port without `use-port-in-redirects`), Sluice names its https port when it is not
/// 443, as its own ssl-redirect tests (`annotations.rs`) assert.
fn https_location(sluice: &Sluice, path: &str) -> String {
    let uri = path.strip_suffix('/').unwrap_or(path);
    format!("https://{HOST}:{}{uri}", sluice.https.port())
}

/// Asserts a 308 to the same path over https.
fn assert_redirected(sluice: &Sluice, path: &str) {
    let resp = sluice.get(HOST, path);
    let location = https_location(sluice, path);
    assert_eq!((resp.status, resp.header("location")), (308, Some(location.as_str())), "GET {path}: {resp:?}");
}

/// Asserts that plain-HTTP `GET <path>` gets exactly the key authorization from the solver.
fn assert_challenge_answered(sluice: &Sluice, solver: &SolverPod, path: &str) {
    let before = solver.hits();
    let resp = sluice.get(HOST, path);
    assert_eq!(resp.status, 200, "GET {path} must reach the solver, not be redirected: {resp:?}");
    assert_eq!(resp.text(), KEY_AUTHORIZATION, "the body is exactly the key authorization: {resp:?}");
    assert_eq!(resp.header("location"), None, "{resp:?}");
    assert_eq!(solver.hits(), before + 1, "the solver answered it");
}

/// Polls `check` until it holds (at most [`APPLY`] plus slack) and returns how long it took.
fn applied(what: &str, mut check: impl FnMut() -> Result<(), String>) -> Duration {
    let start = Instant::now();
    let mut last = String::new();
    let held = wait_until(APPLY + Duration::from_secs(5), || match check() {
        Ok(()) => true,
        Err(e) => {
            last = e;
            false
        }
    });
    let took = start.elapsed();
    assert!(held, "{what}: not served within {:?}; last: {last}", APPLY + Duration::from_secs(5));
    println!("{what}: served after {:.0} ms", took.as_secs_f64() * 1000.0);
    assert!(took < APPLY, "{what}: took {took:?} (bound {APPLY:?})");
    took
}

/// The answers of the routes the solver must not disturb, as text to compare.
fn unrelated_answers(sluice: &Sluice, cert: &TestCert) -> Vec<String> {
    let mut out = Vec::new();
    for path in ["/", "/products?id=1", &challenge_path("some-other-token")] {
        let resp = sluice.get(HOST, path);
        out.push(format!("http {path}: {} {:?}", resp.status, resp.header("location")));
    }
    let opts = TlsOptions { trust: Some(&cert.der), ..TlsOptions::default() };
    for path in ["/", "/products?id=1", &challenge_path("some-other-token")] {
        let (resp, leaf) = https_get(sluice, opts, path).unwrap_or_else(|e| panic!("https {path}: {e}"));
        let echo = resp.echo();
        out.push(format!(
            "https {path}: {} {} {} leaf-is-shop-cert={}",
            resp.status,
            echo.service(),
            echo.str("path"),
            leaf == cert.der
        ));
    }
    let resp = sluice.get("unknown.example.test", "/");
    out.push(format!("http unknown host: {}", resp.status));
    out
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn solver_ingress_answers_the_challenge_while_the_app_forces_https() {
    let mut fx = Fixture::new("certmgr-solver");
    fx.backend("shop");
    let cert = test_cert(&[HOST]);
    fx.tls_secret("shop-tls", &cert);
    fx.ingress(&app_ingress());
    let solver = SolverPod::start(HOST, TOKEN, KEY_AUTHORIZATION);
    write_solver(&fx, solver.addr, "ImplementationSpecific");

    // Sluice takes cert-manager's objects as they are: no diagnostic at all.
    let out = run_sluice_command(&["check", "--manifests", &fx.manifests().to_string_lossy()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "sluice check: {}\n{stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "Ingress {NS}/{SOLVER_INGRESS}:\n  honoured  nginx.ingress.kubernetes.io/whitelist-source-range\n"
        )),
        "the solver's one annotation is honoured:\n{stdout}"
    );
    assert!(stdout.contains("0 errors, 0 warnings"), "cert-manager's objects give no diagnostic:\n{stdout}");

    let sluice = fx.start(&[]);

    // The challenge over plain HTTP: the solver's answer, not a redirect (no-tls-redirect-locations).
    assert_challenge_answered(&sluice, &solver, &challenge_path(TOKEN));
    // The rest of the host is forced to https, with ingress-nginx's 308.
    assert_redirected(&sluice, "/");
    assert_redirected(&sluice, "/products?id=1");

    // Another token is not the solver's location: the app's `/` location, whose path is not
    // in no-tls-redirect-locations, so it is redirected like the rest of the host.
    let hits = solver.hits();
    assert_redirected(&sluice, &challenge_path("some-other-token"));
    // ImplementationSpecific is a segment-wise Prefix in ingress-nginx: `<token>x` is not
    // under it (the app's route)...
    assert_redirected(&sluice, &format!("{}x", challenge_path(TOKEN)));
    assert_eq!(solver.hits(), hits, "neither reached the solver");
    // ...but `<token>/x` is: the solver gets it, and answers its own 404 (wrong base path).
    let resp = sluice.get(HOST, &format!("{}/x", challenge_path(TOKEN)));
    assert_eq!((resp.status, resp.text().as_str()), (404, "404 page not found\n"), "{resp:?}");
    assert_eq!(solver.hits(), hits + 1, "{}/x is under the solver's Prefix location", challenge_path(TOKEN));
    // The solver's rule is for its domain only.
    let resp = sluice.get("www.shop.example.test", &challenge_path(TOKEN));
    assert_eq!(resp.status, 404, "{resp:?}");
    assert_eq!(solver.hits(), hits + 1, "another host does not reach the solver");

    // One server block per host: the challenge is answered over https too (a CA may follow
    // the redirect of an http URL), with the host's certificate.
    let opts = TlsOptions { trust: Some(&cert.der), ..TlsOptions::default() };
    let (resp, leaf) = https_get(&sluice, opts, &challenge_path(TOKEN)).expect("https challenge");
    assert_eq!((resp.status, resp.text().as_str()), (200, KEY_AUTHORIZATION), "{resp:?}");
    assert_eq!(leaf, cert.der);
    let (resp, _) = https_get(&sluice, opts, "/").expect("https /");
    assert_eq!((resp.status, resp.echo().service()), (200, "shop"), "{resp:?}");

    // cert-manager ≥ 1.18 writes pathType Exact (feature gate ACMEHTTP01IngressPathTypeExact):
    // the same answer, and `<token>/x` now belongs to the app (redirected).
    write_solver(&fx, solver.addr, "Exact");
    applied("solver Ingress with pathType Exact", || {
        let resp = sluice.get(HOST, &format!("{}/x", challenge_path(TOKEN)));
        (resp.status == 308).then_some(()).ok_or_else(|| format!("{resp:?}"))
    });
    assert_redirected(&sluice, &format!("{}/x", challenge_path(TOKEN)));
    assert_challenge_answered(&sluice, &solver, &challenge_path(TOKEN));
    assert_redirected(&sluice, "/");

    fx.assert_backends_running();
    let mut sluice = sluice;
    sluice.proc.assert_running();
}

#[test]
fn a_certificate_secret_written_later_is_served_live() {
    let mut fx = Fixture::new("certmgr-secret");
    fx.backend("shop");
    fx.ingress(&app_ingress());
    let mut sluice = fx.start(&[]);
    let pid = sluice.proc.pid();

    // No Secret yet: the default certificate, for the host as for any unknown name.
    let default_chain = served_chain(&sluice, HOST).expect("handshake without the Secret");
    let default_leaf = default_chain.first().cloned().unwrap_or_default();
    let contains = |der: &[u8], name: &str| der.windows(name.len()).any(|w| w == name.as_bytes());
    assert!(contains(&default_leaf, DEFAULT_CERT_NAME), "not Sluice's default certificate");
    assert!(!contains(&default_leaf, HOST), "a certificate for {HOST} before its Secret exists");
    assert_eq!(
        served_chain(&sluice, "unknown.example.test").expect("handshake for an unknown name").first(),
        Some(&default_leaf),
        "the default certificate is the one for unknown names"
    );
    // The Ingress is served meanwhile (ingress-nginx routes with its fake certificate).
    let (resp, _) = https_get(&sluice, TlsOptions::default(), "/").expect("https / with the default certificate");
    assert_eq!((resp.status, resp.echo().service()), (200, "shop"), "{resp:?}");
    assert_redirected(&sluice, "/");

    // cert-manager stores the issued certificate.
    let ca = TestCa::new();
    let ca_der = ca.der();
    let first = ca.issue(0x1001);
    fx.write("secret-shop-tls.yaml", &cert_manager_secret_yaml("shop-tls", &first));
    applied("the issued certificate", || match served_chain(&sluice, HOST) {
        Ok(chain) if chain.first() == Some(&first.leaf_der) => Ok(()),
        Ok(chain) => Err(format!("leaf is still another certificate ({} certificates)", chain.len())),
        Err(e) => Err(e),
    });
    assert_eq!(served_chain(&sluice, HOST).unwrap(), vec![first.leaf_der.clone(), ca_der.clone()], "leaf and chain");
    // A client that trusts the CA verifies it and is served.
    let opts = TlsOptions { trust: Some(&ca_der), ..TlsOptions::default() };
    let (resp, leaf) = https_get(&sluice, opts, "/").expect("verified https with the issued certificate");
    assert_eq!((resp.status, resp.echo().service(), leaf == first.leaf_der), (200, "shop", true), "{resp:?}");
    assert_eq!(
        served_chain(&sluice, "unknown.example.test").unwrap().first(),
        Some(&default_leaf),
        "other names keep the default certificate"
    );

    // Renewal: a new key and serial, the Secret replaced in one step as the API server does.
    let renewed = ca.issue(0x1002);
    assert_ne!(renewed.leaf_der, first.leaf_der);
    replace_by_rename(&fx.file("secret-shop-tls.yaml"), &cert_manager_secret_yaml("shop-tls", &renewed));
    applied("the renewed certificate", || match served_chain(&sluice, HOST) {
        Ok(chain) if chain.first() == Some(&renewed.leaf_der) => Ok(()),
        Ok(chain) => Err(format!(
            "leaf is {} ({} certificates)",
            if chain.first() == Some(&first.leaf_der) { "still the first one" } else { "another one" },
            chain.len()
        )),
        Err(e) => Err(e),
    });
    let (resp, leaf) = https_get(&sluice, opts, "/").expect("verified https with the renewed certificate");
    assert_eq!((resp.status, resp.echo().service(), leaf == renewed.leaf_der), (200, "shop", true), "{resp:?}");

    // All of it without a restart.
    sluice.proc.assert_running();
    assert_eq!(sluice.proc.pid(), pid);
    fx.assert_backends_running();
}

#[test]
fn solver_ingress_is_removed_cleanly() {
    let mut fx = Fixture::new("certmgr-cleanup");
    fx.backend("shop");
    let cert = test_cert(&[HOST]);
    fx.tls_secret("shop-tls", &cert);
    fx.ingress(&app_ingress());
    let mut sluice = fx.start(&[]);
    let without_solver = unrelated_answers(&sluice, &cert);

    // cert-manager presents the challenge...
    let solver = SolverPod::start(HOST, TOKEN, KEY_AUTHORIZATION);
    let (service_file, ingress_file) = write_solver(&fx, solver.addr, "ImplementationSpecific");
    applied("the solver Ingress", || {
        let resp = sluice.get(HOST, &challenge_path(TOKEN));
        (resp.status == 200).then_some(()).ok_or_else(|| format!("{resp:?}"))
    });
    assert_challenge_answered(&sluice, &solver, &challenge_path(TOKEN));
    assert_eq!(unrelated_answers(&sluice, &cert), without_solver, "the solver changes nothing else");

    // ...and deletes its Ingress once the challenge is valid (`cleanupIngresses`).
    std::fs::remove_file(&ingress_file).expect("delete the solver Ingress");
    applied("the solver Ingress deleted", || {
        let resp = sluice.get(HOST, &challenge_path(TOKEN));
        (resp.status == 308).then_some(()).ok_or_else(|| format!("{resp:?}"))
    });
    let hits = solver.hits();
    // The challenge path is the app's again: redirected over http, the app over https.
    assert_redirected(&sluice, &challenge_path(TOKEN));
    let opts = TlsOptions { trust: Some(&cert.der), ..TlsOptions::default() };
    let (resp, leaf) = https_get(&sluice, opts, &challenge_path(TOKEN)).expect("https challenge path");
    assert_eq!((resp.status, resp.echo().service(), leaf == cert.der), (200, "shop", true), "{resp:?}");
    assert_eq!(resp.echo().str("path"), challenge_path(TOKEN));
    assert_eq!(solver.hits(), hits, "the solver is not reached any more");
    assert_eq!(unrelated_answers(&sluice, &cert), without_solver, "nothing else changed");

    // Then its Service (and pod): still nothing else changes.
    let generation = sluice.generation().expect("sluice_config_generation");
    std::fs::remove_file(&service_file).expect("delete the solver Service");
    drop(solver);
    assert!(
        wait_until(APPLY, || sluice.generation().is_some_and(|g| g > generation)),
        "the Service's deletion was not applied"
    );
    assert_redirected(&sluice, &challenge_path(TOKEN));
    assert_eq!(unrelated_answers(&sluice, &cert), without_solver, "nothing else changed");

    sluice.proc.assert_running();
    fx.assert_backends_running();
}
