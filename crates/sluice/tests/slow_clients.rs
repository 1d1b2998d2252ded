//! Slow and greedy clients: 1,000 slowloris connections (request heads never finished) do
//! not keep a normal client from being served, and are closed after the header timeout;
//! caps on connections in all and per client address close what is over them on accept,
//! counted in a metric; oversized heads get 431 and oversized targets 414.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// Raises this test process's open-files limit to the hard limit (1,000 sockets and more).
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain struct in, plain struct out.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A connection from 127.0.0.2: another client address than the normal client's.
fn connect_from_other(addr: SocketAddr) -> std::io::Result<TcpStream> {
    connect_from(std::net::Ipv4Addr::new(127, 0, 0, 2), addr)
}

/// A TCP connection to `addr` from the source address `source` (std has no bind-then-
/// connect for clients, so socket(2), bind(2), connect(2) directly).
fn connect_from(source: std::net::Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let SocketAddr::V4(target) = addr else { return Err(std::io::Error::other("IPv4 only")) };
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| {
        // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
        let mut address: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        address.sin_family = libc::AF_INET as libc::sa_family_t;
        address.sin_port = port.to_be();
        address.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
        address
    };
    let (local, remote) = (sockaddr(source, 0), sockaddr(*target.ip(), target.port()));
    let length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh descriptor owned by the TcpStream at once; the addresses outlive the calls.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), length) != 0
            || libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), length) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

#[test]
fn a_thousand_slowloris_connections_do_not_stop_normal_clients() {
    raise_open_files_limit();
    let mut fx = Fixture::new("slowloris");
    fx.backend("echo");
    fx.ingress(&Ingress::new("app").path(Some("s.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&["--client-header-timeout", "3s"]);
    let started = Instant::now();
    let mut slow = Vec::new();
    for i in 0..1000 {
        let mut conn = connect_from_other(sluice.http).expect("slow connection");
        // One in ten sends nothing at all.
        if i % 10 != 0 {
            conn.write_all(b"GET / HTTP/1.1\r\nHost: s.test\r\nX-Slow: ").unwrap();
        }
        slow.push(conn);
    }
    let mut served = 0;
    for _ in 0..50 {
        served += usize::from(sluice.get("s.test", "/").status == 200);
    }
    assert_eq!(served, 50, "normal requests during the slowloris");
    // The slow heads are closed once the header timeout has passed.
    let deadline = started + Duration::from_secs(15);
    let mut closed = 0;
    for conn in &mut slow {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10));
        conn.set_read_timeout(Some(left)).unwrap();
        let mut buf = [0u8; 512];
        if conn.read(&mut buf).is_ok() {
            closed += 1;
        }
    }
    assert_eq!(closed, 1000, "every unfinished or unbegun head closed (or answered) after the header timeout");
}

#[test]
fn connection_caps_close_what_is_over_them_and_count_it() {
    let mut fx = Fixture::new("caps");
    fx.backend("echo");
    fx.ingress(&Ingress::new("app").path(Some("c.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&["--max-connections-per-client", "5"]);
    let held: Vec<TcpStream> = (0..5).map(|_| connect_from_other(sluice.http).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = connect_from_other(sluice.http).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = over.write_all(&http_request("GET", "c.test", "/", &[], b""));
    let mut buf = [0u8; 64];
    assert!(matches!(over.read(&mut buf), Ok(0) | Err(_)), "the sixth connection from 127.0.0.2 is closed");
    assert_eq!(sluice.get("c.test", "/").status, 200, "another client address is still served");
    let metrics = sluice.metrics();
    assert!(metrics.contains("sluice_connections_refused_total{reason=\"per_client\"} 1"), "{metrics}");
    drop(held);
}

#[test]
fn oversized_heads_and_targets_get_431_and_414() {
    let mut fx = Fixture::new("oversized");
    fx.backend("echo");
    fx.ingress(&Ingress::new("app").path(Some("o.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&[]);
    let big_header = "x".repeat(1 << 20);
    let raw = format!("GET / HTTP/1.1\r\nHost: o.test\r\nX-Big: {big_header}\r\n\r\n");
    assert_eq!(exchange(sluice.http, raw.as_bytes()).map(|r| r.status).unwrap_or(0), 431);
    let long_target = format!("/{}", "a".repeat(70_000));
    let raw = format!("GET {long_target} HTTP/1.1\r\nHost: o.test\r\n\r\n");
    assert_eq!(exchange(sluice.http, raw.as_bytes()).map(|r| r.status).unwrap_or(0), 414);
}

#[test]
fn a_client_that_stops_sending_its_body_gets_408() {
    let mut fx = Fixture::new("slow-body");
    fx.backend("echo");
    fx.ingress(&Ingress::new("app").path(Some("b.test"), "Prefix", "/", "echo"));
    let sluice = fx.start(&["--client-body-timeout", "1s"]);
    let mut conn = connect(sluice.http).unwrap();
    conn.write_all(b"POST / HTTP/1.1\r\nHost: b.test\r\nContent-Length: 100\r\n\r\nonly part").unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut answer = [0u8; 64];
    let n = conn.read(&mut answer).unwrap_or(0);
    let took = started.elapsed();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&answer[..n])
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
}
