//! UDP load balancing through an `L4Plane`, with real sockets on loopback.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use sluice_config::L4Protocol;
use tokio::io::AsyncWriteExt;

const UDP: L4Protocol = L4Protocol::Udp;
const REPLY: Duration = Duration::from_secs(5);
const NO_REPLY: Duration = Duration::from_millis(500);

/// Replies come from the listener's address; each client has its own flow (its own source
/// port towards the backend), kept across datagrams.
#[tokio::test]
async fn replies_come_from_the_listener_and_clients_get_own_flows() {
    let backend = udp_echo(ip(20, 2)).await;
    let address = free_udp(ip(20, 1));
    let plane = Plane::new();
    plane.apply(vec![listener(UDP, address, vec![backend])]).await;

    let mut peers = HashSet::new();
    for c in 0..3u8 {
        let client = udp_client(ip(20, 10 + c)).await;
        let (echo, peer, from) = udp_exchange(&client, address, &format!("c{c}"), REPLY).await.expect("reply");
        assert_eq!(echo, format!("c{c}"));
        assert_eq!(from, address, "reply must come from the Service address");
        let (_, again, from) = udp_exchange(&client, address, "again", REPLY).await.expect("second reply");
        assert_eq!(from, address);
        assert_eq!(again, peer, "a client keeps its flow");
        peers.insert(peer);
    }
    assert_eq!(peers.len(), 3, "one flow per client");
    assert_eq!(plane.metric(&series("connections_total", address, UDP)), 3.0);
    assert_eq!(plane.metric(&series("connections_active", address, UDP)), 3.0);
    let labels = format!("service=\"ns/svc\",port=\"{}/UDP\"", address.port());
    // "c0" + "again" per client, three clients.
    let rx = plane.metric(&format!("sluice_l4_bytes_total{{{labels},direction=\"rx\"}}"));
    assert_eq!(rx, 3.0 * 7.0);
    assert!(plane.metric(&format!("sluice_l4_bytes_total{{{labels},direction=\"tx\"}}")) > rx);
}

/// With max_flows = 2 a third client gets no reply and the drop is counted.
#[tokio::test]
async fn flow_cap_drops_new_clients() {
    let backend = udp_echo(ip(21, 2)).await;
    let address = free_udp(ip(21, 1));
    let mut config = listener(UDP, address, vec![backend]);
    config.max_flows = 2;
    let plane = Plane::new();
    plane.apply(vec![config]).await;

    let one = udp_client(ip(21, 10)).await;
    let two = udp_client(ip(21, 11)).await;
    let three = udp_client(ip(21, 12)).await;
    assert!(udp_exchange(&one, address, "1", REPLY).await.is_some());
    assert!(udp_exchange(&two, address, "2", REPLY).await.is_some());
    assert!(udp_exchange(&three, address, "3", NO_REPLY).await.is_none());
    assert_eq!(plane.metric(&series("udp_flows_dropped_total", address, UDP)), 1.0);
    assert!(udp_exchange(&one, address, "1 again", REPLY).await.is_some());
    assert_eq!(plane.metric(&series("connections_active", address, UDP)), 2.0);
}

/// An idle flow expires; the client's next datagram starts a new one.
#[tokio::test]
async fn idle_flow_expires() {
    let backend = udp_echo(ip(24, 2)).await;
    let address = free_udp(ip(24, 1));
    let mut config = listener(UDP, address, vec![backend]);
    config.idle_timeout = Duration::from_millis(300);
    let plane = Plane::new();
    plane.apply(vec![config]).await;

    let client = udp_client(ip(24, 10)).await;
    assert!(udp_exchange(&client, address, "a", REPLY).await.is_some());
    assert_eq!(plane.metric(&series("connections_active", address, UDP)), 1.0);
    plane.wait_metric(&series("connections_active", address, UDP), 0.0).await;
    assert!(udp_exchange(&client, address, "b", REPLY).await.is_some());
    assert_eq!(plane.metric(&series("connections_total", address, UDP)), 2.0);
}

/// A removed UDP key keeps serving its existing flows but creates no new ones; when the key
/// comes back the same socket accepts again.
#[tokio::test]
async fn removed_key_drains_flows() {
    let backend = udp_echo(ip(23, 2)).await;
    let address = free_udp(ip(23, 1));
    let plane = Plane::new();
    plane.apply(vec![listener(UDP, address, vec![backend])]).await;

    let old = udp_client(ip(23, 10)).await;
    let new = udp_client(ip(23, 11)).await;
    assert!(udp_exchange(&old, address, "x", REPLY).await.is_some());
    plane.apply(vec![]).await;
    assert!(udp_exchange(&old, address, "y", REPLY).await.is_some());
    assert!(udp_exchange(&new, address, "z", NO_REPLY).await.is_none());
    assert_eq!(plane.metric(&series("udp_flows_dropped_total", address, UDP)), 0.0);

    plane.apply(vec![listener(UDP, address, vec![backend])]).await;
    assert!(udp_exchange(&new, address, "z", REPLY).await.is_some());
}

/// TCP and UDP listeners on the same address and port at once.
#[tokio::test]
async fn tcp_and_udp_on_the_same_port() {
    let tcp_backend = tcp_echo(ip(22, 2), b"").await;
    let udp_backend = udp_echo(ip(22, 2)).await;
    let port = free_both(ip(22, 1));
    let address = (ip(22, 1), port).into();
    let plane = Plane::new();
    plane
        .apply(vec![listener(L4Protocol::Tcp, address, vec![tcp_backend]), listener(UDP, address, vec![udp_backend])])
        .await;

    let client = udp_client(ip(22, 10)).await;
    let (echo, _, from) = udp_exchange(&client, address, "dgram", REPLY).await.expect("udp reply");
    assert_eq!((echo.as_str(), from), ("dgram", address));
    let mut stream = tokio::net::TcpStream::connect(address).await.expect("connect");
    echo_round(&mut stream, b"stream").await;
    stream.shutdown().await.expect("shutdown");
}
