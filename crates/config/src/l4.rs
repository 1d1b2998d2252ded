//! Layer-4 load balancing: a listener per Service address, port and protocol.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::{Announcements, Backend, IpNet, ObjectRef};

/// Transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum L4Protocol {
    /// TCP: a connection per client connection, bytes copied both ways.
    Tcp,
    /// UDP: a flow per client address, datagrams relayed both ways.
    Udp,
}

/// PROXY protocol header sent to the backend before the client's bytes
/// (annotation `sluice.dev/proxy-protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ProxyProtocol {
    /// The text header, `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header.
    V2,
}

/// One `IP:port/protocol` Sluice listens on for a Service of `type: LoadBalancer`.
#[derive(Debug, Clone)]
pub struct L4Listener {
    /// The Service.
    pub service: ObjectRef,
    /// The Service port's name (may be empty), for metrics and logs.
    pub port_name: String,
    /// The allocated address and the Service port.
    pub address: SocketAddr,
    /// TCP or UDP.
    pub protocol: L4Protocol,
    /// Where connections go: the Service's ready endpoints, or a route's weighted backends.
    pub backends: L4Backends,
    /// PROXY protocol towards the backend (TCP only).
    pub proxy_protocol: Option<ProxyProtocol>,
    /// A TCP connection or UDP flow idle this long is closed.
    pub idle_timeout: Duration,
    /// Most concurrent UDP flows for this listener; new clients beyond it are dropped.
    pub max_flows: usize,
    /// `spec.loadBalancerSourceRanges`: only clients in these may connect or send
    /// (`None`: everyone).
    pub source_ranges: Option<Arc<[IpNet]>>,
}

impl L4Listener {
    /// Whether a client at `ip` may use this listener.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = crate::canonical(ip);
        self.source_ranges.as_ref().is_none_or(|ranges| ranges.iter().any(|range| range.contains(&ip)))
    }
}

/// How traffic to a LoadBalancer address should be treated inside the cluster
/// (`status.loadBalancer.ingress[].ipMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum IpMode {
    /// kube-proxy may deliver in-cluster traffic for the address straight to the
    /// endpoints (the default).
    Vip,
    /// In-cluster traffic must go through Sluice too (it adds something: a PROXY protocol
    /// header, source ranges).
    Proxy,
}

impl IpMode {
    /// As written in the Service status.
    pub fn as_str(self) -> &'static str {
        match self {
            IpMode::Vip => "VIP",
            IpMode::Proxy => "Proxy",
        }
    }
}

/// The backends of an L4 listener: one (a LoadBalancer Service's endpoints), or several
/// chosen by weight for each connection or flow (a TCPRoute's or UDPRoute's backendRefs; a
/// share whose backend has no endpoints is refused, as Gateway API asks).
#[derive(Debug, Clone)]
pub struct L4Backends {
    choices: Box<[(Arc<Backend>, u32)]>,
    total: u64,
}

impl L4Backends {
    /// Every connection to `backend`.
    pub fn one(backend: Arc<Backend>) -> Self {
        Self::weighted(vec![(backend, 1)])
    }

    /// Connections shared by weight (a weight of 0 gets none).
    pub fn weighted(choices: Vec<(Arc<Backend>, u32)>) -> Self {
        let total = choices.iter().map(|(_, w)| u64::from(*w)).sum();
        Self { choices: choices.into(), total }
    }

    /// An endpoint for a new connection: a backend drawn by weight, then its next endpoint.
    pub fn pick(&self) -> Option<SocketAddr> {
        let backend = match &*self.choices {
            [(only, _)] => only,
            choices => {
                let mut ticket = fastrand::u64(..self.total.max(1));
                &choices
                    .iter()
                    .find(|(_, w)| match ticket.checked_sub(u64::from(*w)) {
                        Some(rest) => {
                            ticket = rest;
                            false
                        }
                        None => true,
                    })?
                    .0
            }
        };
        backend.pick()
    }

    /// Records a failed connect to `endpoint` (see [`Backend::connect_failed`]).
    pub fn connect_failed(&self, endpoint: SocketAddr) {
        for (backend, _) in self.choices.iter() {
            backend.connect_failed(endpoint);
        }
    }

    /// The first backend's label, for logs and metrics.
    pub fn label(&self) -> &str {
        self.choices.first().map_or("", |(b, _)| &b.label)
    }

    /// Every endpoint of every backend.
    pub fn endpoints(&self) -> impl Iterator<Item = &SocketAddr> {
        self.choices.iter().flat_map(|(b, _)| b.endpoints.iter())
    }

    /// How many endpoints there are in all (how many attempts a connection may make).
    pub fn endpoint_count(&self) -> usize {
        self.choices.iter().map(|(b, _)| b.endpoints.len()).sum()
    }

    /// The backends with their weights.
    pub fn choices(&self) -> &[(Arc<Backend>, u32)] {
        &self.choices
    }
}

/// Key of an [`L4Listener`]: what a socket is bound to.
pub type L4Key = (L4Protocol, SocketAddr);

/// Every L4 listener of a snapshot, and the addresses given to each Service.
#[derive(Debug, Default)]
pub struct L4Table {
    /// Listeners by protocol and address.
    pub listeners: BTreeMap<L4Key, L4Listener>,
    /// Addresses allocated to each LoadBalancer Service (its `status.loadBalancer.ingress`).
    pub addresses: BTreeMap<ObjectRef, Vec<IpAddr>>,
    /// Each Service's `ipMode` for its status.
    pub ip_modes: BTreeMap<ObjectRef, IpMode>,
    /// How the addresses are announced (L2, BGP), and to which peers.
    pub announcements: Announcements,
}
