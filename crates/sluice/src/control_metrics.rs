//! Metrics of the control plane: reloads, the objects being served, and what the snapshot
//! being served says about them (diagnostics by severity, each backend's ready endpoints).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sluice_config::{Severity, Snapshot};

use crate::pipeline::BuildKind;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SeverityLabel {
    severity: &'static str,
}

/// `service="namespace/name:port"`, the same value as `sluice_http_requests_total`'s.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabel {
    service: String,
}

type HistogramFamily = Family<KindLabel, Histogram, fn() -> Histogram>;

fn reload_histogram() -> Histogram {
    // 0.1 ms to ~3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Reload duration, reload errors and objects by kind.
#[derive(Debug)]
pub struct ControlMetrics {
    reload_duration: HistogramFamily,
    reload_errors: Counter,
    objects: Family<KindLabel, Gauge>,
    failing_files: Gauge,
    diagnostics: Family<SeverityLabel, Gauge>,
    backend_endpoints: Family<ServiceLabel, Gauge>,
    /// The backend labels set in `backend_endpoints`, to drop those of backends gone.
    backend_labels: Mutex<BTreeSet<Arc<str>>>,
}

impl ControlMetrics {
    /// Registers the metrics in `registry` (prefix `sluice_` comes from it).
    pub fn new(registry: &mut Registry) -> Self {
        let reload_duration: HistogramFamily = Family::new_with_constructor(reload_histogram);
        registry.register(
            "reload_duration_seconds",
            "Time from a change being noticed to the new snapshot serving, by kind of build (full, endpoints, diagnostics)",
            reload_duration.clone(),
        );
        let reload_errors = Counter::default();
        registry.register(
            "reload_errors",
            "Manifest files that failed to parse on a reload (their last good objects keep serving)",
            reload_errors.clone(),
        );
        let objects = Family::default();
        registry.register("objects", "Objects in the store, by kind", objects.clone());
        let failing_files = Gauge::default();
        registry.register(
            "manifest_files_failing",
            "Manifest files whose current version does not parse",
            failing_files.clone(),
        );
        let diagnostics = Family::default();
        registry.register(
            "config_diagnostics",
            "Problems in the configuration being served, by severity: error (a resource or part of it rejected, not served as written) or warning (served, something ignored)",
            diagnostics.clone(),
        );
        let backend_endpoints = Family::default();
        registry.register(
            "backend_ready_endpoints",
            "Ready endpoints of each backend (Service port) routes send to; 0 means its requests get 503",
            backend_endpoints.clone(),
        );
        Self {
            reload_duration,
            reload_errors,
            objects,
            failing_files,
            diagnostics,
            backend_endpoints,
            backend_labels: Mutex::default(),
        }
    }

    /// Records one reload.
    pub fn reloaded(&self, kind: BuildKind, seconds: f64, failed_files: usize) {
        let kind = match kind {
            BuildKind::Full => "full",
            BuildKind::Endpoints => "endpoints",
            BuildKind::Diagnostics => "diagnostics",
        };
        self.reload_duration.get_or_create(&KindLabel { kind }).observe(seconds);
        self.reload_errors.inc_by(failed_files as u64);
    }

    /// Records a reload whose files all failed to parse (no new snapshot).
    pub fn failed(&self, failed_files: usize) {
        self.reload_errors.inc_by(failed_files as u64);
    }

    /// Sets object counts and failing files.
    pub fn set_objects(&self, counts: &[(&'static str, usize)], failing_files: usize) {
        for (kind, count) in counts {
            self.objects.get_or_create(&KindLabel { kind }).set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        self.failing_files.set(i64::try_from(failing_files).unwrap_or(i64::MAX));
    }

    /// Sets the diagnostics and backend gauges from the snapshot now being served.
    pub fn served(&self, snapshot: &Snapshot) {
        let errors = snapshot.diagnostics.iter().filter(|d| d.severity == Severity::Error).count();
        let warnings = snapshot.diagnostics.len() - errors;
        for (severity, count) in [("error", errors), ("warning", warnings)] {
            self.diagnostics.get_or_create(&SeverityLabel { severity }).set(i64::try_from(count).unwrap_or(i64::MAX));
        }
        // Two backends of one Service port (e.g. different upstream settings) are one series,
        // the larger count.
        let mut ready: BTreeMap<Arc<str>, usize> = BTreeMap::new();
        for backend in snapshot.backends.iter().flatten() {
            let count = ready.entry(backend.label.clone()).or_default();
            *count = (*count).max(backend.endpoints.len());
        }
        for (label, count) in &ready {
            let labels = ServiceLabel { service: label.to_string() };
            self.backend_endpoints.get_or_create(&labels).set(i64::try_from(*count).unwrap_or(i64::MAX));
        }
        let current: BTreeSet<Arc<str>> = ready.into_keys().collect();
        let mut previous = self.backend_labels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for gone in previous.difference(&current) {
            self.backend_endpoints.remove(&ServiceLabel { service: gone.to_string() });
        }
        *previous = current;
    }
}
