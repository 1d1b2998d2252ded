//! TCP load balancing through an `L4Plane`, with real sockets on loopback.

mod common;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use sluice_config::{L4Protocol, ProxyProtocol};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const TCP: L4Protocol = L4Protocol::Tcp;

async fn connect(address: SocketAddr) -> TcpStream {
    tokio::time::timeout(WAIT, TcpStream::connect(address)).await.expect("connect in time").expect("connect")
}

/// Client writes 1 MiB, half-closes, still reads the whole echo, then end of stream; bytes
/// and connections are counted under the exact metric names.
#[tokio::test]
async fn echo_with_half_close_and_metrics() {
    let backend = tcp_echo(ip(10, 2), b"").await;
    let address = free_tcp(ip(10, 1));
    let plane = Plane::new();
    plane.apply(vec![listener(TCP, address, vec![backend])]).await;

    let payload: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 253) as u8).collect();
    let (mut r, mut w) = connect(address).await.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.expect("write");
        w.shutdown().await.expect("half-close");
        w
    });
    let mut back = Vec::new();
    tokio::time::timeout(WAIT, r.read_to_end(&mut back)).await.expect("echo and EOF in time").expect("read");
    let _w = writer.await.expect("writer");
    assert_eq!(back.len(), payload.len());
    assert!(back == payload, "echo differs");

    let n = payload.len() as f64;
    let labels = format!("service=\"ns/svc\",port=\"{}/TCP\"", address.port());
    assert_eq!(plane.metric(&format!("sluice_l4_bytes_total{{{labels},direction=\"rx\"}}")), n);
    assert_eq!(plane.metric(&format!("sluice_l4_bytes_total{{{labels},direction=\"tx\"}}")), n);
    assert_eq!(plane.metric(&series("connections_total", address, TCP)), 1.0);
    plane.wait_metric(&series("connections_active", address, TCP), 0.0).await;
    assert_eq!(plane.metric(&series("connect_failures_total", address, TCP)), 0.0);
}

