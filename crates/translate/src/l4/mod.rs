//! Layer-4 translation: LoadBalancer Services get stable addresses from the pools, and every
//! port of theirs becomes a listener on that address.

mod allocate;
mod announce;
mod pool;
mod pools;
mod service;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sluice_config::{Backend, Diagnostic, L4Backends, L4Listener, L4Table, ObjectRef, Transport};
use sluice_store::{ObjectKey, Store};

use crate::backends::Backends;

pub use pool::AddressPool;
pub use service::LOAD_BALANCER_CLASS;
pub(crate) use service::{LbPort, LbService};

/// Addresses given to each LoadBalancer Service: the record that keeps allocations stable
/// across snapshots and restarts.
pub type Allocations = BTreeMap<ObjectRef, Vec<IpAddr>>;

/// Builds the L4 table: addresses from the pools (`--lb-pool` and IPAddressPools; with none,
/// L4 is off and LoadBalancer Services are left alone), a listener per address and port,
/// and how each address is announced. `gateways` take addresses from the same pools (their
/// listeners are served elsewhere). `node` is this replica's node: under
/// `externalTrafficPolicy: Local` only its endpoints serve.
pub(crate) fn translate<'s>(
    store: &'s Store,
    flag_pools: &[AddressPool],
    previous: &Allocations,
    backends: &Backends,
    mut gateways: Vec<LbService<'s>>,
    node: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> L4Table {
    let pools = pools::read(store, flag_pools, diagnostics);
    if pools.is_empty() {
        return L4Table::default();
    }
    let namespace_labels =
        |namespace: &str| store.namespaces.get(&ObjectKey::new("", namespace)).and_then(|n| n.metadata.labels.as_ref());
    let mut candidates = Vec::new();
    for (key, svc) in &store.services {
        if !service::is_load_balancer(svc) {
            continue;
        }
        let object = ObjectRef::new("Service", &key.namespace, &key.name);
        match service::read(object, svc) {
            Ok(Some(mut candidate)) => {
                candidate.namespace_labels = namespace_labels(&key.namespace);
                candidates.push(candidate);
            }
            Ok(None) => {}
            Err(mut problems) => diagnostics.append(&mut problems),
        }
    }
    for gateway in &mut gateways {
        gateway.namespace_labels = namespace_labels(&gateway.object.namespace);
    }
    let services = candidates.len();
    candidates.extend(gateways);
    let addresses = allocate::allocate(&candidates, &pools, previous, diagnostics);
    let mut allocated = Vec::new();
    for candidate in &candidates {
        let key = ObjectKey::new(&candidate.object.namespace, &candidate.object.name);
        let local_nodes = candidate.local_traffic.then(|| backends.endpoint_nodes(store, &key));
        for ip in addresses.get(&candidate.object).into_iter().flatten() {
            allocated.push(announce::Allocated {
                ip: *ip,
                holder: &candidate.object,
                labels: candidate.labels,
                local_nodes: local_nodes.clone(),
            });
        }
    }
    let announcements = announce::announcements(store, &pools, allocated, diagnostics);
    candidates.truncate(services);
    let mut listeners = BTreeMap::new();
    let mut ip_modes = BTreeMap::new();
    for candidate in &candidates {
        let Some(ips) = addresses.get(&candidate.object) else {
            continue;
        };
        ip_modes.insert(candidate.object.clone(), candidate.ip_mode);
        let key = ObjectKey::new(&candidate.object.namespace, &candidate.object.name);
        let only_node = candidate.local_traffic.then_some(node);
        for port in &candidate.ports {
            let endpoints = backends.endpoints_on(store, &key, &port.name, only_node);
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
                    backends: L4Backends::one(backend.clone()),
                    proxy_protocol: candidate.proxy_protocol,
                    idle_timeout: candidate.idle_timeout(port.protocol),
                    max_flows: candidate.max_flows,
                    source_ranges: candidate.source_ranges.clone(),
                };
                listeners.insert((port.protocol, address), listener);
            }
        }
    }
    L4Table { listeners, addresses, ip_modes, announcements }
}

#[cfg(test)]
mod metallb_tests;
#[cfg(test)]
mod tests;

/// Adds a Gateway's TCP or UDP listener: its route's backends by weight (a share whose
/// reference does not resolve has no endpoints, so its connections are refused).
pub(crate) fn add_gateway_listener(
    table: &mut L4Table,
    listener: crate::gateway::GatewayL4,
    backends: &[Option<Arc<Backend>>],
) {
    let unresolved = || {
        let label = format!("{}:unresolved", listener.listener);
        Arc::new(Backend::new(listener.gateway.clone(), &label, None, Transport::Http1, Vec::new()))
    };
    let choices = listener
        .backends
        .iter()
        .map(|b| {
            let backend = backends.get(b.id.0 as usize).cloned().flatten().unwrap_or_else(unresolved);
            (backend, b.weight)
        })
        .collect();
    let idle_timeout = match listener.protocol {
        sluice_config::L4Protocol::Tcp => service::DEFAULT_TCP_IDLE,
        sluice_config::L4Protocol::Udp => service::DEFAULT_UDP_IDLE,
    };
    let key = (listener.protocol, listener.address);
    table.listeners.entry(key).or_insert(L4Listener {
        service: listener.gateway,
        port_name: listener.listener,
        address: listener.address,
        protocol: listener.protocol,
        backends: L4Backends::weighted(choices),
        proxy_protocol: None,
        idle_timeout,
        max_flows: service::DEFAULT_MAX_FLOWS,
        source_ranges: None,
    });
}
