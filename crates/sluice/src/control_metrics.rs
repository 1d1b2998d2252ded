//! Metrics of the control plane: reloads and the objects being served.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::pipeline::BuildKind;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
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
        Self { reload_duration, reload_errors, objects, failing_files }
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
}
