//! Translation: the stored Kubernetes objects in, one configuration [`Snapshot`] out.
//!
//! Pure functions with no I/O: the same store and options always give the same snapshot,
//! which is what makes `sluice check` trustworthy and translation easy to test. Every
//! user-written string is parsed here into the typed values of `sluice-config`; an invalid
//! Ingress is excluded alone with a diagnostic per problem, and everything valid is served.

mod acme;
mod annotations;
mod auth_objects;
mod backends;
mod cache;
mod certificates;
mod class;
mod client_certs;
mod compile;
mod configmap;
mod duration;
mod gateway;
mod ingress;
mod l4;
mod passthrough;
mod plan;
mod regexes;
mod selector;
mod upstream_tls;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use sluice_config::{BackendId, CertificateTable, Diagnostic, ObjectRef, PassthroughTable, Snapshot, Summary};
use sluice_store::k8s_openapi::api::core::v1::ConfigMap;
use sluice_store::k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use sluice_store::{ObjectKey, Store};

use crate::backends::{BackendKey, Backends, Resolved};
use crate::cache::DerivedCache;
use crate::certificates::Secrets;
use crate::class::{ClassChoice, ClassFilter};
use crate::compile::Context;
use crate::configmap::Global;
use crate::ingress::{Reference, ValidIngress};
use crate::plan::{Plan, Verdict};
use crate::regexes::Regexes;
use crate::upstream_tls::UpstreamTlsCache;

pub use acme::{HTTP01_KEY_PREFIX, TLS_ACME_ANNOTATION, TLS_ALPN01_KEY_PREFIX};
pub use annotations::{AnnotationReport, AnnotationVerdict, DEFAULT_ANNOTATIONS_PREFIX};
pub use backends::UpstreamMode;
pub use certificates::certified_key_from_pem;
pub use class::CONTROLLER_NAME;
pub use compile::Defaults;
pub use gateway::GATEWAY_CONTROLLER;
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
    /// `--lb-pool`: addresses for Services of `type: LoadBalancer`, beside the IPAddressPools;
    /// with neither, L4 is off.
    pub lb_pools: Vec<AddressPool>,
    /// `--controller-class`: IngressClasses whose `spec.controller` is this are ours.
    pub controller_class: String,
    /// `--annotations-prefix`: where ingress-nginx annotations are read from.
    pub annotations_prefix: String,
    /// Global defaults of what annotations override (from the command line); the
    /// controller ConfigMap's keys apply on top.
    pub defaults: Defaults,
    /// `--configmap`: the ConfigMap with ingress-nginx's global settings.
    pub configmap: Option<ObjectKey>,
    /// `--default-backend-service`: the Service (first port) answering `custom-http-errors`
    /// for Ingresses without a `default-backend` annotation.
    pub default_backend_service: Option<ObjectKey>,
    /// `--enable-ssl-passthrough`: honour `ssl-passthrough` (else it is ignored with a
    /// warning, as ingress-nginx does without the flag).
    pub enable_ssl_passthrough: bool,
    /// `--allow-unenforced-waf`: serve Ingresses that ask for ModSecurity / OWASP CRS
    /// without it, with a warning (else they are rejected).
    pub allow_unenforced_waf: bool,
    /// `--gateway-controller`: GatewayClasses whose `spec.controllerName` is this are ours.
    pub gateway_controller: String,
    /// `--node-name`: the node this replica runs on (`externalTrafficPolicy: Local` serves
    /// only its endpoints).
    pub node_name: String,
    /// `--upstream-mode`: endpoints, or NodePorts for a Sluice outside the cluster.
    pub upstream_mode: UpstreamMode,
    /// The Secret the ACME issuer publishes its challenges in (type
    /// `sluice.dev/acme-challenges`), read into the snapshot for the listeners to answer.
    pub acme_challenges: Option<ObjectKey>,
    /// `--acme-dns-rfc2136` is set: wildcard hosts can be validated (DNS-01).
    pub acme_dns01: bool,
    /// `--acme-gateways`: every Gateway HTTPS listener's certificate is obtained, not only
    /// those whose Secret is annotated `sluice.dev/acme: "true"`.
    pub acme_gateways: bool,
}

