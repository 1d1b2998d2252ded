//! The precompiled routing table: host hash maps, then per-host exact and prefix maps, or
//! (for hosts in regex mode) one multi-pattern regex of the host's paths in nginx's order.
//!
//! Lookup cost is a few hash probes (one per path segment at most), or one pass of a lazy
//! DFA over the path, and no allocation.

use foldhash::HashMap;
use std::sync::Arc;

use crate::host::{normalize, HOST_BUF_LEN};
use crate::path::prefix_candidates;
use crate::path::{PathRegex, PathSet};
use crate::{HostMatch, ObjectRef, PathMatch, RouteGroup};

#[derive(Debug, Default, Clone)]
struct PathTable {
    exact: HashMap<Box<str>, Arc<RouteGroup>>,
    prefix: HashMap<Box<str>, Arc<RouteGroup>>,
    regex: RegexPaths,
}

/// A host's regex paths, in the order nginx tries its regex locations: longest path first,
/// then by path text, descending (ingress-nginx sorts them so), the first match winning.
#[derive(Debug, Default, Clone)]
struct RegexPaths {
    paths: Vec<(PathRegex, Arc<RouteGroup>)>,
    /// All of `paths` in one automaton whose leftmost-first, anchored search reports the
    /// first pattern (in order) that matches; `None` while paths are being added, or when
    /// it would be too large (then each regex is tried in turn).
    set: Option<PathSet>,
}

impl RegexPaths {
    fn lookup(&self, path: &str) -> Option<&Arc<RouteGroup>> {
        let index = match &self.set {
            // Every pattern starts with `^`: all matches start at 0, where leftmost-first
            // prefers the earliest pattern, exactly like nginx trying its locations in order.
            Some(set) => set.first_match(path)?,
            None => self.paths.iter().position(|(regex, _)| regex.regex().is_match(path))?,
        };
        self.paths.get(index).map(|(_, group)| group)
    }

    /// Sorts the paths in nginx's order and compiles their set with `compile`.
    fn compile(&mut self, compile: &mut dyn FnMut(&[&str]) -> Option<PathSet>) {
        self.paths.sort_by(|(a, _), (b, _)| b.as_str().len().cmp(&a.as_str().len()).then_with(|| b.cmp(a)));
        let patterns: Vec<&str> = self.paths.iter().map(|(r, _)| r.regex().as_str()).collect();
        self.set = compile(&patterns);
    }
}

impl PathTable {
    fn lookup(&self, path: &str) -> Option<&Arc<RouteGroup>> {
        // An exact match is as long as the request path, so it beats every prefix match.
        if let Some(route) = self.exact.get(path) {
            return Some(route);
        }
        if !self.regex.paths.is_empty() {
            return self.regex.lookup(path);
        }
        if self.prefix.is_empty() {
            return None;
        }
        prefix_candidates(path).find_map(|candidate| self.prefix.get(candidate))
    }

    fn len(&self) -> usize {
        self.exact.len() + self.prefix.len() + self.regex.paths.len()
    }

    fn get(&self, path: &PathMatch) -> Option<&Arc<RouteGroup>> {
        match path {
            PathMatch::Exact(p) => self.exact.get(p),
            PathMatch::Prefix(p) => self.prefix.get(p),
            PathMatch::Regex(r) => self.regex.paths.iter().find(|(held, _)| held == r).map(|(_, g)| g),
        }
    }

    /// Puts `group` at `path`; with `replace` false, an occupied path is left as it is and
    /// its holder returned.
    fn put(&mut self, path: &PathMatch, group: Arc<RouteGroup>, replace: bool) -> Result<bool, Arc<RouteGroup>> {
        use std::collections::hash_map::Entry;
        let entry = match path {
            PathMatch::Exact(p) => self.exact.entry(p.clone()),
            PathMatch::Prefix(p) => self.prefix.entry(p.clone()),
            PathMatch::Regex(r) => {
                self.regex.set = None;
                return match self.regex.paths.iter_mut().find(|(held, _)| held == r) {
                    Some((_, held)) if replace => {
                        *held = group;
                        Ok(false)
                    }
                    Some((_, held)) => Err(held.clone()),
                    None => {
                        self.regex.paths.push((r.clone(), group));
                        Ok(true)
                    }
                };
            }
        };
        match entry {
            Entry::Occupied(mut taken) if replace => {
                taken.insert(group);
                Ok(false)
            }
            Entry::Occupied(taken) => Err(taken.get().clone()),
            Entry::Vacant(slot) => {
                slot.insert(group);
                Ok(true)
            }
        }
    }
}

