//! ingress-nginx annotations, end to end: real `sluice run` processes, echo backends on
//! loopback, raw HTTP/1.1 and TLS clients. Each test checks the behaviour ingress-nginx's
//! docs and e2e tests describe: regex paths and rewrites, redirects and their codes and
//! `Location`s, upstream headers, body limits with nothing forwarded, timeouts, canaries,
//! refused security annotations, class compatibility, and live changes of annotations.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const P: &str = "nginx.ingress.kubernetes.io";

fn a(name: &str) -> String {
    format!("{P}/{name}")
}

#[test]
fn use_regex_and_rewrite_target_follow_nginx_location_order() {
    let mut fx = Fixture::new("ann-regex");
    fx.backend("api");
    fx.backend("static");
    fx.ingress(&Ingress::new("api").annotation(&a("use-regex"), "true").annotation(&a("rewrite-target"), "/$2").path(
        Some("r.test"),
        "ImplementationSpecific",
        "/api(/|$)(.*)",
        "api",
    ));
    // No annotation of its own: its path becomes a regex because the host is in regex mode.
    fx.ingress(&Ingress::new("static").path(Some("r.test"), "Prefix", "/static", "static"));
    let sluice = fx.start(&[]);

    let resp = sluice.get("r.test", "/api/users/7?x=1");
    assert_eq!(resp.status, 200, "{resp:?}");
    let e = resp.echo();
    assert_eq!((e.service(), e.str("path")), ("api", "/users/7?x=1"), "captures fill $2, the query is kept");
    assert_eq!(sluice.get("r.test", "/API").echo().str("path"), "/", "case-insensitive; empty $2 is /");
    let e = sluice.get("r.test", "/staticfiles/a.css").echo();
    assert_eq!((e.service(), e.str("path")), ("static", "/staticfiles/a.css"), "regex prefix, path unchanged");
    assert_eq!(sluice.get("r.test", "/apiary").status, 404, "^/api(/|$) does not match /apiary");
    assert_eq!(sluice.get("r.test", "/other").status, 404);

    let out = run_sluice_command(&["check", "--manifests", fx.manifests().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("honoured  {P}/use-regex")), "{stdout}");
    assert!(stdout.contains(&format!("honoured  {P}/rewrite-target")), "{stdout}");
}

