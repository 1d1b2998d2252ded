//! The admin listener's dashboard, rendered by a real browser (Debian's headless chromium,
//! driven by its command line only): `sluice run` on known objects — two Ingresses with
//! filters, a rejected one, a TLS Secret, a LoadBalancer Service, a Gateway with an
//! HTTPRoute — and the page's DOM shows their hosts, paths, backends, the diagnostic, the
//! certificate's expiry, both addresses and request counts; a screenshot is a PNG. With 10,000 Ingresses the page pages (50 rows) and
//! its search finds one host, and `/api/dashboard` answers quickly. Hostile text in a
//! diagnostic is shown as text, never run, and the page loads nothing from elsewhere.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// Debian's chromium, installed by `scripts/deps`.
const CHROMIUM: &str = "chromium";
/// How long a chromium run may take before the test gives up on it.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// `GET <path>` on the admin listener.
fn admin(sluice: &Sluice, path: &str) -> HttpResponse {
    exchange(sluice.admin, &http_request("GET", &sluice.admin.to_string(), path, &[], b""))
        .unwrap_or_else(|e| panic!("GET {path} on the admin listener: {e}"))
}

/// `GET <path>` on the admin listener as JSON.
fn admin_json(sluice: &Sluice, path: &str) -> serde_json::Value {
    let resp = admin(sluice, path);
    assert_eq!(resp.status, 200, "GET {path}: {resp:?}");
    serde_json::from_str(&resp.text()).unwrap_or_else(|e| panic!("GET {path}: {e}: {}", resp.text()))
}

/// Runs headless chromium with `args` then `url`, in a profile under `dir`; returns stdout.
fn chromium(dir: &Path, args: &[&str], url: &str) -> String {
    let profile =
        dir.join(format!("chromium-profile-{}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()));
    let mut child = Command::new(CHROMIUM)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=8000"])
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {CHROMIUM} (scripts/deps installs it): {e}"));
    let mut stdout = child.stdout.take().expect("chromium stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).ok();
        out
    });
    let deadline = Instant::now() + BROWSER_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("chromium did not finish within {BROWSER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().expect("chromium output")
}

/// The page's DOM after its scripts ran (`--dump-dom`).
fn dump_dom(dir: &Path, sluice: &Sluice, target: &str) -> String {
    chromium(dir, &["--dump-dom"], &format!("http://{}{target}", sluice.admin))
}

/// Text as the DOM serialiser writes it inside an element.
fn html_text(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('\u{a0}', "&nbsp;")
}

/// The body of the table `<section id="ID">` in a DOM dump.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom.find(&format!("<section id=\"{id}\"")).unwrap_or_else(|| panic!("no section {id}:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

/// The `<tr>` of `table` whose text contains `needle`.
fn row<'a>(table: &'a str, needle: &str) -> &'a str {
    table.split("<tr").find(|tr| tr.contains(needle)).unwrap_or_else(|| panic!("no row with {needle:?} in:\n{table}"))
}

/// The text of the first `<td>` with `class` in a row.
fn cell<'a>(tr: &'a str, class: &str) -> &'a str {
    let at = tr.find(&format!("class=\"{class}\"")).unwrap_or_else(|| panic!("no cell {class:?} in {tr}"));
    let text = &tr[at..];
    let text = &text[text.find('>').map_or(0, |i| i + 1)..];
    &text[..text.find('<').unwrap_or(text.len())]
}

/// A self-signed certificate for `host` valid until 2031-05-17 00:00 UTC.
fn cert_until_2031(host: &str) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec![host.to_owned()]).expect("certificate params");
    params.not_after = rcgen::date_time_ymd(2031, 5, 17);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("self-signed certificate");
    (cert.pem(), key.serialize_pem())
}

/// 2031-05-17T00:00:00Z.
const EXPIRY: u64 = 1_936_742_400;