/// Host → path → route, plus the default backend; immutable once built. Each host's routes
/// are shared, so the next table can replace a few hosts and keep the rest
/// ([`RouteTable::to_builder`]).
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    exact_hosts: HashMap<Arc<str>, Arc<PathTable>>,
    wildcard_hosts: HashMap<Arc<str>, Arc<PathTable>>,
    any_host: Arc<PathTable>,
    default_backend: Option<Arc<RouteGroup>>,
    /// Routes in the table, the default backend included.
    len: usize,
}

impl RouteTable {
    /// How many routes the table holds (the default backend included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no route is set.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A builder starting from this table: it shares every host's routes until
    /// [`RouteTableBuilder::clear_host`] replaces them.
    pub fn to_builder(&self) -> RouteTableBuilder {
        RouteTableBuilder { table: self.clone(), regex_changed: Vec::new() }
    }

    /// Finds the route for a request. `host` is the raw `Host`/`:authority` (any case, maybe
    /// with a port); `path` the request path without query. Rules of the exact host are tried
    /// first, then the wildcard, then rules without host, then the default backend.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<RouteGroup>> {
        let mut buf = [0u8; HOST_BUF_LEN];
        let host = host.and_then(|h| normalize(h, &mut buf));
        let by_host = host.and_then(|host| {
            let exact = self.exact_hosts.get(host).and_then(|t| t.lookup(path));
            exact.or_else(|| {
                let (first, suffix) = host.split_once('.')?;
                if first.is_empty() {
                    return None;
                }
                self.wildcard_hosts.get(suffix)?.lookup(path)
            })
        });
        by_host.or_else(|| self.any_host.lookup(path)).or(self.default_backend.as_ref())
    }
}

/// One route of a [`RouteTable`], for introspection (`/config`, `sluice routes`).
#[derive(Debug)]
pub struct RouteEntry<'a> {
    /// `foo.com`, `*.foo.com`, `*` for rules without host, empty for the default backend.
    pub host: String,
    /// The rule's path (`/` for the catch-all prefix); empty for the default backend.
    pub path: String,
    /// `Exact`, `Prefix`, `Regex`, or `Default` for the default backend.
    pub match_type: &'static str,
    /// Where it goes.
    pub routes: &'a Arc<RouteGroup>,
}

impl PathTable {
    fn entries<'a>(&'a self, host: &str, out: &mut Vec<RouteEntry<'a>>) {
        let mut paths: Vec<_> = self
            .exact
            .iter()
            .map(|(p, r)| (p.to_string(), "Exact", r))
            .chain(self.prefix.iter().map(|(p, r)| {
                let path = if p.is_empty() { "/".to_owned() } else { p.to_string() };
                (path, "Prefix", r)
            }))
            .collect();
        paths.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)).then(a.1.cmp(b.1)));
        // Regex paths after, in the order they are tried.
        paths.extend(self.regex.paths.iter().map(|(r, g)| (r.as_str().to_owned(), "Regex", g)));
        for (path, match_type, routes) in paths {
            out.push(RouteEntry { host: host.to_owned(), path, match_type, routes });
        }
    }
}

impl RouteTable {
    /// Every route: exact hosts, wildcard hosts, rules without host, then the default
    /// backend; hosts sorted, longest paths first.
    pub fn entries(&self) -> Vec<RouteEntry<'_>> {
        let mut out = Vec::new();
        let mut exact: Vec<_> = self.exact_hosts.iter().collect();
        exact.sort_by(|a, b| a.0.cmp(b.0));
        for (host, table) in exact {
            table.entries(host, &mut out);
        }
        let mut wildcard: Vec<_> = self.wildcard_hosts.iter().collect();
        wildcard.sort_by(|a, b| a.0.cmp(b.0));
        for (suffix, table) in wildcard {
            table.entries(&format!("*.{suffix}"), &mut out);
        }
        self.any_host.entries("*", &mut out);
        if let Some(routes) = &self.default_backend {
            out.push(RouteEntry { host: String::new(), path: String::new(), match_type: "Default", routes });
        }
        out
    }
}

