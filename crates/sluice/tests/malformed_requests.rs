//! Malformed and smuggling-prone HTTP/1.1 requests, as raw bytes on the plain port, with a
//! recording backend behind a catch-all Ingress: each case is refused, and the backend
//! receives nothing of it (or, for a body found broken while streaming, its connection is
//! aborted before any second request could be read from it). Then `Upgrade: h2c` is never
//! tunnelled, and a normal request still passes after the whole corpus.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

/// The bytes one backend connection received.
type Received = Arc<Mutex<Vec<u8>>>;

/// A backend that records every byte each connection sends it, and answers every request
/// head it sees with a small 200 (keep-alive).
struct Recorder {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<Received>>> = Arc::default();
        let all = connections.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let received = Arc::new(Mutex::new(Vec::new()));
                all.lock().unwrap().push(received.clone());
                std::thread::spawn(move || {
                    let mut conn = conn;
                    let mut buf = [0u8; 65536];
                    // Counted apart from `received`, which the test clears between cases.
                    let (mut all, mut answered) = (Vec::new(), 0);
                    loop {
                        match conn.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                received.lock().unwrap().extend_from_slice(&buf[..n]);
                                all.extend_from_slice(&buf[..n]);
                                let heads = all.windows(4).filter(|w| w == b"\r\n\r\n").count();
                                while answered < heads {
                                    answered += 1;
                                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                                }
                            }
                        }
                    }
                });
            }
        });
        Recorder { addr, connections }
    }

    /// Everything received so far, all connections together.
    fn received(&self) -> Vec<u8> {
        self.connections.lock().unwrap().iter().flat_map(|c| c.lock().unwrap().clone()).collect()
    }

    /// Forgets what was received (connections stay: a pooled one may carry the next case).
    fn clear(&self) {
        for connection in self.connections.lock().unwrap().iter() {
            connection.lock().unwrap().clear();
        }
    }
}

/// Sends `raw` on a fresh connection and returns the status of the first answer (0 when the
/// connection was closed without one).
fn status_of(addr: SocketAddr, raw: &[u8]) -> u16 {
    let Ok(mut conn) = connect(addr) else { return 0 };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.write_all(raw);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
}

