//! The issuer's Prometheus metrics: orders by outcome, and when each managed host's
//! certificate expires (for alerts well before it does).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sluice_config::ManagedCertificate;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HostLabels {
    secret: String,
    host: String,
}

/// `sluice_acme_orders_total{result}` and `sluice_acme_certificate_expiry_timestamp_seconds`.
#[derive(Debug, Clone)]
pub struct AcmeMetrics {
    orders: Family<ResultLabel, Counter>,
    expiry: Family<HostLabels, Gauge>,
}

/// How an order ended, as the `result` label says it.
#[derive(Debug, Clone, Copy)]
pub enum OrderResult {
    /// A certificate was issued and stored.
    Issued,
    /// The order failed (CA unreachable, validation failed, timeout…).
    Failed,
    /// Issued, but it could not be stored.
    StoreFailed,
}

impl AcmeMetrics {
    /// Registers the metrics in `registry` (prefix `sluice_` comes from it).
    pub fn new(registry: &mut Registry) -> Self {
        let orders = Family::default();
        registry.register(
            "acme_orders",
            "ACME certificate orders by result (issued, failed, store_failed)",
            orders.clone(),
        );
        let expiry = Family::default();
        registry.register(
            "acme_certificate_expiry_timestamp_seconds",
            "When the certificate Sluice manages for a host expires (Unix time), by Secret and host",
            expiry.clone(),
        );
        Self { orders, expiry }
    }

    /// Counts one order.
    pub fn order(&self, result: OrderResult) {
        let result = match result {
            OrderResult::Issued => "issued",
            OrderResult::Failed => "failed",
            OrderResult::StoreFailed => "store_failed",
        };
        self.orders.get_or_create(&ResultLabel { result }).inc();
    }

    /// Sets the expiry series to the stored certificates of `managed`, dropping the others.
    pub fn expiries(&self, managed: &[ManagedCertificate]) {
        self.expiry.clear();
        for certificate in managed {
            let Some(current) = &certificate.current else { continue };
            let seconds = current.not_after.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            for host in &certificate.names {
                let secret = format!("{}/{}", certificate.secret.namespace, certificate.secret.name);
                let labels = HostLabels { secret, host: host.clone() };
                self.expiry.get_or_create(&labels).set(i64::try_from(seconds).unwrap_or(i64::MAX));
            }
        }
    }
}
