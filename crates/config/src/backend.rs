//! Backends: a Service port resolved to the addresses of its ready endpoints.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::balance::{jump_hash, stable_hash, Maglev};
use crate::{ObjectRef, UpstreamTls};

/// Index of a [`Backend`] in its snapshot's backend list. Routes refer to backends by id so
/// that an endpoint-only change replaces the list and keeps the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct BackendId(pub u32);

impl BackendId {
    /// The share of a route's requests whose backend reference cannot be resolved (a
    /// missing Service, a kind Sluice does not know, a reference not permitted): they are
    /// answered 500, as Gateway API asks.
    pub const UNRESOLVED: BackendId = BackendId(u32::MAX);
}

/// How Sluice speaks to a backend, from the Service port's `appProtocol` or the Ingress's
/// `backend-protocol` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 with a keep-alive pool (the default).
    Http1,
    /// HTTP/2 over cleartext with prior knowledge (`appProtocol: kubernetes.io/h2c`).
    H2c,
    /// HTTP/1.1 over TLS (`backend-protocol: HTTPS`).
    Https,
    /// HTTP/2 over TLS, ALPN `h2` (`backend-protocol: GRPCS`).
    H2,
}

impl UpstreamProtocol {
    /// True for the protocols spoken over TLS: a backend using one needs an [`UpstreamTls`].
    pub fn is_tls(self) -> bool {
        matches!(self, UpstreamProtocol::Https | UpstreamProtocol::H2)
    }

    /// True for the protocols speaking HTTP/2 (so requests carry `:scheme` and `:authority`).
    pub fn is_http2(self) -> bool {
        matches!(self, UpstreamProtocol::H2c | UpstreamProtocol::H2)
    }
}

/// How connections to a backend's endpoints are made. TLS comes with its client
/// configuration, so a TLS backend cannot exist without one (and is never reached in clear).
#[derive(Debug, Clone)]
pub enum Transport {
    /// HTTP/1.1 over cleartext TCP.
    Http1,
    /// HTTP/2 over cleartext TCP, prior knowledge.
    H2c,
    /// HTTP/1.1 or HTTP/2 (as [`UpstreamTls::http2`] says) over TLS.
    Tls(Arc<UpstreamTls>),
}

impl Transport {
    /// The protocol this transport speaks.
    pub fn protocol(&self) -> UpstreamProtocol {
        match self {
            Transport::Http1 => UpstreamProtocol::Http1,
            Transport::H2c => UpstreamProtocol::H2c,
            Transport::Tls(tls) if tls.http2() => UpstreamProtocol::H2,
            Transport::Tls(_) => UpstreamProtocol::Https,
        }
    }
}

/// A Service port with its ready endpoints, shared by every route that points at it so that
/// round-robin spreads all of their requests evenly.
#[derive(Debug)]
pub struct Backend {
    /// The Service.
    pub service: ObjectRef,
    /// The resolved Service port's name ("" when unnamed); `None` when the Service or port
    /// does not exist. With `service` it says which endpoints to look up on a refresh.
    pub port_name: Option<String>,
    /// `namespace/name:port`, the metrics label and log field for this backend.
    pub label: Arc<str>,
    /// How the endpoints are reached: cleartext, or TLS with its client configuration.
    pub transport: Transport,
    /// Ready endpoint addresses; empty means every request gets 503.
    pub endpoints: Vec<SocketAddr>,
    next: AtomicUsize,
    /// Per endpoint: response-time average and requests in flight, for `ewma`.
    load: Box<[Load]>,
    /// Built on the first hashed pick; most backends never need one.
    maglev: OnceLock<Maglev>,
    /// The latest `down_until` of any endpoint (µs since `epoch()`; 0: none ever failed), so
    /// that round-robin reads the clock only within [`FAIL_TIMEOUT`] of a failed connect.
    any_down_until: AtomicU64,
}

impl Backend {
    /// A backend for `service` port `port` (number or name as written in the Ingress),
    /// resolved to the Service port named `port_name`.
    pub fn new(
        service: ObjectRef,
        port: &str,
        port_name: Option<String>,
        transport: Transport,
        endpoints: Vec<SocketAddr>,
    ) -> Self {
        let label: Arc<str> = format!("{}/{}:{}", service.namespace, service.name, port).into();
        Self::with_parts(service, port_name, label, transport, endpoints)
    }

