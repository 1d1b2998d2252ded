//! `mirror-target`, `mirror-host`, `mirror-request-body`, end to end: the copy arrives at a
//! recording server with the mirror's Host, the original method, target and body; a mirror
//! that hangs or falls behind never slows or fails the request itself.

mod common;
mod tls_backend;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const P: &str = "nginx.ingress.kubernetes.io";

fn a(name: &str) -> String {
    format!("{P}/{name}")
}

/// One request as the mirror received it.
#[derive(Debug)]
struct Copy {
    request_line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Copy {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A server that records each request (Content-Length bodies) and answers 204.
fn recording_mirror() -> (SocketAddr, mpsc::Receiver<Copy>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, copies) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let sender = sender.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn);
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut headers = Vec::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((n, v)) = line.split_once(':') {
                            headers.push((n.trim().to_owned(), v.trim().to_owned()));
                        }
                    }
                    let length = headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0usize);
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let request_line = request_line.trim_end().to_owned();
                    let _ = sender.send(Copy { request_line, headers, body });
                    if reader.get_mut().write_all(b"HTTP/1.1 204 No Content\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, copies)
}

/// A server that accepts connections and never reads or answers.
fn stuck_mirror() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    addr
}

#[test]
fn copies_arrive_with_the_mirror_host_method_target_and_body() {
    let mut fx = Fixture::new("mirror-copy");
    fx.backend("web");
    let (mirror, copies) = recording_mirror();
    fx.ingress(
        &Ingress::new("mirrored")
            .annotation(&a("mirror-target"), &format!("http://{mirror}$request_uri"))
            .annotation(&a("mirror-host"), "mirror.test")
            .path(Some("m.test"), "Prefix", "/", "web"),
    );
    fx.ingress(
        &Ingress::new("headonly")
            .annotation(&a("mirror-target"), &format!("http://{mirror}/copies$request_uri"))
            .annotation(&a("mirror-request-body"), "off")
            .path(Some("h.test"), "Prefix", "/", "web"),
    );
    let sluice = fx.start(&[]);

    let resp = sluice.send(&http_request("POST", "m.test", "/api/items?x=1", &[("X-Trace", "t1")], b"hello"));
    assert_eq!(resp.echo().service(), "web", "the request itself is served as usual");
    let copy = copies.recv_timeout(Duration::from_secs(5)).expect("the mirror gets a copy");
    assert_eq!(copy.request_line, "POST /api/items?x=1 HTTP/1.1");
    assert_eq!(copy.header("host"), Some("mirror.test"));
    assert_eq!(copy.header("x-trace"), Some("t1"));
    assert_eq!(copy.body, b"hello");

    sluice.send(&http_request("PUT", "h.test", "/p", &[], b"secret"));
    let copy = copies.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(copy.request_line, "PUT /copies/p HTTP/1.1");
    assert_eq!(copy.header("host"), Some(mirror.ip().to_string().as_str()), "default Host: the target's");
    assert!(copy.body.is_empty() && copy.header("content-length").is_none(), "mirror-request-body off");
}

#[test]
fn a_stuck_or_absent_mirror_never_slows_the_request() {
    let mut fx = Fixture::new("mirror-stuck");
    fx.backend("web");
    let stuck = stuck_mirror();
    fx.ingress(
        &Ingress::new("stuck")
            .annotation(&a("mirror-target"), &format!("http://{stuck}$request_uri"))
            .annotation(&a("proxy-body-size"), "0")
            .path(Some("s.test"), "Prefix", "/", "web"),
    );
    let closed = free_addr("127.0.0.1");
    fx.ingress(&Ingress::new("closed").annotation(&a("mirror-target"), &format!("http://{closed}/")).path(
        Some("c.test"),
        "Prefix",
        "/",
        "web",
    ));
    let sluice = fx.start(&["--upstream-timeout", "30s"]);
    let big = vec![b'x'; 8 << 20];
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(sluice.get("s.test", "/").status, 200);
        assert_eq!(sluice.get("c.test", "/").status, 200);
        let resp = sluice.send(&http_request("POST", "s.test", "/upload", &[], &big));
        assert_eq!(resp.echo().body_bytes(), 8 << 20, "the whole body reaches the backend");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "mirrors that never answer cost nothing: {took:?}");
}

#[test]
fn https_mirror_targets_get_their_copies_over_tls() {
    let mut fx = Fixture::new("mirror-https");
    fx.backend("web");
    let ca = tls_backend::Ca::new("mirror-ca");
    let mirror = tls_backend::TlsBackend::start("mirror", &ca.issue(&["mirror.test"]), None);
    fx.ingress(
        &Ingress::new("mirrored")
            .annotation(&a("mirror-target"), &format!("https://{}$request_uri", mirror.addr))
            .path(Some("t.test"), "Prefix", "/", "web"),
    );
    let sluice = fx.start(&[]);
    for _ in 0..3 {
        assert_eq!(sluice.get("t.test", "/copied").echo().service(), "web");
    }
    assert!(wait_until(Duration::from_secs(5), || mirror.requests() == 3), "{} copies", mirror.requests());
}
