//! TLS passthrough (`ssl-passthrough`): which SNI names the HTTPS listener relays as raw TCP
//! to a backend instead of terminating TLS.

use std::sync::Arc;

use foldhash::HashMap;

use crate::host::{normalize, HOST_BUF_LEN};
use crate::{BackendId, Hostname, ObjectRef};

/// One passthrough host: where its TLS connections go, and which Ingress asked for it.
#[derive(Debug, Clone)]
struct Entry {
    backend: BackendId,
    owner: Arc<ObjectRef>,
}

/// SNI host → backend for TLS connections that are relayed untouched. Names match exactly
/// (after lowercasing, as DNS names compare); wildcards and aliases never do, as in
/// ingress-nginx. Empty unless `--enable-ssl-passthrough` is set and an Ingress asks.
#[derive(Debug, Default)]
pub struct PassthroughTable {
    hosts: HashMap<Box<str>, Entry>,
}

impl PassthroughTable {
    /// Builds the table from `(host, backend, Ingress)` entries; a host given twice keeps
    /// its first entry (callers give them in precedence order).
    pub fn new(entries: impl IntoIterator<Item = (Hostname, BackendId, Arc<ObjectRef>)>) -> Self {
        let mut hosts = HashMap::default();
        for (host, backend, owner) in entries {
            hosts.entry(host.as_str().into()).or_insert(Entry { backend, owner });
        }
        Self { hosts }
    }

    /// The backend for a ClientHello's SNI, if that name is passed through. No allocation.
    pub fn lookup(&self, sni: &str) -> Option<BackendId> {
        if self.hosts.is_empty() {
            return None;
        }
        let mut buf = [0u8; HOST_BUF_LEN];
        let name = normalize(sni, &mut buf)?;
        self.hosts.get(name).map(|entry| entry.backend)
    }

    /// True when no host is passed through: the listener then never looks at a ClientHello
    /// itself.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Number of hosts passed through.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// `(host, backend, Ingress)` for every entry, sorted by host, for `/config`.
    pub fn entries(&self) -> Vec<(&str, BackendId, &ObjectRef)> {
        let mut out: Vec<_> = self.hosts.iter().map(|(host, e)| (&**host, e.backend, &*e.owner)).collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_names_exactly_ignoring_case() {
        let owner = Arc::new(ObjectRef::new("Ingress", "ns", "a"));
        let host = |h: &str| Hostname::parse(h).unwrap();
        let table = PassthroughTable::new([
            (host("pass.test"), BackendId(3), owner.clone()),
            (host("pass.test"), BackendId(9), owner.clone()),
            (host("other.test"), BackendId(4), owner),
        ]);
        assert_eq!(table.lookup("pass.test"), Some(BackendId(3)), "the first entry wins");
        assert_eq!(table.lookup("PASS.test."), Some(BackendId(3)));
        assert_eq!(table.lookup("x.pass.test"), None);
        assert_eq!(table.lookup(""), None);
        assert_eq!(table.entries().iter().map(|e| e.0).collect::<Vec<_>>(), ["other.test", "pass.test"]);
        assert!(PassthroughTable::default().lookup("pass.test").is_none());
    }
}
