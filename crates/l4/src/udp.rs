//! UDP: one flow per client address, each with its own connected upstream socket; replies
//! are sent from the listener socket so they come from the Service address.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use socket2::{SockAddr, SockRef};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};

use crate::idle::Activity;
use crate::metrics::Active;
use crate::plane::Current;
use crate::socket::connect_udp;

/// Largest UDP payload, so no datagram is truncated.
const MAX_DATAGRAM: usize = 65_536;
/// Most replies relayed per wake-up of a flow before yielding to other flows.
const REPLY_BATCH: usize = 64;
/// Pause after an unexpected receive error, so a persistent one does not spin.
const RECV_BACKOFF: Duration = Duration::from_millis(10);

thread_local! {
    /// Reply buffer shared by all flows on a worker thread; used only between two awaits.
    static REPLY_BUFFER: RefCell<Box<[u8]>> =
        RefCell::new(vec![0; MAX_DATAGRAM].into_boxed_slice());
}

/// Whether a UDP listener creates new flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serving existing flows and creating new ones.
    Accepting,
    /// Serving existing flows only; the socket closes when the last one expires.
    Draining,
    /// The receive loop has ended (or is about to): the address must be bound anew.
    Closed,
}

/// Shared between the plane and a UDP listener's receive loop.
#[derive(Debug)]
pub(crate) struct UdpControl {
    /// Configuration for new flows.
    current: ArcSwap<Current>,
    phase: Mutex<Phase>,
    changed: Notify,
}

impl UdpControl {
    pub fn new(current: Arc<Current>) -> Self {
        Self { current: ArcSwap::new(current), phase: Mutex::new(Phase::Accepting), changed: Notify::new() }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `current` to the loop for new flows and (re)starts accepting. Returns `false`
    /// when the loop has closed: the caller binds a new socket.
    pub fn resume(&self, current: Arc<Current>) -> bool {
        let mut phase = self.phase();
        if *phase == Phase::Closed {
            return false;
        }
        self.current.store(current);
        *phase = Phase::Accepting;
        true
    }

    /// Stops creating flows; the socket closes once the existing ones expire.
    pub fn drain(&self) {
        let mut phase = self.phase();
        if *phase == Phase::Accepting {
            *phase = Phase::Draining;
            self.changed.notify_one();
        }
    }

    /// Whether the loop has closed its socket (or is about to).
    pub fn is_closed(&self) -> bool {
        *self.phase() == Phase::Closed
    }

    fn accepting(&self) -> bool {
        *self.phase() == Phase::Accepting
    }

    /// Moves a draining listener without flows to closed; the loop then ends.
    fn close_if_drained(&self, no_flows: bool) -> bool {
        let mut phase = self.phase();
        if *phase == Phase::Draining && no_flows {
            *phase = Phase::Closed;
        }
        *phase == Phase::Closed
    }
}

/// What the receive loop and a flow's reply task share.
#[derive(Debug)]
struct Flow {
    upstream: UdpSocket,
    activity: Activity,
    /// Set by the reply task when it ends; the flow must not be used after that.
    closed: AtomicBool,
    state: Arc<Current>,
    /// Bytes from and to the client, and when the flow began, for its access log line.
    rx: AtomicU64,
    tx: AtomicU64,
    started: (std::time::SystemTime, std::time::Instant),
}

/// A flow in the table, tagged so that a late "ended" message for an earlier flow of the
/// same client does not remove a newer one.
#[derive(Debug)]
struct Entry {
    id: u64,
    flow: Arc<Flow>,
}

/// Receives datagrams on the listener socket and relays them to each client's flow until the
/// listener is drained and its last flow has expired.
///
/// Datagrams are sent with plain non-blocking `send`/`sendto` on the socket rather than
/// Tokio's `try_send`, which reports `WouldBlock` from its readiness cache for a socket whose
/// first writable event the reactor has not yet seen (every new flow's first datagram).
pub(crate) async fn receive_loop(socket: UdpSocket, control: Arc<UdpControl>) {
    let socket = Arc::new(socket);
    let mut flows: HashMap<SocketAddr, Entry> = HashMap::new();
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel::<(SocketAddr, u64)>();
    let mut next_id: u64 = 0;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, client)) => {
                    let datagram = buf.get(..n).unwrap_or_default();
                    let state = control.current.load();
                    if !state.config.admits(client.ip()) {
                        // Outside spec.loadBalancerSourceRanges: dropped, checked on every
                        // datagram so that a narrowed list applies to running flows too.
                        state.metrics.refused.inc();
                        continue;
                    }
                    let Some(flow) = flow_for(&mut flows, client, &control, &socket, &ended_tx, &mut next_id) else {
                        continue;
                    };
                    flow.activity.touch();
                    // A full send buffer or an ICMP error from an earlier datagram: UDP may drop.
                    if SockRef::from(&flow.upstream).send(datagram).is_ok() {
                        flow.state.metrics.rx.inc_by(n as u64);
                        flow.rx.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "l4: UDP receive failed");
                    tokio::time::sleep(RECV_BACKOFF).await;
                }
            },
            Some((client, id)) = ended_rx.recv() => {
                if flows.get(&client).is_some_and(|entry| entry.id == id) {
                    flows.remove(&client);
                }
                if control.close_if_drained(flows.is_empty()) {
                    break;
                }
            }
            () = control.changed.notified() => {
                if control.close_if_drained(flows.is_empty()) {
                    break;
                }
            }
        }
    }
}

