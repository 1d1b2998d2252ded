//! Balancing annotations end to end: `upstream-hash-by`, `affinity: cookie` (balanced and
//! persistent, with the cookie attributes ingress-nginx's e2e tests check), and
//! `load-balance: ewma`. A Service with several endpoints is several `sluice echo`
//! processes on 127.0.0.x sharing one port; each reports its address as its pod.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::*;

const P: &str = "nginx.ingress.kubernetes.io";

fn a(name: &str) -> String {
    format!("{P}/{name}")
}

/// Service `service` with one echo per address 127.0.0.1 … 127.0.0.`n`, all on one port.
fn pods(fx: &mut Fixture, service: &str, n: u8) -> Vec<String> {
    let port = free_port();
    let addresses: Vec<String> = (1..=n).map(|i| format!("127.0.0.{i}")).collect();
    for address in &addresses {
        fx.spawn_echo(format!("{address}:{port}").parse().unwrap(), service);
    }
    fx.write_service(service, None, None, port, &addresses, true);
    addresses.iter().map(|a| format!("{a}:{port}")).collect()
}

fn pod_of(resp: &HttpResponse) -> String {
    resp.echo().str("pod").to_owned()
}

#[test]
fn upstream_hash_by_keeps_each_key_on_one_endpoint_and_spreads_keys() {
    let mut fx = Fixture::new("lb-hash");
    pods(&mut fx, "web", 3);
    fx.ingress(&Ingress::new("hash").annotation(&a("upstream-hash-by"), "$request_uri").path(
        Some("hash.test"),
        "Prefix",
        "/",
        "web",
    ));
    let sluice = fx.start(&[]);
    let mut used = BTreeSet::new();
    for key in 0..30 {
        let uri = format!("/item/{key}?v=1");
        let first = pod_of(&sluice.get("hash.test", &uri));
        for _ in 0..3 {
            assert_eq!(pod_of(&sluice.get("hash.test", &uri)), first, "{uri} stays on one endpoint");
        }
        used.insert(first);
    }
    assert_eq!(used.len(), 3, "30 keys spread over all 3 endpoints: {used:?}");

    // Keyed by a header: same header, same endpoint, whatever the path.
    fx.ingress(&Ingress::new("hash").annotation(&a("upstream-hash-by"), "$http_x_user").path(
        Some("hash.test"),
        "Prefix",
        "/",
        "web",
    ));
    let as_user = |path: &str| sluice.send(&http_request("GET", "hash.test", path, &[("X-User", "ann")], b""));
    assert!(wait_until(Duration::from_secs(5), || {
        let pods: BTreeSet<String> = (0..12).map(|i| pod_of(&as_user(&format!("/p{i}")))).collect();
        pods.len() == 1
    }));
}

fn set_cookie(resp: &HttpResponse) -> Option<String> {
    resp.header("set-cookie").map(str::to_owned)
}

fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[test]
fn affinity_cookie_pins_clients_with_ingress_nginx_attributes() {
    let mut fx = Fixture::new("lb-cookie");
    pods(&mut fx, "web", 3);
    let cert = test_cert(&["sticky.test"]);
    fx.tls_secret("sticky-tls", &cert);
    fx.ingress(
        &Ingress::new("sticky")
            .annotation(&a("affinity"), "cookie")
            .annotation(&a("session-cookie-name"), "route")
            .annotation(&a("session-cookie-max-age"), "172800")
            .annotation(&a("session-cookie-samesite"), "Lax")
            .annotation(&a("ssl-redirect"), "false")
            .tls(&["sticky.test"], "sticky-tls")
            .path(Some("sticky.test"), "Prefix", "/something", "web"),
    );
    fx.ingress(&Ingress::new("plain").path(Some("sticky.test"), "Prefix", "/other", "web"));
    let sluice = fx.start(&[]);

    let first = sluice.get("sticky.test", "/something/a");
    let cookie = set_cookie(&first).expect("a new client gets the cookie");
    assert!(cookie.starts_with("route="), "{cookie}");
    assert!(cookie.contains("; Path=/something") && cookie.contains("; Max-Age=172800"), "{cookie}");
    assert!(cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "not over plain HTTP: {cookie}");
    let pinned = pod_of(&first);
    for _ in 0..10 {
        let resp =
            sluice.send(&http_request("GET", "sticky.test", "/something/b", &[("Cookie", &cookie_pair(&cookie))], b""));
        assert_eq!(pod_of(&resp), pinned);
        assert_eq!(set_cookie(&resp), None, "a valid cookie is not set again");
    }
    assert_eq!(set_cookie(&sluice.get("sticky.test", "/other")), None, "no cookie for paths without affinity");
    let raw = http_request("GET", "sticky.test", "/something", &[], b"");
    let (resp, _) = https_exchange(sluice.https, "sticky.test", TlsOptions::default(), &raw).unwrap();
    assert!(set_cookie(&resp).unwrap().contains("; Secure"), "Secure over https");
}

