//! Keeping what was derived from each stored object for as long as the object is unchanged.
//!
//! The store shares its objects as `Arc`s and replaces the `Arc` whenever an object changes, so
//! "unchanged since the last build" is one pointer comparison. This is what makes a rebuild
//! after one edit cost one validation, not ten thousand.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;
use sluice_store::ObjectKey;

use crate::Changed;

/// What was derived (`D`) from each object (`T`) of one kind in the store.
pub(crate) struct DerivedCache<T, D> {
    /// Keys are shared with the [`Change`]s reported (and whoever keeps those).
    entries: HashMap<Arc<ObjectKey>, Entry<T, D>>,
    pass: u64,
}

struct Entry<T, D> {
    object: Arc<T>,
    derived: D,
    /// The last [`DerivedCache::sync`] that saw the object.
    pass: u64,
}

/// An object that was added, replaced or removed in one [`DerivedCache::sync`].
pub(crate) struct Change<D> {
    /// Its key.
    pub key: Arc<ObjectKey>,
    /// What had been derived from the object it replaced or removed; `None` when added.
    pub old: Option<D>,
}

impl<T, D> Default for DerivedCache<T, D> {
    fn default() -> Self {
        Self { entries: HashMap::default(), pass: 0 }
    }
}

impl<T, D> DerivedCache<T, D> {
    /// Brings the cache in line with `objects`: `derive` runs for every new or replaced
    /// object, removed ones are dropped. Returns what changed, in no particular order.
    pub(crate) fn sync(
        &mut self,
        objects: &BTreeMap<ObjectKey, Arc<T>>,
        mut derive: impl FnMut(&ObjectKey, &T) -> D,
    ) -> Vec<Change<D>> {
        self.pass += 1;
        let mut changes: Vec<_> =
            objects.iter().filter_map(|(key, object)| self.update(key, Some(object), &mut derive)).collect();
        if self.entries.len() > objects.len() {
            let pass = self.pass;
            let removed: Vec<Arc<ObjectKey>> =
                self.entries.iter().filter(|(_, entry)| entry.pass != pass).map(|(key, _)| key.clone()).collect();
            changes.extend(removed.iter().filter_map(|key| self.update(key, None, &mut derive)));
        }
        changes
    }

    /// Brings the cache in line with `objects` (all of kind `kind`), looking only where
    /// `changed` says changes may be.
    pub(crate) fn sync_changed(
        &mut self,
        changed: Changed<'_>,
        kind: &str,
        objects: &BTreeMap<ObjectKey, Arc<T>>,
        derive: impl FnMut(&ObjectKey, &T) -> D,
    ) -> Vec<Change<D>> {
        match changed {
            Changed::All => self.sync(objects, derive),
            Changed::Kinds(kinds) if kinds.contains(kind) => self.sync(objects, derive),
            Changed::Kinds(_) => Vec::new(),
            Changed::Objects(ids) => {
                let keys = ids.iter().filter(|(k, _)| *k == kind).map(|(_, key)| key);
                self.sync_keys(objects, keys, derive)
            }
        }
    }

    /// Like [`DerivedCache::sync`], looking only at the objects of `keys` (those a source
    /// reported as changed): proportional to the change, not to the store.
    pub(crate) fn sync_keys<'k>(
        &mut self,
        objects: &BTreeMap<ObjectKey, Arc<T>>,
        keys: impl IntoIterator<Item = &'k ObjectKey>,
        mut derive: impl FnMut(&ObjectKey, &T) -> D,
    ) -> Vec<Change<D>> {
        keys.into_iter().filter_map(|key| self.update(key, objects.get(key), &mut derive)).collect()
    }

    /// Brings the entry of `key` in line with `current`, the store's object of that key.
    fn update(
        &mut self,
        key: &ObjectKey,
        current: Option<&Arc<T>>,
        derive: &mut impl FnMut(&ObjectKey, &T) -> D,
    ) -> Option<Change<D>> {
        let pass = self.pass;
        match (current, self.entries.get_mut(key)) {
            (Some(object), Some(entry)) if Arc::ptr_eq(&entry.object, object) => {
                entry.pass = pass;
                None
            }
            (Some(object), _) => {
                let key = self.entries.get_key_value(key).map_or_else(|| Arc::new(key.clone()), |(k, _)| k.clone());
                let entry = Entry { object: object.clone(), derived: derive(&key, object), pass };
                let old = self.entries.insert(key.clone(), entry).map(|replaced| replaced.derived);
                Some(Change { key, old })
            }
            (None, _) => {
                let (key, entry) = self.entries.remove_entry(key)?;
                Some(Change { key, old: Some(entry.derived) })
            }
        }
    }

    /// What was derived from the object of `key`, if the store held one at the last sync.
    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&D> {
        self.entries.get(key).map(|entry| &entry.derived)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("ns", name)
    }

    #[test]
    fn derives_only_new_and_replaced_objects_and_reports_removals() {
        let mut cache: DerivedCache<String, usize> = DerivedCache::default();
        let mut objects = BTreeMap::new();
        objects.insert(key("a"), Arc::new("one".to_owned()));
        objects.insert(key("b"), Arc::new("three".to_owned()));
        let mut derived = 0;
        let changes = cache.sync(&objects, |_, o| {
            derived += 1;
            o.len()
        });
        assert_eq!((changes.len(), derived), (2, 2));
        assert_eq!(cache.get(&key("b")), Some(&5));

        // Nothing replaced: nothing derived, nothing reported.
        let changes = cache.sync(&objects, |_, _| unreachable!("unchanged objects are not derived again"));
        assert!(changes.is_empty());
        let changes = cache.sync_keys(&objects, [&key("a"), &key("x")], |_, _| unreachable!("unchanged"));
        assert!(changes.is_empty());

        // An equal value in a new allocation counts as replaced; a removal is reported with
        // what was derived from the removed object.
        objects.insert(key("a"), Arc::new("one".to_owned()));
        objects.remove(&key("b"));
        let mut changes = cache.sync(&objects, |_, o| o.len() * 10);
        changes.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(changes.len(), 2);
        assert_eq!((changes[0].key.name.as_str(), changes[0].old), ("a", Some(3)));
        assert_eq!((changes[1].key.name.as_str(), changes[1].old), ("b", Some(5)));
        assert_eq!(cache.get(&key("a")), Some(&30));
        assert_eq!(cache.get(&key("b")), None);

        // Looking at named keys only: an added, a replaced and a removed object.
        objects.insert(key("c"), Arc::new("c".to_owned()));
        objects.insert(key("a"), Arc::new("four".to_owned()));
        objects.remove(&key("a"));
        objects.insert(key("d"), Arc::new("dd".to_owned()));
        let mut changes = cache.sync_keys(&objects, [&key("a"), &key("c")], |_, o| o.len());
        changes.sort_by(|x, y| x.key.cmp(&y.key));
        let seen: Vec<_> = changes.iter().map(|c| (c.key.name.as_str(), c.old)).collect();
        assert_eq!(seen, [("a", Some(30)), ("c", None)]);
        assert_eq!((cache.get(&key("c")), cache.get(&key("d"))), (Some(&1), None), "d was not named");
    }
}