/// Returned when a host+path (or the default backend) is already taken: the earlier insert
/// keeps it, the caller reports the loser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The resource that holds the slot.
    pub winner: ObjectRef,
}

/// Builds a [`RouteTable`]; callers insert in precedence order (oldest Ingress first).
#[derive(Debug, Default)]
pub struct RouteTableBuilder {
    table: RouteTable,
    /// Hosts whose regex paths changed, to compile again when built.
    regex_changed: Vec<HostMatch>,
}

impl RouteTableBuilder {
    fn paths_mut(&mut self, host: &HostMatch) -> &mut PathTable {
        let paths = match host {
            HostMatch::Exact(h) => self.table.exact_hosts.entry(h.as_str().into()).or_default(),
            HostMatch::Wildcard(h) => self.table.wildcard_hosts.entry(h.as_str().into()).or_default(),
            HostMatch::Any => &mut self.table.any_host,
        };
        Arc::make_mut(paths)
    }

    /// Removes every route of `host`, so that its routes can be inserted again.
    pub fn clear_host(&mut self, host: &HostMatch) {
        let removed = match host {
            HostMatch::Exact(h) => self.table.exact_hosts.remove(h.as_str()),
            HostMatch::Wildcard(h) => self.table.wildcard_hosts.remove(h.as_str()),
            HostMatch::Any => Some(std::mem::take(&mut self.table.any_host)),
        };
        self.table.len -= removed.map_or(0, |paths| paths.len());
    }

    /// Removes the default backend, so that it can be set again.
    pub fn clear_default(&mut self) {
        if self.table.default_backend.take().is_some() {
            self.table.len -= 1;
        }
    }

    /// Adds routes unless the same host, path and path type is already taken.
    pub fn insert(&mut self, host: &HostMatch, path: &PathMatch, routes: Arc<RouteGroup>) -> Result<(), Conflict> {
        self.put(host, path, routes, false)
    }

    /// The routes at this host and path, if any.
    pub fn get(&self, host: &HostMatch, path: &PathMatch) -> Option<&Arc<RouteGroup>> {
        let paths = match host {
            HostMatch::Exact(h) => self.table.exact_hosts.get(h.as_str())?,
            HostMatch::Wildcard(h) => self.table.wildcard_hosts.get(h.as_str())?,
            HostMatch::Any => &self.table.any_host,
        };
        paths.get(path)
    }

    /// Puts routes at this host and path, replacing what was there (a canary joining the
    /// route it splits).
    pub fn replace(&mut self, host: &HostMatch, path: &PathMatch, routes: Arc<RouteGroup>) {
        let _ = self.put(host, path, routes, true);
    }

    fn put(
        &mut self,
        host: &HostMatch,
        path: &PathMatch,
        routes: Arc<RouteGroup>,
        replace: bool,
    ) -> Result<(), Conflict> {
        if matches!(path, PathMatch::Regex(_)) && !self.regex_changed.contains(host) {
            self.regex_changed.push(host.clone());
        }
        match self.paths_mut(host).put(path, routes, replace) {
            Ok(added) => {
                self.table.len += usize::from(added);
                Ok(())
            }
            Err(held) => Err(Conflict { winner: (*held.owner).clone() }),
        }
    }

    /// Sets the default backend unless one is already set.
    pub fn set_default(&mut self, routes: Arc<RouteGroup>) -> Result<(), Conflict> {
        if let Some(taken) = &self.table.default_backend {
            return Err(Conflict { winner: (*taken.owner).clone() });
        }
        self.table.default_backend = Some(routes);
        self.table.len += 1;
        Ok(())
    }

    /// How many routes the table holds (the default backend included).
    pub fn len(&self) -> usize {
        self.table.len
    }

