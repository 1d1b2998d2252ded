//! Prometheus metrics of the data plane.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use foldhash::HashMap;

use http::StatusCode;
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sluice_config::{Backend, Route};

use crate::Scheme;

/// Labels of `sluice_http_requests_total`. Label values are shared `Arc<str>` from the
/// snapshot, so counting a request does not allocate strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestLabels {
    ingress: Option<Arc<str>>,
    service: Option<Arc<str>>,
    code_class: &'static str,
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("ingress", self.ingress.as_deref().unwrap_or("")).encode(encoder.encode_label())?;
        ("service", self.service.as_deref().unwrap_or("")).encode(encoder.encode_label())?;
        ("code_class", self.code_class).encode(encoder.encode_label())
    }
}

/// Labels of `sluice_http_requests_denied_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DeniedLabels {
    ingress: Arc<str>,
    reason: &'static str,
}

impl EncodeLabelSet for DeniedLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("ingress", &*self.ingress).encode(encoder.encode_label())?;
        ("reason", self.reason).encode(encoder.encode_label())
    }
}

/// A single label with a shared value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct OneLabel {
    name: &'static str,
    value: Arc<str>,
}

impl EncodeLabelSet for OneLabel {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        (self.name, &*self.value).encode(encoder.encode_label())
    }
}

type HistogramFamily = Family<OneLabel, Histogram, fn() -> Histogram>;

/// `code_class` label values, by status class (1xx first).
const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The series one (route, backend) pair counts into.
struct Handles {
    /// The label values, kept alive so that their addresses (the cache key) cannot be
    /// reused by other labels while the entry exists.
    labels: (Option<Arc<str>>, Option<Arc<str>>),
    /// `sluice_http_requests_total` by status class, created on first use.
    by_class: [Option<Counter>; 5],
    duration: Histogram,
}

/// Most (metrics, route, backend) entries a worker thread keeps; past it the cache starts
/// over (routes replaced by configuration changes leave entries behind).
const MAX_CACHED_HANDLES: usize = 4096;

thread_local! {
    /// Each worker thread's [`Handles`], by metrics instance and label addresses.
    static HANDLES: RefCell<HashMap<(u64, usize, usize), Handles>> = RefCell::new(HashMap::default());
}

/// Tells metrics instances apart in [`HANDLES`] (tests create several in one process).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Every metric Sluice exports, in one registry served by the admin listener.
#[derive(Debug)]
pub struct Metrics {
    id: u64,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    denied: Family<DeniedLabels, Counter>,
    redis_unavailable: Counter,
    request_duration: HistogramFamily,
    upstream_connect_errors: Family<OneLabel, Counter>,
    active_connections: Family<OneLabel, Gauge>,
    refused_connections: Family<OneLabel, Counter>,
    config_generation: Gauge,
    /// Every `sluice_http_requests_total` series, for [`Metrics::request_counts`]; a series
    /// is added here when it is created, which is rare (once per worker thread at most).
    request_series: Mutex<HashMap<RequestLabels, Counter>>,
}

/// Cumulative answered requests of one (route, backend) pair, by status class.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCount {
    /// The route's metrics label (`namespace/name` of the Ingress or route); empty when no
    /// route answered.
    pub route: Arc<str>,
    /// The backend's label (`namespace/name:port`); empty when none was chosen.
    pub backend: Arc<str>,
    /// Requests answered with 1xx, 2xx, 3xx, 4xx and 5xx statuses.
    pub by_class: [u64; 5],
}