/// Requests refused before anything is forwarded: (name, bytes).
fn refused() -> Vec<(&'static str, Vec<u8>)> {
    let post =
        |headers: &str, body: &str| format!("POST / HTTP/1.1\r\nHost: m.test\r\n{headers}\r\n{body}").into_bytes();
    let get = |target: &str, host: &str| format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
    vec![
        ("transfer-encoding chunked, chunked", post("Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n")),
        ("transfer-encoding comma-led", post("Transfer-Encoding: , chunked\r\n", "0\r\n\r\n")),
        ("transfer-encoding twice", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n")),
        ("transfer-encoding gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n")),
        ("transfer-encoding xchunked", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n")),
        ("transfer-encoding identity", post("Transfer-Encoding: identity\r\n", "")),
        ("two content-lengths that differ", post("Content-Length: 1\r\nContent-Length: 2\r\n", "ab")),
        ("content-length with a sign", post("Content-Length: +2\r\n", "ab")),
        ("host with userinfo", get("/", "u@m.test")),
        ("host list", get("/", "m.test, other.test")),
        ("host with a slash", get("/", "m.test/x")),
        ("host with a port too large", get("/", "m.test:99999")),
        ("host with a non-numeric port", get("/", "m.test:http")),
        ("host with a control byte", get("/", "m.\x01test")),
        ("host with a space", get("/", "m test")),
        ("two hosts", b"GET / HTTP/1.1\r\nHost: m.test\r\nHost: m.test\r\n\r\n".to_vec()),
        ("no host", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        ("NUL in the target", get("/a\0b", "m.test")),
        ("bare CR in the target", get("/a\rb", "m.test")),
        ("non-token method", b"G@T / HTTP/1.1\r\nHost: m.test\r\n\r\n".to_vec()),
        ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: m.test\r\nX-A: b\r\n c\r\n\r\n".to_vec()),
        ("HTTP/0.9", b"GET /\r\n\r\n".to_vec()),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: m.test\r\n\r\n".to_vec()),
        ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: m.test\r\n\r\n".to_vec()),
        ("invalid chunk size", post("Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n")),
        (
            "chunk extension too long",
            post("Transfer-Encoding: chunked\r\n", &format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(20_000))),
        ),
        ("CONNECT", b"CONNECT m.test:443 HTTP/1.1\r\nHost: m.test:443\r\n\r\n".to_vec()),
        ("TRACE", b"TRACE / HTTP/1.1\r\nHost: m.test\r\n\r\n".to_vec()),
    ]
}

#[test]
fn malformed_requests_are_refused_with_nothing_forwarded() {
    let fx = Fixture::new("malformed");
    let recorder = Recorder::start();
    fx.write_service("rec", None, None, recorder.addr.port(), &["127.0.0.1".into()], true);
    fx.ingress(
        &Ingress::new("all").annotation("nginx.ingress.kubernetes.io/proxy-body-size", "0").default_backend("rec"),
    );
    let sluice = fx.start(&[]);
    assert_eq!(status_of(sluice.http, b"GET / HTTP/1.1\r\nHost: m.test\r\n\r\n"), 200);
    recorder.clear();

    let mut failures = Vec::new();
    let cases = refused();
    for (name, raw) in &cases {
        let status = status_of(sluice.http, raw);
        std::thread::sleep(Duration::from_millis(20));
        let forwarded = recorder.received();
        if !(400..=599).contains(&status) && status != 0 || !forwarded.is_empty() {
            failures.push(format!("{name}: status {status}, backend got {:?}", String::from_utf8_lossy(&forwarded)));
        }
        recorder.clear();
    }
    eprintln!("refused with nothing forwarded: {} of {}", cases.len() - failures.len(), cases.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(status_of(sluice.http, b"GET / HTTP/1.1\r\nHost: m.test\r\n\r\n"), 200, "normal requests still pass");
}

/// Sends `raw` on a fresh connection and returns the status of every answer until the
/// connection closes.
fn statuses_until_close(addr: SocketAddr, raw: &[u8]) -> Vec<u16> {
    let Ok(mut conn) = connect(addr) else { return Vec::new() };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = conn.write_all(raw);
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.match_indices("HTTP/1.1 ").filter_map(|(at, _)| text[at + 9..].get(..3)?.parse().ok()).collect()
}

/// What hyper would normalise before the request handler sees it (it drops a
/// `Content-Length` beside `Transfer-Encoding: chunked` and the http crate cuts a
/// `#fragment`) is refused as the client sent it, with 400 — also when it hides behind a
/// good request on the same connection: the good one is answered and forwarded, the bad one
/// never.
#[test]
fn heads_are_checked_as_sent_even_behind_a_good_request() {
    let fx = Fixture::new("malformed-as-sent");
    let recorder = Recorder::start();
    fx.write_service("rec", None, None, recorder.addr.port(), &["127.0.0.1".into()], true);
    fx.ingress(&Ingress::new("all").default_backend("rec"));
    let sluice = fx.start(&[]);
    let cases = [
        (
            "content-length then transfer-encoding",
            "POST /bad HTTP/1.1\r\nHost: m.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "transfer-encoding then content-length",
            "POST /bad HTTP/1.1\r\nHost: m.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        ),
        ("fragment in the target", "GET /bad#frag HTTP/1.1\r\nHost: m.test\r\n\r\n"),
        (
            "bare LF head with both framings",
            "POST /bad HTTP/1.1\nHost: m.test\nContent-Length: 3\nTransfer-Encoding: chunked\n\n0\n\n",
        ),
    ];
    let good = "POST /good HTTP/1.1\r\nHost: m.test\r\nContent-Length: 5\r\n\r\nhello";
    for (name, bad) in cases {
        assert_eq!(statuses_until_close(sluice.http, bad.as_bytes()), [400], "{name}");
        std::thread::sleep(Duration::from_millis(20));
        assert!(recorder.received().is_empty(), "{name}: {:?}", String::from_utf8_lossy(&recorder.received()));

        let statuses = statuses_until_close(sluice.http, format!("{good}{bad}").as_bytes());
        assert_eq!(statuses, [200, 400], "{name} behind a good request");
        std::thread::sleep(Duration::from_millis(20));
        let forwarded = String::from_utf8_lossy(&recorder.received()).into_owned();
        assert!(forwarded.contains("/good") && !forwarded.contains("/bad"), "{name}: {forwarded:?}");
        recorder.clear();
    }
}

/// After a WebSocket upgrade request Sluice no longer reads the connection as HTTP/1.1 (what
/// follows may be frames), so an upgrade the backend declines ends the connection with its
/// answer: a request sent behind it is never read, let alone forwarded.
#[test]
fn a_declined_websocket_upgrade_ends_the_connection() {
    let fx = Fixture::new("malformed-declined-upgrade");
    let recorder = Recorder::start();
    fx.write_service("rec", None, None, recorder.addr.port(), &["127.0.0.1".into()], true);
    fx.ingress(&Ingress::new("all").default_backend("rec"));
    let sluice = fx.start(&[]);
    let upgrade = "GET /ws HTTP/1.1\r\nHost: m.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let behind = "GET /behind#x HTTP/1.1\r\nHost: m.test\r\n\r\n";
    let statuses = statuses_until_close(sluice.http, format!("{upgrade}{behind}").as_bytes());
    assert_eq!(statuses, [200], "the declined upgrade's answer, then the end");
    std::thread::sleep(Duration::from_millis(50));
    let forwarded = String::from_utf8_lossy(&recorder.received()).into_owned();
    assert!(forwarded.contains("/ws") && !forwarded.contains("/behind"), "{forwarded:?}");
}

#[test]
fn a_chunk_longer_than_its_size_never_becomes_a_second_request() {
    let fx = Fixture::new("malformed-chunk");
    let recorder = Recorder::start();
    fx.write_service("rec", None, None, recorder.addr.port(), &["127.0.0.1".into()], true);
    fx.ingress(
        &Ingress::new("all").annotation("nginx.ingress.kubernetes.io/proxy-body-size", "0").default_backend("rec"),
    );
    let sluice = fx.start(&[]);
    // The smuggled request hides in the chunk data beyond the declared size.
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: m.test\r\n\r\n";
    let raw = format!(
        "POST / HTTP/1.1\r\nHost: m.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello{smuggled}\r\n0\r\n\r\n"
    );
    let status = status_of(sluice.http, raw.as_bytes());
    std::thread::sleep(Duration::from_millis(200));
    let forwarded = String::from_utf8_lossy(&recorder.received()).into_owned();
    assert!(!forwarded.contains("/smuggled"), "status {status}; the backend read: {forwarded:?}");
    // The backend may answer the POST before the broken chunk reaches the guard (200), or
    // the body fails first (4xx/5xx, or the connection closes): never a second request.
    assert!(status == 0 || status == 200 || status >= 400, "status {status}");
}

#[test]
fn h2c_upgrades_are_never_tunnelled() {
    let fx = Fixture::new("malformed-h2c");
    let recorder = Recorder::start();
    fx.write_service("rec", None, None, recorder.addr.port(), &["127.0.0.1".into()], true);
    fx.ingress(&Ingress::new("all").default_backend("rec"));
    let sluice = fx.start(&[]);
    let raw = b"GET / HTTP/1.1\r\nHost: m.test\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n";
    let status = status_of(sluice.http, raw);
    let forwarded = String::from_utf8_lossy(&recorder.received()).to_ascii_lowercase();
    assert!(
        !forwarded.contains("upgrade") && !forwarded.contains("http2-settings"),
        "status {status}; the backend read: {forwarded:?}"
    );
    assert_ne!(status, 101);
}

#[test]
fn http2_frames_cannot_write_a_log_line_each() {
    let fx = Fixture::new("h2-log-flood");
    let recorder = Recorder::start();
    fx.write_service("rec", None, None, recorder.addr.port(), &["127.0.0.1".into()], true);
    fx.ingress(&Ingress::new("all").default_backend("rec"));
    let mut sluice = fx.start(&[]);
    let before = sluice.proc.log().lines().count();
    let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frames.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]); // SETTINGS, empty
    for i in 0..1000u64 {
        frames.extend_from_slice(&[0, 0, 8, 0x6, 0x1, 0, 0, 0, 0]); // PING with ACK, unsolicited
        frames.extend_from_slice(&i.to_be_bytes());
    }
    let mut conn = connect(sluice.http).unwrap();
    let _ = conn.write_all(&frames);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut sink = Vec::new();
    let _ = conn.read_to_end(&mut sink);
    std::thread::sleep(Duration::from_millis(300));
    let added = sluice.proc.log().lines().count() - before;
    assert!(added < 10, "{added} log lines for 1,000 frames");
    sluice.proc.assert_running();
}

/// An HTTP/2 HEADERS frame for `GET http://a.test/` on `stream`, ending the stream.
fn h2_get(stream: u32) -> Vec<u8> {
    // HPACK: :method GET (static 2), :scheme http (6), :path / (4), :authority "a.test".
    let block = [&[0x82u8, 0x86, 0x84, 0x41, 6][..], b"a.test"].concat();
    let mut frame = vec![0, 0, block.len() as u8, 0x1, 0x5];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(&block);
    frame
}

#[test]
fn http2_rapid_reset_closes_the_connection_while_others_are_served() {
    let mut fx = Fixture::new("h2-rapid-reset");
    fx.backend("echo");
    fx.ingress(&Ingress::new("app").path(Some("a.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);
    let mut frames = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frames.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    for i in 0..20_000u32 {
        let stream = 2 * i + 1;
        frames.extend_from_slice(&h2_get(stream));
        frames.extend_from_slice(&[0, 0, 4, 0x3, 0]); // RST_STREAM, CANCEL
        frames.extend_from_slice(&stream.to_be_bytes());
        frames.extend_from_slice(&8u32.to_be_bytes());
    }
    let started = std::time::Instant::now();
    let mut conn = connect(sluice.http).unwrap();
    let writer = {
        let mut conn = conn.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = conn.write_all(&frames);
        })
    };
    let mut served = 0;
    for _ in 0..20 {
        served += usize::from(sluice.get("a.test", "/").status == 200);
    }
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = Vec::new();
    let closed = conn.read_to_end(&mut sink).is_ok();
    let took = started.elapsed();
    let _ = writer.join();
    assert_eq!(served, 20, "other clients are served during the flood");
    assert!(closed && took < Duration::from_secs(10), "the flooding connection is closed ({took:?})");
    // GOAWAY (type 7) among what was sent back.
    assert!(sink.windows(4).any(|w| w[3] == 0x7 && w[0] == 0), "a GOAWAY was sent");
    assert_eq!(sluice.get("a.test", "/").status, 200);
}
