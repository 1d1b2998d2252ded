//! The routing plan: served Ingresses in precedence order, and the route table they make.
//!
//! It is kept between builds and updated with the Ingresses that changed: only the hosts
//! those Ingresses have (or had) rules for are routed again, every other host's routes are
//! shared with the previous table. It depends on Ingresses (and IngressClasses) only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use foldhash::{HashMap, HashSet};
use sluice_config::{BackendId, Diagnostic, HostMatch, ObjectRef, Route, RouteTable, RouteTableBuilder};
use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_store::ObjectKey;

use crate::backends::{BackendKey, Resolved};
use crate::ingress::{BackendRef, ValidIngress};

/// Conflict precedence: oldest first, then namespace/name.
type Precedence = (Option<Time>, Arc<ObjectKey>);

/// What an Ingress amounts to now.
pub(crate) enum Verdict {
    /// Ours and valid.
    Served(Arc<ValidIngress>),
    /// Ours and invalid, with its problems.
    Rejected(Vec<Diagnostic>),
    /// Gone, or of another class.
    Ignored,
}

/// A routing slot that Ingresses compete for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Slot {
    Host(HostMatch),
    DefaultBackend,
}

/// Routes and backend ids of the served Ingresses.
#[derive(Default)]
pub(crate) struct Plan {
    /// The served Ingresses in precedence order.
    served: BTreeMap<Precedence, Arc<ValidIngress>>,
    precedence: HashMap<Arc<ObjectKey>, Precedence>,
    rejected: HashMap<Arc<ObjectKey>, Vec<Diagnostic>>,
    /// Which served Ingresses compete for each slot, oldest first (a sorted `Vec`: most
    /// slots have one contender, and a one-element `BTreeSet` costs a whole node).
    contenders: HashMap<Slot, Vec<Precedence>>,
    /// The losers of each slot, reported against them.
    conflicts: HashMap<Slot, Vec<Diagnostic>>,
    routes: Arc<RouteTable>,
    backends: BackendSlots,
    served_list: Arc<[Arc<ObjectRef>]>,
}

/// What a [`Plan::update`] changed.
#[derive(Debug, Default)]
pub(crate) struct Updated {
    /// A changed Ingress that is or was served had TLS entries.
    pub tls: bool,
    /// Backend ids that were given to a backend or freed.
    pub touched: Vec<BackendId>,
    /// Backends no served Ingress names any more.
    pub released: Vec<BackendKey>,
}

impl Plan {
    /// Applies the new verdicts of the Ingresses of `changes`; everything else stays.
    pub(crate) fn update(&mut self, changes: impl IntoIterator<Item = (Arc<ObjectKey>, Verdict)>) -> Updated {
        let mut dirty = HashSet::default();
        let mut updated = Updated::default();
        // Whether the list of served Ingresses (in precedence order) changed.
        let mut reordered = false;
        for (key, verdict) in changes {
            self.rejected.remove(&key);
            let was = self.precedence.remove(&key);
            if let Some(old) = was.as_ref().and_then(|p| self.served.remove_entry(p)) {
                self.withdraw(old, &mut dirty, &mut updated);
            }
            match verdict {
                Verdict::Served(ingress) => {
                    let precedence = (ingress.created.clone(), key.clone());
                    reordered |= was.as_ref() != Some(&precedence);
                    updated.tls |= !ingress.tls.is_empty();
                    for slot in slots(&ingress) {
                        let contenders = self.contenders.entry(slot.clone()).or_default();
                        if let Err(at) = contenders.binary_search(&precedence) {
                            contenders.insert(at, precedence.clone());
                        }
                        dirty.insert(slot);
                    }
                    for target in backend_refs(&ingress) {
                        self.backends.acquire(&target.key, &mut updated);
                    }
                    self.precedence.insert(key, precedence.clone());
                    self.served.insert(precedence, ingress);
                }
                Verdict::Rejected(problems) => {
                    reordered |= was.is_some();
                    self.rejected.insert(key, problems);
                }
                Verdict::Ignored => reordered |= was.is_some(),
            }
        }
        if !dirty.is_empty() {
            let mut routes = self.routes.to_builder();
            for slot in dirty {
                self.route(slot, &mut routes);
            }
            self.routes = Arc::new(routes.build());
        }
        if reordered {
            self.served_list = self.served.values().map(|i| i.owner.clone()).collect();
        }
        updated
    }

