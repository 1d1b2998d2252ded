//! Kubernetes Ingress conformance, run against a real `sluice run` and real
//! `sluice echo` backends on loopback.
//!
//! - [`conformance_cases`] runs every case of
//!   `shared/conformance/ingress/cases.json` (kubernetes-sigs/ingress-controller-conformance)
//!   with the Ingress manifests of its `.feature` file, following the suite's README:
//!   class `conformance`, one echo per Service, port 8080 (named `http` when the Ingress
//!   names it), a new connection per request, redirects followed, HTTPS verified against
//!   the `conformance-tls` certificate. It prints `N passed, N failed` and fails if any case failed.
//! - [`kubernetes_docs_path_table`] and [`default_backend_catches_unmatched_paths`] check
//!   every row of the path-matching table of the Kubernetes Ingress documentation.
//! - [`host_matching_rules`] checks exact vs wildcard hosts, case and port insensitivity
//!   and rules without a host.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use common::*;

/// `cases.json`, read at run time (CI has `shared/` beside the repository).
const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/ingress/cases.json");

// The Ingress manifests of the `.feature` files. Per the suite's README the runner
// applies them in a fresh namespace with `ingressClassName: conformance` when the
// manifest has none; that field (and the namespace) is the only addition.

/// `default_backend.feature`.
const DEFAULT_BACKEND: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: default-backend
  namespace: default
spec:
  ingressClassName: conformance
  defaultBackend:
    service:
      name: echo-service
      port:
        number: 8080
"#;

/// `host_rules.feature`.
const HOST_RULES: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: host-rules
  namespace: default
spec:
  ingressClassName: conformance
  tls:
    - hosts:
        - foo.bar.com
      secretName: conformance-tls
  rules:
    - host: "*.foo.com"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: wildcard-foo-com
                port:
                  number: 8080

    - host: foo.bar.com
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: foo-bar-com
                port:
                  name: http
"#;

/// `path_rules.feature`.
const PATH_RULES: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: path-rules
  namespace: default
spec:
  ingressClassName: conformance
  rules:
    - host: "exact-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Exact
            backend:
              service:
                name: foo-exact
                port:
                  number: 8080

    - host: "prefix-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Prefix
            backend:
              service:
                name: foo-prefix
                port:
                  number: 8080

          - path: /aaa/bbb
            pathType: Prefix
            backend:
              service:
                name: aaa-slash-bbb-prefix
                port:
                  number: 8080

          - path: /aaa
            pathType: Prefix
            backend:
              service:
                name: aaa-prefix
                port:
                  number: 8080

    - host: "mixed-path-rules"
      http:
        paths:
          - path: /foo
            pathType: Prefix
            backend:
              service:
                name: foo-prefix
                port:
                  number: 8080

          - path: /foo
            pathType: Exact
            backend:
              service:
                name: foo-exact
                port:
                  number: 8080

    - host: "trailing-slash-path-rules"
      http:
        paths:
          - path: /aaa/bbb/
            pathType: Prefix
            backend:
              service:
                name: aaa-slash-bbb-slash-prefix
                port:
                  number: 8080

          - path: /foo/
            pathType: Exact
            backend:
              service:
                name: foo-slash-exact
                port:
                  number: 8080
"#;

/// `load_balancing.feature`.
const LOAD_BALANCING: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: load-balancing
  namespace: default
spec:
  ingressClassName: conformance
  defaultBackend:
    service:
      name: echo-service
      port:
        number: 8080
"#;

/// `ingress_class.feature` (its class is deliberately not ours).
const INGRESS_CLASS: &str = r#"apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: test-ingress-class
  namespace: default
spec:
  ingressClassName: some-invalid-class-name
  rules:
    - host: "ingress-class"
      http:
        paths:
          - path: /
            pathType: Prefix
            backend:
              service:
                name: ingress-class-prefix
                port:
                  number: 8080
"#;

/// The Ingress manifest of a feature file.
fn feature_manifest(feature: &str) -> Option<&'static str> {
    Some(match feature {
        "default_backend.feature" => DEFAULT_BACKEND,
        "host_rules.feature" => HOST_RULES,
        "path_rules.feature" => PATH_RULES,
        "load_balancing.feature" => LOAD_BALANCING,
        "ingress_class.feature" => INGRESS_CLASS,
        _ => return None,
    })
}