impl Options {
    /// Options with Sluice's defaults: class `sluice`, controller `sluice.dev/ingress-controller`,
    /// ingress-nginx's annotation prefix and defaults, no default Secret, no address pools.
    pub fn new(fallback_certificate: Arc<CertifiedKey>) -> Self {
        Self {
            ingress_class: "sluice".into(),
            watch_without_class: false,
            default_tls_secret: None,
            fallback_certificate,
            lb_pools: Vec::new(),
            controller_class: CONTROLLER_NAME.into(),
            annotations_prefix: DEFAULT_ANNOTATIONS_PREFIX.into(),
            defaults: Defaults::default(),
            configmap: None,
            default_backend_service: None,
            enable_ssl_passthrough: false,
            allow_unenforced_waf: false,
            gateway_controller: GATEWAY_CONTROLLER.into(),
            node_name: String::new(),
            upstream_mode: UpstreamMode::Endpoints,
            acme_challenges: None,
            acme_dns01: false,
            acme_gateways: false,
        }
    }

    /// How this configuration reads annotations.
    pub(crate) fn annotation_reading(&self) -> annotations::Reading<'_> {
        annotations::Reading { prefix: &self.annotations_prefix, allow_unenforced_waf: self.allow_unenforced_waf }
    }
}

/// Builds the snapshot for `store` from scratch; `generation` numbers it. `previous` holds
/// the addresses LoadBalancer Services had (from the last snapshot or the state file), kept
/// where possible. For a stream of changes, a [`Translator`] does the same with less work.
pub fn translate(store: &Store, options: &Options, previous: &Allocations, generation: u64) -> Snapshot {
    Translator::new(options.clone()).build(store, Changed::All, previous, generation).0
}

/// What Sluice does with the annotations of each Ingress of our class that has any under
/// the prefix, for `sluice check`.
pub fn annotation_reports(store: &Store, options: &Options) -> Vec<(ObjectRef, Vec<AnnotationReport>)> {
    let filter = ClassFilter::new(store, options);
    store
        .ingresses
        .iter()
        .filter(|(_, ingress)| filter.accepts(&ClassChoice::of(ingress)))
        .filter_map(|(key, ingress)| {
            let written = ingress.metadata.annotations.as_ref()?;
            let (_, mut reports) = annotations::parse(options.annotation_reading(), written);
            if !options.enable_ssl_passthrough {
                let key = format!("{}/ssl-passthrough", options.annotations_prefix);
                for report in reports.iter_mut().filter(|r| r.key == key && r.verdict == AnnotationVerdict::Honoured) {
                    report.verdict = AnnotationVerdict::Ignored("Sluice runs without --enable-ssl-passthrough".into());
                }
            }
            (!reports.is_empty()).then(|| (ObjectRef::new("Ingress", &key.namespace, &key.name), reports))
        })
        .collect()
}

/// What Sluice does with each key of the controller ConfigMap (`--configmap`), for
/// `sluice check`; `None` without one.
pub fn configmap_report(store: &Store, options: &Options) -> Option<(ObjectRef, Vec<AnnotationReport>)> {
    let key = options.configmap.as_ref()?;
    let configmap = store.config_maps.get(key)?;
    let global = configmap::read(&options.defaults, Some(key), Some(configmap), options.allow_unenforced_waf);
    let reports = configmap
        .data
        .iter()
        .flatten()
        .map(|(name, _)| {
            let field = format!("data.{name}");
            let verdict = match global.diagnostics.iter().find(|d| d.field == field) {
                Some(diagnostic) => AnnotationVerdict::Ignored(diagnostic.reason.clone()),
                None => AnnotationVerdict::Honoured,
            };
            AnnotationReport { key: name.clone(), verdict }
        })
        .collect();
    Some((ObjectRef::new("ConfigMap", &key.namespace, &key.name), reports))
}

