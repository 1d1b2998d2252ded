//! Translation: the stored Kubernetes objects in, one configuration [`Snapshot`] out.
//!
//! Pure functions with no I/O: the same store and options always give the same snapshot,
//! which is what makes `sluice check` trustworthy and translation easy to test. Every
//! user-written string is parsed here into the typed values of `sluice-config`; an invalid
//! Ingress is excluded alone with a diagnostic per problem, and everything valid is served.

mod backends;
mod certificates;
mod class;
mod ingress;
mod l4;

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use sluice_config::{CertificateTableBuilder, Diagnostic, ObjectRef, Route, RouteTableBuilder, Snapshot, Summary};
use sluice_store::{ObjectKey, Store};

pub use certificates::certified_key_from_pem;
pub use class::CONTROLLER_NAME;
pub use l4::{AddressPool, Allocations, LOAD_BALANCER_CLASS};

/// What translation needs besides the objects themselves.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--ingress-class`: the class name whose Ingresses are ours.
    pub ingress_class: String,
    /// `--watch-ingress-without-class`: also serve Ingresses that name no class.
    pub watch_without_class: bool,
    /// `--default-tls-secret`: the certificate for unknown SNI, instead of `fallback_certificate`.
    pub default_tls_secret: Option<ObjectKey>,
    /// The certificate for unknown SNI when no default Secret is set (or it is unusable);
    /// generated once at start-up by the caller so that translation stays pure.
    pub fallback_certificate: Arc<CertifiedKey>,
    /// `--lb-pool`: addresses for Services of `type: LoadBalancer`; empty turns L4 off.
    pub lb_pools: Vec<AddressPool>,
}

/// Builds the snapshot for `store`; `generation` numbers it. `previous` holds the addresses
/// LoadBalancer Services had (from the last snapshot or the state file), kept where possible.
pub fn translate(store: &Store, options: &Options, previous: &Allocations, generation: u64) -> Snapshot {
    let mut diagnostics = Vec::new();
    let mut ingresses: Vec<ingress::ValidIngress<'_>> = Vec::new();
    let mut rejected = 0;
    for (key, ingress) in &store.ingresses {
        if !class::is_ours(ingress, store, options) {
            continue;
        }
        match ingress::validate(key, ingress) {
            Ok(valid) => ingresses.push(valid),
            Err(mut problems) => {
                rejected += 1;
                diagnostics.append(&mut problems);
            }
        }
    }
    // Precedence for conflicts: oldest first, then namespace/name.
    ingresses.sort_by(|a, b| (a.created, &a.object).cmp(&(b.created, &b.object)));

    let mut backends = backends::Resolver::new(store);
    let mut routes = RouteTableBuilder::default();
    for ingress in &ingresses {
        add_routes(ingress, &mut backends, &mut routes, &mut diagnostics);
    }
    let l4 = l4::translate(store, &options.lb_pools, previous, &backends, &mut diagnostics);
    let (backends, mut backend_diagnostics) = backends.into_parts();
    diagnostics.append(&mut backend_diagnostics);

    let default_certificate = default_certificate(store, options, &mut diagnostics);
    let mut certificates = CertificateTableBuilder::new(default_certificate);
    let mut secrets = certificates::Loader::new(store);
    for ingress in &ingresses {
        for entry in &ingress.tls {
            let Some(key) = secrets.load(&ingress.object, entry, &mut diagnostics) else {
                continue;
            };
            for host in &entry.hosts {
                if let Err(conflict) = certificates.insert(host, &ingress.object, &key) {
                    diagnostics.push(Diagnostic::object(
                        ingress.object.clone(),
                        entry.field.clone(),
                        format!(
                            "TLS host {host} is already served by {}; this entry is ignored for it",
                            conflict.winner
                        ),
                    ));
                }
            }
        }
    }
    let certificates = certificates.build();
    diagnostics.sort();
    diagnostics.dedup();
    let summary = Summary {
        ingresses: ingresses.len(),
        rejected_ingresses: rejected,
        routes: routes.len(),
        certificates: certificates.len(),
    };
    Snapshot {
        generation,
        routes: Arc::new(routes.build()),
        backends,
        certificates: Arc::new(certificates),
        l4,
        ingresses: ingresses.iter().map(|i| i.object.clone()).collect(),
        diagnostics,
        summary,
    }
}

/// Builds the next snapshot when only EndpointSlices or Endpoints changed: the route table,
/// certificates and diagnostics of `previous` are shared, only backends' endpoints (and the
/// L4 listeners) are looked up again. Proportional to the number of backends, not routes.
pub fn refresh_endpoints(
    previous: &Snapshot,
    store: &Store,
    options: &Options,
    allocations: &Allocations,
    generation: u64,
) -> Snapshot {
    let resolver = backends::Resolver::new(store);
    let backends = previous.backends.iter().map(|b| resolver.refreshed(b)).collect();
    // Allocation depends on Services only, so it and its diagnostics are unchanged.
    let mut unchanged = Vec::new();
    let l4 = l4::translate(store, &options.lb_pools, allocations, &resolver, &mut unchanged);
    Snapshot {
        generation,
        routes: previous.routes.clone(),
        backends,
        certificates: previous.certificates.clone(),
        l4,
        ingresses: previous.ingresses.clone(),
        diagnostics: previous.diagnostics.clone(),
        summary: previous.summary,
    }
}

fn add_routes(
    ingress: &ingress::ValidIngress<'_>,
    backends: &mut backends::Resolver<'_>,
    routes: &mut RouteTableBuilder,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let owner = Arc::new(ingress.object.clone());
    let label = Route::label_of(&ingress.object);
    let route_to = |backends: &mut backends::Resolver<'_>, target: &ingress::BackendRef| {
        let backend = backends.resolve(&ingress.object, target);
        Arc::new(Route::new(owner.clone(), label.clone(), backend))
    };
    if let Some(target) = &ingress.default_backend {
        if let Err(conflict) = routes.set_default(route_to(backends, target)) {
            diagnostics.push(Diagnostic::object(
                ingress.object.clone(),
                "spec.defaultBackend",
                format!("the default backend is already set by the older {}; this one is ignored", conflict.winner),
            ));
        }
    }
    for rule in &ingress.rules {
        for path in &rule.paths {
            if let Err(conflict) = routes.insert(&rule.host, &path.matcher, route_to(backends, &path.backend)) {
                diagnostics.push(Diagnostic::object(
                    ingress.object.clone(),
                    path.field.clone(),
                    format!(
                        "host {} path {} is already routed by the older {}; this path is ignored",
                        rule.host, path.matcher, conflict.winner
                    ),
                ));
            }
        }
    }
}

fn default_certificate(store: &Store, options: &Options, diagnostics: &mut Vec<Diagnostic>) -> Arc<CertifiedKey> {
    let Some(key) = &options.default_tls_secret else {
        return options.fallback_certificate.clone();
    };
    let object = ObjectRef::new("Secret", &key.namespace, &key.name);
    match store.secrets.get(key).ok_or_else(|| "not found".to_owned()).and_then(certificates::from_secret) {
        Ok(certified) => certified,
        Err(reason) => {
            diagnostics.push(Diagnostic::object(
                object,
                "",
                format!("--default-tls-secret: {reason}; serving a self-signed default certificate"),
            ));
            options.fallback_certificate.clone()
        }
    }
}

#[cfg(test)]
mod tests;
