//! Resolving Service ports to the addresses of their ready endpoints, kept across builds.
//!
//! Services, EndpointSlices (indexed by the Service they belong to) and legacy Endpoints are
//! followed object by object; a resolved backend is reused, round-robin position and all,
//! until its Service or one of its endpoint objects changes.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use foldhash::{HashMap, HashSet};
use sluice_config::{Backend, ObjectRef, Transport, UpstreamProtocol};
use sluice_store::k8s_openapi::api::core::v1::Node;
use sluice_store::k8s_openapi::api::core::v1::{Endpoints, Service, ServicePort};
use sluice_store::k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use sluice_store::{ObjectKey, Store};

use crate::annotations::BackendOptions;
use crate::cache::DerivedCache;
use crate::compile::Defaults;
use crate::ingress::PortRef;
use crate::upstream_tls::UpstreamTlsCache;
use crate::Changed;

/// The label EndpointSlices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The `appProtocol` that selects HTTP/2 cleartext towards the endpoints.
const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";

/// A Service port as Ingresses name it; every route to the same one shares one [`Backend`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BackendKey {
    /// The Service (in the Ingress's namespace).
    pub service: ObjectKey,
    /// The port, by number or name.
    pub port: PortRef,
    /// How the Ingress asks for it to be reached (`backend-protocol`, `service-upstream`,
    /// `proxy-ssl-*`).
    pub options: BackendOptions,
}

impl BackendKey {
    /// The first port of `service`, reached over plain HTTP at its endpoints (never its
    /// ClusterIP, whatever `service-upstream` says, as ingress-nginx): where error answers
    /// come from.
    pub(crate) fn first_port(service: ObjectKey) -> Self {
        let options = BackendOptions { service_upstream: Some(false), ..BackendOptions::default() };
        Self { service, port: PortRef::First, options }
    }
}

/// A backend as resolved, and why it has no endpoints when its Service or port is missing.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub backend: Arc<Backend>,
    /// Reported against every Ingress field that names this backend.
    pub problem: Option<Arc<str>>,
    /// The field to report `problem` on instead of the backend's (the annotation that
    /// cannot be honoured).
    pub field: Option<Arc<str>>,
}

/// The endpoint side of the store as translation last saw it, and the backends resolved
/// from it.
#[derive(Default)]
pub(crate) struct Backends {
    services: DerivedCache<Service, ()>,
    endpoints: DerivedCache<Endpoints, ()>,
    /// Each slice's Service, from its `kubernetes.io/service-name` label.
    slices: DerivedCache<EndpointSlice, Option<Arc<ObjectKey>>>,
    /// Slices by Service; a Service with an entry here ignores its legacy Endpoints.
    slices_by_service: HashMap<Arc<ObjectKey>, Vec<Arc<EndpointSlice>>>,
    resolved: HashMap<Arc<BackendKey>, Resolved>,
    nodes: DerivedCache<Node, ()>,
    mode: UpstreamMode,
}

impl Backends {
    /// Backends reached as `mode` says.
    pub(crate) fn new(mode: UpstreamMode) -> Self {
        Self { mode, ..Self::default() }
    }