/// What may have changed since a [`Translator`]'s previous build.
#[derive(Debug, Clone, Copy)]
pub enum Changed<'a> {
    /// Any kind: every object is looked at (one pointer comparison each when unchanged).
    All,
    /// Only these kinds, as manifests name them (`Ingress`, `EndpointSlice`, ...); objects of
    /// other kinds are not looked at. Sources know this exactly, and it spares a build the
    /// walk over every object of the unchanged kinds.
    Kinds(&'a BTreeSet<&'static str>),
    /// Only these objects, by kind and key: the build looks at nothing else, so its cost
    /// follows the change, not the number of objects.
    Objects(&'a BTreeSet<(&'static str, ObjectKey)>),
}

/// How much of the previous snapshot a build redid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rebuilt {
    /// Ingresses or IngressClasses changed: the routes of the hosts they touch were built
    /// again (every other host's are shared with the previous table).
    Routes,
    /// Only Services, endpoints or Secrets changed: the route table was shared, and only the
    /// backends of the changed Services were resolved again.
    Backends,
}

/// Translation that remembers what it derived from each object, so that the next build
/// redoes only the work of the objects that changed: an edited Ingress is validated again,
/// an edited Service or EndpointSlice has its backends resolved again, an edited Secret is
/// parsed again. Everything else is reused; the result is the snapshot [`translate`] would
/// build from scratch.
pub struct Translator {
    options: Options,
    ingresses: DerivedCache<Ingress, Classified>,
    classes: DerivedCache<IngressClass, ()>,
    backends: Backends,
    secrets: Secrets,
    plan: Plan,
    /// The SNI table and its problems; `None` until built, or when it must be built again.
    certificates: Option<(Arc<CertificateTable>, Vec<Diagnostic>)>,
    /// TLS towards backends, by setting and Secret.
    upstream_tls: UpstreamTlsCache,
    /// The `ssl-passthrough` table and its warnings; `None` when it must be built again.
    passthrough: Option<(Arc<PassthroughTable>, Vec<Diagnostic>)>,
    /// The backend of each id of the plan, as last resolved.
    resolved: Vec<Option<Resolved>>,
    /// The objects served Ingresses' routes read (`custom-headers` ConfigMaps, `auth-secret`
    /// Secrets), with the version their routes last read (`None`: absent).
    references: BTreeMap<Reference, Option<usize>>,
    /// Basic-auth users by Secret version.
    users: auth_objects::UsersCache,
    /// Client-certificate policies by CA Secret version.
    policies: client_certs::PolicyCache,
    /// The controller ConfigMap as last read (`None` when absent), and what it set.
    global: Option<(Option<Arc<ConfigMap>>, Global)>,
    /// Regexes compiled for paths, rewrites and hosts, shared by pattern text.
    regexes: Regexes,
    /// TLS towards Gateway backends, by BackendTLSPolicy.
    backend_tls: gateway::BackendTlsCache,
    /// What automatic HTTPS is built from (the stored certificates' facts).
    acme_cache: acme::AcmeCache,
    /// True until the first build, which looks at every object whatever it is told.
    fresh: bool,
}

impl std::fmt::Debug for Translator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Translator").field("options", &self.options).finish_non_exhaustive()
    }
}

/// An Ingress's class and validation, whatever its class.
struct Classified {
    class: ClassChoice,
    validated: Result<Arc<ValidIngress>, Vec<Diagnostic>>,
}

impl Translator {
    /// A translator with nothing derived yet.
    pub fn new(options: Options) -> Self {
        let upstream_mode = options.upstream_mode;
        Self {
            upstream_tls: UpstreamTlsCache::new(&options.annotations_prefix),
            passthrough: None,
            options,
            ingresses: DerivedCache::default(),
            classes: DerivedCache::default(),
            backends: Backends::new(upstream_mode),
            secrets: Secrets::default(),
            plan: Plan::default(),
            certificates: None,
            resolved: Vec::new(),
            global: None,
            regexes: Regexes::default(),
            references: BTreeMap::new(),
            users: auth_objects::UsersCache::default(),
            policies: client_certs::PolicyCache::default(),
            backend_tls: gateway::BackendTlsCache::default(),
            acme_cache: acme::AcmeCache::default(),
            fresh: true,
        }
    }

