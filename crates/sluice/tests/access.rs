//! Address lists and CORS, end to end: `allowlist-source-range` / `denylist-source-range`
//! decide on the real client address (here several 127.x sources, and a trusted
//! `X-Forwarded-For` when the ConfigMap says so) over HTTP/1.1, HTTP/2 and WebSocket
//! upgrades, counted per Ingress; an unreadable list or an unenforceable WAF rejects only its
//! Ingress; CORS preflights are answered by Sluice. Real `sluice run`, echo backends, curl.

mod common;

use common::*;

/// `curl` from the source address `source` to Sluice's plain listener with `Host: host`;
/// the status and the headers and body as curl printed them.
fn from(source: &str, sluice: &Sluice, host: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let url = format!("http://{}{path}", sluice.http);
    let host_header = format!("Host: {host}");
    let mut args = vec!["--interface", source, "-H", &host_header];
    args.extend_from_slice(extra);
    args.push(&url);
    let answer = curl_answer(&args);
    assert_ne!(answer.0, 0, "no answer from curl");
    answer
}

fn denied(metrics: &str, ingress: &str, reason: &str) -> f64 {
    let name = format!("sluice_http_requests_denied_total{{ingress=\"{ingress}\",reason=\"{reason}\"}}");
    metric_value(metrics, &name).unwrap_or(0.0)
}

