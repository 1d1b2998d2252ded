//! Prometheus metrics of the layer-2 announcer: answers and announcements per interface, and
//! how many addresses are answered for.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::responder::Protocol;

/// `interface="eth0"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct InterfaceLabels {
    interface: Arc<str>,
}

impl EncodeLabelSet for InterfaceLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("interface", &*self.interface).encode(encoder.encode_label())
    }
}

/// [`InterfaceLabels`] plus `family="ipv4"|"ipv6"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FamilyLabels {
    interface: InterfaceLabels,
    family: &'static str,
}

impl EncodeLabelSet for FamilyLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.interface.encode(encoder)?;
        ("family", self.family).encode(encoder.encode_label())
    }
}

/// The announcer's metrics, registered once so operators can see which node answers for the
/// LoadBalancer addresses and on which interfaces; clones share the same values.
#[derive(Debug, Clone)]
pub(crate) struct AnnounceMetrics {
    arp_replies: Family<InterfaceLabels, Counter>,
    ndp_replies: Family<InterfaceLabels, Counter>,
    gratuitous: Family<FamilyLabels, Counter>,
    addresses: Gauge,
}

impl AnnounceMetrics {
    /// Registers the metrics under the `announce` sub-prefix of `registry` (`sluice_announce_*`
    /// with the process registry's prefix).
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let registry = registry.sub_registry_with_prefix("announce");
        let metrics = Self {
            arp_replies: Family::default(),
            ndp_replies: Family::default(),
            gratuitous: Family::default(),
            addresses: Gauge::default(),
        };
        registry.register(
            "arp_replies",
            "ARP replies sent for LoadBalancer addresses, by interface",
            metrics.arp_replies.clone(),
        );
        registry.register(
            "ndp_replies",
            "Solicited neighbour advertisements sent for LoadBalancer addresses, by interface",
            metrics.ndp_replies.clone(),
        );
        registry.register(
            "gratuitous_sent",
            "Gratuitous ARP frames and unsolicited neighbour advertisements sent, by interface and family",
            metrics.gratuitous.clone(),
        );
        registry.register("addresses", "LoadBalancer addresses this node answers for", metrics.addresses.clone());
        metrics
    }

    /// Counts one answer to a request on `interface`.
    pub(crate) fn replied(&self, protocol: Protocol, interface: &str) {
        let labels = InterfaceLabels { interface: interface.into() };
        match protocol {
            Protocol::Arp => self.arp_replies.get_or_create(&labels).inc(),
            Protocol::Ndp => self.ndp_replies.get_or_create(&labels).inc(),
        };
    }

    /// Counts `packets` gratuitous announcements sent on `interface`.
    pub(crate) fn announced(&self, protocol: Protocol, interface: &str, packets: u64) {
        let family = match protocol {
            Protocol::Arp => "ipv4",
            Protocol::Ndp => "ipv6",
        };
        let labels = FamilyLabels { interface: InterfaceLabels { interface: interface.into() }, family };
        self.gratuitous.get_or_create(&labels).inc_by(packets);
    }

    /// Sets how many addresses are answered for.
    pub(crate) fn set_addresses(&self, count: usize) {
        self.addresses.set(i64::try_from(count).unwrap_or(i64::MAX));
    }
}