    /// Builds the snapshot for `store`, numbered `generation`, reusing what the objects that
    /// did not change gave last time; `changed` says where to look for changes.
    /// `previous` holds the addresses LoadBalancer Services had, kept where possible.
    pub fn build(
        &mut self,
        store: &Store,
        changed: Changed<'_>,
        previous: &Allocations,
        generation: u64,
    ) -> (Snapshot, Rebuilt) {
        let first = std::mem::replace(&mut self.fresh, false);
        self.users.prune();
        self.policies.prune();
        let changed = if first { Changed::All } else { changed };
        let reading = self.options.annotation_reading();
        let regexes = &self.regexes;
        let classify = |key: &ObjectKey, ingress: &Ingress| Classified {
            class: ClassChoice::of(ingress),
            validated: ingress::validate(key, ingress, reading, regexes).map(Arc::new),
        };
        let ingress_changes = self.ingresses.sync_changed(changed, "Ingress", &store.ingresses, classify);
        let classes_changed =
            !self.classes.sync_changed(changed, "IngressClass", &store.ingress_classes, |_, _| ()).is_empty();
        let changed_secrets = self.secrets.sync(store, changed);
        let secrets_changed = !changed_secrets.is_empty();
        // TLS built from a changed Secret is built again, and so are the backends using it.
        let tls_secrets_changed = self.upstream_tls.forget(&changed_secrets);
        let dirty_services = self.backends.sync(store, changed);

        // A changed controller ConfigMap changes every route's defaults; a changed
        // IngressClass can change which Ingresses are ours: plan them all again.
        let global_changed = self.sync_global(store);
        let replan = classes_changed || global_changed || first;
        let to_plan: Vec<Arc<ObjectKey>> = if replan {
            self.plan = Plan::default();
            let global_errors = self.options.default_backend_service.clone().map(BackendKey::first_port);
            self.plan.set_error_backend(global_errors);
            store.ingresses.keys().map(|key| Arc::new(key.clone())).collect()
        } else {
            let mut keys: Vec<Arc<ObjectKey>> = ingress_changes.into_iter().map(|change| change.key).collect();
            keys.extend(self.stale_references(store, changed));
            keys
        };
        let rebuilt = if to_plan.is_empty() && !replan { Rebuilt::Backends } else { Rebuilt::Routes };
        let ingresses = &self.ingresses;
        let reads_references = |key: &Arc<ObjectKey>| {
            ingresses.get(key).is_some_and(|c| c.validated.as_ref().is_ok_and(|v| v.references().next().is_some()))
        };
        let references_moved = replan || to_plan.iter().any(reads_references);
        let filter = ClassFilter::new(store, &self.options);
        let verdicts = to_plan.into_iter().map(|key| {
            let verdict = match ingresses.get(&key).filter(|c| filter.accepts(&c.class)) {
                None => Verdict::Ignored,
                Some(Classified { validated: Ok(valid), .. }) => Verdict::Served(valid.clone()),
                Some(Classified { validated: Err(problems), .. }) => Verdict::Rejected(problems.clone()),
            };
            (key, verdict)
        });
        let global = self.global.as_ref().map(|(_, global)| global);
        let defaults = global.map_or(&self.options.defaults, |g| &g.defaults);
        let cx = Context {
            defaults,
            config_maps: &store.config_maps,
            secrets: &store.secrets,
            regexes: &self.regexes,
            users: &self.users,
            policies: &self.policies,
        };
        let updated = self.plan.update(verdicts, &cx);
        if references_moved {
            self.references = self
                .plan
                .served()
                .flat_map(|ingress| ingress.references())
                .map(|reference| {
                    let seen = reference.version(store);
                    (reference, seen)
                })
                .collect();
        }
        if self.plan.passthrough_changed() || replan {
            self.passthrough = None;
        }
        let plan = &self.plan;
        if updated.tls || secrets_changed || replan {
            self.certificates = None;
        }
        let (certificates, certificate_problems) = &*self.certificates.get_or_insert_with(|| {
            let mut problems = Vec::new();
            let table = self.secrets.table(plan.served(), &self.options, &mut problems);
            (Arc::new(table), problems)
        });
        let (passthrough, passthrough_problems) = &*self.passthrough.get_or_insert_with(|| {
            let prefix = self.options.annotations_prefix.as_str();
            let (table, problems) = plan.passthrough_hosts().table(self.options.enable_ssl_passthrough, prefix);
            (Arc::new(table), problems)
        });

        // Resolve again the backends that were added, and those of changed Services.
        let mut refresh = updated.touched;
        for key in &updated.released {
            self.backends.forget(key);
        }
        for service in &dirty_services {
            for id in plan.backends_of(service) {
                if let Some(key) = plan.backend(*id) {
                    self.backends.forget(key);
                }
                refresh.push(*id);
            }
        }
        if tls_secrets_changed {
            for id in (0..plan.backend_ids()).map(|i| BackendId(u32::try_from(i).unwrap_or(u32::MAX))) {
                let named = plan.backend(id).filter(|key| {
                    let secret = key.options.proxy_ssl.as_ref().and_then(|ssl| ssl.secret.as_ref().ok());
                    secret.is_some_and(|secret| changed_secrets.iter().any(|changed| **changed == *secret))
                });
                if let Some(key) = named {
                    self.backends.forget(key);
                    refresh.push(id);
                }
            }
        }
        if replan {
            self.backends.forget_all();
            self.resolved.clear();
            refresh = (0..plan.backend_ids()).map(|i| BackendId(u32::try_from(i).unwrap_or(u32::MAX))).collect();
        }
        self.resolved.resize(plan.backend_ids(), None);
        for id in refresh {
            let resolved =
                plan.backend(id).map(|key| self.backends.resolve(store, key, &mut self.upstream_tls, defaults).clone());
            if let Some(slot) = self.resolved.get_mut(id.0 as usize) {
                *slot = resolved;
            }
        }
        let resolved = &self.resolved;
        let mut diagnostics = Vec::new();
        plan.diagnostics(&mut diagnostics);
        if resolved.iter().flatten().any(|r| r.problem.is_some()) {
            plan.unresolved(resolved, &mut diagnostics);
        }
        diagnostics.extend_from_slice(certificate_problems);
        diagnostics.extend(global.iter().flat_map(|g| g.diagnostics.iter().cloned()));
        diagnostics.extend_from_slice(passthrough_problems);
        let client_auth =
            client_certs::table(plan.served(), &store.secrets, defaults, &self.policies, &mut diagnostics);
        let controller = self.options.gateway_controller.as_str();
        let gateway_acme = self.options.acme_challenges.is_some().then(|| gateway::GatewayAcme {
            all: self.options.acme_gateways,
            fallback: self.options.fallback_certificate.clone(),
        });
        let prepared = gateway::prepare(store, controller, &self.secrets, gateway_acme.as_ref(), &mut diagnostics);
        let acme = Arc::new(self.acme_cache.build(
            plan.served(),
            prepared.acme_requests(),
            store,
            &self.secrets,
            (self.options.acme_challenges.as_ref(), self.options.acme_dns01),
            &mut diagnostics,
        ));
        let mut l4 = l4::translate(
            store,
            &self.options.lb_pools,
            previous,
            &self.backends,
            prepared.candidates(),
            &self.options.node_name,
            &mut diagnostics,
        );
        let first_gateway_backend = u32::try_from(plan.backend_ids()).unwrap_or(u32::MAX);
        let gateways =
            gateway::finish(prepared, &l4.addresses, store, controller, first_gateway_backend, &mut diagnostics);
        let mut backends: Vec<_> = resolved.iter().map(|r| r.as_ref().map(|r| r.backend.clone())).collect();
        let mut outcomes = gateway::PolicyOutcomes::default();
        for (key, reached_from) in gateways.backends.iter().zip(&gateways.reached_from) {
            if dirty_services.contains(&key.service) {
                self.backends.forget(key);
            }
            let resolved = self.backends.resolve(store, key, &mut self.upstream_tls, defaults).backend.clone();
            let http2 = key.options.protocol == Some(sluice_config::UpstreamProtocol::H2c);
            let backend = self.backend_tls.apply(store, resolved, http2, &mut outcomes, &mut diagnostics);
            outcomes.reached_by(reached_from.iter());
            backends.push(Some(backend));
        }
        let mut gateway_status = gateways.status;
        gateway_status.extend(outcomes.into_status(controller));
        self.backend_tls.prune(store);
        for listener in gateways.l4 {
            l4::add_gateway_listener(&mut l4, listener, &backends);
        }
        diagnostics.sort();
        diagnostics.dedup();
        let (ingresses, rejected_ingresses) = plan.counts();
        let summary =
            Summary { ingresses, rejected_ingresses, routes: plan.routes().len(), certificates: certificates.len() };
        let snapshot = Snapshot {
            generation,
            routes: plan.routes().clone(),
            backends,
            certificates: certificates.clone(),
            client_trust: global.map_or_else(Arc::default, |g| g.trust.clone()),
            passthrough: passthrough.clone(),
            client_auth: Arc::new(client_auth),
            acme,
            l4,
            ingresses: plan.served_list().clone(),
            gateway_status: gateway_status.into(),
            gateways: Arc::new(gateways.frontends),
            diagnostics,
            summary,
        };
        (snapshot, rebuilt)
    }
}

