//! `sluice echo`, the test backend, talked to directly over loopback: the JSON it
//! reports (service, pod, method, path with query, host, proto, headers, body size),
//! the `status`, `sleep_ms` and `bytes` query parameters, HTTP/1.0, cleartext
//! HTTP/2, WebSocket echo, that malformed input does not bring it down, and what it does
//! as the Gateway API suite's echo-basic (namespace, headers as lists under Go's
//! canonical names, `/health`, `/status/NNN`, `/retry/`, `delay`, `X-Echo-Set-Header`,
//! the h2c-only port, the request log).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Starts one echo backend named `svc`.
fn echo() -> (Fixture, SocketAddr) {
    let mut fx = Fixture::new("echo");
    let addr = free_addr("127.0.0.1");
    fx.spawn_echo(addr, "svc");
    (fx, addr)
}

#[test]
fn reports_the_request_it_received() {
    let (_fx, addr) = echo();
    let raw = http_request(
        "POST",
        "example.test:8080",
        "/x/y?b=%20x&a=1&a=2",
        &[("X-Multi", "1"), ("X-Multi", "2"), ("X-Case", "Value")],
        b"hello world",
    );
    let resp = exchange(addr, &raw).expect("echo answers");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.version, "HTTP/1.1");
    assert_eq!(resp.header("content-type"), Some("application/json"));
    assert_eq!(resp.header("content-length"), Some(resp.body.len().to_string().as_str()));
    let e = resp.echo();
    assert_eq!(e.service(), "svc");
    assert_eq!(e.str("pod"), addr.to_string(), "pod defaults to ip:port");
    assert_eq!(e.str("method"), "POST");
    assert_eq!(e.str("path"), "/x/y?b=%20x&a=1&a=2");
    assert_eq!(e.str("host"), "example.test:8080");
    assert_eq!(e.str("proto"), "HTTP/1.1");
    assert_eq!(e.header("x-multi"), Some("1, 2"));
    assert_eq!(e.header("x-case"), Some("Value"));
    assert_eq!(e.header("user-agent"), Some(UA));
    assert_eq!(e.body_bytes(), 11);
}

#[test]
fn pod_option_and_http10() {
    let dir = TempDir::new("echo-pod");
    let addr = free_addr("127.0.0.1");
    let mut cmd = Command::new(SLUICE);
    cmd.args(["echo", "--listen", &addr.to_string(), "--name", "named", "--pod", "pod-7"]);
    let mut proc = Proc::spawn("echo", cmd, dir.path().join("echo.log"), true);
    assert!(wait_until(Duration::from_secs(10), || connect(addr).is_ok()));
    proc.assert_running();
    let resp = exchange(addr, b"GET /old HTTP/1.0\r\nHost: h\r\n\r\n").expect("HTTP/1.0");
    assert_eq!(resp.status, 200);
    let e = resp.echo();
    assert_eq!(e.str("pod"), "pod-7");
    assert_eq!(e.service(), "named");
    assert_eq!(e.str("proto"), "HTTP/1.0");
}

#[test]
fn query_parameters_change_the_answer() {
    let (_fx, addr) = echo();
    let status = exchange(addr, &http_request("GET", "h", "/?status=503", &[], b"")).unwrap();
    assert_eq!(status.status, 503);
    assert_eq!(status.echo().str("path"), "/?status=503");

    for code in [204, 304] {
        let target = format!("/?status={code}");
        let resp = exchange(addr, &http_request("GET", "h", &target, &[], b"")).unwrap();
        assert_eq!(resp.status, code);
        assert_eq!(resp.header("content-length"), None, "{code} has no length");
        assert!(!resp.is_chunked());
    }

    let ignored = exchange(addr, &http_request("GET", "h", "/?status=abc&bytes=-1&sleep_ms=x&zzz", &[], b"")).unwrap();
    assert_eq!(ignored.status, 200, "invalid parameters are ignored");
    ignored.echo();

    let start = Instant::now();
    let slept = exchange(addr, &http_request("GET", "h", "/?sleep_ms=400", &[], b"")).unwrap();
    assert_eq!(slept.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(400));

    let bytes = exchange(addr, &http_request("GET", "h", "/?bytes=200000", &[], b"")).unwrap();
    assert_eq!(bytes.status, 200);
    assert_eq!(bytes.header("content-type"), Some("application/octet-stream"));
    assert_eq!(bytes.header("content-length"), Some("200000"));
    assert!(!bytes.is_chunked());
    assert_eq!(bytes.body.len(), 200_000);
    assert!(bytes.body.iter().all(|b| *b == b'x'));

    let empty = exchange(addr, &http_request("GET", "h", "/?bytes=0", &[], b"")).unwrap();
    assert_eq!(empty.header("content-length"), Some("0"));
    assert!(empty.body.is_empty());
}

#[test]
fn chunked_upload_is_counted() {
    let (_fx, addr) = echo();
    let mut stream = connect(addr).unwrap();
    stream
        .write_all(
            b"PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let resp = read_response(&mut reader, false).unwrap();
    assert_eq!(resp.echo().body_bytes(), 8);
}

#[test]
fn cleartext_http2() {
    let (_fx, addr) = echo();
    let url = format!("http://{addr}/h2?q=1");
    let (ok, out, err) = curl(&["--http2-prior-knowledge", &url]);
    assert!(ok, "curl failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["proto"], "HTTP/2.0");
    assert_eq!(v["path"], "/h2?q=1");
    assert_eq!(v["host"], addr.to_string(), "host from the :authority");
}

#[test]
fn websocket_echo() {
    let (_fx, addr) = echo();
    websocket_echo_roundtrip(addr, "ws.test", "/chat").expect("WebSocket echo");
}

#[test]
fn survives_malformed_input() {
    let (mut fx, addr) = echo();
    for junk in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x00\x00\x00\x00",
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: x\r\n\r\n\xff\xff\xff\xff",
        &[0u8; 64][..],
    ] {
        if let Ok(mut s) = connect(addr) {
            let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
            let _ = s.write_all(junk);
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut s, &mut buf);
        }
    }
    let resp = exchange(addr, &http_request("GET", "h", "/", &[], b"")).unwrap();
    assert_eq!(resp.status, 200, "still serving after malformed input");
    fx.assert_backends_running();
}

