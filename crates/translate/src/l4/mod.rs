//! Layer-4 translation: LoadBalancer Services get stable addresses from the pools, and every
//! port of theirs becomes a listener on that address.

mod allocate;
mod pool;
mod service;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sluice_config::{Backend, Diagnostic, L4Listener, L4Table, ObjectRef, Transport};
use sluice_store::{ObjectKey, Store};

use crate::backends::Backends;

pub use pool::AddressPool;
pub use service::LOAD_BALANCER_CLASS;
pub(crate) use service::{LbPort, LbService};

/// Addresses given to each LoadBalancer Service: the record that keeps allocations stable
/// across snapshots and restarts.
pub type Allocations = BTreeMap<ObjectRef, Vec<IpAddr>>;

/// Builds the L4 table. With no pools, L4 is off and LoadBalancer Services are left alone.
/// `gateways` take addresses from the same pools (their listeners are served elsewhere).
pub(crate) fn translate(
    store: &Store,
    pools: &[AddressPool],
    previous: &Allocations,
    backends: &Backends,
    gateways: Vec<LbService<'_>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> L4Table {
    if pools.is_empty() {
        return L4Table::default();
    }
    let mut candidates = Vec::new();
    for (key, svc) in &store.services {
        if !service::is_load_balancer(svc) {
            continue;
        }
        let object = ObjectRef::new("Service", &key.namespace, &key.name);
        match service::read(object, svc) {
            Ok(Some(candidate)) => candidates.push(candidate),
            Ok(None) => {}
            Err(mut problems) => diagnostics.append(&mut problems),
        }
    }
    let services = candidates.len();
    candidates.extend(gateways);
    let addresses = allocate::allocate(&candidates, pools, previous, diagnostics);
    candidates.truncate(services);
    let mut listeners = BTreeMap::new();
    for candidate in &candidates {
        let Some(ips) = addresses.get(&candidate.object) else {
            continue;
        };
        let key = ObjectKey::new(&candidate.object.namespace, &candidate.object.name);
        for port in &candidate.ports {
            let endpoints = backends.endpoints(store, &key, &port.name);

            let label = if port.name.is_empty() { port.port.to_string() } else { port.name.clone() };
            let backend = Arc::new(Backend::new(
                candidate.object.clone(),
                &label,
                Some(port.name.clone()),
                Transport::Http1,
                endpoints,
            ));
            for ip in ips {
                let address = SocketAddr::new(*ip, port.port);
                let listener = L4Listener {
                    service: candidate.object.clone(),
                    port_name: port.name.clone(),
                    address,
                    protocol: port.protocol,
                    backend: backend.clone(),
                    proxy_protocol: candidate.proxy_protocol,
                    idle_timeout: candidate.idle_timeout(port.protocol),
                    max_flows: candidate.max_flows,
                };
                listeners.insert((port.protocol, address), listener);
            }
        }
    }
    L4Table { listeners, addresses }
}

#[cfg(test)]
mod tests;