/// A `type: LoadBalancer` Service `name` (TCP 9000) on `ip` with `endpoint` ready.
fn load_balancer_yaml(name: &str, ip: &str, endpoint: std::net::SocketAddr) -> String {
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  annotations: {{metallb.io/loadBalancerIPs: \"{ip}\"}}\nspec:\n  type: LoadBalancer\n  selector:\n    app: {name}\n  ports:\n    - name: tcp\n      port: 9000\n      targetPort: {}\n      protocol: TCP\n",
        endpoint.port()
    );
    let slice = endpoint_slice_yaml(name, Some("tcp"), endpoint.port(), &[endpoint.ip().to_string()], true);
    yaml_docs(&[service, slice])
}

/// A GatewayClass, a Gateway `gw` with an HTTP listener on 8080 and an HTTPRoute `gw-route`
/// sending `gw.dash.test/v1` to `api`.
const GATEWAY: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec: {controllerName: sluice.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: sluice
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: gw-route, namespace: default}
spec:
  parentRefs: [{name: gw}]
  hostnames: [gw.dash.test]
  rules: [{matches: [{path: {type: PathPrefix, value: /v1}}], backendRefs: [{name: api, port: 8080}]}]
";

fn nginx(name: &str) -> String {
    format!("nginx.ingress.kubernetes.io/{name}")
}

#[test]
fn the_dashboard_shows_routes_endpoints_addresses_certificates_diagnostics_and_counts() {
    let mut fx = Fixture::new("dashboard");
    let web = fx.backend("web");
    fx.backend("api");
    let (cert, key) = cert_until_2031("web.dash.test");
    fx.write("secret-web-tls.yaml", &tls_secret_yaml("web-tls", cert.as_bytes(), key.as_bytes()));
    fx.ingress(&Ingress::new("web").annotation(&nginx("enable-cors"), "true").tls(&["web.dash.test"], "web-tls").path(
        Some("web.dash.test"),
        "Prefix",
        "/shop",
        "web",
    ));
    fx.ingress(
        &Ingress::new("api").annotation(&nginx("use-regex"), "true").annotation(&nginx("rewrite-target"), "/$2").path(
            Some("api.dash.test"),
            "ImplementationSpecific",
            "/api(/|$)(.*)",
            "api",
        ),
    );
    fx.ingress(&Ingress::new("bad-host").path(Some("Foo_Bar..com"), "Prefix", "/", "web"));
    fx.write("lb.yaml", &load_balancer_yaml("lb", "127.0.96.10", web));
    // A Gateway (the pool's other address) with an HTTPRoute to `api`.
    fx.write("gateway.yaml", GATEWAY);
    let state = fx.dir.path().join("state");
    let sluice = fx.start(&["--lb-pool", "127.0.96.10-127.0.96.11", "--state-dir", &state.to_string_lossy()]);

    // Headers: own files only, nothing sniffed, the right types.
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/dashboard.js", "text/javascript; charset=utf-8"),
        ("/dashboard.css", "text/css; charset=utf-8"),
        ("/api/dashboard", "application/json"),
        ("/api/rates", "application/json"),
    ] {
        let resp = admin(&sluice, path);
        assert_eq!(resp.status, 200, "{path}: {resp:?}");
        assert_eq!(resp.header("content-type"), Some(content_type), "{path}");
        let csp = "default-src 'self'; script-src 'self'; style-src 'self'";
        assert_eq!(resp.header("content-security-policy"), Some(csp), "{path}");
        assert_eq!(resp.header("x-content-type-options"), Some("nosniff"), "{path}");
    }

    // Requests, counted per route and status class: /api/rates shows them at once (the
    // host with TLS over HTTPS: plain HTTP is redirected before routing).
    for _ in 0..7 {
        let raw = http_request("GET", "web.dash.test", "/shop/cart", &[], b"");
        let (resp, _) = https_exchange(sluice.https, "web.dash.test", TlsOptions::default(), &raw).expect("HTTPS");
        assert_eq!(resp.status, 200, "{resp:?}");
    }
    for _ in 0..3 {
        assert_eq!(sluice.get("api.dash.test", "/api/users").status, 200);
    }
    assert_eq!(sluice.get("web.dash.test", "/elsewhere").status, 404);
    let rates = admin_json(&sluice, "/api/rates");
    assert_eq!(rates["routes"]["default/web"]["2xx"], 7, "{rates}");
    assert_eq!(rates["routes"]["default/api"]["2xx"], 3, "{rates}");
    assert!(rates["time_ms"].as_u64().is_some_and(|t| t > 0), "{rates}");
    // Wait until the LoadBalancer and Gateway addresses are allocated (the first snapshot may
    // be before them); then two requests through the Gateway.
    assert!(wait_until(Duration::from_secs(10), || {
        admin_json(&sluice, "/api/dashboard")["addresses"]["total"].as_u64() == Some(2)
    }));
    let gateway: std::net::SocketAddr = "127.0.96.11:8080".parse().unwrap();
    for _ in 0..2 {
        let answer = exchange(gateway, &http_request("GET", "gw.dash.test", "/v1/items", &[], b"")).expect("Gateway");
        assert_eq!(answer.echo().service(), "api");
    }
    let json = admin_json(&sluice, "/api/dashboard");
    let diagnostic = &json["diagnostics"]["items"][0];
    assert_eq!(diagnostic["subject"], "Ingress default/bad-host", "{json}");
    assert_eq!(diagnostic["field"], "spec.rules[0].host", "{json}");
    let reason = diagnostic["reason"].as_str().expect("reason").to_owned();
    assert_eq!(json["counts"]["default/web"]["total"], 7, "{json}");

    let dom = dump_dom(fx.dir.path(), &sluice, "/");
    let routes = section(&dom, "routes");
    let web_row = row(routes, "web.dash.test");
    assert!(web_row.contains("/shop") && web_row.contains("default/web"), "{web_row}");
    assert!(web_row.contains("cors: origins *"), "the CORS filter: {web_row}");
    assert!(web_row.contains("default/web:8080"), "the backend: {web_row}");
    assert_eq!(cell(web_row, "num requests"), "7", "{web_row}");
    let api_row = row(routes, "api.dash.test");
    assert!(api_row.contains("/api(/|$)(.*)") && api_row.contains("rewrite"), "{api_row}");
    assert!(api_row.contains("default/api:8080"), "{api_row}");
    assert_eq!(cell(api_row, "num requests"), "3", "{api_row}");

    let gw_row = row(routes, "gw.dash.test");
    assert!(gw_row.contains("Gateway default/gw (http, 127.0.96.11:8080)"), "{gw_row}");
    assert!(gw_row.contains("/v1") && gw_row.contains("default/api:8080"), "{gw_row}");
    assert_eq!(cell(gw_row, "num requests"), "2", "{gw_row}");

    let backends = section(&dom, "backends");
    let web_backend = row(backends, "default/web:8080");
    assert!(web_backend.contains(&web.to_string()) && web_backend.contains("1/1 up"), "{web_backend}");

    let diagnostics = section(&dom, "diagnostics");
    let bad = row(diagnostics, "Ingress default/bad-host");
    assert!(bad.contains("spec.rules[0].host"), "{bad}");
    assert!(bad.contains(&html_text(&reason)), "reason {reason:?} in {bad}");

    let certificates = section(&dom, "certificates");
    let certificate = row(certificates, "web.dash.test");
    assert!(certificate.contains("2031-05-17 00:00 UTC"), "{certificate}");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let days: i64 = cell(certificate, "num ok").parse().expect("days left");
    assert!((days - ((EXPIRY - now) / 86400) as i64).abs() <= 1, "{days} days left: {certificate}");

    let addresses = section(&dom, "addresses");
    let lb = row(addresses, "127.0.96.10");
    assert!(lb.contains("Service default/lb") && lb.contains("9000"), "{lb}");
    assert!(lb.contains("local address (not announced)"), "{lb}");
    let gw_address = row(addresses, "127.0.96.11");
    assert!(gw_address.contains("Gateway default/gw") && gw_address.contains("HTTP 8080"), "{gw_address}");

    // A screenshot renders the same page to a PNG.
    let png = fx.dir.path().join("dashboard.png");
    let shot = format!("--screenshot={}", png.display());
    chromium(fx.dir.path(), &[&shot, "--window-size=1280,900"], &format!("http://{}/", sluice.admin));
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "{} bytes", bytes.len());
}