    fn withdraw(
        &mut self,
        (precedence, ingress): (Precedence, Arc<ValidIngress>),
        dirty: &mut HashSet<Slot>,
        updated: &mut Updated,
    ) {
        updated.tls |= !ingress.tls.is_empty();
        for slot in slots(&ingress) {
            if let Some(contenders) = self.contenders.get_mut(&slot) {
                contenders.retain(|p| *p != precedence);
            }
            dirty.insert(slot);
        }
        for target in backend_refs(&ingress) {
            self.backends.release(&target.key, updated);
        }
    }

    /// Routes `slot` again from its contenders, oldest first.
    fn route(&mut self, slot: Slot, routes: &mut RouteTableBuilder) {
        let mut conflicts = Vec::new();
        match &slot {
            Slot::Host(host) => routes.clear_host(host),
            Slot::DefaultBackend => routes.clear_default(),
        }
        for precedence in self.contenders.get(&slot).into_iter().flatten() {
            let Some(ingress) = self.served.get(precedence) else {
                continue;
            };
            let route_to = |target: &BackendRef| {
                let id = self.backends.id(&target.key);
                Arc::new(Route::new(ingress.owner.clone(), ingress.label.clone(), id))
            };
            match &slot {
                Slot::DefaultBackend => {
                    let Some(target) = &ingress.default_backend else {
                        continue;
                    };
                    if let Err(conflict) = routes.set_default(route_to(target)) {
                        conflicts.push(Diagnostic::object(
                            (*ingress.owner).clone(),
                            "spec.defaultBackend",
                            format!(
                                "the default backend is already set by the older {}; this one is ignored",
                                conflict.winner
                            ),
                        ));
                    }
                }
                Slot::Host(host) => {
                    for rule in ingress.rules.iter().filter(|rule| rule.host == *host) {
                        for path in &rule.paths {
                            if let Err(conflict) = routes.insert(host, &path.matcher, route_to(&path.backend)) {
                                conflicts.push(Diagnostic::object(
                                    (*ingress.owner).clone(),
                                    path.field.clone(),
                                    format!(
                                        "host {host} path {} is already routed by the older {}; this path is ignored",
                                        path.matcher, conflict.winner
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
        }
        if self.contenders.get(&slot).is_some_and(Vec::is_empty) {
            self.contenders.remove(&slot);
        }
        if conflicts.is_empty() {
            self.conflicts.remove(&slot);
        } else {
            self.conflicts.insert(slot, conflicts);
        }
    }

    /// The route table.
    pub(crate) fn routes(&self) -> &Arc<RouteTable> {
        &self.routes
    }

    /// The served Ingresses, for status reporting.
    pub(crate) fn served_list(&self) -> &Arc<[Arc<ObjectRef>]> {
        &self.served_list
    }

    /// The served Ingresses, oldest first.
    pub(crate) fn served(&self) -> impl Iterator<Item = &Arc<ValidIngress>> {
        self.served.values()
    }

    /// How many Ingresses of ours are served and rejected.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.served.len(), self.rejected.len())
    }

    /// How many backend ids there are (some maybe unused).
    pub(crate) fn backend_ids(&self) -> usize {
        self.backends.keys.len()
    }

    /// The Service port behind `id`, if it is in use.
    pub(crate) fn backend(&self, id: BackendId) -> Option<&Arc<BackendKey>> {
        self.backends.keys.get(id.0 as usize)?.as_ref()
    }

    /// The backend ids in use for ports of `service`.
    pub(crate) fn backends_of(&self, service: &ObjectKey) -> &[BackendId] {
        self.backends.by_service.get(service).map_or(&[], Vec::as_slice)
    }

    /// Problems of rejected Ingresses and losers of route conflicts.
    pub(crate) fn diagnostics(&self, out: &mut Vec<Diagnostic>) {
        out.extend(self.rejected.values().flatten().cloned());
        out.extend(self.conflicts.values().flatten().cloned());
    }

    /// One diagnostic per Ingress field naming a backend that could not be resolved;
    /// `resolved` holds the backend of each id.
    pub(crate) fn unresolved(&self, resolved: &[Option<Resolved>], out: &mut Vec<Diagnostic>) {
        for ingress in self.served.values() {
            for target in backend_refs(ingress) {
                let id = self.backends.id(&target.key);
                let problem = resolved.get(id.0 as usize).and_then(Option::as_ref).and_then(|r| r.problem.as_deref());
                if let Some(problem) = problem {
                    out.push(Diagnostic::object((*ingress.owner).clone(), target.field.clone(), problem));
                }
            }
        }
    }
}

/// The slots `ingress` has routes for.
fn slots(ingress: &ValidIngress) -> BTreeSet<Slot> {
    let mut slots: BTreeSet<Slot> = ingress.rules.iter().map(|rule| Slot::Host(rule.host.clone())).collect();
    if ingress.default_backend.is_some() {
        slots.insert(Slot::DefaultBackend);
    }
    slots
}

fn backend_refs(ingress: &ValidIngress) -> impl Iterator<Item = &BackendRef> {
    let paths = ingress.rules.iter().flat_map(|rule| rule.paths.iter().map(|path| &path.backend));
    ingress.default_backend.iter().chain(paths)
}

/// Ids for the backends served Ingresses name, stable while any of them names it, so that
/// routes of untouched hosts keep pointing at the right backend.
#[derive(Default)]
struct BackendSlots {
    /// Id and number of references of each backend in use.
    ids: HashMap<Arc<BackendKey>, (BackendId, usize)>,
    keys: Vec<Option<Arc<BackendKey>>>,
    free: Vec<BackendId>,
    /// Ids in use by Service, to find the backends a Service change affects.
    by_service: HashMap<ObjectKey, Vec<BackendId>>,
}

impl BackendSlots {
    fn acquire(&mut self, key: &BackendKey, updated: &mut Updated) {
        if let Some((_, references)) = self.ids.get_mut(key) {
            *references += 1;
            return;
        }
        let id = self.free.pop().unwrap_or_else(|| {
            self.keys.push(None);
            BackendId(u32::try_from(self.keys.len() - 1).unwrap_or(u32::MAX))
        });
        let key = Arc::new(key.clone());
        self.keys[id.0 as usize] = Some(key.clone());
        self.ids.insert(key.clone(), (id, 1));
        self.by_service.entry(key.service.clone()).or_default().push(id);
        updated.touched.push(id);
    }

    fn release(&mut self, key: &BackendKey, updated: &mut Updated) {
        let Some((id, references)) = self.ids.get_mut(key) else {
            return;
        };
        *references -= 1;
        if *references > 0 {
            return;
        }
        let id = *id;
        self.ids.remove(key);
        self.keys[id.0 as usize] = None;
        self.free.push(id);
        if let Some(ids) = self.by_service.get_mut(&key.service) {
            ids.retain(|used| *used != id);
            if ids.is_empty() {
                self.by_service.remove(&key.service);
            }
        }
        updated.touched.push(id);
        updated.released.push(key.clone());
    }

    /// The id of an acquired backend.
    fn id(&self, key: &BackendKey) -> BackendId {
        self.ids.get(key).map_or(BackendId(u32::MAX), |(id, _)| *id)
    }
}