#[test]
fn invalid_regex_rejects_only_that_ingress() {
    let mut fx = Fixture::new("ann-badregex");
    fx.backend("echo");
    fx.ingress(&Ingress::new("bad").annotation(&a("use-regex"), "true").path(
        Some("bad.test"),
        "ImplementationSpecific",
        "/a(",
        "echo",
    ));
    fx.ingress(&Ingress::new("good").path(Some("good.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);
    assert_eq!(sluice.get("bad.test", "/a(").status, 404);
    assert_eq!(sluice.get("good.test", "/").status, 200);
    let out = run_sluice_command(&["check", "--manifests", fx.manifests().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("Ingress default/bad: spec.rules[0].http.paths[0].path")
            && stdout.contains("not a usable regex"),
        "{stdout}"
    );
}

#[test]
fn redirects_answer_with_their_codes_and_locations() {
    let mut fx = Fixture::new("ann-redirect");
    fx.backend("echo");
    let cert = test_cert(&["secure.test"]);
    fx.tls_secret("secure-tls", &cert);
    fx.ingress(
        &Ingress::new("moved")
            .annotation(&a("permanent-redirect"), "https://new.test$request_uri")
            .annotation(&a("permanent-redirect-code"), "308")
            .path(Some("moved.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(&Ingress::new("temp").annotation(&a("temporal-redirect"), "https://elsewhere.test/").path(
        Some("temp.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("approot").annotation(&a("app-root"), "/app").path(
        Some("root.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("secure").tls(&["secure.test"], "secure-tls").path(
        Some("secure.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(
        &Ingress::new("optout").annotation(&a("ssl-redirect"), "false").tls(&["optout.test"], "secure-tls").path(
            Some("optout.test"),
            "Prefix",
            "/",
            "echo",
        ),
    );
    fx.ingress(
        &Ingress::new("forced")
            .annotation(&a("force-ssl-redirect"), "true")
            .annotation(&a("preserve-trailing-slash"), "true")
            .path(Some("forced.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(&Ingress::new("www").annotation(&a("from-to-www-redirect"), "true").path(
        Some("www.w.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let sluice = fx.start(&[]);
    let port = sluice.https.port();

    let resp = sluice.get("moved.test", "/a/b?c=1");
    assert_eq!((resp.status, resp.header("location")), (308, Some("https://new.test/a/b?c=1")), "{resp:?}");
    let resp = sluice.get("temp.test", "/x");
    assert_eq!((resp.status, resp.header("location")), (302, Some("https://elsewhere.test/")));
    let resp = sluice.get("root.test", "/");
    assert_eq!((resp.status, resp.header("location")), (302, Some("http://root.test/app")));
    assert_eq!(sluice.get("root.test", "/app").status, 200, "only / is redirected");

    // ssl-redirect is on for hosts with TLS: 308, one trailing slash dropped.
    let resp = sluice.get("secure.test", "/dir/?q=1");
    let location = format!("https://secure.test:{port}/dir/?q=1");
    assert_eq!((resp.status, resp.header("location")), (308, Some(location.as_str())), "{resp:?}");
    let resp = sluice.get("secure.test", "/dir/");
    let location = format!("https://secure.test:{port}/dir");
    assert_eq!(resp.header("location"), Some(location.as_str()));
    let opts = TlsOptions { trust: Some(&cert.der), ..TlsOptions::default() };
    let (resp, _) =
        https_exchange(sluice.https, "secure.test", opts, &http_request("GET", "secure.test", "/", &[], b"")).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains"),
        "HSTS over https"
    );
    assert_eq!(sluice.get("optout.test", "/").status, 200, "ssl-redirect: false");
    assert_eq!(sluice.get("optout.test", "/").header("strict-transport-security"), None, "no HSTS over http");

    let resp = sluice.get("forced.test", "/keep/");
    let location = format!("https://forced.test:{port}/keep/");
    assert_eq!(
        (resp.status, resp.header("location")),
        (308, Some(location.as_str())),
        "force + preserve-trailing-slash"
    );

    let resp = sluice.get("w.test", "/p?q");
    assert_eq!((resp.status, resp.header("location")), (308, Some("http://www.w.test/p?q")));
    assert_eq!(sluice.get("www.w.test", "/p").status, 200);
}

#[test]
fn upstream_headers_aliases_and_snippets() {
    let mut fx = Fixture::new("ann-headers");
    fx.backend("echo");
    let snippet = "more_set_headers \\\"X-Frame-Options: DENY\\\";\\nproxy_set_header X-User $http_x_name;\\nmore_clear_headers X-Drop;";
    fx.ingress(
        &Ingress::new("headers")
            .annotation(&a("upstream-vhost"), "internal.svc")
            .annotation(&a("x-forwarded-prefix"), "/shop")
            .annotation(&a("rewrite-target"), "/$1")
            .annotation(&a("server-alias"), "alias.test, *.alias2.test")
            .annotation(&a("configuration-snippet"), snippet)
            .path(Some("h.test"), "ImplementationSpecific", "/shop/(.*)", "echo"),
    );
    let sluice = fx.start(&[]);
    let resp = sluice.send(&http_request("GET", "h.test", "/shop/cart?drop=1", &[("X-Name", "ann")], b""));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    let e = resp.echo();
    assert_eq!(e.str("host"), "internal.svc", "upstream-vhost");
    assert_eq!(e.header("x-forwarded-host"), Some("h.test"), "the client's host stays in X-Forwarded-Host");
    assert_eq!(e.header("x-forwarded-prefix"), Some("/shop"), "sent with a rewrite");
    assert_eq!(e.str("path"), "/cart?drop=1");
    assert_eq!(e.header("x-user"), Some("ann"), "proxy_set_header with a variable");
    assert_eq!(sluice.get("alias.test", "/shop/x").status, 200, "server-alias");
    assert_eq!(sluice.get("x.alias2.test", "/shop/x").status, 200, "wildcard alias");
    assert_eq!(sluice.get("nope.test", "/shop/x").status, 404);
}

/// A backend that counts the connections it gets and answers none.
fn counting_backend() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            seen.fetch_add(1, Ordering::SeqCst);
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.read(&mut buf);
        }
    });
    (addr, count)
}

#[test]
fn proxy_body_size_answers_413_with_nothing_forwarded() {
    let fx = Fixture::new("ann-body");
    let (addr, connections) = counting_backend();
    fx.write_service("sink", None, None, addr.port(), &[addr.ip().to_string()], true);
    fx.ingress(&Ingress::new("small").annotation(&a("proxy-body-size"), "1k").path(
        Some("small.test"),
        "Prefix",
        "/",
        "sink",
    ));
    let sluice = fx.start(&[]);
    let body = vec![b'x'; 2048];
    let resp = sluice.send(&http_request("POST", "small.test", "/upload", &[], &body));
    assert_eq!(resp.status, 413, "{resp:?}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(connections.load(Ordering::SeqCst), 0, "413 before any byte reached the backend");
    // A streamed body is cut where it passes the limit: the backend connection is aborted.
    let chunked = format!("{:x}\r\n{}\r\n0\r\n\r\n", body.len(), String::from_utf8_lossy(&body));
    let mut raw = http_request("POST", "small.test", "/upload", &[("Transfer-Encoding", "chunked")], b"");
    raw.extend_from_slice(chunked.as_bytes());
    let resp = sluice.send(&raw);
    assert_eq!(resp.status, 413, "a chunked body over the limit: {resp:?}");
}

#[test]
fn proxy_body_size_default_is_1m_and_zero_is_unlimited() {
    let mut fx = Fixture::new("ann-body-default");
    fx.backend("echo");
    fx.ingress(&Ingress::new("default").path(Some("d.test"), "Prefix", "/", "echo"));
    fx.ingress(&Ingress::new("open").annotation(&a("proxy-body-size"), "0").path(
        Some("o.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let sluice = fx.start(&[]);
    let body = vec![b'y'; (1 << 20) + 1];
    assert_eq!(sluice.send(&http_request("POST", "d.test", "/", &[], &body)).status, 413);
    let resp = sluice.send(&http_request("POST", "o.test", "/", &[], &body));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.echo().body_bytes(), body.len() as u64);
}

#[test]
fn proxy_read_timeout_is_per_ingress() {
    let mut fx = Fixture::new("ann-timeout");
    fx.backend("echo");
    fx.ingress(&Ingress::new("quick").annotation(&a("proxy-read-timeout"), "1").path(
        Some("q.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("patient").path(Some("p.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);
    let started = Instant::now();
    assert_eq!(sluice.get("q.test", "/?sleep_ms=3000").status, 504);
    assert!(started.elapsed() < Duration::from_millis(2500), "{:?}", started.elapsed());
    assert_eq!(sluice.get("p.test", "/?sleep_ms=1500").status, 200);
}

#[test]
fn canary_by_header_then_cookie_then_weight() {
    let mut fx = Fixture::new("ann-canary");
    fx.backend("main");
    fx.backend("next");
    fx.ingress(&Ingress::new("main").path(Some("c.test"), "Prefix", "/", "main"));
    fx.ingress(
        &Ingress::new("canary")
            .annotation(&a("canary"), "true")
            .annotation(&a("canary-by-header"), "X-Canary")
            .annotation(&a("canary-by-cookie"), "use_next")
            .annotation(&a("canary-weight"), "0")
            .path(Some("c.test"), "Prefix", "/", "next"),
    );
    fx.ingress(&Ingress::new("main2").path(Some("v.test"), "Prefix", "/", "main"));
    fx.ingress(
        &Ingress::new("canary2")
            .annotation(&a("canary"), "true")
            .annotation(&a("canary-by-header"), "X-Region")
            .annotation(&a("canary-by-header-value"), "eu")
            .annotation(&a("canary-weight"), "50")
            .path(Some("v.test"), "Prefix", "/", "next"),
    );
    let sluice = fx.start(&[]);
    let service = |host: &str, headers: &[(&str, &str)]| {
        sluice.send(&http_request("GET", host, "/", headers, b"")).echo().service().to_owned()
    };
    assert_eq!(service("c.test", &[]), "main", "weight 0");
    assert_eq!(service("c.test", &[("X-Canary", "always")]), "next");
    assert_eq!(
        service("c.test", &[("X-Canary", "never"), ("Cookie", "use_next=always")]),
        "main",
        "the header wins over the cookie"
    );
    assert_eq!(service("c.test", &[("X-Canary", "other"), ("Cookie", "use_next=always")]), "next", "then the cookie");
    assert_eq!(service("c.test", &[("Cookie", "a=b; use_next=never")]), "main");
    assert_eq!(service("v.test", &[("X-Region", "eu")]), "next");
    let next = (0..100).filter(|_| service("v.test", &[("X-Region", "us")]) == "next").count();
    assert!((25..=75).contains(&next), "weight 50 of 100: {next} of 100 went to the canary");
}

#[test]
fn security_annotations_are_refused_and_unknown_ones_warned() {
    let mut fx = Fixture::new("ann-refused");
    fx.backend("echo");
    fx.ingress(&Ingress::new("locked").annotation(&a("auth-type"), "digest").path(
        Some("l.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("ranged").annotation(&a("whitelist-source-range"), "10.0.0.0/33").path(
        Some("w.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("odd").annotation(&a("enable-http3"), "true").path(Some("o.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);
    assert_eq!(sluice.get("l.test", "/").status, 404, "never served without its (digest) auth");
    assert_eq!(sluice.get("w.test", "/").status, 404, "never served without its (unreadable) address list");
    assert_eq!(sluice.get("o.test", "/").status, 200, "served without the unknown annotation");
    let out = run_sluice_command(&["check", "--manifests", fx.manifests().to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("refused   {P}/auth-type")), "{stdout}");
    assert!(stdout.contains(&format!("Ingress default/locked: metadata.annotations[{P}/auth-type]")), "{stdout}");
    assert!(
        stdout.contains(&format!("warning: Ingress default/odd: metadata.annotations[{P}/enable-http3]")),
        "{stdout}"
    );
}

#[test]
fn ingress_nginx_class_and_prefix_are_served_unchanged() {
    let mut fx = Fixture::new("ann-class");
    fx.backend("echo");
    fx.write(
        "class.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n",
    );
    fx.ingress(&Ingress::new("legacy").class(Some("nginx")).annotation("custom.prefix/rewrite-target", "/").path(
        Some("n.test"),
        "Prefix",
        "/old",
        "echo",
    ));
    let sluice = fx.start(&[
        "--ingress-class",
        "other",
        "--controller-class",
        "k8s.io/ingress-nginx",
        "--annotations-prefix",
        "custom.prefix",
    ]);
    let resp = sluice.get("n.test", "/old/page");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.echo().str("path"), "/", "rewrite-target under the custom prefix");
}

#[test]
fn an_annotation_change_applies_live() {
    let mut fx = Fixture::new("ann-live");
    fx.backend("echo");
    let plain = Ingress::new("live").path(Some("live.test"), "Prefix", "/", "echo");
    fx.ingress(&plain);
    let sluice = fx.start(&[]);
    assert_eq!(sluice.get("live.test", "/x").status, 200);
    fx.ingress(&plain.clone().annotation(&a("permanent-redirect"), "https://moved.test/"));
    assert!(
        wait_until(Duration::from_secs(5), || sluice.get("live.test", "/x").status == 301),
        "the redirect applies without a restart"
    );
    fx.ingress(&plain);
    assert!(wait_until(Duration::from_secs(5), || sluice.get("live.test", "/x").status == 200));
}