impl Translator {
    /// The served Ingresses whose referenced objects (a `custom-headers` ConfigMap, an
    /// `auth-secret` Secret) changed, appeared or went since their routes were compiled;
    /// looked for only when such objects may have changed.
    fn stale_references(&self, store: &Store, changed: Changed<'_>) -> Vec<Arc<ObjectKey>> {
        let kinds = ["ConfigMap", "Secret"];
        let may_have_changed = match changed {
            Changed::All => true,
            Changed::Kinds(changed) => kinds.iter().any(|kind| changed.contains(kind)),
            Changed::Objects(objects) => objects.iter().any(|(kind, _)| kinds.contains(kind)),
        };
        if !may_have_changed || self.references.is_empty() {
            return Vec::new();
        }
        let stale: BTreeSet<&Reference> = self
            .references
            .iter()
            .filter(|(reference, seen)| **seen != reference.version(store))
            .map(|(reference, _)| reference)
            .collect();
        if stale.is_empty() {
            return Vec::new();
        }
        self.plan
            .served()
            .filter(|ingress| ingress.references().any(|reference| stale.contains(&reference)))
            .map(|ingress| Arc::new(ObjectKey::new(&ingress.owner.namespace, &ingress.owner.name)))
            .collect()
    }

    /// Reads the controller ConfigMap again if it changed (one pointer comparison when not);
    /// true when it did, and every route must be compiled again.
    fn sync_global(&mut self, store: &Store) -> bool {
        let key = self.options.configmap.as_ref();
        let current = key.and_then(|key| store.config_maps.get(key));
        if let Some((seen, _)) = &self.global {
            if seen.as_ref().map(Arc::as_ptr) == current.map(Arc::as_ptr) {
                return false;
            }
        }
        let waf = self.options.allow_unenforced_waf;
        let global = configmap::read(&self.options.defaults, key, current.map(|c| &**c), waf);
        self.global = Some((current.cloned(), global));
        true
    }
}

#[cfg(test)]
mod configmap_tests;
#[cfg(test)]
mod incremental_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;