#[test]
fn hostile_text_is_shown_as_text_and_the_page_loads_nothing_from_elsewhere() {
    let mut fx = Fixture::new("dashboard-xss");
    fx.backend("web");
    let hostile = "<script>alert(1)</script>";
    fx.ingress(&Ingress::new("hostile").path(Some(hostile), "Prefix", "/", "web"));
    let sluice = fx.start(&[]);
    for asset in ["/", "/dashboard.js", "/dashboard.css"] {
        let text = admin(&sluice, asset).text();
        assert!(!text.contains("http://") && !text.contains("https://"), "{asset} refers outside:\n{text}");
    }
    let json = admin_json(&sluice, "/api/dashboard");
    let reason = json["diagnostics"]["items"][0]["reason"].as_str().expect("a diagnostic").to_owned();
    assert!(reason.contains(hostile), "the reason quotes the host: {json}");

    let dom = dump_dom(fx.dir.path(), &sluice, "/");
    let diagnostics = section(&dom, "diagnostics");
    assert!(diagnostics.contains(&html_text(&reason)), "reason as text in:\n{diagnostics}");
    assert!(!diagnostics.contains(hostile), "markup in:\n{diagnostics}");
    assert_eq!(dom.matches("<script").count(), 1, "only the page's own script element:\n{dom}");
}