    /// The same backend reached with `transport` instead (a Gateway API BackendTLSPolicy
    /// applied after the Service port was resolved).
    pub fn with_transport(&self, transport: Transport) -> Self {
        let port_name = self.port_name.clone();
        Self::with_parts(self.service.clone(), port_name, self.label.clone(), transport, self.endpoints.clone())
    }

    fn with_parts(
        service: ObjectRef,
        port_name: Option<String>,
        label: Arc<str>,
        transport: Transport,
        endpoints: Vec<SocketAddr>,
    ) -> Self {
        let load = endpoints.iter().map(|_| Load::default()).collect();
        let next = AtomicUsize::new(0);
        let any_down_until = AtomicU64::new(0);
        Self { service, port_name, label, transport, endpoints, next, load, maglev: OnceLock::new(), any_down_until }
    }

    /// The protocol spoken to the endpoints.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.transport.protocol()
    }

    /// The same backend with a new set of endpoints (round-robin restarts).
    pub fn with_endpoints(&self, endpoints: Vec<SocketAddr>) -> Self {
        Self::with_parts(
            self.service.clone(),
            self.port_name.clone(),
            self.label.clone(),
            self.transport.clone(),
            endpoints,
        )
    }

    /// The next endpoint in round-robin order, skipping those whose connects failed within
    /// [`FAIL_TIMEOUT`] (all of them down: the next one anyway), or `None` when none is ready.
    pub fn pick(&self) -> Option<SocketAddr> {
        match self.endpoints.len() {
            0 => None,
            1 => Some(self.endpoints[0]),
            n => {
                let mut index = self.next.fetch_add(1, Ordering::Relaxed) % n;
                let latest = self.any_down_until.load(Ordering::Relaxed);
                let now = if latest == 0 { u64::MAX } else { micros_since_epoch() };
                if now < latest {
                    for _ in 0..n {
                        if self.load.get(index).is_none_or(|l| !l.is_down(now)) {
                            break;
                        }
                        index = self.next.fetch_add(1, Ordering::Relaxed) % n;
                    }
                }
                self.endpoints.get(index).copied()
            }
        }
    }

    /// Records that connecting to `endpoint` failed: round-robin skips it for
    /// [`FAIL_TIMEOUT`] (nginx's `max_fails=1 fail_timeout=10s`), so an unreachable endpoint
    /// — a node that died before its Ready condition says so — costs one failed connect, not
    /// one per request.
    pub fn connect_failed(&self, endpoint: SocketAddr) {
        let index = self.endpoints.iter().position(|e| *e == endpoint);
        if let Some(load) = index.and_then(|i| self.load.get(i)) {
            let until = micros_since_epoch().saturating_add(FAIL_TIMEOUT.as_micros() as u64);
            load.down_until.store(until, Ordering::Relaxed);
            self.any_down_until.fetch_max(until, Ordering::Relaxed);
        }
    }

    /// Per endpoint (in `endpoints` order), whether round-robin is skipping it right now
    /// because a connect to it failed within [`FAIL_TIMEOUT`] (passive health).
    pub fn endpoints_down(&self) -> Vec<bool> {
        let latest = self.any_down_until.load(Ordering::Relaxed);
        if latest == 0 {
            return vec![false; self.endpoints.len()];
        }
        let now = micros_since_epoch();
        (0..self.endpoints.len()).map(|i| self.load.get(i).is_some_and(|l| l.is_down(now))).collect()
    }

    /// The endpoint a consistent hash of the request's key maps to.
    pub fn pick_hashed(&self, hash: u64) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        let maglev = self.maglev.get_or_init(|| Maglev::new(&self.endpoints));
        self.endpoints.get(maglev.lookup(hash)).copied()
    }

    /// `upstream-hash-by-subset`: the endpoints, in order, form groups of `size` (the last
    /// group filled up by wrapping around to the first endpoints); `hash` picks a group by
    /// consistent hashing, and a uniformly random member of it serves the request.
    pub fn pick_hashed_subset(&self, hash: u64, size: NonZeroU32) -> Option<SocketAddr> {
        let n = self.endpoints.len() as u64;
        if n == 0 {
            return None;
        }
        let size = u64::from(size.get());
        let group = jump_hash(hash, n.div_ceil(size));
        let member = fastrand::u64(..size);
        // group·size < n, so this cannot overflow.
        let index = usize::try_from((group * size + member) % n).ok()?;
        self.endpoints.get(index).copied()
    }

    /// Peak EWMA with two random choices: the endpoint whose average response time times
    /// (requests in flight + 1) is lower.
    pub fn pick_least_loaded(&self) -> Option<SocketAddr> {
        let n = self.endpoints.len();
        if n < 2 {
            return self.endpoints.first().copied();
        }
        let a = fastrand::usize(..n);
        let b = (a + 1 + fastrand::usize(..n - 1)) % n;
        let chosen = if self.load[a].cost() <= self.load[b].cost() { a } else { b };
        Some(self.endpoints[chosen])
    }

    /// Marks a request to `endpoint` as started; the guard records its response time when
    /// the response head arrives (or only ends it, when dropped without one).
    pub fn start(&self, endpoint: SocketAddr) -> InFlight<'_> {
        let load = self.endpoints.iter().position(|e| *e == endpoint).and_then(|i| self.load.get(i));
        if let Some(load) = load {
            load.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        InFlight { load, started: Instant::now() }
    }

    /// A persistent-affinity cookie value naming `endpoint` (stable across replicas).
    pub fn endpoint_key(&self, endpoint: SocketAddr) -> String {
        format!("{:016x}", stable_hash(3, &[self.label.as_bytes(), endpoint.to_string().as_bytes()]))
    }

    /// The endpoint a persistent-affinity cookie value names, if it is still ready.
    pub fn endpoint_of_key(&self, key: &str) -> Option<SocketAddr> {
        self.endpoints.iter().copied().find(|endpoint| self.endpoint_key(*endpoint) == key)
    }
}

