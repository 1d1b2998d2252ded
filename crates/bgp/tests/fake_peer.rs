//! The speaker against a fake peer (a Tokio listener in the node's namespace) that answers
//! with garbage, truncated messages, the wrong AS, a NOTIFICATION, or goes silent: the
//! speaker answers with the right NOTIFICATION, reports why, and reconnects (its task did
//! not panic).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{peer, route, session, Node, WAIT};
use sluice_bgp::{SessionConfig, SessionState};
use sluice_testnet::{require_netns, wait_until};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PEER_AS: u32 = 64513;
const NAME: &str = "default/fake";

/// What the fake peer sends after reading the speaker's OPEN.
#[derive(Clone, Copy)]
enum Behaviour {
    Garbage,
    CutMidMessage,
    ShortOpen,
    WrongAs,
    Notification,
    SilentAfterOpen,
}

/// One connection as the fake peer saw it: the messages the speaker sent (type, body), and
/// when each arrived.
#[derive(Clone, Debug, Default)]
struct Seen {
    messages: Vec<(u8, Vec<u8>, Instant)>,
    replied_at: Option<Instant>,
}

impl Seen {
    fn notification(&self) -> Option<(u8, u8, Instant)> {
        self.messages.iter().find(|(kind, ..)| *kind == 3).map(|(_, body, at)| (body[0], body[1], *at))
    }

    fn count(&self, kind: u8) -> usize {
        self.messages.iter().filter(|(k, ..)| *k == kind).count()
    }
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0xff; 16];
    bytes.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    bytes.push(kind);
    bytes.extend_from_slice(body);
    bytes
}

/// An OPEN with the 4-octet AS capability carrying `asn`.
fn open(asn: u32, hold: u16) -> Vec<u8> {
    let mut body = vec![4];
    body.extend_from_slice(&u16::try_from(asn).unwrap_or(23456).to_be_bytes());
    body.extend_from_slice(&hold.to_be_bytes());
    body.extend_from_slice(&[198, 18, 9, 1]);
    let mut capability = vec![2, 6, 65, 4];
    capability.extend_from_slice(&asn.to_be_bytes());
    body.push(u8::try_from(capability.len()).unwrap());
    body.extend_from_slice(&capability);
    message(1, &body)
}

async fn read_message(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 19];
    stream.read_exact(&mut header).await.ok()?;
    let length = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let mut body = vec![0u8; length.checked_sub(19)?];
    stream.read_exact(&mut body).await.ok()?;
    Some((header[18], body))
}

async fn serve(listener: TcpListener, behaviour: Behaviour, log: Arc<Mutex<Vec<Seen>>>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let log = log.clone();
        tokio::spawn(async move {
            let mut seen = Seen::default();
            if let Some((kind, body)) = read_message(&mut stream).await {
                seen.messages.push((kind, body, Instant::now()));
            }
            let reply = match behaviour {
                Behaviour::Garbage => b"GET / HTTP/1.1\r\nHost: bgp\r\n\r\n".to_vec(),
                Behaviour::CutMidMessage => message(1, &[4; 40])[..30].to_vec(),
                Behaviour::ShortOpen => message(1, &[4, 0]),
                Behaviour::WrongAs => open(64999, 90),
                Behaviour::Notification => message(3, &[6, 5]),
                Behaviour::SilentAfterOpen => [open(PEER_AS, 3), message(4, &[])].concat(),
            };
            let _ = stream.write_all(&reply).await;
            seen.replied_at = Some(Instant::now());
            if matches!(behaviour, Behaviour::CutMidMessage) {
                drop(stream);
            } else {
                let deadline = tokio::time::sleep(Duration::from_secs(10));
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        () = &mut deadline => break,
                        message = read_message(&mut stream) => match message {
                            Some((kind, body)) => seen.messages.push((kind, body, Instant::now())),
                            None => break,
                        },
                    }
                }
            }
            log.lock().unwrap().push(seen);
        });
    }
}