#[test]
fn ten_thousand_ingresses_are_paged_and_searchable() {
    const COUNT: usize = 10_000;
    let mut fx = Fixture::new("dashboard-10k");
    fx.backend("web");
    let ingresses: Vec<String> = (0..COUNT)
        .map(|i| {
            Ingress::new(&format!("ing-{i}")).path(Some(&format!("host-{i}.scale.test")), "Prefix", "/", "web").yaml()
        })
        .collect();
    fx.write("ingresses.yaml", &yaml_docs(&ingresses));
    let sluice = fx.start(&[]);
    // The first answer after a snapshot builds its tables; later ones filter and page them.
    let mut build = Duration::ZERO;
    assert!(wait_until(Duration::from_secs(30), || {
        let started = Instant::now();
        let total = admin_json(&sluice, "/api/dashboard?limit=1")["routes"]["total"].as_u64();
        build = started.elapsed();
        total == Some(COUNT as u64)
    }));

    let timed = |path: &str| {
        let started = Instant::now();
        let resp = admin(&sluice, path);
        let elapsed = started.elapsed();
        assert_eq!(resp.status, 200, "{path}");
        (elapsed, resp.body.len(), serde_json::from_str::<serde_json::Value>(&resp.text()).expect("JSON"))
    };
    let (first, size, page) = timed("/api/dashboard");
    assert_eq!(page["routes"]["matched"], COUNT, "{}", page["routes"]["matched"]);
    assert_eq!(page["routes"]["items"].as_array().map(Vec::len), Some(50));
    let (again, _, _) = timed("/api/dashboard?routes=9950");
    let (search, search_size, found) = timed("/api/dashboard?q=host-1234.scale.test");
    assert_eq!(found["routes"]["matched"], 1, "{found}");
    let (rates, rates_size, _) = timed("/api/rates");
    eprintln!(
        "10,000 Ingresses: tables built in {build:?}; /api/dashboard {size} bytes in {first:?} (a later page {again:?}); \
         search {search_size} bytes in {search:?}; /api/rates {rates_size} bytes in {rates:?}"
    );
    for elapsed in [build, first, again, search, rates] {
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    }

    let dom = dump_dom(fx.dir.path(), &sluice, "/");
    let routes = section(&dom, "routes");
    assert!(routes.contains("1–50 of 10000"), "paging:\n{routes}");
    assert!(routes.matches("<tr").count() <= 51, "one page of rows");

    let dom = dump_dom(fx.dir.path(), &sluice, "/?q=host-1234.scale.test");
    let routes = section(&dom, "routes");
    assert!(routes.contains("1–1 of 1 (filtered from 10000)"), "search:\n{routes}");
    assert!(row(routes, "host-1234.scale.test").contains("default/ing-1234"));
    assert_eq!(routes.matches("scale.test").count(), 1, "exactly the one host:\n{routes}");
}
