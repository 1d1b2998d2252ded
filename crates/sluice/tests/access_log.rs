//! Access logs end to end: `sluice run` writes one line per request (both HTTP paths, HTTP/2,
//! WebSocket, Sluice's own 404/502/503) and per L4 TCP connection and UDP flow to stdout,
//! checked field by field in both formats; `enable-access-log: "false"` silences an Ingress;
//! the lines of the last requests are written before Sluice exits.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use common::*;

/// Each test's LoadBalancer addresses (tests run at once): TCP on `.10`, UDP on `.11`.
fn pool(n: u8) -> String {
    format!("127.0.98.{n}0-127.0.98.{n}1")
}

/// A UDP echo server on a free port, answering every datagram (runs until the test ends).
fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    addr
}

/// Services for every kind of answer, and an L4 TCP and UDP LoadBalancer.
fn fixture(tag: &str, n: u8) -> (Fixture, SocketAddr) {
    let mut fx = Fixture::new(tag);
    let web = fx.backend("web");
    fx.ingress(&Ingress::new("shop").path(Some("shop.test"), "Prefix", "/", "web"));
    fx.ingress(&Ingress::new("quiet").annotation("nginx.ingress.kubernetes.io/enable-access-log", "false").path(
        Some("quiet.test"),
        "Prefix",
        "/",
        "web",
    ));
    // A backend whose endpoint refuses connections (502) and one without endpoints (503).
    let dead = free_addr("127.0.0.1");
    fx.write_service("dead", None, None, dead.port(), &[dead.ip().to_string()], true);
    fx.ingress(&Ingress::new("broken").path(Some("broken.test"), "Prefix", "/", "dead"));
    fx.write_service("empty", None, None, 1, &[], true);
    fx.ingress(&Ingress::new("gone").path(Some("gone.test"), "Prefix", "/", "empty"));
    let udp = udp_echo();
    let lb = |name: &str, protocol: &str, port: u16| {
        let ip = format!("127.0.98.{n}{}", if protocol == "TCP" { 0 } else { 1 });
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default, annotations: {{sluice.dev/idle-timeout: 1s, metallb.io/loadBalancerIPs: \"{ip}\"}}}}\nspec:\n  type: LoadBalancer\n  ports: [{{name: p, port: {port}, protocol: {protocol}}}]\n"
        )
    };
    let slice = |name: &str, protocol: &str, target: SocketAddr| {
        endpoint_slice_yaml(name, Some("p"), target.port(), &[target.ip().to_string()], true)
            .replace("protocol: TCP", &format!("protocol: {protocol}"))
    };
    fx.write(
        "lb.yaml",
        &yaml_docs(&[
            lb("tcp-lb", "TCP", 7000),
            slice("tcp-lb", "TCP", web),
            lb("udp-lb", "UDP", 7001),
            slice("udp-lb", "UDP", udp),
        ]),
    );
    (fx, web)
}

/// The JSON access log lines Sluice has written so far.
fn json_lines(sluice: &Sluice) -> Vec<serde_json::Value> {
    sluice
        .proc
        .log()
        .lines()
        .filter(|line| line.starts_with('{'))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|value| value.get("status").is_some())
        .collect()
}

/// The line whose `field` is `value`, waiting for it to be written.
fn line_with(sluice: &Sluice, field: &str, value: &str) -> serde_json::Value {
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        found = json_lines(sluice).into_iter().find(|line| line[field] == value);
        found.is_some()
    });
    found.unwrap_or_else(|| panic!("no access log line with {field} = {value}; log:\n{}", sluice.proc.log()))
}