/// Decay of the response-time average (ingress-nginx's ewma uses 10 s).
const EWMA_DECAY: Duration = Duration::from_secs(10);

/// One endpoint's load: peak-EWMA response time (µs, as f64 bits) and requests in flight.
#[derive(Debug, Default)]
struct Load {
    ewma_bits: AtomicU64,
    /// When the average was last updated, in µs since `epoch()`.
    updated: AtomicU64,
    in_flight: AtomicU32,
    /// Until when (µs since `epoch()`) a failed connect keeps round-robin away.
    down_until: AtomicU64,
}

/// How long an endpoint whose connect failed is skipped by round-robin.
pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);

impl Load {
    fn is_down(&self, now: u64) -> bool {
        self.down_until.load(Ordering::Relaxed) > now
    }

    fn cost(&self) -> f64 {
        let ewma = f64::from_bits(self.ewma_bits.load(Ordering::Relaxed));
        (ewma.max(1.0)) * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    fn observe(&self, sample: Duration) {
        let now = micros_since_epoch();
        let last = self.updated.swap(now, Ordering::Relaxed);
        let sample = sample.as_secs_f64() * 1e6;
        let old = f64::from_bits(self.ewma_bits.load(Ordering::Relaxed));
        // Peak: a slower response is taken at once; faster ones pull the average down
        // with a weight that grows with the time since the last sample.
        let next = if sample > old {
            sample
        } else {
            let elapsed = now.saturating_sub(last) as f64 / 1e6;
            let keep = (-elapsed / EWMA_DECAY.as_secs_f64()).exp();
            old * keep + sample * (1.0 - keep)
        };
        self.ewma_bits.store(next.to_bits(), Ordering::Relaxed);
    }
}

fn micros_since_epoch() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A request in flight to one endpoint (see [`Backend::start`]).
#[derive(Debug)]
pub struct InFlight<'a> {
    load: Option<&'a Load>,
    started: Instant,
}