    /// Catches up with `store`, looking where `changed` says. Returns the Services whose
    /// Service object, EndpointSlices or Endpoints changed: their backends must be resolved
    /// again ([`Backends::forget`]).
    pub(crate) fn sync(&mut self, store: &Store, changed: Changed<'_>) -> HashSet<Arc<ObjectKey>> {
        let mut dirty = HashSet::default();
        let services = self.services.sync_changed(changed, "Service", &store.services, |_, _| ());
        dirty.extend(services.into_iter().map(|c| c.key));
        let endpoints = self.endpoints.sync_changed(changed, "Endpoints", &store.endpoints, |_, _| ());
        dirty.extend(endpoints.into_iter().map(|c| c.key));
        let nodes = self.nodes.sync_changed(changed, "Node", &store.nodes, |_, _| ());
        if self.mode == UpstreamMode::NodePort && !nodes.is_empty() {
            // Every backend is reached through the nodes.
            dirty.extend(store.services.keys().map(|k| Arc::new(k.clone())));
        }
        let slices = self.slices.sync_changed(changed, "EndpointSlice", &store.endpoint_slices, owning_service);
        for change in slices {
            if let Some(Some(service)) = change.old {
                if let Some(list) = self.slices_by_service.get_mut(&service) {
                    // Slices of one Service share its namespace: the name tells them apart.
                    list.retain(|slice| slice.metadata.name.as_deref() != Some(change.key.name.as_str()));
                    if list.is_empty() {
                        self.slices_by_service.remove(&service);
                    }
                }
                dirty.insert(service);
            }
            let current = store.endpoint_slices.get(&change.key);
            if let (Some(Some(service)), Some(slice)) = (self.slices.get(&change.key), current) {
                let list = self.slices_by_service.entry(service.clone()).or_default();
                list.push(slice.clone());
                dirty.insert(service.clone());
            }
        }
        dirty
    }

    /// The backend for `key`: the one resolved before if nothing it depends on changed since.
    /// Problems (missing Service or port, unusable `proxy-ssl-secret`) come with it; the
    /// route still exists and answers 503 until they are fixed.
    /// `defaults` (the controller ConfigMap's) decide what the Ingress left open: ClusterIP or
    /// endpoints (`service-upstream`), whether a `proxy-ssl-secret` may be in another
    /// namespace (`allow-cross-namespace-resources`). They change only with a new plan, which
    /// forgets every resolved backend.
    pub(crate) fn resolve(
        &mut self,
        store: &Store,
        key: &Arc<BackendKey>,
        tls: &mut UpstreamTlsCache,
        defaults: &Defaults,
    ) -> &Resolved {
        if !self.resolved.contains_key(key) {
            let resolved = self.resolve_now(store, key, tls, defaults);
            self.resolved.insert(key.clone(), resolved);
        }
        &self.resolved[key]
    }

    /// Forgets the backend resolved for `key` (its Service changed, or no route uses it).
    pub(crate) fn forget(&mut self, key: &BackendKey) {
        self.resolved.remove(key);
    }

    /// Forgets every resolved backend.
    pub(crate) fn forget_all(&mut self) {
        self.resolved.clear();
    }

    fn resolve_now(
        &self,
        store: &Store,
        key: &BackendKey,
        tls: &mut UpstreamTlsCache,
        defaults: &Defaults,
    ) -> Resolved {
        let service_ref = ObjectRef::new("Service", &key.service.namespace, &key.service.name);
        let found = store
            .services
            .get(&key.service)
            .ok_or_else(|| format!("{service_ref} not found; requests get 503 until it exists"))
            .and_then(|service| find_port(service, &key.port));
        let label = key.port.to_string();
        let unavailable = |service_ref, problem, field| {
            let backend = Backend::new(service_ref, &label, None, Transport::Http1, Vec::new());
            Resolved { backend: Arc::new(backend), problem: Some(problem), field }
        };
        let port = match found {
            Ok(port) => port,
            Err(reason) => return unavailable(service_ref, reason.into(), None),
        };
        let protocol = key.options.protocol.unwrap_or(match port.app_protocol.as_deref() {
            Some(H2C_APP_PROTOCOL) => UpstreamProtocol::H2c,
            _ => UpstreamProtocol::Http1,
        });
        let transport = match protocol {
            UpstreamProtocol::Http1 => Transport::Http1,
            UpstreamProtocol::H2c => Transport::H2c,
            UpstreamProtocol::Https | UpstreamProtocol::H2 => {
                match tls.get(store, key, protocol == UpstreamProtocol::H2, defaults.allow_cross_namespace_resources) {
                    Ok(tls) => Transport::Tls(tls),
                    // No endpoints: 503, never the backend reached without the TLS asked for.
                    Err(problem) => return unavailable(service_ref, problem.reason, Some(problem.field)),
                }
            }
        };
        let port_name = port.name.clone().unwrap_or_default();
        let to_cluster_ip = self.mode == UpstreamMode::Endpoints;
        let endpoints = if to_cluster_ip && key.options.service_upstream.unwrap_or(defaults.service_upstream) {
            cluster_ip(store, &key.service, port.port)
        } else {
            self.endpoints(store, &key.service, &port_name)
        };
        let backend = Backend::new(service_ref, &label, Some(port_name), transport, endpoints);
        Resolved { backend: Arc::new(backend), problem: None, field: None }
    }