#[test]
fn every_request_and_connection_gets_a_json_line() {
    let (fx, web) = fixture("access-json", 1);
    let state = fx.dir.path().join("state").display().to_string();
    let sluice = fx.start(&["--lb-pool", &pool(1), "--state-dir", &state]);
    let (tcp_lb, udp_lb) = ("127.0.98.10", "127.0.98.11");

    // HTTP/1.1 on the proxy-native path.
    let raw = http_request(
        "GET",
        "shop.test",
        "/cart?id=1",
        &[("Referer", "https://x.test/"), ("X-Request-ID", "req-1")],
        b"",
    );
    let answer = sluice.send(&raw);
    assert_eq!(answer.status, 200);
    let line = line_with(&sluice, "request_id", "req-1");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["host"], "shop.test");
    assert_eq!(line["path"], "/cart?id=1");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["route"], "default/shop");
    assert_eq!(line["service"].as_str().map(|s| s.starts_with("default/web")), Some(true), "{line}");
    assert_eq!(line["upstream"], web.to_string());
    assert_eq!(line["upstream_status"], 200);
    assert_eq!(line["bytes_out"], answer.body.len() as u64);
    assert_eq!(line["user_agent"], UA);
    assert_eq!(line["referer"], "https://x.test/");
    assert!(line["duration"].as_f64().is_some_and(|d| d >= 0.0) && line["upstream_time"].as_f64().is_some());
    assert!(line["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    // HTTP/2 (prior knowledge), the general path.
    let (ok, out, err) = curl(&[
        "-s",
        "--http2-prior-knowledge",
        "-H",
        "X-Request-ID: req-h2",
        "-o",
        "/dev/null",
        &format!("http://{}/h2", sluice.http),
        "-H",
        "Host: shop.test",
    ]);
    assert!(ok, "{out}{err}");
    let line = line_with(&sluice, "request_id", "req-h2");
    assert_eq!((line["protocol"].as_str(), line["status"].as_u64()), (Some("HTTP/2.0"), Some(200)));
    assert_eq!(line["route"], "default/shop");

    // WebSocket: the upgrade is logged with 101.
    websocket_echo_roundtrip(sluice.http, "shop.test", "/ws").unwrap();
    let line = line_with(&sluice, "path", "/ws");
    assert_eq!(line["status"], 101);

    // Sluice's own answers: 404 (no route), 502 (endpoint refuses), 503 (no endpoint).
    assert_eq!(sluice.get("nowhere.test", "/x").status, 404);
    let line = line_with(&sluice, "host", "nowhere.test");
    assert_eq!((line["status"].as_u64(), line["route"].is_null(), line["upstream"].is_null()), (Some(404), true, true));
    assert_eq!(sluice.get("broken.test", "/").status, 502);
    let line = line_with(&sluice, "host", "broken.test");
    assert_eq!(line["status"], 502);
    assert_eq!(line["route"], "default/broken");
    assert!(line["upstream"].as_str().is_some(), "the endpoint that failed: {line}");
    assert!(line["upstream_status"].is_null());
    assert_eq!(sluice.get("gone.test", "/").status, 503);
    assert_eq!(line_with(&sluice, "host", "gone.test")["status"], 503);

    // enable-access-log: "false".
    assert_eq!(sluice.get("quiet.test", "/").status, 200);

    // L4: one TCP connection (an HTTP request through the LoadBalancer), one UDP flow.
    let mut tcp = TcpStream::connect((tcp_lb, 7000)).unwrap();
    tcp.write_all(&http_request("GET", "lb.test", "/", &[("Connection", "close")], b"")).unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).unwrap();
    drop(tcp);
    let line = line_with(&sluice, "protocol", "TCP");
    assert_eq!(line["service"], "default/tcp-lb");
    assert_eq!(line["listener"], format!("{tcp_lb}:7000"));
    assert_eq!(line["upstream"], web.to_string());
    assert_eq!(line["bytes_out"], answer.len() as u64);
    assert_eq!(line["status"], 200);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    udp.send_to(b"ping", (udp_lb, 7001)).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(udp.recv(&mut buf).unwrap(), 4);
    // The flow's line is written when it ends (idle timeout 1 s).
    let line = line_with(&sluice, "protocol", "UDP");
    assert_eq!((line["bytes_in"].as_u64(), line["bytes_out"].as_u64()), (Some(4), Some(4)));
    assert_eq!(line["service"], "default/udp-lb");

    assert!(!json_lines(&sluice).iter().any(|line| line["host"] == "quiet.test"), "quiet.test was logged");
}

