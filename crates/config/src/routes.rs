//! The precompiled routing table: host hash maps, then per-host exact and prefix maps.
//!
//! Lookup cost is a few hash probes (one per path segment at most) and no allocation.

use foldhash::HashMap;
use std::sync::Arc;

use crate::host::{normalize, HOST_BUF_LEN};
use crate::path::prefix_candidates;
use crate::{BackendId, HostMatch, ObjectRef, PathMatch};

/// Where a matched request goes, and which Ingress said so.
#[derive(Debug)]
pub struct Route {
    /// The Ingress that defined this route (shared by all of its routes).
    pub ingress: Arc<ObjectRef>,
    /// `namespace/name` of the Ingress, the metrics label.
    pub ingress_label: Arc<str>,
    /// The backend Service port, in the snapshot's backend list.
    pub backend: BackendId,
}

impl Route {
    /// A route from `ingress` (whose metrics label is `ingress_label`, `namespace/name`) to
    /// `backend`; an Ingress's routes share both.
    pub fn new(ingress: Arc<ObjectRef>, ingress_label: Arc<str>, backend: BackendId) -> Self {
        Self { ingress, ingress_label, backend }
    }

    /// The metrics label of an Ingress, `namespace/name`.
    pub fn label_of(ingress: &ObjectRef) -> Arc<str> {
        format!("{}/{}", ingress.namespace, ingress.name).into()
    }
}

#[derive(Debug, Default, Clone)]
struct PathTable {
    exact: HashMap<Box<str>, Arc<Route>>,
    prefix: HashMap<Box<str>, Arc<Route>>,
}

impl PathTable {
    fn lookup(&self, path: &str) -> Option<&Arc<Route>> {
        // An exact match is as long as the request path, so it beats every prefix match.
        if let Some(route) = self.exact.get(path) {
            return Some(route);
        }
        if self.prefix.is_empty() {
            return None;
        }
        prefix_candidates(path).find_map(|candidate| self.prefix.get(candidate))
    }

    fn slot(&mut self, path: &PathMatch) -> std::collections::hash_map::Entry<'_, Box<str>, Arc<Route>> {
        match path {
            PathMatch::Exact(p) => self.exact.entry(p.clone()),
            PathMatch::Prefix(p) => self.prefix.entry(p.clone()),
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
    default_backend: Option<Arc<Route>>,
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
        RouteTableBuilder { table: self.clone() }
    }

    /// Finds the route for a request. `host` is the raw `Host`/`:authority` (any case, maybe
    /// with a port); `path` the request path without query. Rules of the exact host are tried
    /// first, then the wildcard, then rules without host, then the default backend.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
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
    /// `Exact`, `Prefix`, or `Default` for the default backend.
    pub match_type: &'static str,
    /// Where it goes.
    pub route: &'a Arc<Route>,
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
        for (path, match_type, route) in paths {
            out.push(RouteEntry { host: host.to_owned(), path, match_type, route });
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
        if let Some(route) = &self.default_backend {
            out.push(RouteEntry { host: String::new(), path: String::new(), match_type: "Default", route });
        }
        out
    }
}

/// Returned when a host+path (or the default backend) is already taken: the earlier insert
/// keeps it, the caller reports the loser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The Ingress that holds the slot.
    pub winner: ObjectRef,
}

/// Builds a [`RouteTable`]; callers insert in precedence order (oldest Ingress first).
#[derive(Debug, Default)]
pub struct RouteTableBuilder {
    table: RouteTable,
}

impl RouteTableBuilder {
    /// Removes every route of `host`, so that its routes can be inserted again.
    pub fn clear_host(&mut self, host: &HostMatch) {
        let removed = match host {
            HostMatch::Exact(h) => self.table.exact_hosts.remove(h.as_str()),
            HostMatch::Wildcard(h) => self.table.wildcard_hosts.remove(h.as_str()),
            HostMatch::Any => Some(std::mem::take(&mut self.table.any_host)),
        };
        self.table.len -= removed.map_or(0, |paths| paths.exact.len() + paths.prefix.len());
    }

    /// Removes the default backend, so that it can be set again.
    pub fn clear_default(&mut self) {
        if self.table.default_backend.take().is_some() {
            self.table.len -= 1;
        }
    }

    /// Adds a route unless the same host, path and path type is already taken.
    pub fn insert(&mut self, host: &HostMatch, path: &PathMatch, route: Arc<Route>) -> Result<(), Conflict> {
        let paths = match host {
            HostMatch::Exact(h) => self.table.exact_hosts.entry(h.as_str().into()).or_default(),
            HostMatch::Wildcard(h) => self.table.wildcard_hosts.entry(h.as_str().into()).or_default(),
            HostMatch::Any => &mut self.table.any_host,
        };
        match Arc::make_mut(paths).slot(path) {
            std::collections::hash_map::Entry::Occupied(taken) => {
                Err(Conflict { winner: (*taken.get().ingress).clone() })
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(route);
                self.table.len += 1;
                Ok(())
            }
        }
    }

    /// Sets the default backend unless one is already set.
    pub fn set_default(&mut self, route: Arc<Route>) -> Result<(), Conflict> {
        if let Some(taken) = &self.table.default_backend {
            return Err(Conflict { winner: (*taken.ingress).clone() });
        }
        self.table.default_backend = Some(route);
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

    /// The finished table.
    pub fn build(self) -> RouteTable {
        self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> Arc<Route> {
        let ingress = ObjectRef::new("Ingress", "ns", name);
        let label = Route::label_of(&ingress);
        Arc::new(Route::new(Arc::new(ingress), label, BackendId(0)))
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
        t.route(Some(host), path).map(|r| r.ingress.name.clone())
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
}
