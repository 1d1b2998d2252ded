//! The frontends of Gateways that have addresses: per address and port, the HTTP or HTTPS
//! listeners served there, each with the matches of its attached routes by host, in
//! Gateway API precedence order; and their TCP and UDP listeners for the L4 plane.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use sluice_config::{
    CertificateTableBuilder, Frontend, FrontendMode, GatewayFrontends, HostMatch, HostPattern, HostRoutes, L4Protocol,
    ListenerRoutes, Matches, ObjectRef, RouteMatch, WeightedBackend,
};
use sluice_store::ObjectKey;

use super::attach::Attachment;
use super::http_route::CompiledMatch;
use super::listeners::{Protocol, ValidGateway};
use crate::l4::Allocations;

/// A Gateway's TCP or UDP listener on one of its addresses, with the backends of the route
/// it serves.
#[derive(Debug)]
pub(crate) struct GatewayL4 {
    pub gateway: ObjectRef,
    pub listener: String,
    pub address: SocketAddr,
    pub protocol: L4Protocol,
    pub backends: Vec<WeightedBackend>,
}

/// The TCP and UDP listeners of every Gateway with an address, each forwarding to the
/// backends of the oldest route attached to it (none attached: nothing is listened on).
pub(crate) fn l4_listeners(
    gateways: &BTreeMap<ObjectKey, ValidGateway>,
    addresses: &Allocations,
    attachments: &[Attachment],
) -> Vec<GatewayL4> {
    let mut out = Vec::new();
    for (key, gateway) in gateways {
        let Some(ips) = addresses.get(&gateway.object).filter(|_| gateway.refused.is_none()) else {
            continue;
        };
        for listener in gateway.listeners.iter().filter(|l| l.programmed()) {
            let protocol = match listener.protocol {
                Some(Protocol::Tcp) => L4Protocol::Tcp,
                Some(Protocol::Udp) => L4Protocol::Udp,
                _ => continue,
            };
            let oldest = attachments
                .iter()
                .filter(|a| a.gateway == *key && a.listener == listener.name)
                .min_by(|a, b| a.order.cmp(&b.order));
            let forward = oldest.and_then(|a| a.matches.first()).and_then(|m| m.route.forward());
            let backends = match (oldest, forward) {
                (None, _) => continue,
                (Some(_), Some(forward)) => forward.backends.to_vec(),
                (Some(_), None) => Vec::new(),
            };
            for ip in ips {
                out.push(GatewayL4 {
                    gateway: gateway.object.clone(),
                    listener: listener.name.clone(),
                    address: SocketAddr::new(*ip, listener.port),
                    protocol,
                    backends: backends.clone(),
                });
            }
        }
    }
    out
}

/// What the listeners on one port speak (the first listener decides; the others conflict
/// unless they agree).
#[derive(Debug, Clone, Copy)]
enum Kind {
    Http,
    Https,
    Passthrough,
    Terminate,
}

/// Builds the frontends of every Gateway with an address.
pub(crate) fn build(
    gateways: &BTreeMap<ObjectKey, ValidGateway>,
    addresses: &Allocations,
    attachments: Vec<Attachment>,
) -> GatewayFrontends {
    // Per (gateway, listener): per host, the matches with their order.
    type Ranked<'a> = Vec<(&'a CompiledMatch, &'a (Option<String>, ObjectKey))>;
    let mut by_listener: BTreeMap<(&ObjectKey, &str), BTreeMap<HostPattern, Ranked<'_>>> = BTreeMap::new();
    for attachment in &attachments {
        let hosts = by_listener.entry((&attachment.gateway, attachment.listener.as_str())).or_default();
        for host in &attachment.hosts {
            let ranked = hosts.entry(host.clone()).or_default();
            ranked.extend(attachment.matches.iter().map(|m| (m, &attachment.order)));
        }
    }
    let mut frontends = BTreeMap::new();
    for (key, gateway) in gateways {
        let Some(ips) = addresses.get(&gateway.object).filter(|_| gateway.refused.is_none()) else {
            continue;
        };
        let owner = Arc::new(gateway.object.clone());
        type Port = (Kind, Vec<ListenerRoutes>, Option<CertificateTableBuilder>);
        let mut ports: BTreeMap<u16, Port> = BTreeMap::new();
        for listener in gateway.listeners.iter().filter(|l| l.programmed()) {
            let kind = match listener.protocol {
                Some(Protocol::Http) => Kind::Http,
                Some(Protocol::Https) => Kind::Https,
                Some(Protocol::Tls) if !listener.certificates_wanted => Kind::Passthrough,
                Some(Protocol::Tls) => Kind::Terminate,
                _ => continue,
            };
            let terminates = matches!(kind, Kind::Https | Kind::Terminate);
            let hosts = by_listener.remove(&(key, listener.name.as_str())).unwrap_or_default();
            let entries = hosts.into_iter().map(|(host, mut ranked)| {
                ranked.sort_by(|(a, order_a), (b, order_b)| {
                    a.rank.cmp(&b.rank).then_with(|| order_a.cmp(order_b)).then_with(|| a.position.cmp(&b.position))
                });
                let rules = ranked
                    .into_iter()
                    .map(|(m, _)| RouteMatch { path: m.path.clone(), route: m.route.clone() })
                    .collect();
                (host, Arc::new(Matches::new(rules)))
            });
            let routes = ListenerRoutes {
                name: listener.name.as_str().into(),
                hostname: listener.hostname.clone(),
                hosts: HostRoutes::new(entries),
            };
            let slot = ports.entry(listener.port).or_insert_with(|| (kind, Vec::new(), None));
            slot.1.push(routes);
            if let Some(first) = listener.certificates.first().filter(|_| terminates) {
                let table = slot.2.get_or_insert_with(|| CertificateTableBuilder::new(first.clone()));
                let host = match &listener.hostname {
                    HostPattern::Exact(host) => Some(HostMatch::Exact(host.clone())),
                    HostPattern::Suffix(suffix) => Some(HostMatch::Wildcard(suffix.clone())),
                    HostPattern::Any => None,
                };
                if let Some(host) = host {
                    // A second listener for the same name conflicts and is not programmed.
                    let _ = table.insert(&host, &owner, first);
                }
            }
        }
        for (port, (kind, listeners, certificates)) in ports {
            let mode = match (kind, certificates) {
                (Kind::Http, _) => FrontendMode::Http,
                (Kind::Passthrough, _) => FrontendMode::TlsPassthrough,
                (Kind::Https, Some(table)) => FrontendMode::Https(Arc::new(table.build())),
                (Kind::Terminate, Some(table)) => FrontendMode::TlsTerminate(Arc::new(table.build())),
                (Kind::Https | Kind::Terminate, None) => continue,
            };
            let frontend = Frontend::new(owner.clone(), mode, listeners);
            let frontend = Arc::new(frontend);
            for ip in ips {
                frontends.insert(SocketAddr::new(*ip, port), frontend.clone());
            }
        }
    }
    GatewayFrontends::new(frontends)
}
