//! Helpers for the L4 tests: listeners on distinct loopback addresses, echo backends, metrics.

#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use sluice_config::{Backend, L4Backends, L4Listener, L4Protocol, L4Table, ObjectRef, Transport};
use sluice_l4::{L4Metrics, L4Plane};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// Bound on any single wait in a test.
pub const WAIT: Duration = Duration::from_secs(10);

/// `127.0.a.b`: each test uses its own `a` so parallel tests never share an address.
pub fn ip(a: u8, b: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, a, b)
}

/// A plane with its own registry (prefix `sluice`, like the process registry).
pub struct Plane {
    pub plane: L4Plane,
    registry: Registry,
}

impl Plane {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let metrics = Arc::new(L4Metrics::new(&mut registry));
        Self { plane: L4Plane::new(metrics, sluice_access_log::AccessLog::off()), registry }
    }

    /// Applies `listeners`, asserting every key was bound.
    pub async fn apply(&self, listeners: Vec<L4Listener>) {
        let errors = self.plane.apply(&table(listeners)).await;
        assert!(errors.is_empty(), "bind errors: {errors:?}");
    }

    /// The value of one series, e.g. `sluice_l4_connections_total{service="ns/svc",port="80/TCP"}`;
    /// 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("encode");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|value| value.trim().parse().expect("metric value"))
            .unwrap_or(0.0)
    }

    /// Waits until `series` has `value`.
    pub async fn wait_metric(&self, series: &str, value: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.metric(series) != value {
            assert!(tokio::time::Instant::now() < deadline, "{series} is {}, expected {value}", self.metric(series));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `name{service="ns/svc",port="PORT/PROTO"}` for a listener built by [`listener`].
pub fn series(name: &str, address: SocketAddr, protocol: L4Protocol) -> String {
    let proto = match protocol {
        L4Protocol::Tcp => "TCP",
        L4Protocol::Udp => "UDP",
    };
    format!("sluice_l4_{name}{{service=\"ns/svc\",port=\"{}/{proto}\"}}", address.port())
}

/// A listener of Service ns/svc with a 30 s idle timeout and 100 flows.
pub fn listener(protocol: L4Protocol, address: SocketAddr, endpoints: Vec<SocketAddr>) -> L4Listener {
    let service = ObjectRef::new("Service", "ns", "svc");
    L4Listener {
        backends: L4Backends::one(Arc::new(Backend::new(
            service.clone(),
            &address.port().to_string(),
            Some(String::new()),
            Transport::Http1,
            endpoints,
        ))),
        service,
        port_name: String::new(),
        address,
        protocol,
        proxy_protocol: None,
        idle_timeout: Duration::from_secs(30),
        max_flows: 100,
        source_ranges: None,
    }
}

pub fn table(listeners: Vec<L4Listener>) -> L4Table {
    L4Table {
        listeners: listeners.into_iter().map(|l| ((l.protocol, l.address), l)).collect(),
        addresses: Default::default(),
        ip_modes: Default::default(),
        announcements: Default::default(),
    }
}

/// An address on `ip` with a TCP port free right now.
pub fn free_tcp(ip: Ipv4Addr) -> SocketAddr {
    let socket = std::net::TcpListener::bind((ip, 0)).expect("bind");
    socket.local_addr().expect("addr")
}

/// An address on `ip` with a UDP port free right now.
pub fn free_udp(ip: Ipv4Addr) -> SocketAddr {
    let socket = std::net::UdpSocket::bind((ip, 0)).expect("bind");
    socket.local_addr().expect("addr")
}

/// A port on `ip` free for both TCP and UDP right now.
pub fn free_both(ip: Ipv4Addr) -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind((ip, 0)).expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// A TCP echo server on `ip` that first sends `greeting` on each connection, echoes until
/// end of stream, then closes its write side.
pub async fn tcp_echo(ip: Ipv4Addr, greeting: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.expect("bind echo");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let _ = stream.write_all(greeting).await;
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    address
}

/// Writes `payload` and reads the same number of bytes back.
pub async fn echo_round(stream: &mut TcpStream, payload: &[u8]) {
    stream.write_all(payload).await.expect("write");
    let mut back = vec![0; payload.len()];
    tokio::time::timeout(WAIT, stream.read_exact(&mut back)).await.expect("echo in time").expect("read echo");
    assert_eq!(back, payload);
}

/// Reads exactly `n` bytes.
pub async fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    tokio::time::timeout(WAIT, stream.read_exact(&mut buf)).await.expect("read in time").expect("read");
    buf
}

/// A UDP echo server on `ip` replying `payload|peer` to each datagram, so clients see which
/// source address (flow) the backend saw.
pub async fn udp_echo(ip: Ipv4Addr) -> SocketAddr {
    let socket = UdpSocket::bind((ip, 0)).await.expect("bind udp echo");
    let address = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0; 65_536];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let mut reply = buf[..n].to_vec();
            reply.extend_from_slice(format!("|{peer}").as_bytes());
            let _ = socket.send_to(&reply, peer).await;
        }
    });
    address
}

/// A UDP client socket on `ip`.
pub async fn udp_client(ip: Ipv4Addr) -> UdpSocket {
    UdpSocket::bind((ip, 0)).await.expect("bind client")
}

/// Sends `payload` to `to` and waits up to `wait` for one reply: `(payload, peer seen by the
/// backend, source of the reply)`.
pub async fn udp_exchange(
    client: &UdpSocket,
    to: SocketAddr,
    payload: &str,
    wait: Duration,
) -> Option<(String, String, SocketAddr)> {
    client.send_to(payload.as_bytes(), to).await.expect("send");
    let mut buf = vec![0; 65_536];
    let (n, from) = tokio::time::timeout(wait, client.recv_from(&mut buf)).await.ok()?.expect("recv");
    let text = String::from_utf8(buf[..n].to_vec()).expect("utf-8 reply");
    let (echo, peer) = text.rsplit_once('|').expect("reply has a peer");
    Some((echo.to_owned(), peer.to_owned(), from))
}