/// Starts `sluice echo` with extra arguments; returns it and its log path.
fn echo_with(args: &[&str], addr: SocketAddr, dir: &TempDir) -> (Proc, std::path::PathBuf) {
    let log = dir.path().join(format!("echo-{}.log", addr.port()));
    let mut cmd = Command::new(SLUICE);
    cmd.args(["echo", "--listen", &addr.to_string(), "--name", "svc"]).args(args);
    let mut proc = Proc::spawn("echo", cmd, log.clone(), true);
    assert!(wait_until(Duration::from_secs(10), || connect(addr).is_ok()));
    proc.assert_running();
    (proc, log)
}

#[test]
fn answers_as_echo_basic() {
    let dir = TempDir::new("echo-basic");
    let addr = free_addr("127.0.0.1");
    let h2c = free_addr("127.0.0.1");
    let (_proc, log) = echo_with(
        &[
            "--pod",
            "infra-backend-v1-abc-def",
            "--namespace",
            "gateway-conformance-infra",
            "--h2c-listen",
            &h2c.to_string(),
            "--log-requests",
        ],
        addr,
        &dir,
    );
    let get = |target: &str, headers: &[(&str, &str)]| {
        exchange(addr, &http_request("GET", "gw.example:8080", target, headers, b"")).expect("echo answers")
    };

    // The JSON fields the suite reads, headers as lists under canonical names, no Host.
    let resp = get("/p?q=1", &[("x-multi", "a"), ("X-MULTI", "b"), ("some-other-header", "v")]);
    assert_eq!(resp.header("x-content-type-options"), Some("nosniff"));
    let v: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON");
    assert_eq!(v["path"], "/p?q=1");
    assert_eq!(v["host"], "gw.example:8080");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["proto"], "HTTP/1.1");
    assert_eq!(v["namespace"], "gateway-conformance-infra");
    assert_eq!(v["pod"], "infra-backend-v1-abc-def");
    assert_eq!(v["ingress"], "");
    assert_eq!(v["service"], "svc");
    assert_eq!(v["httpPort"], addr.port().to_string());
    assert_eq!(v["headers"]["X-Multi"], serde_json::json!(["a", "b"]));
    assert_eq!(v["headers"]["Some-Other-Header"], serde_json::json!(["v"]));
    assert_eq!(v["headers"]["User-Agent"], serde_json::json!([UA]));
    assert!(v["headers"].get("Host").is_none());

    // X-Echo-Set-Header becomes response headers.
    let resp = get("/", &[("X-Echo-Set-Header", "X-Header-Set:set-value,Another-Header:x,X-Header-Set:again")]);
    assert_eq!(resp.header("x-header-set"), Some("set-value,again"));
    assert_eq!(resp.header("another-header"), Some("x"));

    // echo-basic's paths.
    assert_eq!(get("/health", &[]).text(), "OK");
    assert_eq!(get("/status/503", &[]).status, 503);
    assert_eq!(get("/status/xyz", &[]).status, 400);
    assert_eq!(get("/status/204?x", &[]).status, 400);

    // delay waits; a bad duration is a 500 with a JSON message.
    let start = Instant::now();
    assert_eq!(get("/d?delay=300ms", &[]).status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));
    let bad = get("/d?delay=soon", &[]);
    assert_eq!(bad.status, 500);
    assert!(bad.text().contains("invalid duration"), "{}", bad.text());

    // /retry/: the first succeedAfter attempts fail (status or a dropped connection).
    for _ in 0..2 {
        assert_eq!(get("/retry/?uuid=a&succeedAfter=2&responseCode=503", &[]).status, 503);
    }
    assert_eq!(get("/retry/?uuid=a&succeedAfter=2&responseCode=503", &[]).status, 200);
    assert!(exchange(addr, &http_request("GET", "h", "/retry/?uuid=b&succeedAfter=1", &[], b"")).is_err(), "dropped");
    assert_eq!(get("/retry/?uuid=b&succeedAfter=1", &[]).status, 200);
    assert_eq!(get("/retry/?succeedAfter=1", &[]).status, 400, "uuid is required");

    // The h2c port takes HTTP/2 only.
    let refused = exchange(h2c, &http_request("GET", "h", "/", &[], b"")).expect("h2c port answers");
    assert_eq!((refused.status, refused.text().as_str()), (400, "Expected h2c request"));
    let (ok, out, err) = curl(&["--http2-prior-knowledge", &format!("http://{h2c}/h2")]);
    assert!(ok, "curl: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (v["proto"].as_str(), v["httpPort"].as_str()),
        (Some("HTTP/2.0"), Some(addr.port().to_string().as_str()))
    );

    // Every echoed request is logged as echo-basic logs it.
    assert!(wait_until(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Echoing back request made to /p?q=1 to client (127.0.0.1:")
    }));
}