    /// True when the table holds no route.
    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// The finished table, with the regex sets of changed hosts compiled.
    pub fn build(self) -> RouteTable {
        self.build_with(&mut PathSet::compile)
    }

    /// The finished table, the regex set of each changed host made by `compile` (given the
    /// host's patterns in the order they are tried): a caller building many tables can share
    /// one compiled set between hosts with the same paths.
    pub fn build_with(mut self, compile: &mut dyn FnMut(&[&str]) -> Option<PathSet>) -> RouteTable {
        for host in std::mem::take(&mut self.regex_changed) {
            let paths = match &host {
                HostMatch::Exact(h) => self.table.exact_hosts.get_mut(h.as_str()),
                HostMatch::Wildcard(h) => self.table.wildcard_hosts.get_mut(h.as_str()),
                HostMatch::Any => Some(&mut self.table.any_host),
            };
            if let Some(paths) = paths {
                Arc::make_mut(paths).regex.compile(compile);
            }
        }
        self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, BackendId, Forward, Route, WeightedBackend};

    fn route(name: &str) -> Arc<RouteGroup> {
        let owner = Arc::new(ObjectRef::new("Ingress", "ns", name));
        let label = Route::label_of(&owner);
        let forward = Forward {
            backends: Box::new([WeightedBackend { id: BackendId(0), weight: 1 }]),
            policy: Arc::default(),
            balance: Default::default(),
            errors: None,
            backend_edits: None,
        };
        let route =
            Route { owner, label, conditions: Box::new([]), filters: Box::new([]), action: Action::Forward(forward) };
        Arc::new(RouteGroup::single(route))
    }

    fn table(rules: &[(&str, &str, &str, &str)]) -> RouteTable {
        let mut b = RouteTableBuilder::default();
        for (host, path, kind, name) in rules {
            let host = HostMatch::parse(Some(host)).unwrap();
            let path = PathMatch::parse(Some(path), Some(kind)).unwrap();
            b.insert(&host, &path, route(name)).unwrap();
        }
        b.build()
    }

    fn hit(t: &RouteTable, host: &str, path: &str) -> Option<String> {
        t.route(Some(host), path).map(|g| g.owner.name.clone())
    }

    #[test]
    fn kubernetes_docs_path_table() {
        let t = table(&[("", "/", "Prefix", "root")]);
        assert_eq!(hit(&t, "h", "/anything/at/all").as_deref(), Some("root"));
        let t = table(&[("", "/foo", "Exact", "e")]);
        assert_eq!(hit(&t, "h", "/foo").as_deref(), Some("e"));
        assert_eq!(hit(&t, "h", "/bar"), None);
        assert_eq!(hit(&t, "h", "/foo/"), None);
        let t = table(&[("", "/foo/", "Exact", "e")]);
        assert_eq!(hit(&t, "h", "/foo"), None);
        for rule in ["/foo", "/foo/"] {
            let t = table(&[("", rule, "Prefix", "p")]);
            assert_eq!(hit(&t, "h", "/foo").as_deref(), Some("p"));
            assert_eq!(hit(&t, "h", "/foo/").as_deref(), Some("p"));
        }
        let t = table(&[("", "/aaa/bb", "Prefix", "p")]);
        assert_eq!(hit(&t, "h", "/aaa/bbb"), None);
        let t = table(&[("", "/aaa/bbb", "Prefix", "p")]);
        for ok in ["/aaa/bbb", "/aaa/bbb/", "/aaa/bbb/ccc"] {
            assert_eq!(hit(&t, "h", ok).as_deref(), Some("p"), "{ok}");
        }
        assert_eq!(hit(&t, "h", "/aaa/bbbxyz"), None);
        let t = table(&[("", "/", "Prefix", "root"), ("", "/aaa", "Prefix", "aaa"), ("", "/aaa/bbb", "Prefix", "bbb")]);
        assert_eq!(hit(&t, "h", "/aaa/ccc").as_deref(), Some("aaa"));
        assert_eq!(hit(&t, "h", "/aaa/bbb").as_deref(), Some("bbb"));
        assert_eq!(hit(&t, "h", "/ccc").as_deref(), Some("root"));
        let t = table(&[("", "/foo", "Prefix", "prefix"), ("", "/foo", "Exact", "exact")]);
        assert_eq!(hit(&t, "h", "/foo").as_deref(), Some("exact"));
        assert_eq!(hit(&t, "h", "/foo/x").as_deref(), Some("prefix"));
    }