    /// Ready endpoint addresses of the Service port named `port_name` ("" when unnamed): from
    /// the EndpointSlices, or the legacy Endpoints when the Service has no slice at all. With
    /// `--upstream-mode nodeport`, the port's `nodePort` on the ready nodes instead.
    pub(crate) fn endpoints(&self, store: &Store, service: &ObjectKey, port_name: &str) -> Vec<SocketAddr> {
        self.endpoints_on(store, service, port_name, None)
    }

    /// [`Backends::endpoints`], only those on `node` when given (`externalTrafficPolicy:
    /// Local`: endpoints of other nodes do not serve this node's traffic; in nodeport mode,
    /// only the nodes that have an endpoint).
    pub(crate) fn endpoints_on(
        &self,
        store: &Store,
        service: &ObjectKey,
        port_name: &str,
        node: Option<&str>,
    ) -> Vec<SocketAddr> {
        if self.mode == UpstreamMode::NodePort {
            let local = node.map(|_| self.endpoint_nodes(store, service));
            return node_ports(store, service, port_name, local.as_ref());
        }
        let mut found = BTreeSet::new();
        let wanted = |endpoint_node: Option<&str>| node.is_none_or(|n| endpoint_node == Some(n));
        if let Some(slices) = self.slices_by_service.get(service) {
            for slice in slices {
                add_slice_endpoints(slice, port_name, &wanted, &mut found);
            }
        } else if let Some(endpoints) = store.endpoints.get(service) {
            add_legacy_endpoints(endpoints, port_name, &wanted, &mut found);
        }
        found.into_iter().collect()
    }

    /// The nodes with a ready endpoint of `service` (any port).
    pub(crate) fn endpoint_nodes(&self, store: &Store, service: &ObjectKey) -> BTreeSet<String> {
        let mut nodes = BTreeSet::new();
        if let Some(slices) = self.slices_by_service.get(service) {
            let endpoints = slices.iter().flat_map(|s| s.endpoints.iter());
            nodes.extend(endpoints.filter(|e| ready(e)).filter_map(|e| e.node_name.clone()));
        } else if let Some(endpoints) = store.endpoints.get(service) {
            let subsets = endpoints.subsets.iter().flatten();
            let addresses = subsets.flat_map(|s| s.addresses.iter().flatten());
            nodes.extend(addresses.filter_map(|a| a.node_name.clone()));
        }
        nodes
    }
}

/// Where upstream traffic goes (`--upstream-mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UpstreamMode {
    /// The Service's ready endpoints (pod addresses): Sluice runs in the cluster.
    #[default]
    Endpoints,
    /// The Service port's `nodePort` on every ready node: Sluice runs outside the cluster,
    /// where pod addresses are not routable.
    NodePort,
}

/// The `nodePort` of the Service port named `port_name` on each ready node's address
/// (InternalIP, else ExternalIP); only on `local` nodes when given.
fn node_ports(
    store: &Store,
    service: &ObjectKey,
    port_name: &str,
    local: Option<&BTreeSet<String>>,
) -> Vec<SocketAddr> {
    let spec = store.services.get(service).and_then(|s| s.spec.as_ref());
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let node_port = ports
        .iter()
        .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
        .and_then(|p| p.node_port)
        .and_then(|p| u16::try_from(p).ok());
    let Some(node_port) = node_port else {
        return Vec::new();
    };
    let mut found = BTreeSet::new();
    for (key, node) in &store.nodes {
        let status = node.status.as_ref();
        let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
        let is_ready = conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True");
        if !is_ready || local.is_some_and(|l| !l.contains(&key.name)) {
            continue;
        }
        let addresses = status.and_then(|s| s.addresses.as_deref()).unwrap_or_default();
        let address = ["InternalIP", "ExternalIP"].iter().find_map(|kind| {
            addresses.iter().find(|a| a.type_ == *kind).and_then(|a| a.address.parse::<IpAddr>().ok())
        });
        found.extend(address.map(|ip| SocketAddr::new(ip, node_port)));
    }
    found.into_iter().collect()
}

