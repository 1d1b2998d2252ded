//! Prometheus metrics of the BGP sessions, labelled by peer (`namespace/name` of the BGPPeer).

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// `peer="namespace/name"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PeerLabel {
    peer: Arc<str>,
}

impl EncodeLabelSet for PeerLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("peer", &*self.peer).encode(encoder.encode_label())
    }
}

/// The metric families, registered once into the process registry.
#[derive(Debug, Default)]
pub(crate) struct BgpMetrics {
    session_up: Family<PeerLabel, Gauge>,
    announced_prefixes: Family<PeerLabel, Gauge>,
    updates_sent: Family<PeerLabel, Counter>,
    session_established: Family<PeerLabel, Counter>,
    notifications_received: Family<PeerLabel, Counter>,
}

impl BgpMetrics {
    /// Registers under the `bgp` sub-prefix: with the process registry's `sluice` prefix the
    /// names are `sluice_bgp_*`.
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let registry = registry.sub_registry_with_prefix("bgp");
        let metrics = Self::default();
        registry.register("session_up", "1 while the BGP session is Established", metrics.session_up.clone());
        registry.register(
            "announced_prefixes",
            "Prefixes the peer has from us now",
            metrics.announced_prefixes.clone(),
        );
        registry.register("updates_sent", "UPDATE messages sent", metrics.updates_sent.clone());
        registry.register(
            "session_established",
            "Times the session became Established",
            metrics.session_established.clone(),
        );
        registry.register(
            "notifications_received",
            "NOTIFICATION messages received from the peer",
            metrics.notifications_received.clone(),
        );
        metrics
    }

    /// The handles of one peer, resolved once for its session task.
    pub(crate) fn for_peer(&self, peer: &str) -> PeerMetrics {
        let label = PeerLabel { peer: peer.into() };
        PeerMetrics {
            session_up: self.session_up.get_or_create_owned(&label),
            announced_prefixes: self.announced_prefixes.get_or_create_owned(&label),
            updates_sent: self.updates_sent.get_or_create_owned(&label),
            session_established: self.session_established.get_or_create_owned(&label),
            notifications_received: self.notifications_received.get_or_create_owned(&label),
        }
    }

    /// Drops the series of a peer that is no longer configured.
    pub(crate) fn remove_peer(&self, peer: &str) {
        let label = PeerLabel { peer: peer.into() };
        self.session_up.remove(&label);
        self.announced_prefixes.remove(&label);
        self.updates_sent.remove(&label);
        self.session_established.remove(&label);
        self.notifications_received.remove(&label);
    }
}

/// Handles into [`BgpMetrics`] for one peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerMetrics {
    pub(crate) session_up: Gauge,
    pub(crate) announced_prefixes: Gauge,
    pub(crate) updates_sent: Counter,
    pub(crate) session_established: Counter,
    pub(crate) notifications_received: Counter,
}
