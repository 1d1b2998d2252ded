//! Certificates by SNI, exact names before wildcards, with a default for everything else.

use foldhash::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;

use crate::host::{normalize, HOST_BUF_LEN};
use crate::{Conflict, HostMatch, ObjectRef};

#[derive(Debug, Clone)]
struct Entry {
    owner: ObjectRef,
    key: Arc<CertifiedKey>,
}

/// Which certificate the HTTPS listener presents for a TLS ClientHello's SNI.
#[derive(Debug)]
pub struct CertificateTable {
    exact: HashMap<Box<str>, Entry>,
    wildcard: HashMap<Box<str>, Entry>,
    default: Arc<CertifiedKey>,
}

impl CertificateTable {
    /// The certificate for `sni`: an exact name, else a `*.` entry one label up, else the
    /// default (also for a ClientHello without SNI).
    pub fn resolve(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let mut buf = [0u8; HOST_BUF_LEN];
        let found = sni.and_then(|s| normalize(s, &mut buf)).and_then(|name| {
            self.exact.get(name).or_else(|| {
                let (_, suffix) = name.split_once('.')?;
                self.wildcard.get(suffix)
            })
        });
        found.map_or(&self.default, |e| &e.key)
    }

    /// `(server name, Ingress)` for every SNI entry, exact names then wildcards, sorted.
    pub fn entries(&self) -> Vec<(String, &ObjectRef)> {
        let mut out: Vec<(String, &ObjectRef)> =
            self.exact.iter().map(|(name, e)| (name.to_string(), &e.owner)).collect();
        out.sort();
        let mut wildcards: Vec<(String, &ObjectRef)> =
            self.wildcard.iter().map(|(name, e)| (format!("*.{name}"), &e.owner)).collect();
        wildcards.sort();
        out.extend(wildcards);
        out
    }

    /// `(server name, Ingress, certificate)` for every SNI entry, in the order of
    /// [`CertificateTable::entries`].
    pub fn entries_with_keys(&self) -> Vec<(String, &ObjectRef, &Arc<CertifiedKey>)> {
        let mut out: Vec<_> = self.exact.iter().map(|(name, e)| (name.to_string(), &e.owner, &e.key)).collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut wildcards: Vec<_> =
            self.wildcard.iter().map(|(name, e)| (format!("*.{name}"), &e.owner, &e.key)).collect();
        wildcards.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out.extend(wildcards);
        out
    }

    /// Certificates selectable by SNI (without the default).
    pub fn len(&self) -> usize {
        self.exact.len() + self.wildcard.len()
    }

    /// True when only the default certificate is served.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds a [`CertificateTable`]; callers insert in precedence order (oldest Ingress first).
#[derive(Debug)]
pub struct CertificateTableBuilder {
    table: CertificateTable,
}

impl CertificateTableBuilder {
    /// Starts a table whose fallback is `default`.
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        Self { table: CertificateTable { exact: HashMap::default(), wildcard: HashMap::default(), default } }
    }

    /// Serves `key` for `host` unless an earlier Ingress already claimed that name. A TLS
    /// entry without hosts ([`HostMatch::Any`]) claims nothing.
    pub fn insert(&mut self, host: &HostMatch, owner: &ObjectRef, key: &Arc<CertifiedKey>) -> Result<(), Conflict> {
        let (map, name) = match host {
            HostMatch::Exact(h) => (&mut self.table.exact, h),
            HostMatch::Wildcard(h) => (&mut self.table.wildcard, h),
            HostMatch::Any => return Ok(()),
        };
        match map.get(name.as_str()) {
            Some(taken) if taken.owner != *owner => Err(Conflict { winner: taken.owner.clone() }),
            Some(_) => Ok(()),
            None => {
                let entry = Entry { owner: owner.clone(), key: key.clone() };
                map.insert(name.as_str().into(), entry);
                Ok(())
            }
        }
    }

    /// The finished table.
    pub fn build(self) -> CertificateTable {
        self.table
    }
}
