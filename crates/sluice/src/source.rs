//! The configuration source behind the pipeline: manifest files, or the Kubernetes API.
//! Both feed the same store; translation does not know which one it reads.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use sluice_config::{Diagnostic, ObjectRef};
use sluice_manifests::{Changes, ManifestSource};
use sluice_store::Store;
use sluice_translate::Allocations;

use crate::pipeline::Trigger;

/// Every kind a source can hold, for a rebuild of everything.
const ALL_KINDS: [&str; 7] =
    ["Ingress", "IngressClass", "Service", "EndpointSlice", "Endpoints", "Secret", "ConfigMap"];

/// Where objects come from.
#[derive(Debug)]
pub enum Source {
    /// Files and directories (`--manifests`), watched.
    Manifests(Box<ManifestSource>),
    /// The cluster (`--kubernetes`), through watches.
    Kube(Arc<sluice_kube::KubeSource>),
}

impl Source {
    /// Runs `f` on the current objects (for the Kubernetes source, shared with its watch
    /// tasks, which wait meanwhile).
    pub fn with_store<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        match self {
            Source::Manifests(manifests) => f(manifests.store()),
            Source::Kube(kube) => kube.read(f),
        }
    }

    /// Objects by kind, without copying the store.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        match self {
            Source::Manifests(manifests) => manifests.store().counts(),
            Source::Kube(kube) => kube.counts(),
        }
    }

    /// Problems reading the source itself (files that do not parse, duplicates).
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            Source::Manifests(manifests) => manifests.diagnostics(),
            Source::Kube(_) => Vec::new(),
        }
    }

    /// Files whose current version does not parse.
    pub fn failing_files(&self) -> usize {
        match self {
            Source::Manifests(manifests) => manifests.failing_files(),
            Source::Kube(_) => 0,
        }
    }

    /// Applies `trigger`, reporting what changed.
    pub fn apply(&mut self, trigger: &Trigger) -> Changes {
        match (self, trigger) {
            (Source::Manifests(manifests), Trigger::Rescan) => manifests.rescan(),
            (Source::Manifests(manifests), Trigger::Paths(paths)) => manifests.refresh(paths),
            (Source::Manifests(manifests), Trigger::Confirm(paths)) => manifests.confirm(paths),
            (Source::Kube(_), Trigger::Cluster { kinds, objects }) => {
                let mut all_kinds = kinds.clone();
                all_kinds.extend(objects.iter().map(|(kind, _)| *kind));
                // Listed objects say exactly what changed, unless a whole kind was relisted.
                let objects = if kinds.is_empty() { objects.clone() } else { BTreeSet::new() };
                Changes { kinds: all_kinds, objects, ..Changes::default() }
            }
            (Source::Kube(_), Trigger::Rescan) => {
                Changes { kinds: ALL_KINDS.into_iter().collect::<BTreeSet<_>>(), ..Changes::default() }
            }
            _ => Changes::default(),
        }
    }
}

/// The addresses LoadBalancer Services and Gateways show in their status: in Kubernetes mode
/// the status is the allocation record, so a restarted or new leader keeps every Service's
/// and Gateway's address.
pub fn allocations_from_status(store: &Store) -> Allocations {
    let mut allocations = Allocations::new();
    for (key, service) in &store.services {
        let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|lb| lb.ingress.as_ref());
        let ips: Vec<IpAddr> =
            ingress.into_iter().flatten().filter_map(|i| i.ip.as_deref()).filter_map(|ip| ip.parse().ok()).collect();
        if !ips.is_empty() {
            allocations.insert(ObjectRef::new("Service", &key.namespace, &key.name), ips);
        }
    }
    // A Gateway's written `status.addresses` keep its address the same way.
    for (key, gateway) in &store.gateways {
        let addresses = gateway.status.as_ref().and_then(|s| s.addresses.as_ref());
        let ips: Vec<IpAddr> = addresses
            .into_iter()
            .flatten()
            .filter(|a| a.r#type.as_deref().is_none_or(|t| t == "IPAddress"))
            .filter_map(|a| a.value.parse().ok())
            .collect();
        if !ips.is_empty() {
            allocations.insert(ObjectRef::new("Gateway", &key.namespace, &key.name), ips);
        }
    }
    allocations
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_gateways_keep_the_addresses_their_status_shows() {
        let yaml = r#"
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: web}
spec: {type: LoadBalancer, ports: [{port: 80}]}
status: {loadBalancer: {ingress: [{ip: 198.18.0.1}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: web}
spec: {gatewayClassName: sluice, listeners: [{name: http, port: 80, protocol: HTTP}]}
status: {addresses: [{type: IPAddress, value: 198.18.0.2}, {type: Hostname, value: gw.example.com}]}
"#;
        let (objects, problems) = sluice_manifests::decode_documents(yaml, false).expect("YAML");
        assert!(problems.is_empty(), "{problems:?}");
        let mut store = Store::default();
        for object in objects {
            store.insert(object);
        }
        let allocations = allocations_from_status(&store);
        let ip = |s: &str| s.parse::<IpAddr>().expect("an address");
        assert_eq!(allocations.get(&ObjectRef::new("Service", "web", "lb")), Some(&vec![ip("198.18.0.1")]));
        assert_eq!(allocations.get(&ObjectRef::new("Gateway", "web", "gw")), Some(&vec![ip("198.18.0.2")]));
    }
}