impl InFlight<'_> {
    /// The response head arrived: its time feeds the endpoint's average.
    pub fn answered(self) {
        if let Some(load) = self.load {
            load.observe(self.started.elapsed());
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(load) = self.load {
            load.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_visits_every_endpoint() {
        let eps: Vec<SocketAddr> = (1..=3).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        let backend = Backend::new(ObjectRef::new("Service", "ns", "s"), "80", None, Transport::Http1, eps.clone());
        let picked: Vec<_> = (0..6).filter_map(|_| backend.pick()).collect();
        assert_eq!(picked, [eps.clone(), eps].concat());
        let empty = Backend::new(ObjectRef::new("Service", "ns", "s"), "80", None, Transport::Http1, vec![]);
        assert_eq!(empty.pick(), None);
        assert_eq!(empty.pick_hashed(7), None);
        assert_eq!(empty.pick_least_loaded(), None);
    }

    #[test]
    fn ewma_prefers_the_faster_endpoint() {
        let eps: Vec<SocketAddr> = (1..=2).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        let backend = Backend::new(ObjectRef::new("Service", "ns", "s"), "80", None, Transport::Http1, eps.clone());
        backend.load[0].observe(Duration::from_millis(50));
        backend.load[1].observe(Duration::from_millis(1));
        assert!((0..50).all(|_| backend.pick_least_loaded() == Some(eps[1])));
        // Requests in flight count too.
        let _busy: Vec<_> = (0..100).map(|_| backend.start(eps[1])).collect();
        assert!((0..50).all(|_| backend.pick_least_loaded() == Some(eps[0])));
    }

    #[test]
    fn hashed_subsets_are_groups_of_endpoints_wrapping_around() {
        let eps: Vec<SocketAddr> = (1..=6).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        let backend = Backend::new(ObjectRef::new("Service", "ns", "s"), "80", None, Transport::Http1, eps.clone());
        let three = NonZeroU32::new(3).unwrap();
        let mut groups = std::collections::BTreeSet::new();
        for key in 0..40u64 {
            let hash = stable_hash(0, &[&key.to_le_bytes()]);
            let picked: std::collections::BTreeSet<_> =
                (0..200).filter_map(|_| backend.pick_hashed_subset(hash, three)).collect();
            assert_eq!(picked.len(), 3, "one key: exactly the three endpoints of its group");
            groups.insert(picked.into_iter().collect::<Vec<_>>());
        }
        assert_eq!(groups, [eps[..3].to_vec(), eps[3..].to_vec()].into_iter().collect(), "two groups of three");
        // Five endpoints in groups of three: the second group wraps around to the first endpoint.
        let five = backend.with_endpoints(eps[..5].to_vec());
        let mut seen = std::collections::BTreeSet::new();
        for key in 0..40u64 {
            let hash = stable_hash(0, &[&key.to_le_bytes()]);
            let picked: std::collections::BTreeSet<_> =
                (0..200).filter_map(|_| five.pick_hashed_subset(hash, three)).collect();
            seen.insert(picked.into_iter().collect::<Vec<_>>());
        }
        let wrapped = vec![eps[0], eps[3], eps[4]];
        assert_eq!(seen, [eps[..3].to_vec(), wrapped].into_iter().collect());
        // A group larger than the backend holds every endpoint; none ready: none picked.
        let big = NonZeroU32::new(u32::MAX).unwrap();
        assert!(backend.pick_hashed_subset(7, big).is_some());
        assert_eq!(backend.with_endpoints(vec![]).pick_hashed_subset(7, three), None);
    }

    #[test]
    fn persistent_keys_name_their_endpoint() {
        let eps: Vec<SocketAddr> = (1..=3).map(|p| SocketAddr::from(([127, 0, 0, 1], p))).collect();
        let backend = Backend::new(ObjectRef::new("Service", "ns", "s"), "80", None, Transport::Http1, eps.clone());
        let key = backend.endpoint_key(eps[2]);
        assert_eq!(backend.endpoint_of_key(&key), Some(eps[2]));
        let gone = backend.with_endpoints(eps[..2].to_vec());
        assert_eq!(gone.endpoint_of_key(&key), None);
        assert_eq!(backend.pick_hashed(42), backend.with_endpoints(eps.clone()).pick_hashed(42));
    }
}

#[cfg(test)]
mod passive_health_tests {
    use super::*;

    #[test]
    fn round_robin_skips_an_endpoint_whose_connect_failed_until_all_are_down() {
        let endpoints: Vec<SocketAddr> =
            ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"].map(|e| e.parse().unwrap()).into();
        let backend =
            Backend::new(ObjectRef::new("Service", "ns", "s"), "80", None, Transport::Http1, endpoints.clone());
        assert_eq!(backend.endpoints_down(), [false; 3]);
        backend.connect_failed(endpoints[1]);
        assert_eq!(backend.endpoints_down(), [false, true, false], "what the dashboard shows");
        let picks: Vec<SocketAddr> = (0..30).filter_map(|_| backend.pick()).collect();
        assert_eq!(picks.len(), 30);
        assert!(!picks.contains(&endpoints[1]), "{picks:?}");
        backend.connect_failed(endpoints[0]);
        backend.connect_failed(endpoints[2]);
        assert!(backend.pick().is_some(), "with every endpoint down, one is still tried");
    }
}
