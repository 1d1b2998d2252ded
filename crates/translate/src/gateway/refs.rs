//! References across objects: ReferenceGrants, namespace label selectors, and the ids given
//! to the backends Gateway routes forward to.

use std::sync::Arc;

use foldhash::HashMap;
use sluice_config::BackendId;
use sluice_store::{ObjectKey, Store};

use super::GROUP;
use crate::backends::BackendKey;

/// Whether a ReferenceGrant in the target's namespace lets objects of kind `from.0` in
/// namespace `from.1` refer to `to` = (group, kind, namespace, name).
pub(crate) fn granted(store: &Store, from: (&str, &str), to: (&str, &str, &str, &str)) -> bool {
    let (from_kind, from_namespace) = from;
    let (to_group, to_kind, to_namespace, to_name) = to;
    let start = ObjectKey::new(to_namespace, "");
    store.reference_grants.range(start..).take_while(|(key, _)| key.namespace == to_namespace).any(|(_, grant)| {
        let from_ok =
            grant.spec.from.iter().any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_namespace);
        let to_ok =
            grant.spec.to.iter().any(|t| {
                t.group == to_group && t.kind == to_kind && t.name.as_deref().is_none_or(|name| name == to_name)
            });
        from_ok && to_ok
    })
}

/// Ids for the backends of Gateway routes, after the Ingresses' ones.
pub(crate) struct BackendIds {
    first: u32,
    keys: Vec<Arc<BackendKey>>,
    ids: HashMap<Arc<BackendKey>, BackendId>,
}

impl BackendIds {
    /// Ids starting at `first`.
    pub(crate) fn new(first: u32) -> Self {
        Self { first, keys: Vec::new(), ids: HashMap::default() }
    }

    /// The id of `key`, given on first use.
    pub(crate) fn id(&mut self, key: BackendKey) -> BackendId {
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let key = Arc::new(key);
        let index = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        let id = BackendId(self.first.saturating_add(index));
        self.keys.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// The keys, in id order.
    pub(crate) fn into_keys(self) -> Vec<Arc<BackendKey>> {
        self.keys
    }
}
