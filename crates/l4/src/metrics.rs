//! Prometheus metrics of the L4 data plane, labelled by Service and `PORT/PROTOCOL`.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_config::{L4Listener, L4Protocol};

/// `service="ns/name", port="53/UDP"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Labels {
    service: Arc<str>,
    port: Arc<str>,
}

impl EncodeLabelSet for Labels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("service", &*self.service).encode(encoder.encode_label())?;
        ("port", &*self.port).encode(encoder.encode_label())
    }
}

/// [`Labels`] plus `direction="rx"|"tx"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ByteLabels {
    listener: Labels,
    direction: &'static str,
}

impl EncodeLabelSet for ByteLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.listener.encode(encoder)?;
        ("direction", self.direction).encode(encoder.encode_label())
    }
}

/// The L4 metrics, registered once into the process registry so that operators see the
/// connections, flows, bytes and failures of every LoadBalancer Service port.
#[derive(Debug)]
pub struct L4Metrics {
    connections: Family<Labels, Counter>,
    active: Family<Labels, Gauge>,
    bytes: Family<ByteLabels, Counter>,
    connect_failures: Family<Labels, Counter>,
    udp_flows_dropped: Family<Labels, Counter>,
    refused: Family<Labels, Counter>,
}

impl L4Metrics {
    /// Registers the metrics under the `l4` sub-prefix of `registry`, so that with the
    /// process registry's `sluice` prefix they are exported as `sluice_l4_*`.
    pub fn new(registry: &mut Registry) -> Self {
        let registry = registry.sub_registry_with_prefix("l4");
        let metrics = Self {
            connections: Family::default(),
            active: Family::default(),
            bytes: Family::default(),
            connect_failures: Family::default(),
            udp_flows_dropped: Family::default(),
            refused: Family::default(),
        };
        registry.register(
            "connections",
            "TCP connections accepted and UDP flows created, by Service and port",
            metrics.connections.clone(),
        );
        registry.register(
            "connections_active",
            "TCP connections and UDP flows currently open, by Service and port",
            metrics.active.clone(),
        );
        registry.register(
            "bytes",
            "Bytes relayed, rx from clients and tx to clients, by Service and port",
            metrics.bytes.clone(),
        );
        registry.register(
            "connect_failures",
            "Failed connections to endpoints, by Service and port",
            metrics.connect_failures.clone(),
        );
        registry.register(
            "udp_flows_dropped",
            "Datagrams from new UDP clients dropped because the listener had max_flows flows",
            metrics.udp_flows_dropped.clone(),
        );
        registry.register(
            "refused",
            "TCP connections and UDP datagrams refused because the client is outside the Service's loadBalancerSourceRanges",
            metrics.refused.clone(),
        );
        metrics
    }

    /// The metric handles of one listener, resolved once so that the hot path only touches
    /// atomics (no label hashing or allocation per connection or datagram).
    pub(crate) fn for_listener(&self, listener: &L4Listener) -> ListenerMetrics {
        let protocol = match listener.protocol {
            L4Protocol::Tcp => "TCP",
            L4Protocol::Udp => "UDP",
        };
        let service = format!("{}/{}", listener.service.namespace, listener.service.name);
        let labels =
            Labels { service: service.into(), port: format!("{}/{}", listener.address.port(), protocol).into() };
        let bytes = |direction| self.bytes.get_or_create_owned(&ByteLabels { listener: labels.clone(), direction });
        ListenerMetrics {
            rx: bytes("rx"),
            tx: bytes("tx"),
            connections: self.connections.get_or_create_owned(&labels),
            active: self.active.get_or_create_owned(&labels),
            connect_failures: self.connect_failures.get_or_create_owned(&labels),
            flows_dropped: self.udp_flows_dropped.get_or_create_owned(&labels),
            refused: self.refused.get_or_create_owned(&labels),
        }
    }
}

/// Handles into [`L4Metrics`] for one listener; clones share the same values.
#[derive(Debug, Clone)]
pub(crate) struct ListenerMetrics {
    /// Bytes from clients.
    pub rx: Counter,
    /// Bytes to clients.
    pub tx: Counter,
    connections: Counter,
    active: Gauge,
    /// Failed connects (TCP) or upstream socket setups (UDP).
    pub connect_failures: Counter,
    /// Datagrams from new clients dropped at the flow cap.
    pub flows_dropped: Counter,
    /// Clients outside the source ranges.
    pub refused: Counter,
}

impl ListenerMetrics {
    /// Counts a new connection or flow; it stays active until the guard is dropped.
    pub fn opened(&self) -> Active {
        self.connections.inc();
        self.active.inc();
        Active(self.active.clone())
    }
}

/// Counts one open TCP connection or UDP flow until dropped.
#[derive(Debug)]
pub(crate) struct Active(Gauge);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.dec();
    }
}
