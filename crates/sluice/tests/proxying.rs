//! What Sluice does to requests and responses on their way through, checked
//! end-to-end against `sluice echo` backends on loopback:
//! forwarded headers, hop-by-hop header removal (requests and responses), byte-exact path and query,
//! streamed 16 MiB uploads and downloads, WebSocket, the error statuses
//! (400 malformed request, 502, 503, 504), keep-alive, request metrics,
//! SIGTERM (draining in-flight requests), duplicate Host headers, and retrying
//! another endpoint when one refuses connections.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::*;

/// One echo backend `echo` behind an Ingress `main` with a host-less `Prefix /` rule that
/// takes bodies of any size (ingress-nginx's default `proxy-body-size` is 1m).
fn simple(extra_args: &[&str]) -> (Fixture, Sluice) {
    let mut fx = Fixture::new("proxy");
    fx.backend("echo");
    fx.ingress(
        &Ingress::new("main")
            .annotation("nginx.ingress.kubernetes.io/proxy-body-size", "0")
            .path(None, "Prefix", "/", "echo"),
    );
    let sluice = fx.start(extra_args);
    (fx, sluice)
}

#[test]
fn forwarded_headers_are_set_over_http() {
    let (_fx, sluice) = simple(&[]);
    let resp = sluice.get("fwd.test", "/headers");
    assert_eq!(resp.status, 200, "{resp:?}");
    let e = resp.echo();
    assert_eq!(e.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(e.header("x-forwarded-proto"), Some("http"));
    assert_eq!(e.header("x-forwarded-host"), Some("fwd.test"));
    assert_eq!(e.header("x-forwarded-port"), Some(sluice.http.port().to_string().as_str()));
    assert_eq!(e.header("x-real-ip"), Some("127.0.0.1"));
    let id = e.header("x-request-id").unwrap_or_default();
    assert!(!id.is_empty(), "x-request-id generated: {:?}", e.0);
    assert_eq!(e.str("host"), "fwd.test", "Host forwarded unchanged");
    assert_eq!(e.header("user-agent"), Some(UA));

    // A second request gets a different id; a client-supplied id is kept.
    let other = sluice.get("fwd.test", "/headers").echo();
    assert_ne!(other.header("x-request-id"), Some(id));
    let kept = sluice.send(&http_request("GET", "fwd.test", "/", &[("X-Request-Id", "my-id-123")], b"")).echo();
    assert_eq!(kept.header("x-request-id"), Some("my-id-123"));
}

#[test]
fn forwarded_proto_is_https_over_tls() {
    let mut fx = Fixture::new("proxy-tls");
    fx.backend("echo");
    let cert = test_cert(&["secure.test"]);
    fx.tls_secret("secure-tls", &cert);
    fx.ingress(&Ingress::new("secure").tls(&["secure.test"], "secure-tls").path(
        Some("secure.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let sluice = fx.start(&[]);
    let opts = TlsOptions { trust: Some(&cert.der), ..TlsOptions::default() };
    let raw = http_request("GET", "secure.test", "/", &[], b"");
    let (resp, _) = https_exchange(sluice.https, "secure.test", opts, &raw).expect("HTTPS");
    assert_eq!(resp.status, 200, "{resp:?}");
    let e = resp.echo();
    assert_eq!(e.header("x-forwarded-proto"), Some("https"));
    assert_eq!(e.header("x-forwarded-port"), Some(sluice.https.port().to_string().as_str()));
    assert_eq!(e.header("x-forwarded-host"), Some("secure.test"));
    assert_eq!(e.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(e.str("proto"), "HTTP/1.1");
}

#[test]
fn hop_by_hop_headers_are_not_forwarded() {
    let (_fx, sluice) = simple(&[]);
    let raw = http_request(
        "GET",
        "hop.test",
        "/",
        &[
            ("Connection", "keep-alive, X-Drop-Me"),
            ("X-Drop-Me", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("X-Keep-Me", "2"),
        ],
        b"",
    );
    let e = sluice.send(&raw).echo();
    for dropped in ["x-drop-me", "keep-alive", "proxy-connection"] {
        assert_eq!(e.header(dropped), None, "{dropped} reached the backend: {:?}", e.0);
    }
    let connection = e.header("connection").unwrap_or("").to_ascii_lowercase();
    assert!(!connection.contains("x-drop-me"), "Connection forwarded as {connection:?}");
    assert_eq!(e.header("x-keep-me"), Some("2"));
}

#[test]
fn method_path_and_query_are_forwarded_byte_for_byte() {
    let (_fx, sluice) = simple(&[]);
    for (method, target) in [
        ("GET", "/p?a=1&b=%20x&a=2"),
        ("GET", "/p/%7Euser/a%2Fb?x=%2F&y=a+b&&z"),
        ("DELETE", "/resource?"),
        ("OPTIONS", "/opt"),
        ("PATCH", "/UPPER/Case?Q=V"),
    ] {
        let resp = sluice.send(&http_request(method, "bytes.test", target, &[], b""));
        assert_eq!(resp.status, 200, "{method} {target}: {resp:?}");
        let e = resp.echo();
        assert_eq!(e.str("method"), method);
        assert_eq!(e.str("path"), target, "{method} {target}");
        assert_eq!(e.str("proto"), "HTTP/1.1");
    }
}

#[test]
fn streamed_16_mib_upload_reaches_the_backend() {
    let (_fx, sluice) = simple(&[]);
    const TOTAL: usize = 16 * 1024 * 1024;
    let mut stream = connect(sluice.http).expect("connect");
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: upload.test\r\nUser-Agent: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = vec![b'u'; 64 * 1024];
    let mut sent = 0;
    while sent < TOTAL {
        write!(stream, "{:x}\r\n", chunk.len()).unwrap();
        stream.write_all(&chunk).unwrap();
        stream.write_all(b"\r\n").unwrap();
        sent += chunk.len();
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let resp = read_response(&mut BufReader::new(stream), false).expect("response");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.echo().body_bytes(), TOTAL as u64);
}

#[test]
fn sized_16_mib_upload_reaches_the_backend() {
    let (_fx, sluice) = simple(&[]);
    let body = vec![b's'; 16 * 1024 * 1024];
    let resp = sluice.send(&http_request("PUT", "upload.test", "/sized", &[], &body));
    assert_eq!(resp.status, 200);
    assert_eq!(resp.echo().body_bytes(), body.len() as u64);
}

#[test]
fn sized_16_mib_download_keeps_content_length() {
    let (_fx, sluice) = simple(&[]);
    let resp = sluice.get("download.test", "/?bytes=16777216");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("content-length"), Some("16777216"));
    assert!(!resp.is_chunked(), "download was re-chunked: {:?}", resp.headers);
    assert_eq!(resp.body.len(), 16_777_216);
    assert!(resp.body.iter().all(|b| *b == b'x'));
}

#[test]
fn websocket_through_sluice() {
    let (_fx, sluice) = simple(&[]);
    websocket_echo_roundtrip(sluice.http, "ws.test", "/socket").expect("WebSocket via Sluice");
    // Plain requests still work afterwards.
    assert_eq!(sluice.get("ws.test", "/").status, 200);
}

#[test]
fn error_statuses_for_unusable_backends() {
    let mut fx = Fixture::new("errors");
    fx.backend("echo");
    // Endpoints exist but none is ready.
    let addr = free_addr("127.0.0.1");
    fx.spawn_echo(addr, "not-ready");
    fx.write_service("not-ready", None, None, addr.port(), &[addr.ip().to_string()], false);
    // The endpoint's port has nothing listening.
    let closed = free_port();
    fx.write_service("refused", None, None, closed, &["127.0.0.1".to_owned()], true);
    fx.ingress(
        &Ingress::new("errors")
            .path(Some("ok.test"), "Prefix", "/", "echo")
            .path(Some("not-ready.test"), "Prefix", "/", "not-ready")
            .path(Some("missing.test"), "Prefix", "/", "no-such-service")
            .path(Some("refused.test"), "Prefix", "/", "refused"),
    );
    let sluice = fx.start(&[]);

    for (host, want) in
        [("ok.test", 200), ("not-ready.test", 503), ("missing.test", 503), ("refused.test", 502), ("unknown.test", 404)]
    {
        let resp = sluice.get(host, "/");
        assert_eq!(resp.status, want, "Host {host}: {resp:?}");
        for name in ["server", "date"] {
            assert!(resp.header(name).is_some(), "Host {host}: no {name} header");
        }
        if want != 200 {
            assert!(resp.try_echo().is_err(), "Host {host}: an error page came from a backend");
        }
    }
}

#[test]
fn upstream_timeout_gives_504() {
    let (_fx, sluice) = simple(&["--upstream-timeout", "1s"]);
    let start = Instant::now();
    let resp = sluice.get("slow.test", "/?sleep_ms=3000");
    let elapsed = start.elapsed();
    assert_eq!(resp.status, 504, "{resp:?}");
    assert!(elapsed < Duration::from_millis(2800), "504 came after {elapsed:?}, not after ~1s");
    // A fast request on the same route is fine.
    assert_eq!(sluice.get("slow.test", "/?sleep_ms=10").status, 200);
}

#[test]
fn malformed_request_gets_400_and_reaches_no_backend() {
    let fx = Fixture::new("malformed");
    // The backend is a bare listener so that any connection Sluice makes is visible.
    let sink = TcpListener::bind("127.0.0.1:0").unwrap();
    sink.set_nonblocking(true).unwrap();
    let sink_port = sink.local_addr().unwrap().port();
    fx.write_service("sink", None, None, sink_port, &["127.0.0.1".to_owned()], true);
    fx.ingress(&Ingress::new("sink").path(None, "Prefix", "/", "sink"));
    let sluice = fx.start(&[]);

    let resp = sluice.send(b"GARBAGE\r\n\r\n");
    assert_eq!(resp.status, 400, "{resp:?}");
    std::thread::sleep(Duration::from_millis(300));
    match sink.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("Sluice connected to the backend ({peer}) for a malformed request"),
        Err(e) => panic!("accept: {e}"),
    }
}

#[test]
fn keep_alive_serves_100_requests_on_one_connection() {
    let (_fx, sluice) = simple(&[]);
    let stream = connect(sluice.http).expect("connect");
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    for i in 0..100 {
        let target = format!("/ka/{i}");
        writer.write_all(&http_request("GET", "ka.test", &target, &[], b"")).unwrap();
        let resp = read_response(&mut reader, false)
            .unwrap_or_else(|e| panic!("request {i} on the kept-alive connection: {e}"));
        assert_eq!(resp.status, 200, "request {i}");
        assert_eq!(resp.echo().str("path"), target);
        assert!(
            !resp.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close")),
            "request {i}: Sluice closed the connection"
        );
    }
}

#[test]
fn request_metrics_name_ingress_and_service() {
    let mut fx = Fixture::new("metrics");
    fx.backend("metrics-svc");
    fx.ingress(&Ingress::new("metrics-ing").path(Some("metrics.test"), "Prefix", "/", "metrics-svc"));
    let sluice = fx.start(&[]);
    for _ in 0..3 {
        assert_eq!(sluice.get("metrics.test", "/").status, 200);
    }
    let metrics = sluice.metrics();
    let samples: Vec<&str> = metrics.lines().filter(|l| l.starts_with("sluice_http_requests_total")).collect();
    assert!(
        samples.iter().any(|l| l.contains("metrics-ing") && l.contains("metrics-svc")),
        "no sluice_http_requests_total sample labelled with metrics-ing and metrics-svc:\n{}",
        samples.join("\n")
    );
    assert!(metric_value(&metrics, "sluice_config_generation").is_some());
}

#[test]
fn admin_endpoints_and_sigterm() {
    let (_fx, mut sluice) = simple(&[]);
    let healthz = exchange(sluice.admin, &http_request("GET", "admin", "/healthz", &[], b"")).expect("GET /healthz");
    assert_eq!(healthz.status, 200);
    sluice.proc.signal("TERM");
    let status = sluice.proc.wait_exit(Duration::from_secs(15));
    assert!(status.is_some(), "sluice still running 15 s after SIGTERM");
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let (_fx, mut sluice) = simple(&[]);
    let http = sluice.http;
    let in_flight =
        std::thread::spawn(move || exchange(http, &http_request("GET", "drain.test", "/?sleep_ms=1500", &[], b"")));
    std::thread::sleep(Duration::from_millis(500));
    sluice.proc.signal("TERM");
    let resp =
        in_flight.join().expect("client thread").unwrap_or_else(|e| panic!("in-flight request cut by SIGTERM: {e}"));
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(sluice.proc.wait_exit(Duration::from_secs(15)).is_some(), "sluice still running 15 s after SIGTERM");
}

#[test]
fn duplicate_host_headers_are_rejected() {
    let (_fx, sluice) = simple(&[]);
    // RFC 9112 section 3.2: a request with more than one Host field gets 400.
    let resp = sluice.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n");
    assert_eq!(resp.status, 400, "{resp:?}");
}

#[test]
fn connect_failure_retries_another_endpoint() {
    let mut fx = Fixture::new("retry");
    // Two ready endpoints on the same port: 127.0.0.1 has an echo, 127.0.0.2 nothing
    // (a pod that died before its EndpointSlice was updated).
    let live = free_addr("127.0.0.1");
    fx.spawn_echo(live, "flaky");
    fx.write_service("flaky", None, None, live.port(), &["127.0.0.1".to_owned(), "127.0.0.2".to_owned()], true);
    fx.ingress(&Ingress::new("flaky").path(None, "Prefix", "/", "flaky"));
    let sluice = fx.start(&[]);
    let statuses: Vec<u16> = (0..20).map(|_| sluice.get("retry.test", "/").status).collect();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a refused connection to one endpoint must be retried on the other: {statuses:?}"
    );
}

#[test]
fn hop_by_hop_response_headers_are_not_forwarded() {
    let fx = Fixture::new("hop-response");
    let backend = scripted_backend(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nX-Public: yes\r\n\r\nok",
    );
    fx.write_service("scripted", None, None, backend.port(), &["127.0.0.1".to_owned()], true);
    fx.ingress(&Ingress::new("scripted").path(None, "Prefix", "/", "scripted"));
    let sluice = fx.start(&[]);
    let resp = sluice.get("hop.test", "/");
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(resp.body, b"ok");
    assert_eq!(resp.header("x-public"), Some("yes"));
    for dropped in ["x-secret", "keep-alive", "proxy-connection"] {
        assert_eq!(resp.header(dropped), None, "{dropped} reached the client: {resp:?}");
    }

    // Over HTTP/2 such headers would even be a protocol error.
    let url = format!("http://hop.test:{}/", sluice.http.port());
    let resolve = format!("hop.test:{}:127.0.0.1", sluice.http.port());
    let (ok, out, err) = curl(&["--http2-prior-knowledge", "--resolve", &resolve, "-i", &url]);
    assert!(ok, "HTTP/2 request failed: {err}");
    assert!(out.starts_with("HTTP/2 200"), "{out}");
    assert!(!out.to_ascii_lowercase().contains("x-secret"), "{out}");
}