    #[test]
    fn hosts_exact_beats_wildcard_and_wildcard_is_one_label() {
        let t = table(&[("*.foo.com", "/", "Prefix", "wild"), ("a.foo.com", "/", "Prefix", "exact")]);
        assert_eq!(hit(&t, "a.foo.com", "/").as_deref(), Some("exact"));
        assert_eq!(hit(&t, "B.Foo.com:8080", "/").as_deref(), Some("wild"));
        assert_eq!(hit(&t, "x.b.foo.com", "/"), None);
        assert_eq!(hit(&t, "foo.com", "/"), None);
        assert_eq!(hit(&t, ".foo.com", "/"), None);
    }

    #[test]
    fn conflicts_keep_the_first() {
        let mut b = RouteTableBuilder::default();
        let host = HostMatch::Any;
        let path = PathMatch::parse(Some("/"), Some("Prefix")).unwrap();
        assert!(b.insert(&host, &path, route("old")).is_ok());
        assert_eq!(b.insert(&host, &path, route("new")).unwrap_err().winner.name, "old");
        assert!(b.set_default(route("d1")).is_ok());
        assert!(b.set_default(route("d2")).is_err());
        assert_eq!(b.len(), 2);
    }

    #[test]
    fn a_builder_from_a_table_replaces_one_host_and_shares_the_rest() {
        let first =
            table(&[("a.test", "/", "Prefix", "a"), ("b.test", "/", "Prefix", "b"), ("b.test", "/x", "Exact", "b")]);
        let mut b = first.to_builder();
        let host = HostMatch::parse(Some("b.test")).unwrap();
        b.clear_host(&host);
        assert_eq!(b.len(), 1);
        b.insert(&host, &PathMatch::parse(Some("/y"), Some("Prefix")).unwrap(), route("b2")).unwrap();
        b.clear_default();
        let next = b.build();
        assert_eq!(next.len(), 2);
        assert_eq!(hit(&next, "b.test", "/y").as_deref(), Some("b2"));
        assert_eq!(hit(&next, "b.test", "/"), None);
        assert_eq!(hit(&first, "b.test", "/").as_deref(), Some("b"), "the first table is unchanged");
        let shared = |t: &RouteTable| t.exact_hosts["a.test"].clone();
        assert!(Arc::ptr_eq(&shared(&first), &shared(&next)), "untouched hosts are shared");
    }

    #[test]
    fn regex_hosts_try_paths_longest_first_and_exact_keys_first() {
        let mut b = RouteTableBuilder::default();
        let host = HostMatch::parse(Some("r.test")).unwrap();
        for (path, name) in [("/", "root"), ("/api", "api"), ("/api/v[0-9]+", "versioned"), ("/API/v1/x", "x")] {
            b.insert(&host, &PathMatch::Regex(PathRegex::new(path).unwrap()), route(name)).unwrap();
        }
        let t = b.build();
        assert_eq!(hit(&t, "r.test", "/api/v2/users").as_deref(), Some("versioned"));
        assert_eq!(hit(&t, "r.test", "/api/v1/x").as_deref(), Some("versioned"), "the longer pattern is tried first");
        assert_eq!(hit(&t, "r.test", "/api/vX/x").as_deref(), Some("api"));
        assert_eq!(hit(&t, "r.test", "/Api/V1/X").as_deref(), Some("versioned"), "case-insensitive");
        assert_eq!(hit(&t, "r.test", "/apix").as_deref(), Some("api"), "nginx regex prefixes are not per segment");
        assert_eq!(hit(&t, "r.test", "/other").as_deref(), Some("root"));
        assert_eq!(t.len(), 4);
        let entries: Vec<_> = t.entries().into_iter().map(|e| e.path).collect();
        assert_eq!(entries, ["/api/v[0-9]+", "/API/v1/x", "/api", "/"]);
    }
}
