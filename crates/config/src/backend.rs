//! Backends: a Service port resolved to the addresses of its ready endpoints.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::{ObjectRef, UpstreamTls};

/// Index of a [`Backend`] in its snapshot's backend list. Routes refer to backends by id so
/// that an endpoint-only change replaces the list and keeps the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct BackendId(pub u32);

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
        let label = format!("{}/{}:{}", service.namespace, service.name, port).into();
        Self { service, port_name, label, transport, endpoints, next: AtomicUsize::new(0) }
    }

    /// The protocol spoken to the endpoints.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.transport.protocol()
    }

    /// The same backend with a new set of endpoints (round-robin restarts).
    pub fn with_endpoints(&self, endpoints: Vec<SocketAddr>) -> Self {
        Self {
            service: self.service.clone(),
            port_name: self.port_name.clone(),
            label: self.label.clone(),
            transport: self.transport.clone(),
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The next endpoint in round-robin order, or `None` when none is ready.
    pub fn pick(&self) -> Option<SocketAddr> {
        match self.endpoints.len() {
            0 => None,
            1 => Some(self.endpoints[0]),
            n => Some(self.endpoints[self.next.fetch_add(1, Ordering::Relaxed) % n]),
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
    }
}
