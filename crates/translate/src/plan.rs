//! The routing plan: served Ingresses in precedence order, and the route table they make.
//!
//! It is kept between builds and updated with the Ingresses that changed: only the hosts
//! those Ingresses have (or had) rules for are routed again, every other host's routes are
//! shared with the previous table. It depends on Ingresses (and IngressClasses) only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use foldhash::{HashMap, HashSet};
use sluice_config::{
    BackendId, Diagnostic, HostMatch, ObjectRef, PathMatch, RouteGroup, RouteTable, RouteTableBuilder,
};
use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use sluice_store::ObjectKey;

use crate::backends::{BackendKey, Resolved};
use crate::compile::{self, Context, ErrorBackends};
use crate::ingress::{BackendRef, ValidIngress, ValidPath};
use crate::passthrough::PassthroughHosts;

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
    /// `--default-backend-service`, held for as long as the plan lives.
    global_errors: Option<BackendKey>,
    /// `ssl-passthrough` per host, decided when the host is routed.
    passthrough: PassthroughHosts,
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
    pub(crate) fn update(
        &mut self,
        changes: impl IntoIterator<Item = (Arc<ObjectKey>, Verdict)>,
        cx: &Context<'_>,
    ) -> Updated {
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
                self.route(slot, &mut routes, cx);
            }
            self.routes = Arc::new(routes.build_with(&mut |patterns| cx.regexes.set(patterns)));
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
    fn route(&mut self, slot: Slot, routes: &mut RouteTableBuilder, cx: &Context<'_>) {
        let mut conflicts = Vec::new();
        match &slot {
            Slot::Host(host) => routes.clear_host(host),
            Slot::DefaultBackend => routes.clear_default(),
        }
        let contenders: Vec<&Arc<ValidIngress>> =
            self.contenders.get(&slot).into_iter().flatten().filter_map(|p| self.served.get(p)).collect();
        match &slot {
            Slot::DefaultBackend => {
                for ingress in contenders.iter().filter(|i| !i.is_canary()) {
                    let Some(target) = &ingress.default_backend else {
                        continue;
                    };
                    let id = self.backends.id(&target.key);
                    let route =
                        compile::route(ingress, None, id, false, cx, self.error_backends(ingress), &mut conflicts);
                    if let Err(conflict) = routes.set_default(Arc::new(RouteGroup::single(route))) {
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
            }
            Slot::Host(host) => {
                self.route_host(host, &contenders, routes, cx, &mut conflicts);
                let backends = &self.backends;
                self.passthrough.route_host(host, &contenders, |key| backends.id(key));
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

    /// Routes one host: the rules of the Ingresses that name it (all as regexes when one of
    /// them asks for regex paths, as ingress-nginx does per server), then their canaries;
    /// else the first `server-alias` naming it, else a `from-to-www-redirect` to its twin.
    fn route_host(
        &self,
        host: &HostMatch,
        contenders: &[&Arc<ValidIngress>],
        routes: &mut RouteTableBuilder,
        cx: &Context<'_>,
        problems: &mut Vec<Diagnostic>,
    ) {
        let names = |i: &&&Arc<ValidIngress>| i.rules.iter().any(|rule| rule.host == *host);
        let primary: Vec<&Arc<ValidIngress>> =
            contenders.iter().filter(names).filter(|i| !i.is_canary()).copied().collect();
        let tls = contenders.iter().any(|i| i.has_tls_for(host));
        if primary.is_empty() {
            if let Some(ingress) = contenders.iter().find(|i| i.annotations.server_aliases.contains(host)) {
                // The alias serves the Ingress's (first) host's rules.
                if let Some(own) = ingress.rules.first().map(|rule| rule.host.clone()) {
                    let tls = tls || ingress.has_tls_for(&own);
                    self.insert_rules(
                        ingress,
                        &own,
                        host,
                        ingress.annotations.regex_paths(),
                        tls,
                        routes,
                        cx,
                        problems,
                    );
                }
            } else if let Some((ingress, twin)) = contenders.iter().find_map(|i| {
                i.rules.iter().find(|r| www_twin(&r.host).as_ref() == Some(host)).map(|r| (i, r.host.clone()))
            }) {
                if let Some(route) = compile::www_redirect(ingress, &twin, cx.defaults) {
                    let _ = routes.insert(host, &PathMatch::Prefix("".into()), Arc::new(RouteGroup::single(route)));
                }
            }
            return;
        }
        let regex = primary.iter().any(|i| i.annotations.regex_paths());
        for ingress in &primary {
            self.insert_rules(ingress, host, host, regex, tls, routes, cx, problems);
        }
        for canary in contenders.iter().filter(names).filter(|i| i.is_canary()) {
            self.add_canary(canary, host, regex, routes, cx, problems);
        }
    }

    /// Inserts the routes of `ingress`'s rules for host `own` under host `at`.
    #[allow(clippy::too_many_arguments)]
    fn insert_rules(
        &self,
        ingress: &ValidIngress,
        own: &HostMatch,
        at: &HostMatch,
        regex: bool,
        tls: bool,
        routes: &mut RouteTableBuilder,
        cx: &Context<'_>,
        problems: &mut Vec<Diagnostic>,
    ) {
        for rule in ingress.rules.iter().filter(|rule| rule.host == *own) {
            for path in &rule.paths {
                let Some(matcher) = matcher(ingress, path, regex, cx, problems) else {
                    continue;
                };
                let id = self.backends.id(&path.backend.key);
                let route = compile::route(ingress, Some(path), id, tls, cx, self.error_backends(ingress), problems);
                if let Err(conflict) = routes.insert(at, &matcher, Arc::new(RouteGroup::single(route))) {
                    problems.push(Diagnostic::object(
                        (*ingress.owner).clone(),
                        path.field.clone(),
                        format!(
                            "host {at} path {matcher} is already routed by the older {}; this path is ignored",
                            conflict.winner
                        ),
                    ));
                }
            }
        }
    }

    /// Where `ingress`'s error answers come from.
    fn error_backends(&self, ingress: &ValidIngress) -> ErrorBackends {
        ErrorBackends {
            own: ingress.error_backend.as_ref().map(|b| self.backends.id(&b.key)),
            global: self.global_errors.as_ref().map(|key| self.backends.id(key)),
        }
    }

    /// Sets `--default-backend-service` (its first port): the backend of error answers for
    /// Ingresses without a `default-backend` annotation. Call on a new plan.
    pub(crate) fn set_error_backend(&mut self, key: Option<BackendKey>) {
        if let Some(key) = &key {
            self.backends.acquire(key, &mut Updated::default());
        }
        self.global_errors = key;
    }

    /// Joins a canary Ingress's paths to the main routes they split.
    fn add_canary(
        &self,
        ingress: &ValidIngress,
        host: &HostMatch,
        regex: bool,
        routes: &mut RouteTableBuilder,
        cx: &Context<'_>,
        problems: &mut Vec<Diagnostic>,
    ) {
        let Some(canary) = &ingress.annotations.canary else {
            return;
        };
        for rule in ingress.rules.iter().filter(|rule| rule.host == *host) {
            for path in &rule.paths {
                let Some(matcher) = matcher(ingress, path, regex, cx, problems) else {
                    continue;
                };
                let warn = |reason: String| Diagnostic::warning((*ingress.owner).clone(), path.field.clone(), reason);
                let Some(main) = routes.get(host, &matcher) else {
                    problems.push(warn(format!(
                        "no main Ingress routes host {host} path {matcher}; this canary is not used"
                    )));
                    continue;
                };
                if main.routes.iter().any(|r| r.owner != main.owner) {
                    problems
                        .push(warn(format!("host {host} path {matcher} already has a canary; this one is not used")));
                    continue;
                }
                let backend = self.backends.id(&path.backend.key);
                if let Some(joined) = compile::with_canary(main, canary, ingress, backend, cx.defaults) {
                    routes.replace(host, &matcher, Arc::new(joined));
                }
            }
        }
    }

    /// The route table.
    pub(crate) fn routes(&self) -> &Arc<RouteTable> {
        &self.routes
    }

    /// The `ssl-passthrough` decisions of the hosts.
    pub(crate) fn passthrough_hosts(&self) -> &PassthroughHosts {
        &self.passthrough
    }

    /// True once after an `ssl-passthrough` decision changed.
    pub(crate) fn passthrough_changed(&mut self) -> bool {
        self.passthrough.take_changed()
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

    /// Problems of rejected Ingresses, warnings of served ones, losers of route conflicts.
    pub(crate) fn diagnostics(&self, out: &mut Vec<Diagnostic>) {
        out.extend(self.rejected.values().flatten().cloned());
        out.extend(self.served.values().flat_map(|i| i.warnings.iter().cloned()));
        out.extend(self.conflicts.values().flatten().cloned());
    }

    /// One diagnostic per Ingress field naming a backend that could not be resolved;
    /// `resolved` holds the backend of each id.
    pub(crate) fn unresolved(&self, resolved: &[Option<Resolved>], out: &mut Vec<Diagnostic>) {
        for ingress in self.served.values() {
            for target in backend_refs(ingress) {
                let id = self.backends.id(&target.key);
                let Some(resolved) = resolved.get(id.0 as usize).and_then(Option::as_ref) else {
                    continue;
                };
                if let Some(problem) = resolved.problem.as_deref() {
                    let field = resolved.field.as_deref().unwrap_or(&target.field);
                    out.push(Diagnostic::object((*ingress.owner).clone(), field, problem));
                }
            }
        }
    }
}

/// How a path is matched on a host: as a regex when the host is in regex mode (compiled
/// now if its own Ingress did not ask for regexes), else as its `pathType` says.
fn matcher(
    ingress: &ValidIngress,
    path: &ValidPath,
    regex: bool,
    cx: &Context<'_>,
    problems: &mut Vec<Diagnostic>,
) -> Option<PathMatch> {
    if !regex {
        return Some(path.matcher.clone());
    }
    if let Some(compiled) = &path.regex {
        return Some(PathMatch::Regex(compiled.clone()));
    }
    match cx.regexes.path(&path.written) {
        Ok(compiled) => Some(PathMatch::Regex(compiled)),
        Err(e) => {
            let reason = format!("another Ingress makes this host's paths regexes (use-regex), and {}", e.reason);
            problems.push(Diagnostic::object((*ingress.owner).clone(), format!("{}.path", path.field), reason));
            None
        }
    }
}

/// `www.foo.com` for `foo.com` and the other way round (`from-to-www-redirect`).
fn www_twin(host: &HostMatch) -> Option<HostMatch> {
    let HostMatch::Exact(name) = host else {
        return None;
    };
    let twin = match name.as_str().strip_prefix("www.") {
        Some(bare) => bare.to_owned(),
        None => format!("www.{name}"),
    };
    HostMatch::parse(Some(&twin)).ok()
}

/// The slots `ingress` has routes for: its hosts, its aliases, the twins of its hosts when
/// it redirects from/to www.
fn slots(ingress: &ValidIngress) -> BTreeSet<Slot> {
    let mut slots: BTreeSet<Slot> = ingress.rules.iter().map(|rule| Slot::Host(rule.host.clone())).collect();
    slots.extend(ingress.annotations.server_aliases.iter().map(|alias| Slot::Host(alias.clone())));
    if ingress.annotations.from_to_www {
        slots.extend(ingress.rules.iter().filter_map(|rule| www_twin(&rule.host)).map(Slot::Host));
    }
    if ingress.default_backend.is_some() {
        slots.insert(Slot::DefaultBackend);
    }
    slots
}

fn backend_refs(ingress: &ValidIngress) -> impl Iterator<Item = &BackendRef> {
    let paths = ingress.rules.iter().flat_map(|rule| rule.paths.iter().map(|path| &path.backend));
    ingress.default_backend.iter().chain(&ingress.error_backend).chain(paths)
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
