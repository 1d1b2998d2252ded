//! `proxy-read-timeout`, `proxy-send-timeout` and `proxy-http-version` against backends
//! that misbehave on purpose: the read timeout holds between two reads of a response body
//! and starts only once the request is sent (a slow upload is not the backend's delay); the
//! send timeout holds while the backend does not take the body; HTTP/1.0 goes out as such.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const P: &str = "nginx.ingress.kubernetes.io";

fn a(name: &str) -> String {
    format!("{P}/{name}")
}

/// A backend running `script` on each connection (in its own thread), handing it the head
/// it read.
fn scripted(script: fn(&mut TcpStream, String)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push_str(&line);
                    if line == "\r\n" {
                        break;
                    }
                }
                script(&mut conn, head);
            });
        }
    });
    addr
}

fn service_at(fx: &Fixture, name: &str, addr: SocketAddr) {
    fx.write_service(name, None, None, addr.port(), &[addr.ip().to_string()], true);
}

#[test]
fn a_response_body_that_stalls_is_cut_after_the_read_timeout() {
    let mut fx = Fixture::new("to-read");
    let stalling = scripted(|conn, _| {
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst part");
        std::thread::sleep(Duration::from_secs(30));
    });
    service_at(&fx, "stall", stalling);
    fx.backend("echo");
    fx.ingress(&Ingress::new("stall").annotation(&a("proxy-read-timeout"), "1").path(
        Some("stall.test"),
        "Prefix",
        "/",
        "stall",
    ));
    let sluice = fx.start(&[]);
    let mut conn = connect(sluice.http).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    conn.write_all(&http_request("GET", "stall.test", "/", &[], b"")).unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let _ = conn.read_to_end(&mut received);
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&received);
    assert!(text.starts_with("HTTP/1.1 200") && text.ends_with("first part"), "{text}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(5), "cut after {took:?}");
}

#[test]
fn a_slow_upload_is_not_the_backends_delay() {
    let mut fx = Fixture::new("to-upload");
    fx.backend("echo");
    fx.ingress(&Ingress::new("up").annotation(&a("proxy-read-timeout"), "1").path(
        Some("up.test"),
        "Prefix",
        "/",
        "echo",
    ));
    let sluice = fx.start(&[]);
    let mut conn = connect(sluice.http).unwrap();
    conn.write_all(b"POST /upload HTTP/1.1\r\nHost: up.test\r\nContent-Length: 30\r\n\r\n").unwrap();
    for _ in 0..3 {
        conn.write_all(b"0123456789").unwrap();
        std::thread::sleep(Duration::from_millis(800));
    }
    let resp = read_response(&mut BufReader::new(conn), false).unwrap();
    assert_eq!(resp.status, 200, "2.4 s of uploading with a 1 s read timeout: {resp:?}");
    assert_eq!(resp.echo().body_bytes(), 30);
}

#[test]
fn a_backend_that_does_not_take_the_body_meets_the_send_timeout() {
    let fx = Fixture::new("to-send");
    let deaf = scripted(|_, _| std::thread::sleep(Duration::from_secs(30)));
    service_at(&fx, "deaf", deaf);
    fx.ingress(
        &Ingress::new("deaf")
            .annotation(&a("proxy-send-timeout"), "1")
            .annotation(&a("proxy-read-timeout"), "30")
            .annotation(&a("proxy-body-size"), "0")
            .path(Some("deaf.test"), "Prefix", "/", "deaf"),
    );
    let sluice = fx.start(&[]);
    let conn = connect(sluice.http).unwrap();
    let mut writer = conn.try_clone().unwrap();
    std::thread::spawn(move || {
        let head = b"POST / HTTP/1.1\r\nHost: deaf.test\r\nContent-Length: 67108864\r\n\r\n";
        let _ = writer.write_all(head);
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..64 {
            if writer.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let resp = read_response(&mut BufReader::new(conn), false).expect("an answer while the body is still coming");
    let took = started.elapsed();
    // The backend never reads: once the socket buffers are full, 1 s later the attempt fails.
    assert_eq!(resp.status, 504);
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn proxy_http_version_1_0_goes_out_as_http_1_0() {
    let fx = Fixture::new("to-http10");
    let (heads, seen) = mpsc::channel::<String>();
    let recorder = {
        static SENDER: std::sync::OnceLock<std::sync::Mutex<mpsc::Sender<String>>> = std::sync::OnceLock::new();
        let _ = SENDER.set(std::sync::Mutex::new(heads));
        scripted(|conn, head| {
            if let Some(sender) = SENDER.get() {
                let _ = sender.lock().unwrap().send(head);
            }
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok");
        })
    };
    service_at(&fx, "old", recorder);
    fx.ingress(&Ingress::new("old").annotation(&a("proxy-http-version"), "1.0").path(
        Some("old.test"),
        "Prefix",
        "/",
        "old",
    ));
    let sluice = fx.start(&[]);
    let resp = sluice.get("old.test", "/x");
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
    let head = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(head.starts_with("GET /x HTTP/1.0\r\n"), "{head}");
    assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
    let chunked = b"POST /x HTTP/1.1\r\nHost: old.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    assert_eq!(sluice.send(chunked).status, 411, "a body of unknown length cannot go out as HTTP/1.0");
}