#[test]
fn address_lists_refuse_other_clients_on_every_path() {
    let mut fx = Fixture::new("access-lists");
    fx.backend("echo");
    fx.ingress(
        &Ingress::new("internal")
            .annotation("nginx.ingress.kubernetes.io/allowlist-source-range", "127.0.0.2/32, 127.0.0.8/29")
            .annotation("nginx.ingress.kubernetes.io/denylist-source-range", "127.0.0.9")
            .path(Some("i.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(&Ingress::new("open").path(Some("o.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);

    let (status, body) = from("127.0.0.2", &sluice, "i.test", "/", &[]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"service\""), "reached the backend: {body}");
    assert_eq!(from("127.0.0.10", &sluice, "i.test", "/", &[]).0, 200, "in 127.0.0.8/29");
    for (source, extra) in [
        ("127.0.0.1", &[][..]),
        ("127.0.0.3", &[][..]),
        ("127.0.0.9", &[][..]),
        ("127.0.0.3", &["--http2-prior-knowledge"][..]),
        ("127.0.0.3", &["-X", "POST", "--data", "x"][..]),
        (
            "127.0.0.3",
            &["-H", "Upgrade: websocket", "-H", "Connection: Upgrade", "-H", "Sec-WebSocket-Version: 13"][..],
        ),
    ] {
        let (status, body) = from(source, &sluice, "i.test", "/", extra);
        assert_eq!(status, 403, "{source} {extra:?}: {body}");
        assert!(!body.contains("\"service\""), "nothing reached the backend: {body}");
    }
    assert_eq!(from("127.0.0.3", &sluice, "o.test", "/", &[]).0, 200, "other Ingresses are open");
    assert_eq!(denied(&sluice.metrics(), "default/internal", "address"), 6.0);
}

#[test]
fn the_real_client_address_is_what_the_configmap_trusts() {
    let mut fx = Fixture::new("access-real-ip");
    fx.backend("echo");
    fx.write(
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: controller, namespace: ingress}\n\
         data: {use-forwarded-headers: \"true\", proxy-real-ip-cidr: \"127.0.0.1\"}\n",
    );
    fx.ingress(
        &Ingress::new("internal")
            .annotation("nginx.ingress.kubernetes.io/whitelist-source-range", "203.0.113.0/24")
            .path(Some("i.test"), "Prefix", "/", "echo"),
    );
    let sluice = fx.start(&["--configmap", "ingress/controller"]);
    let forwarded = |source, value: &str| {
        let header = format!("X-Forwarded-For: {value}");
        from(source, &sluice, "i.test", "/", &["-H", &header]).0
    };
    assert_eq!(forwarded("127.0.0.1", "203.0.113.9"), 200, "a trusted peer vouches for the client");
    assert_eq!(forwarded("127.0.0.1", "198.51.100.1"), 403);
    assert_eq!(forwarded("127.0.0.2", "203.0.113.9"), 403, "an untrusted peer's header is not believed");
}

#[test]
fn unreadable_lists_and_unenforced_wafs_reject_only_their_ingress() {
    let mut fx = Fixture::new("access-rejected");
    fx.backend("echo");
    fx.ingress(
        &Ingress::new("typo").annotation("nginx.ingress.kubernetes.io/whitelist-source-range", "10.0.0.0/33").path(
            Some("typo.test"),
            "Prefix",
            "/",
            "echo",
        ),
    );
    fx.ingress(&Ingress::new("waf").annotation("nginx.ingress.kubernetes.io/enable-modsecurity", "true").path(
        Some("waf.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("fine").path(Some("fine.test"), "Prefix", "/", "echo"));
    let manifests = fx.manifests();
    let out = run_sluice_command(&["check", "--manifests", manifests.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(report.contains("whitelist-source-range") && report.contains("10.0.0.0/33"), "{report}");
    assert!(report.contains("enable-modsecurity") && report.contains("--allow-unenforced-waf"), "{report}");

    let sluice = fx.start(&[]);
    assert_eq!(sluice.get("typo.test", "/").status, 404, "never served without its list");
    assert_eq!(sluice.get("waf.test", "/").status, 404, "never served without its WAF");
    assert_eq!(sluice.get("fine.test", "/").status, 200);
    drop(sluice);
    let sluice = fx.start(&["--allow-unenforced-waf"]);
    assert_eq!(sluice.get("waf.test", "/").status, 200, "served, with a warning, when allowed");
    assert_eq!(sluice.get("typo.test", "/").status, 404);
}

#[test]
fn cors_preflights_are_answered_and_answers_carry_the_headers() {
    let mut fx = Fixture::new("access-cors");
    fx.backend("echo");
    fx.ingress(
        &Ingress::new("api")
            .annotation("nginx.ingress.kubernetes.io/enable-cors", "true")
            .annotation("nginx.ingress.kubernetes.io/cors-allow-origin", "https://app.test, https://*.apps.test")
            .annotation("nginx.ingress.kubernetes.io/cors-expose-headers", "X-Total")
            .annotation("nginx.ingress.kubernetes.io/cors-max-age", "600")
            .path(Some("api.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(&Ingress::new("public").annotation("nginx.ingress.kubernetes.io/enable-cors", "true").path(
        Some("pub.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let sluice = fx.start(&[]);
    let preflight = ["-X", "OPTIONS", "-H", "Access-Control-Request-Method: PUT"];

    let with = |origin: &str, extra: &[&str]| {
        let origin = format!("Origin: {origin}");
        let mut args = vec!["-H", origin.as_str()];
        args.extend_from_slice(extra);
        from("127.0.0.1", &sluice, "api.test", "/x", &args)
    };
    let (status, answer) = with("https://a-1.apps.test", &preflight);
    assert_eq!(status, 204, "{answer}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("access-control-allow-origin: https://a-1.apps.test"), "{answer}");
    assert!(lower.contains("access-control-allow-methods: get, put, post, delete, patch, options"), "{answer}");
    assert!(lower.contains("access-control-allow-credentials: true"), "{answer}");
    assert!(lower.contains("access-control-max-age: 600"), "{answer}");
    assert!(!lower.contains("\"service\""), "the preflight never reached the backend: {answer}");

    let (status, answer) = with("https://evil.test", &preflight);
    assert_eq!(status, 200, "an origin not allowed is forwarded as any OPTIONS: {answer}");
    assert!(!answer.to_ascii_lowercase().contains("access-control-allow-"), "{answer}");

    let (status, answer) = with("https://app.test", &[]);
    assert_eq!(status, 200);
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("access-control-allow-origin: https://app.test"), "{answer}");
    assert!(lower.contains("access-control-expose-headers: x-total"), "{answer}");

    let (_, answer) = from("127.0.0.1", &sluice, "pub.test", "/", &[]);
    assert!(answer.to_ascii_lowercase().contains("access-control-allow-origin: *"), "{answer}");
}

#[test]
fn rate_limits_hold_per_client_with_exemptions_and_the_configmap_s_code() {
    let mut fx = Fixture::new("access-limits");
    fx.backend("echo");
    fx.write(
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: controller, namespace: ingress}\n\
         data: {limit-req-status-code: \"429\"}\n",
    );
    fx.ingress(
        &Ingress::new("login")
            .annotation("nginx.ingress.kubernetes.io/limit-rpm", "3")
            .annotation("nginx.ingress.kubernetes.io/limit-burst-multiplier", "1")
            .annotation("nginx.ingress.kubernetes.io/limit-allowlist", "127.0.0.5")
            .path(Some("login.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(&Ingress::new("slow").annotation("nginx.ingress.kubernetes.io/limit-connections", "1").path(
        Some("slow.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let sluice = fx.start(&["--configmap", "ingress/controller"]);
    // 3 per minute with a burst of 3: four at once, then refused for ~20 s.
    let statuses: Vec<u16> = (0..6).map(|_| from("127.0.0.2", &sluice, "login.test", "/", &[]).0).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    let http2 = from("127.0.0.2", &sluice, "login.test", "/", &["--http2-prior-knowledge"]).0;
    assert_eq!(http2, 429, "HTTP/2 counts against the same client");
    assert_eq!(from("127.0.0.3", &sluice, "login.test", "/", &[]).0, 200, "another client has its own");
    let exempt: Vec<u16> = (0..8).map(|_| from("127.0.0.5", &sluice, "login.test", "/", &[]).0).collect();
    assert!(exempt.iter().all(|s| *s == 200), "limit-allowlist is never limited: {exempt:?}");
    assert_eq!(denied(&sluice.metrics(), "default/login", "rate_limit"), 3.0);

    // One request in progress per client: a second one at the same time gets 503.
    let url = format!("http://{}/?sleep_ms=1500", sluice.http);
    let held = std::thread::spawn(move || {
        curl(&["--interface", "127.0.0.2", "-H", "Host: slow.test", "-o", "/dev/null", "-w", "%{http_code}", &url])
    });
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(from("127.0.0.2", &sluice, "slow.test", "/", &[]).0, 503, "over limit-connections");
    assert_eq!(from("127.0.0.3", &sluice, "slow.test", "/", &[]).0, 200, "another client");
    assert_eq!(held.join().unwrap().1, "200");
    assert_eq!(from("127.0.0.2", &sluice, "slow.test", "/", &[]).0, 200, "the slot was released");
    assert_eq!(denied(&sluice.metrics(), "default/slow", "connection_limit"), 1.0);
}

#[test]
fn the_configmap_s_lists_apply_where_an_ingress_has_none_and_block_cidrs_everywhere() {
    let mut fx = Fixture::new("access-global");
    fx.backend("echo");
    fx.write(
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: controller, namespace: ingress}\n\
         data: {whitelist-source-range: \"127.0.0.2\", block-cidrs: \"127.0.0.9\", \
         block-user-agents: \"BadBot, ~*crawler\", block-referers: \"~spam\\\\.test\"}\n",
    );
    fx.ingress(&Ingress::new("plain").path(Some("plain.test"), "Prefix", "/", "echo"));
    fx.ingress(
        &Ingress::new("own")
            .annotation("nginx.ingress.kubernetes.io/whitelist-source-range", "127.0.0.3, 127.0.0.9")
            .path(Some("own.test"), "Prefix", "/", "echo"),
    );
    let sluice = fx.start(&["--configmap", "ingress/controller"]);
    assert_eq!(from("127.0.0.2", &sluice, "plain.test", "/", &[]).0, 200);
    assert_eq!(from("127.0.0.3", &sluice, "plain.test", "/", &[]).0, 403, "the ConfigMap's list");
    assert_eq!(from("127.0.0.3", &sluice, "own.test", "/", &[]).0, 200, "the Ingress's own list replaces it");
    assert_eq!(from("127.0.0.2", &sluice, "own.test", "/", &[]).0, 403);
    assert_eq!(from("127.0.0.9", &sluice, "own.test", "/", &[]).0, 403, "block-cidrs applies everywhere");
    assert_eq!(from("127.0.0.2", &sluice, "plain.test", "/", &["-A", "badbot"]).0, 403, "block-user-agents");
    assert_eq!(from("127.0.0.3", &sluice, "own.test", "/", &["-A", "Big Crawler"]).0, 403);
    assert_eq!(from("127.0.0.3", &sluice, "own.test", "/", &["-e", "http://spam.test/"]).0, 403, "block-referers");
    assert_eq!(from("127.0.0.3", &sluice, "own.test", "/", &["-A", "BadBot/2"]).0, 200, "exact values only");
}

#[test]
fn a_configmap_waf_closes_every_route_unless_allowed() {
    let mut fx = Fixture::new("access-global-waf");
    fx.backend("echo");
    fx.write(
        "configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: controller, namespace: ingress}\n\
         data: {enable-modsecurity: \"true\"}\n",
    );
    fx.ingress(&Ingress::new("plain").path(Some("plain.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&["--configmap", "ingress/controller"]);
    assert_eq!(sluice.get("plain.test", "/").status, 503, "never served without the WAF it asks for");
    drop(sluice);
    let sluice = fx.start(&["--configmap", "ingress/controller", "--allow-unenforced-waf"]);
    assert_eq!(sluice.get("plain.test", "/").status, 200, "served, with a warning, when allowed");
}
