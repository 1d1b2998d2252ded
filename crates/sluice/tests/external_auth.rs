//! External authentication (`auth-url`) end to end, with an auth service in the test that
//! records every sub-request and answers by the client's `Authorization`: only a 2xx lets a
//! request reach the backend (its `auth-response-headers` replacing whatever the client
//! sent), 401 becomes a redirect to `auth-signin` or a 401, 403 stays 403, an erroring or
//! unreachable service gives 500; the sub-request carries the client's headers and
//! ingress-nginx's `X-Original-*`, never the body; `auth-cache-key` saves calls. Over
//! HTTP/1.1, HTTP/2 and WebSocket upgrades. Real `sluice run`, echo backends, curl.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use common::*;

/// An auth service: records each request head, answers by its `Authorization`.
struct AuthService {
    addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl AuthService {
    fn start() -> AuthService {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = heads.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || serve(conn, &seen));
            }
        });
        AuthService { addr, heads }
    }

    fn calls(&self) -> usize {
        self.heads.lock().unwrap().len()
    }

    fn last(&self) -> String {
        self.heads.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

fn serve(mut conn: std::net::TcpStream, seen: &Mutex<Vec<String>>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buffer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        buffer.drain(..end);
        seen.lock().unwrap().push(head.clone());
        let answer: &[u8] = if head.contains("authorization: bearer good") {
            b"HTTP/1.1 200 OK\r\nx-auth-request-user: alice\r\nset-cookie: session=abc\r\ncontent-length: 0\r\n\r\n"
        } else if head.contains("authorization: bearer forbidden") {
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"
        } else if head.contains("authorization: bearer broken") {
            b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"
        } else {
            b"HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer realm=\"test\"\r\nset-cookie: tried=1\r\ncontent-length: 4\r\n\r\nnope"
        };
        if conn.write_all(answer).is_err() {
            return;
        }
    }
}

/// curl to the plain listener with `Host: host`: the status and what curl printed (`-i`).
fn get(sluice: &Sluice, host: &str, path: &str, extra: &[&str]) -> (u16, String) {
    let url = format!("http://{}{path}", sluice.http);
    let host_header = format!("Host: {host}");
    let mut args = vec!["-H", host_header.as_str()];
    args.extend_from_slice(extra);
    args.push(&url);
    curl_answer(&args)
}

const A: &str = "nginx.ingress.kubernetes.io";