#[test]
fn persistent_affinity_moves_only_when_the_endpoint_is_gone() {
    let mut fx = Fixture::new("lb-persistent");
    let all = pods(&mut fx, "web", 3);
    fx.ingress(
        &Ingress::new("sticky")
            .annotation(&a("affinity"), "cookie")
            .annotation(&a("affinity-mode"), "persistent")
            .path(Some("p.test"), "Prefix", "/", "web"),
    );
    let sluice = fx.start(&[]);
    let first = sluice.get("p.test", "/");
    let cookie = cookie_pair(&set_cookie(&first).unwrap());
    assert!(cookie.starts_with("INGRESSCOOKIE="), "the default name: {cookie}");
    let pinned = pod_of(&first);
    let with_cookie = || sluice.send(&http_request("GET", "p.test", "/", &[("Cookie", &cookie)], b""));

    // Scaling out never moves a persistent session.
    let port: u16 = pinned.rsplit(':').next().unwrap().parse().unwrap();
    fx.spawn_echo(format!("127.0.0.4:{port}").parse().unwrap(), "web");
    let mut more: Vec<String> = all.iter().map(|p| p.split(':').next().unwrap().to_owned()).collect();
    more.push("127.0.0.4".into());
    fx.write_service("web", None, None, port, &more, true);
    assert!(wait_until(Duration::from_secs(5), || {
        (0..8).map(|_| pod_of(&sluice.get("p.test", "/"))).any(|p| p.starts_with("127.0.0.4"))
    }));
    for _ in 0..10 {
        assert_eq!(pod_of(&with_cookie()), pinned);
    }

    // Its endpoint gone: another one, and a new cookie.
    let remaining: Vec<String> = more.into_iter().filter(|a| !pinned.starts_with(&format!("{a}:"))).collect();
    fx.write_service("web", None, None, port, &remaining, true);
    assert!(wait_until(Duration::from_secs(5), || pod_of(&with_cookie()) != pinned));
    let moved = with_cookie();
    let renewed = set_cookie(&moved).expect("the cookie is set again");
    assert_ne!(cookie_pair(&renewed), cookie);
}

/// A backend that answers every request after `delay`.
fn slow_backend(address: &str, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind(address).expect("bind slow backend");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut pending = Vec::new();
                loop {
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        std::thread::sleep(delay);
                        let body = br#"{"pod":"slow","service":"web"}"#;
                        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                        if conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body)).is_err() {
                            return;
                        }
                    }
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&buf[..n]),
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn ewma_sends_most_requests_to_the_faster_endpoint() {
    let mut fx = Fixture::new("lb-ewma");
    let port = free_port();
    fx.spawn_echo(format!("127.0.0.1:{port}").parse().unwrap(), "web");
    slow_backend(&format!("127.0.0.2:{port}"), Duration::from_millis(100));
    fx.write_service("web", None, None, port, &["127.0.0.1".into(), "127.0.0.2".into()], true);
    let ewma = Ingress::new("fast").annotation(&a("load-balance"), "ewma").path(Some("e.test"), "Prefix", "/", "web");
    fx.ingress(&ewma);
    let sluice = fx.start(&[]);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..40 {
        *counts.entry(pod_of(&sluice.get("e.test", "/"))).or_default() += 1;
    }
    let slow = counts.get("slow").copied().unwrap_or(0);
    assert!(slow <= 6, "ewma avoids the endpoint that answers in 100 ms: {counts:?}");

    // Round robin (the default) alternates.
    fx.ingress(&Ingress::new("fast").path(Some("e.test"), "Prefix", "/", "web"));
    assert!(wait_until(Duration::from_secs(5), || {
        (0..10).filter(|_| pod_of(&sluice.get("e.test", "/")) == "slow").count() == 5
    }));
}

#[test]
fn upstream_hash_by_subset_keeps_each_key_on_a_subset_and_spreads_keys_over_all() {
    let mut fx = Fixture::new("lb-subset");
    let all: BTreeSet<String> = pods(&mut fx, "web", 6).into_iter().collect();
    fx.ingress(
        &Ingress::new("subset")
            .annotation(&a("upstream-hash-by"), "$request_uri")
            .annotation(&a("upstream-hash-by-subset"), "true")
            .annotation(&a("upstream-hash-by-subset-size"), "3")
            .path(Some("subset.test"), "Prefix", "/", "web"),
    );
    let sluice = fx.start(&[]);
    let mut subsets = BTreeSet::new();
    for key in 0..16 {
        let uri = format!("/item/{key}");
        // As ingress-nginx's e2e test: one URI, six pods, subsets of three → three pods.
        let used: BTreeSet<String> = (0..40).map(|_| pod_of(&sluice.get("subset.test", &uri))).collect();
        assert_eq!(used.len(), 3, "{uri} is served by exactly one subset of three: {used:?}");
        subsets.insert(used);
    }
    let covered: BTreeSet<String> = subsets.iter().flatten().cloned().collect();
    assert_eq!(covered, all, "keys spread over all six pods");
    assert_eq!(subsets.len(), 2, "six pods make two disjoint subsets: {subsets:?}");

    // Without subsets, the same key stays on one pod.
    fx.ingress(&Ingress::new("subset").annotation(&a("upstream-hash-by"), "$request_uri").path(
        Some("subset.test"),
        "Prefix",
        "/",
        "web",
    ));
    assert!(wait_until(Duration::from_secs(5), || {
        (0..12).map(|_| pod_of(&sluice.get("subset.test", "/item/0"))).collect::<BTreeSet<_>>().len() == 1
    }));
}