/// The backend Services an Ingress manifest names, each with the port name it uses
/// (`None` when it uses `port.number`), in order of first appearance.
fn backend_services(yaml: &str) -> Vec<(String, Option<String>)> {
    let mut found: Vec<(String, Option<String>)> = Vec::new();
    let mut lines = yaml.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "service:" {
            continue;
        }
        let mut name = None;
        let mut port_name = None;
        for line in lines.by_ref() {
            if let Some(n) = line.strip_prefix("name:") {
                if name.is_none() {
                    name = Some(n.trim().to_owned());
                } else {
                    port_name = Some(n.trim().to_owned());
                    break;
                }
            } else if line.starts_with("number:") {
                break;
            }
        }
        if let Some(name) = name {
            if !found.iter().any(|(n, _)| *n == name) {
                found.push((name, port_name));
            }
        }
    }
    found
}

/// A running scenario: Sluice with one feature's manifests and its echo backends.
struct Scenario {
    fx: Fixture,
    sluice: Sluice,
    /// Certificate of Secret `conformance-tls` (SAN foo.bar.com).
    cert: TestCert,
    /// Address of each Service's first echo backend.
    backends: HashMap<String, SocketAddr>,
}

/// Sets up the fixture of `feature` as the suite's README describes and starts Sluice.
fn setup(feature: &str) -> Result<Scenario, String> {
    let yaml = feature_manifest(feature).ok_or_else(|| format!("no manifest for {feature}"))?;
    let mut fx = Fixture::new(feature.trim_end_matches(".feature"));
    let mut backends = HashMap::new();
    for (service, port_name) in backend_services(yaml) {
        let addr = fx.backend_with(&service, port_name.as_deref(), None);
        backends.insert(service, addr);
    }
    let cert = test_cert(&["foo.bar.com"]);
    fx.tls_secret("conformance-tls", &cert);
    fx.write("ingress.yaml", yaml);
    let sluice = fx.start(&["--ingress-class", "conformance"]);
    Ok(Scenario { fx, sluice, cert, backends })
}

/// One request/expectation of cases.json.
struct Case<'a> {
    feature: &'a str,
    scheme: &'a str,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    expect: &'a serde_json::Map<String, serde_json::Value>,
}