/// The live flow of `client`, creating it when the listener accepts new flows, is below its
/// flow cap and has an endpoint.
fn flow_for<'a>(
    flows: &'a mut HashMap<SocketAddr, Entry>,
    client: SocketAddr,
    control: &UdpControl,
    listener: &Arc<UdpSocket>,
    ended: &mpsc::UnboundedSender<(SocketAddr, u64)>,
    next_id: &mut u64,
) -> Option<&'a Flow> {
    if flows.get(&client).is_some_and(|entry| entry.flow.closed.load(Ordering::Acquire)) {
        flows.remove(&client);
    }
    if !flows.contains_key(&client) {
        if !control.accepting() {
            return None;
        }
        let state = control.current.load_full();
        if flows.len() >= state.config.max_flows {
            state.metrics.flows_dropped.inc();
            return None;
        }
        let endpoint = state.config.backends.pick()?;
        let upstream = match connect_udp(endpoint) {
            Ok(upstream) => upstream,
            Err(error) => {
                tracing::debug!(%endpoint, %error, "l4: opening a UDP upstream socket failed");
                state.metrics.connect_failures.inc();
                return None;
            }
        };
        let active = state.metrics.opened();
        let flow = Arc::new(Flow {
            upstream,
            activity: Activity::new(),
            closed: AtomicBool::new(false),
            state,
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
            started: (std::time::SystemTime::now(), std::time::Instant::now()),
        });
        *next_id = next_id.wrapping_add(1);
        let id = *next_id;
        tokio::spawn(reply_loop(flow.clone(), listener.clone(), client, active, ended.clone(), id));
        flows.insert(client, Entry { id, flow });
    }
    flows.get(&client).map(|entry| &*entry.flow)
}

/// Relays the endpoint's replies to `client` from the listener socket until the flow has been
/// idle for the listener's idle timeout.
async fn reply_loop(
    flow: Arc<Flow>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    active: Active,
    ended: mpsc::UnboundedSender<(SocketAddr, u64)>,
    id: u64,
) {
    let timeout = flow.state.config.idle_timeout;
    let client_address = SockAddr::from(client);
    let expiry = tokio::time::sleep_until(flow.activity.deadline(timeout));
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            ready = flow.upstream.readable() => {
                if ready.is_err() || relay_replies(&flow, &listener, &client_address).is_err() {
                    break;
                }
            }
            () = &mut expiry => {
                if flow.activity.idle_for() >= timeout && !timeout.is_zero() {
                    break;
                }
                expiry.as_mut().reset(flow.activity.deadline(timeout));
            }
        }
    }
    // Release the listener socket before reporting the end, so that once the receive loop
    // has no flows left nothing else holds the address.
    drop(listener);
    drop(active);
    flow.closed.store(true, Ordering::Release);
    let state = &flow.state;
    if state.log.enabled() {
        state.log.write_stream(&sluice_access_log::StreamEntry {
            time: flow.started.0,
            protocol: "UDP",
            client,
            listener: state.config.address,
            service: format!("{}/{}", state.config.service.namespace, state.config.service.name).into(),
            upstream: flow.upstream.peer_addr().ok(),
            bytes_in: flow.rx.load(Ordering::Relaxed),
            bytes_out: flow.tx.load(Ordering::Relaxed),
            duration: flow.started.1.elapsed(),
        });
    }
    let _ = ended.send((client, id));
}

/// Sends the replies waiting on the flow's upstream socket to the client, without awaiting.
fn relay_replies(flow: &Flow, listener: &UdpSocket, client: &SockAddr) -> io::Result<()> {
    REPLY_BUFFER.with_borrow_mut(|buf| {
        for _ in 0..REPLY_BATCH {
            match flow.upstream.try_recv(buf) {
                Ok(n) => {
                    flow.activity.touch();
                    let reply = buf.get(..n).unwrap_or_default();
                    // A full send buffer drops the reply, as the network might.
                    if SockRef::from(listener).send_to(reply, client).is_ok() {
                        flow.state.metrics.tx.inc_by(n as u64);
                        flow.tx.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // ICMP port unreachable from the endpoint: keep the flow, it may come back.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}