/// A node with the fake peer on 198.18.9.1 (its loopback) and the speaker peering with it.
fn start(behaviour: Behaviour, config: SessionConfig) -> (Node, Arc<Mutex<Vec<Seen>>>) {
    let node = Node::new("bgfk");
    node.ns.address("lo", "198.18.9.1/32").unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let listener = node.block_on(node.spawn(TcpListener::bind("198.18.9.1:179"))).unwrap().unwrap();
    node.spawn(serve(listener, behaviour, log.clone()));
    node.apply(vec![peer(NAME, config, vec![route("198.18.100.10/32", &[], None)])]);
    (node, log)
}

fn fake_session() -> SessionConfig {
    session("198.18.9.1", PEER_AS, 64512)
}

/// Waits for two finished connections (the speaker reset and came back) and returns them.
fn two_connections(log: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
    assert!(wait_until(WAIT, || log.lock().unwrap().len() >= 2), "the speaker did not reconnect");
    log.lock().unwrap().clone()
}

fn last_error(node: &Node) -> String {
    node.status(NAME).last_error.unwrap_or_default()
}

#[test]
fn garbage_gets_a_header_notification_and_a_reset() {
    require_netns!();
    let (node, log) = start(Behaviour::Garbage, fake_session());
    let seen = two_connections(&log);
    assert_eq!(seen[0].messages[0].0, 1, "the speaker opened with an OPEN");
    assert_eq!(seen[0].notification().map(|(code, subcode, _)| (code, subcode)), Some((1, 1)));
    let error = last_error(&node);
    assert!(error.contains("marker") && error.contains("Connection Not Synchronized"), "{error}");
    assert_ne!(node.status(NAME).state, SessionState::Established);
}

#[test]
fn truncated_messages_reset_the_session_with_a_reason() {
    require_netns!();
    let (node, log) = start(Behaviour::CutMidMessage, fake_session());
    two_connections(&log);
    let error = last_error(&node);
    assert!(error.contains("closed the connection in the middle of a message"), "{error}");

    let (node, log) = start(Behaviour::ShortOpen, fake_session());
    let seen = two_connections(&log);
    assert_eq!(seen[0].notification().map(|(code, _, _)| code), Some(2), "OPEN Message Error");
    let error = last_error(&node);
    assert!(error.contains("OPEN") && error.contains("sent NOTIFICATION OPEN Message Error"), "{error}");
}

#[test]
fn an_open_with_the_wrong_as_gets_bad_peer_as() {
    require_netns!();
    let (node, log) = start(Behaviour::WrongAs, fake_session());
    let seen = two_connections(&log);
    assert_eq!(seen[0].notification().map(|(code, subcode, _)| (code, subcode)), Some((2, 2)));
    let error = last_error(&node);
    assert!(error.contains("AS 64999") && error.contains("Bad Peer AS"), "{error}");
}

#[test]
fn a_notification_from_the_peer_is_reported_with_its_meaning() {
    require_netns!();
    let (node, log) = start(Behaviour::Notification, fake_session());
    two_connections(&log);
    let error = last_error(&node);
    assert!(error.contains("the peer sent NOTIFICATION Cease/Connection Rejected (6/5)"), "{error}");
    let received = node.metric("sluice_bgp_notifications_received_total{peer=\"default/fake\"}");
    assert!(received.is_some_and(|n| n >= 2.0), "{}", node.metrics());
    assert_eq!(node.metric("sluice_bgp_session_up{peer=\"default/fake\"}"), Some(0.0));
}

#[test]
fn a_silent_peer_is_caught_by_the_hold_timer_within_the_hold_time() {
    require_netns!();
    let config = SessionConfig { hold_time: Duration::from_secs(3), ..fake_session() };
    let (node, log) = start(Behaviour::SilentAfterOpen, config);
    assert!(node.wait_established(NAME), "{:?}", node.status(NAME));
    let seen = two_connections(&log);
    let first = &seen[0];
    let (code, subcode, at) = first.notification().expect("no NOTIFICATION");
    assert_eq!((code, subcode), (4, 0), "Hold Timer Expired");
    let silence = at.duration_since(first.replied_at.unwrap());
    assert!(silence >= Duration::from_millis(2500) && silence < Duration::from_millis(4500), "after {silence:?}");
    assert!(first.count(4) >= 2, "KEEPALIVEs every second meanwhile: {first:?}");
    assert!(first.count(2) >= 1, "the route was announced: {first:?}");
    assert!(last_error(&node).contains("hold timer expired"), "{}", last_error(&node));
}