impl<'a> Case<'a> {
    fn parse(v: &'a serde_json::Value) -> Result<Case<'a>, String> {
        let s = |obj: &'a serde_json::Value, key: &str| -> Result<&'a str, String> {
            obj.get(key).and_then(|x| x.as_str()).ok_or_else(|| format!("case has no string {key}"))
        };
        let request = v.get("request").ok_or("case has no request")?;
        Ok(Case {
            feature: s(v, "feature")?,
            scheme: s(request, "scheme")?,
            method: s(request, "method")?,
            host: s(request, "host")?,
            path: s(request, "path")?,
            expect: v.get("expect").and_then(|e| e.as_object()).ok_or("case has no expect")?,
        })
    }

    fn label(&self) -> String {
        format!("[{}] {} {}://{}{}", self.feature, self.method, self.scheme, self.host, self.path)
    }
}

/// Sends one request the way the suite's Go client does (new connection, HTTP/1.1,
/// `User-Agent: Go-http-client/1.1`, SNI = host and certificate verification for
/// HTTPS when `verify` is given) and follows redirects to the same address.
fn fetch(
    sc: &Scenario,
    scheme: &str,
    method: &str,
    host: &str,
    path: &str,
    verify: Option<&[u8]>,
) -> Result<HttpResponse, String> {
    let mut scheme = scheme.to_owned();
    let mut method = method.to_owned();
    let mut host = host.to_owned();
    let mut path = path.to_owned();
    for _ in 0..10 {
        let resp = send_once(sc, &scheme, &method, &host, &path, verify)?;
        if !matches!(resp.status, 301 | 302 | 303 | 307 | 308) {
            return Ok(resp);
        }
        let location =
            resp.header("location").ok_or_else(|| format!("redirect {} without Location", resp.status))?.to_owned();
        if let Some((new_scheme, rest)) = location.split_once("://") {
            scheme = new_scheme.to_ascii_lowercase();
            let (authority, new_path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            // The redirect names Sluice's test port where a cluster would use the scheme's
            // default port, which a client leaves out of `Host`.
            let port = if scheme == "https" { sc.sluice.https.port() } else { sc.sluice.http.port() };
            host = authority.strip_suffix(&format!(":{port}")).unwrap_or(authority).to_owned();
            path = new_path.to_owned();
        } else {
            path = location;
        }
        if matches!(resp.status, 301..=303) && method != "GET" && method != "HEAD" {
            method = "GET".to_owned();
        }
    }
    Err("too many redirects".to_owned())
}

/// One request without redirect handling.
fn send_once(
    sc: &Scenario,
    scheme: &str,
    method: &str,
    host: &str,
    path: &str,
    verify: Option<&[u8]>,
) -> Result<HttpResponse, String> {
    let listener = if scheme == "https" { sc.sluice.https } else { sc.sluice.http };
    // An empty host means "no Host override": the Host is the Ingress address itself.
    let host_header = if host.is_empty() { listener.to_string() } else { host.to_owned() };
    let raw = http_request(method, &host_header, path, &[], b"");
    if scheme == "https" {
        let sni = host_header.rsplit_once(':').map_or(host_header.as_str(), |(h, _)| h);
        let opts = TlsOptions { trust: verify, ..TlsOptions::default() };
        https_exchange(listener, sni, opts, &raw).map(|(resp, _)| resp)
    } else {
        exchange(listener, &raw).map_err(|e| format!("HTTP exchange: {e}"))
    }
}

/// Compares one expectation.
fn expect_eq(what: &str, want: &str, got: &str, errors: &mut Vec<String>) {
    if want != got {
        errors.push(format!("{what}: want {want:?}, got {got:?}"));
    }
}

/// Runs a plain request/response case and checks everything its `expect` lists.
fn run_request_case(sc: &Scenario, case: &Case<'_>) -> Result<(), String> {
    let verify = case.expect.get("tls_cert_must_verify").map(|_| sc.cert.der.as_slice());
    if let Some(name) = case.expect.get("tls_cert_must_verify").and_then(|v| v.as_str()) {
        if name != case.host {
            return Err(format!("cannot verify {name} when requesting {}", case.host));
        }
    }
    let resp = fetch(sc, case.scheme, case.method, case.host, case.path, verify)?;
    if let Some(want) = case.expect.get("status").and_then(|v| v.as_u64()) {
        if u64::from(resp.status) != want {
            return Err(format!(
                "status: want {want}, got {} (body {:?})",
                resp.status,
                resp.text().chars().take(200).collect::<String>()
            ));
        }
    }
    let needs_echo = case.expect.keys().any(|k| k == "service" || k.starts_with("backend_"));
    let echo = if needs_echo { Some(resp.try_echo()?) } else { None };
    let mut errors = Vec::new();
    for (key, want) in case.expect {
        let want_str = want.as_str().unwrap_or_default();
        match (key.as_str(), &echo) {
            // Checked above; verified by the TLS handshake in `fetch` (root = the test certificate).
            ("status", _) | ("tls_cert_must_verify", _) => {}
            ("response_proto", _) => expect_eq("response proto", want_str, &resp.version, &mut errors),
            ("response_headers_present", _) => {
                for name in want.as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    if resp.header(name).is_none() {
                        errors.push(format!("response header {name} missing"));
                    }
                }
            }
            ("service", Some(e)) => expect_eq("service", want_str, e.service(), &mut errors),
            ("backend_method" | "backend_path" | "backend_proto" | "backend_host", Some(e)) => {
                let field = key.trim_start_matches("backend_");
                expect_eq(key, want_str, e.str(field), &mut errors);
            }
            ("backend_headers", Some(e)) => {
                for (name, value) in want.as_object().into_iter().flatten() {
                    expect_eq(
                        &format!("backend header {name}"),
                        value.as_str().unwrap_or_default(),
                        e.header(name).unwrap_or("<absent>"),
                        &mut errors,
                    );
                }
            }
            (other, _) => errors.push(format!("unsupported expectation {other:?}")),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// `load_balancing.feature`: grow echo-service from 1 to 10 ready endpoints, reload,
/// then 100 fresh-connection requests must all be 200 and reach all 10 pods.
fn run_load_balancing(sc: &mut Scenario, case: &Case<'_>) -> Result<(), String> {
    let want_status = case.expect.get("status_all").and_then(|v| v.as_u64()).ok_or("no status_all")?;
    let want_pods = case.expect.get("distinct_pods_seen").and_then(|v| v.as_u64()).ok_or("no distinct_pods_seen")?;
    let first = *sc.backends.get("echo-service").ok_or("no echo-service backend")?;
    let resp = fetch(sc, "http", "GET", case.host, case.path, None)?;
    if resp.status != 200 {
        return Err(format!("before scaling: status {}", resp.status));
    }
    // Scale to `want_pods`: same port, addresses 127.0.0.2, 127.0.0.3, ...
    let mut addresses = vec![first.ip().to_string()];
    for i in 2..=want_pods {
        let addr: SocketAddr = format!("127.0.0.{i}:{}", first.port()).parse().map_err(|e| format!("address: {e}"))?;
        sc.fx.try_spawn_echo(addr, "echo-service")?;
        addresses.push(addr.ip().to_string());
    }
    sc.fx.write_service("echo-service", None, None, first.port(), &addresses, true);
    sc.sluice.try_reload()?;
    let mut pods = BTreeSet::new();
    for i in 0..100 {
        let resp = fetch(sc, "http", "GET", case.host, case.path, None)?;
        if u64::from(resp.status) != want_status {
            return Err(format!("request {i}: status {}", resp.status));
        }
        pods.insert(resp.try_echo()?.str("pod").to_owned());
    }
    if pods.len() as u64 != want_pods {
        return Err(format!("saw {} distinct pods, want {want_pods}: {pods:?}", pods.len()));
    }
    Ok(())
}

/// `ingress_class.feature`: an Ingress of another class must be ignored (its host gets 404).
fn run_ingress_class(sc: &Scenario, case: &Case<'_>) -> Result<(), String> {
    let resp = fetch(sc, "http", "GET", case.host, case.path, None)?;
    if resp.status != 404 {
        return Err(format!(
            "Ingress of class some-invalid-class-name was served: status {} body {:?}",
            resp.status,
            resp.text().chars().take(200).collect::<String>()
        ));
    }
    for key in case.expect.keys() {
        if key != "ingress_status_address" {
            return Err(format!("unsupported expectation {key:?}"));
        }
    }
    Ok(())
}

#[test]
fn conformance_cases() {
    let text = std::fs::read_to_string(CASES).unwrap_or_else(|e| panic!("read {CASES}: {e}"));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("cases.json is JSON");
    let cases = doc.get("cases").and_then(|c| c.as_array()).expect("cases.json has cases");
    assert!(!cases.is_empty(), "cases.json lists no cases");

    // Group the cases by feature, keeping the file's order; one Sluice per feature
    // (as the suite gives each feature its own namespace).
    let mut features: Vec<&str> = Vec::new();
    for case in cases {
        let feature = case.get("feature").and_then(|f| f.as_str()).unwrap_or("?");
        if !features.contains(&feature) {
            features.push(feature);
        }
    }

    let mut passed = 0usize;
    let mut failures: Vec<String> = Vec::new();
    for feature in features {
        let feature_cases: Vec<&serde_json::Value> =
            cases.iter().filter(|c| c.get("feature").and_then(|f| f.as_str()).unwrap_or("?") == feature).collect();
        let mut scenario = match setup(feature) {
            Ok(s) => s,
            Err(e) => {
                for _ in &feature_cases {
                    failures.push(format!("[{feature}] setup: {e}"));
                }
                continue;
            }
        };
        for value in feature_cases {
            let result = Case::parse(value).and_then(|case| {
                let outcome = match feature {
                    "load_balancing.feature" => run_load_balancing(&mut scenario, &case),
                    "ingress_class.feature" => run_ingress_class(&scenario, &case),
                    _ => run_request_case(&scenario, &case),
                };
                outcome.map_err(|e| format!("{}: {e}", case.label()))
            });
            match result {
                Ok(()) => {
                    passed += 1;
                    println!("ok    {}", describe(value));
                }
                Err(e) => {
                    println!("FAIL  {e}");
                    failures.push(e);
                }
            }
        }
        if failures.iter().any(|f| f.contains(feature)) {
            println!("----- sluice log for {feature} -----\n{}", scenario.sluice.proc.log());
        }
    }
    println!("{passed} passed, {} failed", failures.len());
    assert!(failures.is_empty(), "{passed} passed, {} failed:\n{}", failures.len(), failures.join("\n"));
}

/// Short description of a case for the report.
fn describe(case: &serde_json::Value) -> String {
    match Case::parse(case) {
        Ok(c) => c.label(),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------
// Path matching table of https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
// ---------------------------------------------------------------------------

/// One row: the rule's paths (type, path) and requests with the index of the path
/// that must serve them (`None`: no match, 404).
type Row = (&'static [(&'static str, &'static str)], &'static [(&'static str, Option<usize>)]);

/// The table rows. Each row gets its own host; path `i` of a row is served by Service `rule-i`.
const DOCS_TABLE: &[Row] = &[
    // Prefix / matches all paths.
    (&[("Prefix", "/")], &[("/", Some(0)), ("/foo", Some(0)), ("/aaa/bbb/ccc", Some(0))]),
    // Exact /foo: /foo yes, /bar no, /foo/ no (a query string does not matter).
    (&[("Exact", "/foo")], &[("/foo", Some(0)), ("/foo?x=1", Some(0)), ("/bar", None), ("/foo/", None)]),
    // Exact /foo/ vs /foo: no.
    (&[("Exact", "/foo/")], &[("/foo", None), ("/foo/", Some(0))]),
    // Prefix /foo: /foo and /foo/ yes.
    (&[("Prefix", "/foo")], &[("/foo", Some(0)), ("/foo/", Some(0))]),
    // Prefix /foo/: /foo and /foo/ yes.
    (&[("Prefix", "/foo/")], &[("/foo", Some(0)), ("/foo/", Some(0))]),
    // Prefix /aaa/bb vs /aaa/bbb: no.
    (&[("Prefix", "/aaa/bb")], &[("/aaa/bbb", None)]),
    // Prefix /aaa/bbb: /aaa/bbb, /aaa/bbb/, /aaa/bbb/ccc yes; /aaa/bbbxyz no.
    (
        &[("Prefix", "/aaa/bbb")],
        &[("/aaa/bbb", Some(0)), ("/aaa/bbb/", Some(0)), ("/aaa/bbb/ccc", Some(0)), ("/aaa/bbbxyz", None)],
    ),
    // Prefix /aaa/bbb/ vs /aaa/bbb: yes, ignores the trailing slash.
    (&[("Prefix", "/aaa/bbb/")], &[("/aaa/bbb", Some(0))]),
    // Prefix /, /aaa with /aaa/ccc: /aaa.
    (&[("Prefix", "/"), ("Prefix", "/aaa")], &[("/aaa/ccc", Some(1))]),
    // Prefix /, /aaa, /aaa/bbb: /aaa/bbb -> /aaa/bbb, /ccc -> /.
    (&[("Prefix", "/"), ("Prefix", "/aaa"), ("Prefix", "/aaa/bbb")], &[("/aaa/bbb", Some(2)), ("/ccc", Some(0))]),
    // Mixed Prefix /foo + Exact /foo: /foo prefers Exact.
    (&[("Prefix", "/foo"), ("Exact", "/foo")], &[("/foo", Some(1)), ("/foo/bar", Some(0))]),
];

#[test]
fn kubernetes_docs_path_table() {
    let mut fx = Fixture::new("path-table");
    let max_rules = DOCS_TABLE.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    for i in 0..max_rules {
        fx.backend(&format!("rule-{i}"));
    }
    for (row, (paths, _)) in DOCS_TABLE.iter().enumerate() {
        let host = format!("row{row}.paths.test");
        let mut ingress = Ingress::new(&format!("row{row}"));
        for (i, (path_type, path)) in paths.iter().enumerate() {
            ingress = ingress.path(Some(&host), path_type, path, &format!("rule-{i}"));
        }
        fx.ingress(&ingress);
    }
    let sluice = fx.start(&[]);

    let mut failures = Vec::new();
    for (row, (paths, requests)) in DOCS_TABLE.iter().enumerate() {
        let host = format!("row{row}.paths.test");
        for (request, want) in *requests {
            let resp = sluice.get(&host, request);
            let got = if resp.status == 200 {
                resp.try_echo().map(|e| e.service().to_owned()).unwrap_or_else(|e| e)
            } else {
                format!("status {}", resp.status)
            };
            let want_text = match want {
                Some(i) => format!("rule-{i}"),
                None => "status 404".to_owned(),
            };
            if got != want_text {
                failures.push(format!(
                    "rules {paths:?}, request {request}: want {want_text} ({}), got {got}",
                    want.map_or("no match".to_owned(), |i| format!("{:?}", paths[i]))
                ));
            }
        }
    }
    assert!(failures.is_empty(), "path table mismatches:\n{}", failures.join("\n"));
}

/// Docs row "Prefix /aaa, request /ccc: no match, uses the default backend".
#[test]
fn default_backend_catches_unmatched_paths() {
    let mut fx = Fixture::new("default-backend-row");
    fx.backend("aaa");
    fx.backend("fallback");
    fx.ingress(&Ingress::new("with-default").default_backend("fallback").path(None, "Prefix", "/aaa", "aaa"));
    let sluice = fx.start(&[]);
    for (path, want) in [("/ccc", "fallback"), ("/aaa", "aaa"), ("/aaa/x", "aaa"), ("/aaax", "fallback")] {
        let resp = sluice.get("any.example", path);
        assert_eq!(resp.status, 200, "GET {path}: {resp:?}");
        assert_eq!(resp.echo().service(), want, "GET {path}");
    }
}

// ---------------------------------------------------------------------------
// Host matching
// ---------------------------------------------------------------------------

#[test]
fn host_matching_rules() {
    let mut fx = Fixture::new("hosts");
    for service in ["exact-host", "wildcard-host", "any-host"] {
        fx.backend(service);
    }
    // The wildcard is written first so that "exact beats wildcard" cannot come from order.
    fx.write(
        "a-wildcard.yaml",
        &Ingress::new("wildcard").path(Some("*.bar.com"), "Prefix", "/", "wildcard-host").yaml(),
    );
    fx.write("b-exact.yaml", &Ingress::new("exact").path(Some("foo.bar.com"), "Prefix", "/", "exact-host").yaml());
    fx.write("c-any.yaml", &Ingress::new("any").path(None, "Prefix", "/", "any-host").yaml());
    let sluice = fx.start(&[]);
    let own_address = sluice.http.to_string();

    let cases: &[(&str, &str)] = &[
        // exact beats wildcard
        ("foo.bar.com", "exact-host"),
        // Host is case-insensitive and may carry a port
        ("FOO.Bar.COM", "exact-host"),
        ("FOO.bar.com:1234", "exact-host"),
        // wildcard matches exactly one label
        ("baz.bar.com", "wildcard-host"),
        ("Baz.BAR.com:80", "wildcard-host"),
        ("a.b.bar.com", "any-host"),
        ("bar.com", "any-host"),
        // a rule without host matches any host
        ("other.example", "any-host"),
        (&own_address, "any-host"),
    ];
    let mut failures = Vec::new();
    for (host, want) in cases {
        let resp = sluice.get(host, "/");
        match resp.try_echo() {
            Ok(echo) if resp.status == 200 && echo.service() == *want => {
                // The backend sees the Host header unchanged.
                if echo.str("host") != *host {
                    failures.push(format!("Host {host}: backend saw Host {:?}", echo.str("host")));
                }
            }
            Ok(echo) => failures.push(format!(
                "Host {host}: want {want}, got status {} service {}",
                resp.status,
                echo.service()
            )),
            Err(e) => failures.push(format!("Host {host}: want {want}, got {e}")),
        }
    }
    assert!(failures.is_empty(), "host matching mismatches:\n{}", failures.join("\n"));
}