#[test]
fn nginx_format_reproduces_log_format_upstream() {
    let (fx, web) = fixture("access-nginx", 2);
    let state = fx.dir.path().join("state").display().to_string();
    let sluice = fx.start(&["--lb-pool", &pool(2), "--state-dir", &state, "--access-log", "nginx"]);
    let raw = http_request("GET", "shop.test", "/a?b=c", &[("X-Request-ID", "req-ng")], b"");
    let answer = sluice.send(&raw);
    let mut found = None;
    wait_until(Duration::from_secs(10), || {
        found = sluice.proc.log().lines().find(|l| l.ends_with(" req-ng")).map(str::to_owned);
        found.is_some()
    });
    let line = found.unwrap_or_else(|| panic!("no nginx line; log:\n{}", sluice.proc.log()));
    // $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
    // "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name]
    // [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length
    // $upstream_response_time $upstream_status $req_id
    let (head, rest) = line.split_once(" [").unwrap();
    assert_eq!(head, "127.0.0.1 - -");
    let (time, rest) = rest.split_once("] ").unwrap();
    assert!(time.ends_with(" +0000") && time.len() == 26, "{time}");
    let fields: Vec<&str> = rest.split(' ').collect();
    assert_eq!(&fields[..4], ["\"GET", "/a?b=c", "HTTP/1.1\"", "200"], "{line}");
    assert_eq!(fields[4], answer.body.len().to_string());
    assert_eq!(fields[5], "\"-\"");
    assert_eq!(fields[6], format!("\"{UA}\""));
    assert!(fields[7].parse::<u64>().is_ok() && fields[8].parse::<f64>().is_ok(), "{line}");
    assert!(fields[9].starts_with("[default-web-") && fields[9].ends_with(']'), "{line}");
    assert_eq!(fields[10], "[]");
    assert_eq!(fields[11], web.to_string());
    assert_eq!(fields[12], answer.body.len().to_string());
    assert!(fields[13].parse::<f64>().is_ok());
    assert_eq!(&fields[14..], ["200", "req-ng"]);

    // An L4 connection in log-format-stream.
    let mut tcp = TcpStream::connect(("127.0.98.20", 7000)).unwrap();
    tcp.write_all(&http_request("GET", "lb.test", "/", &[("Connection", "close")], b"")).unwrap();
    let mut out = Vec::new();
    tcp.read_to_end(&mut out).unwrap();
    let mut stream = None;
    wait_until(Duration::from_secs(10), || {
        stream = sluice
            .proc
            .log()
            .lines()
            .find(|l| l.starts_with("[127.0.0.1] [") && l.contains("] TCP "))
            .map(str::to_owned);
        stream.is_some()
    });
    let stream = stream.unwrap_or_else(|| panic!("no stream line; log:\n{}", sluice.proc.log()));
    let fields: Vec<&str> = stream.rsplitn(6, ' ').collect();
    assert_eq!(fields[3], "200", "{stream}");
    assert_eq!(fields[2], out.len().to_string(), "{stream}");

    // Shutdown drains the log too: a request answered just before SIGTERM is in the output
    // once Sluice has exited (lines are otherwise written within 50 ms).
    let mut sluice = sluice;
    for i in 0..20 {
        sluice.send(&http_request("GET", "shop.test", "/", &[("X-Request-ID", &format!("last-{i}"))], b""));
    }
    sluice.proc.signal("TERM");
    assert!(sluice.proc.wait_exit(Duration::from_secs(20)).is_some(), "no exit on SIGTERM");
    let log = sluice.proc.log();
    for i in 0..20 {
        assert!(log.lines().any(|l| l.ends_with(&format!(" last-{i}"))), "last-{i} lost at shutdown; log:\n{log}");
    }
}

#[test]
fn off_writes_nothing() {
    let (fx, _) = fixture("access-off", 3);
    let state = fx.dir.path().join("state").display().to_string();
    let sluice = fx.start(&["--lb-pool", &pool(3), "--state-dir", &state, "--access-log", "off"]);
    assert_eq!(sluice.get("shop.test", "/").status, 200);
    assert_eq!(sluice.get("nowhere.test", "/").status, 404);
    std::thread::sleep(Duration::from_millis(300));
    assert!(json_lines(&sluice).is_empty());
    assert!(!sluice.proc.log().contains("\"GET / HTTP/1.1\""));
}
