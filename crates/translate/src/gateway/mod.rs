//! Gateway API translation: GatewayClasses of ours (`--gateway-controller`), their
//! Gateways (an address from the pools, listeners validated), the routes attached to those
//! listeners compiled into the one route model, and the status of each object as the spec
//! defines it.
//!
//! Done in two steps around the address allocation of `l4`: [`prepare`] validates the
//! Gateways and says which ports each needs; [`finish`] attaches routes to the listeners of
//! the Gateways that got addresses and builds their frontends.

/// The header edits of a header modifier of any route kind (the same fields under a type per
/// kind): `Err` when a name or value is not valid.
macro_rules! modify_headers {
    ($edits:expr, $modifier:expr) => {{
        let m = $modifier;
        let set = m.set.iter().flatten().map(|h| (h.name.as_str(), h.value.as_str()));
        let add = m.add.iter().flatten().map(|h| (h.name.as_str(), h.value.as_str()));
        $crate::gateway::filters::header_edits($edits, set, add, m.remove.iter().flatten())
    }};
}

/// A backend reference of any route kind (the same fields under a type per kind) as a
/// [`http_route::RefView`], with `weight` and its own filters read as `edits`.
macro_rules! ref_view {
    ($b:expr, $weight:expr, $edits:expr) => {
        $crate::gateway::http_route::RefView {
            group: $b.group.as_deref(),
            kind: $b.kind.as_deref(),
            namespace: $b.namespace.as_deref(),
            name: &$b.name,
            port: $b.port,
            weight: $weight,
            edits: $edits,
        }
    };
}

mod attach;
mod backend_tls;
mod filters;
mod frontends;
mod grpc_route;
mod http_route;
mod l4_route;
mod listeners;
mod refs;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use sluice_config::{
    Diagnostic, Filter, GatewayApiStatus, GatewayFrontends, L4Protocol, Mirror, MirrorTo, ObjectRef, ObjectStatus,
    StatusCondition,
};
use sluice_store::{ObjectKey, Store};

pub(crate) use listeners::GatewayAcme;

use crate::backends::BackendKey;
use crate::certificates::Secrets;
use crate::l4::{Allocations, LbPort, LbService};

pub(crate) use backend_tls::{BackendTlsCache, PolicyOutcomes};
pub(crate) use frontends::GatewayL4;
pub(crate) use listeners::ValidGateway;

pub use sluice_config::GATEWAY_CONTROLLER;

/// The Gateway API group.
pub(crate) const GROUP: &str = "gateway.networking.k8s.io";

/// The Gateways of our classes, validated, before addresses are allocated.
pub(crate) struct Prepared {
    /// Our GatewayClasses by name, with their generation.
    classes: BTreeMap<String, i64>,
    gateways: Vec<ValidGateway>,
}

impl Prepared {
    /// The certificates automatic HTTPS obtains for listeners: (Gateway, Secret, name).
    pub(crate) fn acme_requests(&self) -> Vec<(ObjectRef, ObjectKey, String)> {
        let listeners = self.gateways.iter().flat_map(|g| g.listeners.iter().map(move |l| (g, l)));
        listeners
            .filter_map(|(gateway, listener)| {
                let (secret, name) = listener.acme.clone()?;
                Some((gateway.object.clone(), secret, name))
            })
            .collect()
    }

    /// Each Gateway as a candidate for an address: its listeners' ports.
    pub(crate) fn candidates(&self) -> Vec<LbService<'_>> {
        self.gateways
            .iter()
            .filter(|gateway| gateway.refused.is_none())
            .map(|gateway| {
                let mut ports: Vec<LbPort> = gateway
                    .listeners
                    .iter()
                    .map(|l| LbPort { protocol: l.l4_protocol(), port: l.port, name: l.name.clone() })
                    .collect();
                ports.sort_by_key(|p| (p.protocol == L4Protocol::Udp, p.port));
                ports.dedup_by_key(|p| (p.protocol, p.port));
                LbService::for_gateway(
                    gateway.object.clone(),
                    gateway.created.as_ref(),
                    ports,
                    gateway.requested.clone(),
                )
            })
            .collect()
    }
}

/// What Gateway API translation gives the snapshot.
pub(crate) struct Translated {
    /// HTTP and HTTPS frontends.
    pub frontends: GatewayFrontends,
    /// TCP and UDP listeners, for the L4 plane.
    pub l4: Vec<GatewayL4>,
    /// The status of every object of ours.
    pub status: Vec<ObjectStatus>,
    /// The backends routes point at, in id order from the first id given to [`finish`].
    pub backends: Vec<Arc<BackendKey>>,
    /// For each of `backends`, the Gateways whose routes reach it (BackendTLSPolicy status).
    pub reached_from: Vec<BTreeSet<ObjectKey>>,
}

/// The backendRefs of a TLSRoute, TCPRoute or UDPRoute rule as [`http_route::RefView`]s.
macro_rules! l4_refs {
    ($refs:expr) => {
        $refs.iter().map(|b| ref_view!(b, b.weight, Ok(None))).collect::<Vec<_>>()
    };
}

