//! Resolving Ingress backends to Service ports and their ready endpoint addresses.

use std::collections::BTreeSet;

use foldhash::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sluice_config::{Backend, BackendId, Diagnostic, ObjectRef, UpstreamProtocol};
use sluice_store::k8s_openapi::api::core::v1::{Service, ServicePort};
use sluice_store::{ObjectKey, Store};

use crate::ingress::{BackendRef, PortRef};

/// The label EndpointSlices carry naming their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The `appProtocol` that selects HTTP/2 cleartext towards the endpoints.
const H2C_APP_PROTOCOL: &str = "kubernetes.io/h2c";

/// Resolves backends once per Service port per snapshot, so that every route to the same
/// port shares one [`Backend`] (and one round-robin position).
pub(crate) struct Resolver<'s> {
    store: &'s Store,
    slices_by_service: HashMap<ObjectKey, Vec<&'s sluice_store::k8s_openapi::api::discovery::v1::EndpointSlice>>,
    cache: HashMap<(String, String, PortRef), BackendId>,
    backends: Vec<Arc<Backend>>,
    diagnostics: Vec<Diagnostic>,
}

impl<'s> Resolver<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        let mut slices_by_service: HashMap<_, Vec<_>> = HashMap::default();
        for (key, slice) in &store.endpoint_slices {
            let labels = slice.metadata.labels.as_ref();
            if let Some(service) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                slices_by_service.entry(ObjectKey::new(&key.namespace, service)).or_default().push(slice);
            }
        }
        Self { store, slices_by_service, cache: HashMap::default(), backends: Vec::new(), diagnostics: Vec::new() }
    }

    /// The backend for `target` as used by `ingress`. Problems (missing Service or port) are
    /// reported against the Ingress, and the route still exists: it answers 503 until fixed.
    pub(crate) fn resolve(&mut self, ingress: &ObjectRef, target: &BackendRef) -> BackendId {
        let cache_key = (ingress.namespace.clone(), target.service.clone(), target.port.clone());
        if let Some(id) = self.cache.get(&cache_key) {
            return *id;
        }
        let service_ref = ObjectRef::new("Service", &ingress.namespace, &target.service);
        let key = ObjectKey::new(&ingress.namespace, &target.service);
        let resolved = self
            .store
            .services
            .get(&key)
            .ok_or_else(|| format!("{service_ref} not found; requests get 503 until it exists"))
            .and_then(|service| find_port(service, &target.port).map(|port| (service, port)));
        let backend = match resolved {
            Ok((_, port)) => {
                let protocol = match port.app_protocol.as_deref() {
                    Some(H2C_APP_PROTOCOL) => UpstreamProtocol::H2c,
                    _ => UpstreamProtocol::Http1,
                };
                let port_name = port.name.clone().unwrap_or_default();
                let endpoints = self.endpoints(&key, &port_name);
                let label = target.port.to_string();
                Backend::new(service_ref, &label, Some(port_name), protocol, endpoints)
            }
            Err(reason) => {
                self.diagnostics.push(Diagnostic::object(ingress.clone(), target.field.clone(), reason));
                Backend::new(service_ref, &target.port.to_string(), None, UpstreamProtocol::Http1, Vec::new())
            }
        };
        let id = BackendId(u32::try_from(self.backends.len()).unwrap_or(u32::MAX));
        self.backends.push(Arc::new(backend));
        self.cache.insert(cache_key, id);
        id
    }

    /// `backend` with its endpoints looked up again in the store.
    pub(crate) fn refreshed(&self, backend: &Backend) -> Arc<Backend> {
        let endpoints = match &backend.port_name {
            Some(port_name) => {
                let key = ObjectKey::new(&backend.service.namespace, &backend.service.name);
                self.endpoints(&key, port_name)
            }
            None => Vec::new(),
        };
        Arc::new(backend.with_endpoints(endpoints))
    }

    /// Ready endpoint addresses of the Service port named `port_name` ("" when unnamed): from
    /// the EndpointSlices, or the legacy Endpoints when the Service has no slice at all.
    pub(crate) fn endpoints(&self, service: &ObjectKey, port_name: &str) -> Vec<SocketAddr> {
        let mut found = BTreeSet::new();
        if let Some(slices) = self.slices_by_service.get(service) {
            for slice in slices {
                if slice.address_type == "FQDN" {
                    continue;
                }
                let ports = slice.ports.as_deref().unwrap_or_default();
                let Some(port) = ports
                    .iter()
                    .find(|p| p.name.as_deref().unwrap_or_default() == port_name)
                    .and_then(|p| p.port)
                    .and_then(|p| u16::try_from(p).ok())
                else {
                    continue;
                };
                for endpoint in &slice.endpoints {
                    let ready = endpoint.conditions.as_ref().and_then(|c| c.ready) != Some(false);
                    if ready {
                        found.extend(parse_ips(&endpoint.addresses).map(|ip| SocketAddr::new(ip, port)));
                    }
                }
            }
        } else if let Some(endpoints) = self.store.endpoints.get(service) {
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
                found.extend(
                    addresses.iter().filter_map(|a| a.ip.parse::<IpAddr>().ok()).map(|ip| SocketAddr::new(ip, port)),
                );
            }
        }
        found.into_iter().collect()
    }

    /// The backends resolved (indexed by the ids handed out) and the problems found.
    pub(crate) fn into_parts(self) -> (Vec<Arc<Backend>>, Vec<Diagnostic>) {
        (self.backends, self.diagnostics)
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
    let found = ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => p.name.as_deref() == Some(name.as_str()),
    });
    found.ok_or_else(|| {
        let name = service.metadata.name.as_deref().unwrap_or_default();
        format!("Service {name} has no port {port}; requests get 503 until it does")
    })
}