fn duration_histogram() -> Histogram {
    // 0.5 ms to ~16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates the metrics and registers them under the `sluice_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by Ingress, backend Service port and status class",
            requests.clone(),
        );
        let denied = Family::default();
        registry.register(
            "http_requests_denied",
            "Requests refused by a route's protection (address lists, authentication, rate limits), by Ingress and reason",
            denied.clone(),
        );
        let redis_unavailable = Counter::default();
        registry.register(
            "rate_limit_redis_unavailable",
            "Requests whose rate was counted by this replica alone because the --rate-limit-redis Redis did not answer in time",
            redis_unavailable.clone(),
        );
        let request_duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response headers, by Ingress",
            request_duration.clone(),
        );
        let upstream_connect_errors = Family::default();
        registry.register(
            "upstream_connect_errors",
            "Failed TCP connections to backend endpoints, by Service port",
            upstream_connect_errors.clone(),
        );
        let active_connections = Family::default();
        registry.register(
            "active_connections",
            "Client connections currently open, by listener scheme",
            active_connections.clone(),
        );
        let refused_connections = Family::default();
        registry.register(
            "connections_refused",
            "Client connections closed on accept because a connection cap was reached, by cap (total, per_client)",
            refused_connections.clone(),
        );
        let config_generation = Gauge::default();
        registry.register(
            "config_generation",
            "Generation of the configuration snapshot being served",
            config_generation.clone(),
        );
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            registry,
            requests,
            denied,
            redis_unavailable,
            request_duration,
            upstream_connect_errors,
            active_connections,
            refused_connections,
            config_generation,
            request_series: Mutex::default(),
        }
    }

    /// The cumulative request counts of every (route, backend) pair answered so far, by
    /// status class (what `sluice_http_requests_total` exports).
    pub fn request_counts(&self) -> Vec<RequestCount> {
        let series = self.request_series.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: HashMap<(Arc<str>, Arc<str>), [u64; 5]> = HashMap::default();
        for (labels, counter) in series.iter() {
            let empty = || Arc::<str>::from("");
            let key = (labels.ingress.clone().unwrap_or_else(empty), labels.service.clone().unwrap_or_else(empty));
            if let Some(class) = CODE_CLASSES.iter().position(|c| *c == labels.code_class) {
                out.entry(key).or_default()[class] = counter.get();
            }
        }
        let mut out: Vec<RequestCount> =
            out.into_iter().map(|((route, backend), by_class)| RequestCount { route, backend, by_class }).collect();
        out.sort_by(|a, b| (&a.route, &a.backend).cmp(&(&b.route, &b.backend)));
        out
    }

    /// The registry, for other parts of Sluice to register their metrics before sharing.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Records the generation of the snapshot now being served.
    pub fn set_generation(&self, generation: u64) {
        self.config_generation.set(i64::try_from(generation).unwrap_or(i64::MAX));
    }

    /// Counts an answered request and its time to response headers. The series a (route,
    /// backend) pair counts into are found in the families once per worker thread and kept
    /// ([`HANDLES`]): a request then costs a lookup by pointers, never a hash of label
    /// strings or a lock on a family.
    pub(crate) fn request(&self, route: Option<(&Route, &Backend)>, status: StatusCode, elapsed: Duration) {
        let class = match status.as_u16() {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        let ingress = route.map(|(r, _)| &r.label);
        let service = route.map(|(_, b)| &b.label);
        let address = |label: Option<&Arc<str>>| label.map_or(0, |l| Arc::as_ptr(l).cast::<u8>() as usize);
        let key = (self.id, address(ingress), address(service));
        HANDLES.with_borrow_mut(|cache| {
            if cache.len() >= MAX_CACHED_HANDLES && !cache.contains_key(&key) {
                cache.clear();
            }
            let Handles { labels, by_class, duration } = cache.entry(key).or_insert_with(|| {
                let value = ingress.cloned().unwrap_or_else(|| Arc::from(""));
                let duration = self.request_duration.get_or_create(&OneLabel { name: "ingress", value }).clone();
                Handles { labels: (ingress.cloned(), service.cloned()), by_class: Default::default(), duration }
            });
            let counter = by_class[class].get_or_insert_with(|| {
                let (ingress, service) = labels.clone();
                let labels = RequestLabels { ingress, service, code_class: CODE_CLASSES[class] };
                let counter = self.requests.get_or_create(&labels).clone();
                let mut series = self.request_series.lock().unwrap_or_else(|p| p.into_inner());
                series.entry(labels).or_insert_with(|| counter.clone());
                counter
            });
            counter.inc();
            duration.observe(elapsed.as_secs_f64());
        });
    }

    pub(crate) fn denied(&self, route: &Route, reason: &'static str) {
        self.denied.get_or_create(&DeniedLabels { ingress: route.label.clone(), reason }).inc();
    }

    pub(crate) fn redis_unavailable(&self) {
        self.redis_unavailable.inc();
    }

    pub(crate) fn upstream_connect_error(&self, backend: &Backend) {
        let labels = OneLabel { name: "service", value: backend.label.clone() };
        self.upstream_connect_errors.get_or_create(&labels).inc();
    }

    pub(crate) fn connection_refused(&self, reason: &'static str) {
        self.refused_connections.get_or_create(&OneLabel { name: "reason", value: Arc::from(reason) }).inc();
    }

    pub(crate) fn connection_opened(&self, scheme: Scheme) -> OpenConnection {
        let labels = OneLabel { name: "scheme", value: Arc::from(scheme.as_str()) };
        let gauge = self.active_connections.get_or_create(&labels).clone();
        gauge.inc();
        OpenConnection(gauge)
    }
}

/// Counts an open client connection until dropped.
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