/// Finds our GatewayClasses and validates their Gateways.
pub(crate) fn prepare(
    store: &Store,
    controller: &str,
    secrets: &Secrets,
    acme: Option<&listeners::GatewayAcme>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Prepared {
    let classes: BTreeMap<String, i64> = store
        .gateway_classes
        .iter()
        .filter(|(_, class)| class.spec.controller_name == controller)
        .map(|(key, class)| (key.name.clone(), class.metadata.generation.unwrap_or(1)))
        .collect();
    let gateways = store
        .gateways
        .iter()
        .filter(|(_, gateway)| classes.contains_key(&gateway.spec.gateway_class_name))
        .map(|(key, gateway)| listeners::validate(key, gateway, store, secrets, acme, diagnostics))
        .collect();
    Prepared { classes, gateways }
}

/// Attaches routes to the Gateways' listeners, builds the frontends of the Gateways that
/// have addresses, and the status of everything. Backend ids start at `first_backend`.
pub(crate) fn finish(
    prepared: Prepared,
    addresses: &Allocations,
    store: &Store,
    controller: &str,
    first_backend: u32,
    diagnostics: &mut Vec<Diagnostic>,
) -> Translated {
    let Prepared { classes, gateways } = prepared;
    let mut status = Vec::new();
    for (name, generation) in &classes {
        status.push(ObjectStatus {
            object: ObjectRef::new("GatewayClass", "", name),
            generation: *generation,
            status: GatewayApiStatus::GatewayClass {
                conditions: vec![
                    StatusCondition::yes("Accepted", "Accepted", "handled by Sluice", *generation),
                    StatusCondition::yes("SupportedVersion", "SupportedVersion", "", *generation),
                ],
            },
        });
    }
    let gateways: BTreeMap<ObjectKey, ValidGateway> =
        gateways.into_iter().map(|g| (ObjectKey::new(&g.object.namespace, &g.object.name), g)).collect();
    let mut backends = refs::BackendIds::new(first_backend);
    let mut attached = attach::Attached::default();
    for (key, route) in &store.http_routes {
        let input = attach::RouteInput {
            kind: "HTTPRoute",
            key,
            meta: &route.metadata,
            parents: attach::parent_specs!(route.spec.parent_refs),
            hostnames: route.spec.hostnames.as_deref().unwrap_or_default(),
        };
        let compile = |d: &mut Vec<Diagnostic>| http_route::compile(key, route, store, &mut backends, d);
        attached.route(store, &gateways, controller, input, compile, &mut *diagnostics);
    }
    for (key, route) in &store.tls_routes {
        let input = attach::RouteInput {
            kind: "TLSRoute",
            key,
            meta: &route.metadata,
            parents: attach::parent_specs!(route.spec.parent_refs),
            hostnames: route.spec.hostnames.as_slice(),
        };
        let rules = route.spec.rules.iter().map(|rule| l4_refs!(rule.backend_refs));
        let compile = |d: &mut Vec<Diagnostic>| l4_route::compile("TLSRoute", key, rules, store, &mut backends, d);
        attached.route(store, &gateways, controller, input, compile, &mut *diagnostics);
    }
    for (key, route) in &store.tcp_routes {
        let input = attach::RouteInput {
            kind: "TCPRoute",
            key,
            meta: &route.metadata,
            parents: attach::parent_specs!(route.spec.parent_refs),
            hostnames: &[],
        };
        let rules = route.spec.rules.iter().map(|rule| l4_refs!(rule.backend_refs));
        let compile = |d: &mut Vec<Diagnostic>| l4_route::compile("TCPRoute", key, rules, store, &mut backends, d);
        attached.route(store, &gateways, controller, input, compile, &mut *diagnostics);
    }
    for (key, route) in &store.udp_routes {
        let input = attach::RouteInput {
            kind: "UDPRoute",
            key,
            meta: &route.metadata,
            parents: attach::parent_specs!(route.spec.parent_refs),
            hostnames: &[],
        };
        let rules = route.spec.rules.iter().map(|rule| l4_refs!(rule.backend_refs));
        let compile = |d: &mut Vec<Diagnostic>| l4_route::compile("UDPRoute", key, rules, store, &mut backends, d);
        attached.route(store, &gateways, controller, input, compile, &mut *diagnostics);
    }
    for (key, route) in &store.grpc_routes {
        let input = attach::RouteInput {
            kind: "GRPCRoute",
            key,
            meta: &route.metadata,
            parents: attach::parent_specs!(route.spec.parent_refs),
            hostnames: route.spec.hostnames.as_deref().unwrap_or_default(),
        };
        let compile = |d: &mut Vec<Diagnostic>| grpc_route::compile(key, route, store, &mut backends, d);
        attached.route(store, &gateways, controller, input, compile, &mut *diagnostics);
    }
    for gateway in gateways.values() {
        let ips: &[IpAddr] = addresses.get(&gateway.object).map_or(&[], Vec::as_slice);
        status.push(gateway.status(ips, &attached.counts));
    }
    status.extend(attached.status);
    let keys = backends.into_keys();
    let mut reached_from = vec![BTreeSet::new(); keys.len()];
    for attachment in &attached.routes {
        for m in attachment.matches.iter() {
            let forwarded = m.route.forward().into_iter().flat_map(|f| f.backends.iter().map(|b| b.id));
            let mirrored = m.route.filters.iter().filter_map(|f| match f {
                Filter::Mirror(Mirror { to: MirrorTo::Backend(id), .. }) => Some(*id),
                _ => None,
            });
            for id in forwarded.chain(mirrored) {
                let index = id.0.checked_sub(first_backend).and_then(|i| reached_from.get_mut(i as usize));
                if let Some(gateways) = index {
                    gateways.insert(attachment.gateway.clone());
                }
            }
        }
    }
    let l4 = frontends::l4_listeners(&gateways, addresses, &attached.routes);
    let frontends = frontends::build(&gateways, addresses, attached.routes);
    Translated { frontends, l4, status, backends: keys, reached_from }
}

#[cfg(test)]
mod tests;