/// `service-upstream`: the Service's ClusterIP and port, as one endpoint.
fn cluster_ip(store: &Store, service: &ObjectKey, port: i32) -> Vec<SocketAddr> {
    let spec = store.services.get(service).and_then(|s| s.spec.as_ref());
    let ip = spec.and_then(|s| s.cluster_ip.as_deref()).and_then(|ip| ip.parse::<IpAddr>().ok());
    match (ip, u16::try_from(port)) {
        (Some(ip), Ok(port)) => vec![SocketAddr::new(ip, port)],
        _ => Vec::new(),
    }
}

fn owning_service(key: &ObjectKey, slice: &EndpointSlice) -> Option<Arc<ObjectKey>> {
    let labels = slice.metadata.labels.as_ref();
    labels.and_then(|l| l.get(SERVICE_NAME_LABEL)).map(|service| Arc::new(ObjectKey::new(&key.namespace, service)))
}

fn ready(endpoint: &Endpoint) -> bool {
    endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false)
}

fn add_slice_endpoints(
    slice: &EndpointSlice,
    port_name: &str,
    wanted: &dyn Fn(Option<&str>) -> bool,
    found: &mut BTreeSet<SocketAddr>,
) {
    if slice.address_type == "FQDN" {
        return;
    }
    let ports = slice.ports.as_deref().unwrap_or_default();
    let Some(port) = ports
        .iter()
        .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
        .and_then(|p| p.port)
        .and_then(|p| u16::try_from(p).ok())
    else {
        return;
    };
    for endpoint in &slice.endpoints {
        if ready(endpoint) && wanted(endpoint.node_name.as_deref()) {
            found.extend(parse_ips(&endpoint.addresses).map(|ip| SocketAddr::new(ip, port)));
        }
    }
}

fn add_legacy_endpoints(
    endpoints: &Endpoints,
    port_name: &str,
    wanted: &dyn Fn(Option<&str>) -> bool,
    found: &mut BTreeSet<SocketAddr>,
) {
    for subset in endpoints.subsets.as_deref().unwrap_or_default() {
        let ports = subset.ports.as_deref().unwrap_or_default();
        let Some(port) = ports
            .iter()
            .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
            .and_then(|p| u16::try_from(p.port).ok())
        else {
            continue;
        };
        let addresses = subset.addresses.as_deref().unwrap_or_default();
        let addresses = addresses.iter().filter(|a| wanted(a.node_name.as_deref()));
        found.extend(addresses.filter_map(|a| a.ip.parse::<IpAddr>().ok()).map(|ip| SocketAddr::new(ip, port)));
    }
}

fn parse_ips(addresses: &[String]) -> impl Iterator<Item = IpAddr> + '_ {
    addresses.iter().filter_map(|a| a.parse().ok())
}

fn find_port<'a>(service: &'a Service, port: &PortRef) -> Result<&'a ServicePort, String> {
    let spec = service.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
        return Err("ExternalName Services are not supported as Ingress backends".into());
    }
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let found = ports.iter().enumerate().find(|(i, p)| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
        PortRef::First => *i == 0,
    });
    let found = found.map(|(_, p)| p);
    found.ok_or_else(|| {
        let name = service.metadata.name.as_deref().unwrap_or_default();
        format!("Service {name} has no port {port}; requests get 503 until it does")
    })
}