#[test]
fn only_what_the_auth_service_allows_reaches_the_backend() {
    let auth = AuthService::start();
    let mut fx = Fixture::new("external-auth");
    fx.backend("echo");
    let url = format!("http://{}/check", auth.addr);
    let closed = free_addr("127.0.0.1");
    fx.ingress(
        &Ingress::new("app")
            .annotation(&format!("{A}/auth-url"), &url)
            .annotation(&format!("{A}/auth-response-headers"), "X-Auth-Request-User")
            .annotation(&format!("{A}/auth-proxy-set-headers"), "auth-headers")
            .path(Some("app.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(
        &Ingress::new("signin")
            .annotation(&format!("{A}/auth-url"), &url)
            .annotation(&format!("{A}/auth-signin"), "https://login.test/oauth2/start")
            .path(Some("signin.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(
        &Ingress::new("cached")
            .annotation(&format!("{A}/auth-url"), &url)
            .annotation(&format!("{A}/auth-cache-key"), "$http_authorization")
            .annotation(&format!("{A}/auth-cache-duration"), "200 1m")
            .path(Some("cached.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(
        &Ingress::new("always")
            .annotation(&format!("{A}/auth-url"), &url)
            .annotation(&format!("{A}/auth-always-set-cookie"), "true")
            .path(Some("always.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(&Ingress::new("down").annotation(&format!("{A}/auth-url"), &format!("http://{closed}/check")).path(
        Some("down.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.write(
        "auth-headers.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: auth-headers, namespace: default}\ndata: {X-Tenant: \"t-$host\"}\n",
    );
    let sluice = fx.start(&[]);
    let good = ["-H", "Authorization: Bearer good"];

    // Refused in every way the service says no, over every path, and nothing forwarded.
    for (what, host, extra, status) in [
        ("no token", "app.test", &[][..], 401),
        ("a spoofed user header", "app.test", &["-H", "X-Auth-Request-User: alice"][..], 401),
        ("HTTP/2", "app.test", &["--http2-prior-knowledge"][..], 401),
        ("a WebSocket upgrade", "app.test", &["-H", "Upgrade: websocket", "-H", "Connection: Upgrade"][..], 401),
        ("a forbidden token", "app.test", &["-H", "Authorization: Bearer forbidden"][..], 403),
        ("an auth service error", "app.test", &["-H", "Authorization: Bearer broken"][..], 500),
        ("an unreachable auth service", "down.test", &good[..], 500),
    ] {
        let (answer_status, answer) = get(&sluice, host, "/", extra);
        assert_eq!(answer_status, status, "{what}: {answer}");
        assert!(!answer.contains("\"service\""), "{what} reached the backend: {answer}");
    }
    let (_, answer) = get(&sluice, "app.test", "/", &[]);
    assert!(answer.to_ascii_lowercase().contains("www-authenticate: bearer realm=\"test\""), "{answer}");
    assert!(!answer.to_ascii_lowercase().contains("set-cookie"), "no auth cookie on a refusal by default: {answer}");
    let (status, answer) = get(&sluice, "always.test", "/", &[]);
    assert_eq!(status, 401, "{answer}");
    assert!(answer.to_ascii_lowercase().contains("set-cookie: tried=1"), "auth-always-set-cookie: {answer}");

    // Allowed: the service's user header replaces the client's, its cookie reaches the client.
    let (status, answer) = get(
        &sluice,
        "app.test",
        "/x?y=1",
        &["-H", "Authorization: Bearer good", "-H", "X-Auth-Request-User: mallory", "-H", "X-Custom: 7"],
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer_header(&answer, "x-auth-request-user").as_deref(), Some("alice"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("set-cookie: session=abc"), "{answer}");
    let sub = auth.last();
    for expected in [
        "get /check http/1.1",
        "x-original-url: http://app.test/x?y=1",
        "x-original-method: get",
        "x-original-uri: /x?y=1",
        "x-auth-request-redirect: /x?y=1",
        "x-sent-from: nginx-ingress-controller",
        "x-forwarded-for: 127.0.0.1",
        "x-custom: 7",
        "x-tenant: t-app.test",
        "authorization: bearer good",
    ] {
        assert!(sub.contains(expected), "the sub-request lacks {expected:?}: {sub}");
    }
    let (status, _) = get(&sluice, "app.test", "/", &["-H", "Authorization: Bearer good", "--data", "a body"]);
    assert_eq!(status, 200);
    let sub = auth.last();
    assert!(sub.starts_with("get /check"), "the method is auth-method's (GET): {sub}");
    assert!(!sub.contains("content-length: 6"), "no body, no length: {sub}");

    // 401 with auth-signin: a redirect carrying where the client was going.
    let (status, answer) = get(&sluice, "signin.test", "/page?c=1", &[]);
    assert_eq!(status, 302, "{answer}");
    assert!(
        answer.contains("location: https://login.test/oauth2/start?rd=http://signin.test%2Fpage%3Fc%3D1"),
        "{answer}"
    );

    // auth-cache-key: the second identical request is answered from memory.
    let before = auth.calls();
    assert_eq!(get(&sluice, "cached.test", "/", &good).0, 200);
    assert_eq!(get(&sluice, "cached.test", "/", &good).0, 200);
    assert_eq!(auth.calls(), before + 1, "one call for two requests");
    assert_eq!(get(&sluice, "cached.test", "/", &[]).0, 401, "401 is not in the cached statuses");
    assert_eq!(auth.calls(), before + 2);

    let denied =
        metric_value(&sluice.metrics(), "sluice_http_requests_denied_total{ingress=\"default/app\",reason=\"auth\"}");
    assert!(denied >= Some(7.0), "{denied:?}");
}

#[test]
fn auth_snippets_and_unreadable_settings_reject_the_ingress() {
    let mut fx = Fixture::new("external-auth-refused");
    fx.backend("echo");
    fx.ingress(
        &Ingress::new("snippet")
            .annotation(&format!("{A}/auth-url"), "http://127.0.0.1:1/check")
            .annotation(&format!("{A}/auth-snippet"), "proxy_set_header X-A b;")
            .path(Some("snippet.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(
        &Ingress::new("method")
            .annotation(&format!("{A}/auth-url"), "http://127.0.0.1:1/check")
            .annotation(&format!("{A}/auth-method"), "BREW")
            .path(Some("method.test"), "Prefix", "/", "echo"),
    );
    fx.ingress(
        &Ingress::new("headers")
            .annotation(&format!("{A}/auth-url"), "http://127.0.0.1:1/check")
            .annotation(&format!("{A}/auth-proxy-set-headers"), "no-such-configmap")
            .path(Some("headers.test"), "Prefix", "/", "echo"),
    );
    let sluice = fx.start(&[]);
    assert_eq!(sluice.get("snippet.test", "/").status, 404, "auth-snippet is refused");
    assert_eq!(sluice.get("method.test", "/").status, 404, "an unreadable auth-method is refused");
    assert_eq!(sluice.get("headers.test", "/").status, 503, "a missing header ConfigMap keeps it closed");
}

#[test]
fn the_configmap_s_global_auth_protects_every_ingress_that_does_not_opt_out() {
    let auth = AuthService::start();
    let mut fx = Fixture::new("global-auth");
    fx.backend("echo");
    let url = format!("http://{}/global", auth.addr);
    fx.write(
        "configmap.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: controller, namespace: ingress}}\n\
             data: {{global-auth-url: \"{url}\", global-auth-response-headers: X-Auth-Request-User}}\n"
        ),
    );
    fx.ingress(&Ingress::new("plain").path(Some("plain.test"), "Prefix", "/", "echo"));
    fx.ingress(&Ingress::new("acme").path(Some("acme.test"), "Prefix", "/.well-known/acme-challenge", "echo").path(
        Some("acme.test"),
        "Prefix",
        "/",
        "echo",
    ));
    fx.ingress(&Ingress::new("optout").annotation(&format!("{A}/enable-global-auth"), "false").path(
        Some("optout.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let sluice = fx.start(&["--configmap", "ingress/controller"]);
    let good = ["-H", "Authorization: Bearer good"];
    assert_eq!(get(&sluice, "plain.test", "/", &[]).0, 401, "every Ingress is protected");
    let (status, answer) = get(&sluice, "plain.test", "/", &good);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer_header(&answer, "x-auth-request-user").as_deref(), Some("alice"), "{answer}");
    assert!(auth.last().starts_with("get /global"), "{}", auth.last());
    assert_eq!(get(&sluice, "acme.test", "/", &[]).0, 401);
    assert_eq!(get(&sluice, "acme.test", "/.well-known/acme-challenge/token", &[]).0, 200, "no-auth-locations");
    assert_eq!(get(&sluice, "optout.test", "/", &[]).0, 200, "enable-global-auth: false");
}