/// 300 concurrent connections, each with its own payload, across two endpoints.
#[tokio::test]
async fn three_hundred_concurrent_connections() {
    let a = tcp_echo(ip(11, 2), b"").await;
    let b = tcp_echo(ip(11, 3), b"").await;
    let address = free_tcp(ip(11, 1));
    let plane = Plane::new();
    plane.apply(vec![listener(TCP, address, vec![a, b])]).await;

    let clients: Vec<_> = (0..300)
        .map(|i| {
            tokio::spawn(async move {
                let payload = format!("connection {i};").repeat(200 + i);
                let mut stream = connect(address).await;
                stream.write_all(payload.as_bytes()).await.expect("write");
                stream.shutdown().await.expect("half-close");
                let mut back = Vec::new();
                stream.read_to_end(&mut back).await.expect("read");
                assert!(back == payload.as_bytes(), "connection {i} got another echo");
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(60), async {
        for client in clients {
            client.await.expect("client");
        }
    })
    .await
    .expect("all connections in time");
    assert_eq!(plane.metric(&series("connections_total", address, TCP)), 300.0);
    plane.wait_metric(&series("connections_active", address, TCP), 0.0).await;
}

/// An endpoint with nothing listening is skipped for a live one, and counted.
#[tokio::test]
async fn dead_endpoint_is_skipped() {
    let dead = free_tcp(ip(12, 2));
    let live = tcp_echo(ip(12, 3), b"").await;
    let address = free_tcp(ip(12, 1));
    let plane = Plane::new();
    plane.apply(vec![listener(TCP, address, vec![dead, live])]).await;
    for i in 0..4 {
        let mut stream = connect(address).await;
        echo_round(&mut stream, format!("round {i}").as_bytes()).await;
    }
    assert!(plane.metric(&series("connect_failures_total", address, TCP)) >= 1.0);
}

/// With only dead endpoints the client is closed after the attempts.
#[tokio::test]
async fn all_endpoints_dead_closes_client() {
    let dead = vec![free_tcp(ip(12, 12)), free_tcp(ip(12, 13))];
    let address = free_tcp(ip(12, 11));
    let plane = Plane::new();
    plane.apply(vec![listener(TCP, address, dead)]).await;
    let mut stream = connect(address).await;
    let mut buf = [0; 16];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(plane.metric(&series("connect_failures_total", address, TCP)), 2.0);
}

/// Accepts one connection on `ip` and returns it with the listening address.
async fn raw_backend(ip: std::net::Ipv4Addr) -> (SocketAddr, tokio::task::JoinHandle<TcpStream>) {
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
    let address = listener.local_addr().expect("addr");
    let accept = tokio::spawn(async move { listener.accept().await.expect("accept").0 });
    (address, accept)
}

/// A client on 127.0.13.9 connecting to 127.0.13.1:P; the backend reads the v1 header and
/// then the client's bytes.
#[tokio::test]
async fn proxy_protocol_v1() {
    let (backend, accepted) = raw_backend(ip(13, 2)).await;
    let address = free_tcp(ip(13, 1));
    let mut config = listener(TCP, address, vec![backend]);
    config.proxy_protocol = Some(ProxyProtocol::V1);
    let plane = Plane::new();
    plane.apply(vec![config]).await;

    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind((ip(13, 9), 0).into()).expect("bind client");
    let mut client = socket.connect(address).await.expect("connect");
    let source = client.local_addr().expect("addr");
    client.write_all(b"hello").await.expect("write");

    let mut upstream = tokio::time::timeout(WAIT, accepted).await.expect("accepted in time").expect("accept");
    let expected = format!("PROXY TCP4 127.0.13.9 127.0.13.1 {} {}\r\nhello", source.port(), address.port());
    let got = read_n(&mut upstream, expected.len()).await;
    assert_eq!(String::from_utf8_lossy(&got), expected);
    upstream.write_all(b"world").await.expect("reply");
    assert_eq!(read_n(&mut client, 5).await, b"world");
}

/// The same with the binary v2 header.
#[tokio::test]
async fn proxy_protocol_v2() {
    let (backend, accepted) = raw_backend(ip(14, 2)).await;
    let address = free_tcp(ip(14, 1));
    let mut config = listener(TCP, address, vec![backend]);
    config.proxy_protocol = Some(ProxyProtocol::V2);
    let plane = Plane::new();
    plane.apply(vec![config]).await;

    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind((ip(14, 9), 0).into()).expect("bind client");
    let mut client = socket.connect(address).await.expect("connect");
    let source = client.local_addr().expect("addr");
    client.write_all(b"hello").await.expect("write");

    let mut upstream = tokio::time::timeout(WAIT, accepted).await.expect("accepted in time").expect("accept");
    let header = read_n(&mut upstream, 28).await;
    assert_eq!(&header[..12], b"\r\n\r\n\0\r\nQUIT\n");
    assert_eq!(header[12], 0x21, "version 2, PROXY");
    assert_eq!(header[13], 0x11, "TCP over IPv4");
    assert_eq!(u16::from_be_bytes([header[14], header[15]]), 12);
    assert_eq!(&header[16..20], &[127, 0, 14, 9]);
    assert_eq!(&header[20..24], &[127, 0, 14, 1]);
    assert_eq!(u16::from_be_bytes([header[24], header[25]]), source.port());
    assert_eq!(u16::from_be_bytes([header[26], header[27]]), address.port());
    assert_eq!(read_n(&mut upstream, 5).await, b"hello");
}

/// A connection established to A keeps working after the endpoints become [B]; new
/// connections go to B.
#[tokio::test]
async fn endpoint_swap_keeps_established_connections() {
    let a = tcp_echo(ip(15, 2), b"A").await;
    let b = tcp_echo(ip(15, 3), b"B").await;
    let address = free_tcp(ip(15, 1));
    let plane = Plane::new();
    plane.apply(vec![listener(TCP, address, vec![a])]).await;

    let mut old = connect(address).await;
    assert_eq!(read_n(&mut old, 1).await, b"A");
    echo_round(&mut old, b"before").await;

    plane.apply(vec![listener(TCP, address, vec![b])]).await;
    for _ in 0..3 {
        let mut new = connect(address).await;
        assert_eq!(read_n(&mut new, 1).await, b"B");
        echo_round(&mut new, b"new").await;
    }
    echo_round(&mut old, b"after the swap").await;
    assert_eq!(plane.metric(&series("connections_total", address, TCP)), 4.0);
}

/// A key missing from the table stops accepting (connection refused) while an established
/// connection continues; adding it back binds it again.
#[tokio::test]
async fn removed_key_stops_accepting() {
    let backend = tcp_echo(ip(16, 2), b"").await;
    let address = free_tcp(ip(16, 1));
    let plane = Plane::new();
    plane.apply(vec![listener(TCP, address, vec![backend])]).await;
    let mut established = connect(address).await;
    echo_round(&mut established, b"one").await;

    plane.apply(vec![]).await;
    let refused = TcpStream::connect(address).await;
    assert_eq!(refused.expect_err("listener closed").kind(), ErrorKind::ConnectionRefused);
    echo_round(&mut established, b"still here").await;

    plane.apply(vec![listener(TCP, address, vec![backend])]).await;
    echo_round(&mut connect(address).await, b"back").await;
}

/// `stop_accepting` closes listeners but not connections.
#[tokio::test]
async fn stop_accepting_keeps_connections() {
    let backend = tcp_echo(ip(19, 2), b"").await;
    let address = free_tcp(ip(19, 1));
    let plane = Plane::new();
    plane.apply(vec![listener(TCP, address, vec![backend])]).await;
    let mut established = connect(address).await;
    echo_round(&mut established, b"one").await;

    plane.plane.stop_accepting();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match TcpStream::connect(address).await {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
            _ => assert!(tokio::time::Instant::now() < deadline, "still accepting"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    echo_round(&mut established, b"two").await;
}

/// Traffic keeps a connection open past the idle timeout; silence closes it.
#[tokio::test]
async fn idle_connection_is_closed() {
    let backend = tcp_echo(ip(17, 2), b"").await;
    let address = free_tcp(ip(17, 1));
    let mut config = listener(TCP, address, vec![backend]);
    config.idle_timeout = Duration::from_millis(300);
    let plane = Plane::new();
    plane.apply(vec![config]).await;

    let mut stream = connect(address).await;
    for i in 0..8 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        echo_round(&mut stream, format!("tick {i}").as_bytes()).await;
    }
    let quiet = tokio::time::Instant::now();
    let mut buf = [0; 16];
    let read = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await.expect("closed within 3 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(quiet.elapsed() >= Duration::from_millis(250), "closed too early");
    plane.wait_metric(&series("connections_active", address, TCP), 0.0).await;
}

/// `loadBalancerSourceRanges`: a client inside the ranges is relayed, one outside is closed
/// without a byte reaching the backend, and counted as refused.
#[tokio::test]
async fn source_ranges_admit_only_clients_inside() {
    let backend = tcp_echo(ip(13, 2), b"").await;
    let address = free_tcp(ip(13, 1));
    let plane = Plane::new();
    let mut config = listener(TCP, address, vec![backend]);
    config.source_ranges = Some(vec!["127.0.13.5/32".parse().expect("cidr")].into());
    plane.apply(vec![config]).await;

    let from = |last: u8| {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(SocketAddr::from(([127, 0, 13, last], 0))).expect("bind client address");
        socket
    };
    let mut inside = tokio::time::timeout(WAIT, from(5).connect(address)).await.expect("in time").expect("connect");
    inside.write_all(b"ping").await.expect("write");
    let mut echoed = [0u8; 4];
    tokio::time::timeout(WAIT, inside.read_exact(&mut echoed)).await.expect("in time").expect("echo");
    assert_eq!(&echoed, b"ping");

    let mut outside = tokio::time::timeout(WAIT, from(6).connect(address)).await.expect("in time").expect("connect");
    let _ = outside.write_all(b"ping").await;
    let mut buf = [0u8; 4];
    let read = tokio::time::timeout(WAIT, outside.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(read, Ok(0)) || read.is_err(), "the client outside got {read:?}");
    assert_eq!(plane.metric(&series("refused_total", address, TCP)), 1.0);
}