#[test]
fn a_legacy_canary_sets_no_affinity_cookie() {
    let mut fx = Fixture::new("lb-legacy-canary");
    pods(&mut fx, "web", 2);
    pods(&mut fx, "canary", 2);
    fx.ingress(&Ingress::new("main").annotation(&a("affinity"), "cookie").path(Some("lc.test"), "Prefix", "/", "web"));
    let canary = |behaviour: &str, weight: &str| {
        Ingress::new("canary")
            .annotation(&a("canary"), "true")
            .annotation(&a("canary-by-header"), "x-canary")
            .annotation(&a("canary-weight"), weight)
            .annotation(&a("affinity-canary-behavior"), behaviour)
            .path(Some("lc.test"), "Prefix", "/", "canary")
    };
    fx.ingress(&canary("legacy", "0"));
    let sluice = fx.start(&[]);
    let to_canary = || sluice.send(&http_request("GET", "lc.test", "/", &[("X-Canary", "always")], b""));

    let resp = to_canary();
    assert_eq!(resp.echo().service(), "canary");
    assert_eq!(set_cookie(&resp), None, "legacy: the canary sets no affinity cookie");
    let main = sluice.get("lc.test", "/");
    assert_eq!(main.echo().service(), "web");
    assert!(set_cookie(&main).is_some_and(|c| c.starts_with("INGRESSCOOKIE=")), "the main route keeps its cookie");

    // By weight too: canary answers never carry the cookie, main answers always do.
    fx.ingress(&canary("legacy", "50"));
    assert!(wait_until(Duration::from_secs(5), || {
        (0..10).any(|_| sluice.get("lc.test", "/").echo().service() == "canary")
    }));
    let mut seen = BTreeMap::new();
    for _ in 0..40 {
        let resp = sluice.get("lc.test", "/");
        let service = resp.echo().service().to_owned();
        assert_eq!(set_cookie(&resp).is_some(), service == "web", "{service}: {resp:?}");
        *seen.entry(service).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "both sides of the split answered: {seen:?}");

    // sticky (the default): the canary shares the main route's cookie.
    fx.ingress(&canary("sticky", "0"));
    assert!(wait_until(Duration::from_secs(5), || set_cookie(&to_canary()).is_some()));
    assert_eq!(to_canary().echo().service(), "canary");
}

#[test]
fn conditional_same_site_none_is_left_out_for_browsers_that_mishandle_it() {
    let mut fx = Fixture::new("lb-samesite");
    pods(&mut fx, "web", 1);
    let sticky = |conditional: &str| {
        Ingress::new("sticky")
            .annotation(&a("affinity"), "cookie")
            .annotation(&a("session-cookie-samesite"), "None")
            .annotation(&a("session-cookie-conditional-samesite-none"), conditional)
            .path(Some("ss.test"), "Prefix", "/", "web")
    };
    fx.ingress(&sticky("true"));
    let sluice = fx.start(&[]);
    let chrome = |version: &str| {
        format!("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{version} Safari/537.36")
    };
    let cookie_for = |agent: &str| {
        let resp = sluice.send(&http_request("GET", "ss.test", "/", &[("User-Agent", agent)], b""));
        set_cookie(&resp).expect("a new client gets the cookie")
    };

    let old = cookie_for(&chrome("60.0.3112.113"));
    assert!(!old.contains("SameSite"), "Chrome 60 rejects SameSite=None cookies: {old}");
    let current = cookie_for(&chrome("131.0.0.0"));
    assert!(current.ends_with("; SameSite=None"), "{current}");
    let ios12 = "Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                 Version/12.0 Mobile/15E148 Safari/604.1";
    assert!(!cookie_for(ios12).contains("SameSite"));

    // Without the annotation every browser gets SameSite=None.
    fx.ingress(&sticky("false"));
    assert!(wait_until(Duration::from_secs(5), || cookie_for(&chrome("60.0.3112.113")).contains("SameSite=None")));
}
