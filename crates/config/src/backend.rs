//! Backends: a Service port resolved to the addresses of its ready endpoints.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::ObjectRef;

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
    /// Protocol towards the endpoints.
    pub protocol: UpstreamProtocol,
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
        protocol: UpstreamProtocol,
        endpoints: Vec<SocketAddr>,
    ) -> Self {
        let label = format!("{}/{}:{}", service.namespace, service.name, port).into();
        Self { service, port_name, label, protocol, endpoints, next: AtomicUsize::new(0) }
    }

    /// The same backend with a new set of endpoints (round-robin restarts).
    pub fn with_endpoints(&self, endpoints: Vec<SocketAddr>) -> Self {
        Self {
            service: self.service.clone(),
            port_name: self.port_name.clone(),
            label: self.label.clone(),
            protocol: self.protocol,
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
        let backend =
            Backend::new(ObjectRef::new("Service", "ns", "s"), "80", None, UpstreamProtocol::Http1, eps.clone());
        let picked: Vec<_> = (0..6).filter_map(|_| backend.pick()).collect();
        assert_eq!(picked, [eps.clone(), eps].concat());
        let empty = Backend::new(ObjectRef::new("Service", "ns", "s"), "80", None, UpstreamProtocol::Http1, vec![]);
        assert_eq!(empty.pick(), None);
    }
}
