//! Layer-4 load balancing: a listener per Service address, port and protocol.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::{Backend, ObjectRef};

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
    /// The ready endpoints (the EndpointSlice port matching the Service port by name).
    pub backend: Arc<Backend>,
    /// PROXY protocol towards the backend (TCP only).
    pub proxy_protocol: Option<ProxyProtocol>,
    /// A TCP connection or UDP flow idle this long is closed.
    pub idle_timeout: Duration,
    /// Most concurrent UDP flows for this listener; new clients beyond it are dropped.
    pub max_flows: usize,
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
}
