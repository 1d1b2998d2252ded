//! The live manifest source: per-file state, so a change re-reads only the files it touched
//! and updates only the objects that differ.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sluice_config::{Diagnostic, ObjectRef};
use sluice_store::{Object, ObjectKey, Store};

use crate::discover::{is_configmap_swap, is_hidden_below, manifest_files};
use crate::read_file;

/// What a refresh changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Kinds of which at least one object was added, changed or removed.
    pub kinds: BTreeSet<&'static str>,
    /// The objects added, changed or removed, by kind and key: every object counted in
    /// `kinds` is here.
    pub objects: BTreeSet<(&'static str, ObjectKey)>,
    /// Files read (parsed) by the refresh.
    pub files_read: usize,
    /// Files that failed to parse in this refresh (their last good objects stay).
    pub failed: Vec<PathBuf>,
    /// Files that had objects and now read as empty: most likely a writer truncated them and
    /// is about to write. Their objects stay; call [`ManifestSource::confirm`] a little later.
    pub deferred: Vec<PathBuf>,
}

impl Changes {
    /// True when no object changed.
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}

/// Identity of a file's version: a rewrite, a rename over it, or a new ConfigMap symlink
/// target all change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_nsec: i64,
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    let m = std::fs::metadata(path).ok()?;
    Some(Fingerprint { dev: m.dev(), ino: m.ino(), size: m.size(), mtime: m.mtime(), mtime_nsec: m.mtime_nsec() })
}

#[derive(Debug, Default)]
struct FileEntry {
    fingerprint: Option<Fingerprint>,
    /// The objects the file defines; the objects themselves live only in the store.
    ids: Vec<Id>,
    diagnostics: Vec<Diagnostic>,
    /// Why the latest version did not parse; `ids` are then the last good ones.
    error: Option<Diagnostic>,
}

type Id = (&'static str, ObjectKey);

fn id(object: &Object) -> Id {
    (object.kind(), object.key())
}

/// Manifests under the configured paths, kept in step with the files.
#[derive(Debug)]
pub struct ManifestSource {
    roots: Vec<PathBuf>,
    files: BTreeMap<PathBuf, FileEntry>,
    /// Which files define each object; the first in path order is the one used.
    definers: HashMap<Id, BTreeSet<PathBuf>>,
    /// Files with an error or document problems, so that listing problems does not walk
    /// every file.
    troubled: BTreeSet<PathBuf>,
    /// Objects defined by more than one file.
    duplicated: BTreeSet<Id>,
    store: Store,
    root_diagnostics: Vec<Diagnostic>,
}

impl ManifestSource {
    /// Reads everything under `roots` (files or directories).
    pub fn new(roots: Vec<PathBuf>) -> Self {
        let mut source = Self {
            roots,
            files: BTreeMap::new(),
            definers: HashMap::new(),
            troubled: BTreeSet::new(),
            duplicated: BTreeSet::new(),
            store: Store::default(),
            root_diagnostics: Vec::new(),
        };
        source.rescan();
        source
    }

    /// The current objects.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Files currently tracked.
    pub fn files(&self) -> usize {
        self.files.len()
    }

    /// Files whose latest version does not parse.
    pub fn failing_files(&self) -> usize {
        self.troubled_entries().filter(|f| f.error.is_some()).count()
    }

    fn troubled_entries(&self) -> impl Iterator<Item = &FileEntry> {
        self.troubled.iter().filter_map(|path| self.files.get(path))
    }

    /// Keeps `troubled` in step after the entry of `path` changed.
    fn note_problems(&mut self, path: &Path) {
        match self.files.get(path) {
            Some(entry) if entry.error.is_some() || !entry.diagnostics.is_empty() => {
                self.troubled.insert(path.to_owned());
            }
            _ => {
                self.troubled.remove(path);
            }
        }
    }

    /// Every problem: missing paths, unparsable files, bad documents, duplicate objects.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let mut all = self.root_diagnostics.clone();
        for entry in self.troubled_entries() {
            all.extend(entry.error.iter().cloned());
            all.extend(entry.diagnostics.iter().cloned());
        }
        for object_id in &self.duplicated {
            let (kind, key) = object_id;
            let Some(definers) = self.definers.get(object_id) else {
                continue;
            };
            let Some(used) = definers.first() else {
                continue;
            };
            for other in definers.iter().skip(1) {
                all.push(Diagnostic::object(
                    ObjectRef::new(kind, &key.namespace, &key.name),
                    "metadata.name",
                    format!("defined again in {}; the one in {} is used", other.display(), used.display()),
                ));
            }
        }
        all
    }

    /// Walks every root again, reading files that are new or changed and forgetting files
    /// that are gone (SIGHUP, or when a watch event cannot be attributed).
    pub fn rescan(&mut self) -> Changes {
        let (found, diagnostics) = manifest_files(&self.roots);
        self.root_diagnostics = diagnostics;
        let mut changes = Changes::default();
        let found: BTreeSet<PathBuf> = found.into_iter().collect();
        let gone: Vec<PathBuf> = self.files.keys().filter(|p| !found.contains(*p)).cloned().collect();
        for path in gone {
            self.forget(&path, &mut changes);
        }
        for path in found {
            let current = fingerprint(&path);
            if self.files.get(&path).is_none_or(|f| f.fingerprint != current || current.is_none()) {
                self.read(&path, &mut changes);
            }
        }
        changes
    }

    /// Applies file-system events for `paths`: changed files are read again, deleted ones
    /// forgotten; a directory or hidden entry (a ConfigMap's `..data` swap) rescans its root.
    pub fn refresh(&mut self, paths: &[PathBuf]) -> Changes {
        let mut changes = Changes::default();
        let mut rescan = false;
        for path in paths {
            let Some(root) = self.roots.iter().find(|r| path.starts_with(r)).cloned() else {
                continue;
            };
            if is_hidden_below(&root, path) {
                // `..data` and its siblings: a ConfigMap volume swapped its contents. Other
                // hidden names are editors' temporary files; the rename onto the real name
                // that follows is an event of its own.
                rescan |= is_configmap_swap(&root, path);
            } else if path.is_dir() {
                rescan = true;
            } else if path.is_file() {
                if path == &root || crate::discover::is_manifest(path) {
                    self.read(path, &mut changes);
                }
            } else {
                let gone: Vec<PathBuf> = self.files.keys().filter(|p| p.starts_with(path)).cloned().collect();
                for gone in gone {
                    self.forget(&gone, &mut changes);
                }
            }
        }
        if rescan {
            let more = self.rescan();
            changes.kinds.extend(more.kinds);
            changes.files_read += more.files_read;
            changes.failed.extend(more.failed);
            changes.deferred.extend(more.deferred);
        }
        changes
    }

    /// Reads `path` again even when it is now empty (see [`Changes::deferred`]); a path
    /// that no longer exists is forgotten.
    pub fn confirm(&mut self, paths: &[PathBuf]) -> Changes {
        let mut changes = Changes::default();
        for path in paths {
            if path.is_file() {
                self.read_now(path, &mut changes);
            } else if self.files.contains_key(path) {
                self.forget(path, &mut changes);
            }
        }
        changes
    }

    fn read(&mut self, path: &Path, changes: &mut Changes) {
        let emptied =
            fingerprint(path).is_some_and(|f| f.size == 0) && self.files.get(path).is_some_and(|f| !f.ids.is_empty());
        if emptied {
            // Most likely truncated by a writer that has not written yet.
            changes.deferred.push(path.to_owned());
            return;
        }
        self.read_now(path, changes);
    }

    fn read_now(&mut self, path: &Path, changes: &mut Changes) {
        changes.files_read += 1;
        let fingerprint = fingerprint(path);
        match read_file(path) {
            Ok(file) => {
                let ids = file.objects.iter().map(id).collect();
                let entry = FileEntry { fingerprint, ids, diagnostics: file.diagnostics, error: None };
                self.replace(path, entry, file.objects, changes);
            }
            Err(diagnostic) => {
                tracing::warn!(file = %path.display(), reason = %diagnostic.reason, "manifest file does not parse; keeping its last good objects");
                changes.failed.push(path.to_owned());
                let entry = self.files.entry(path.to_owned()).or_default();
                entry.fingerprint = fingerprint;
                entry.error = Some(diagnostic);
                self.note_problems(path);
            }
        }
    }

    /// Replaces what `path` defines with `objects` (described by `entry`; none: the file is
    /// gone). Only objects that differ from the store's are written.
    fn replace(&mut self, path: &Path, entry: FileEntry, objects: Vec<Object>, changes: &mut Changes) {
        let old = self.files.remove(path).unwrap_or_default();
        let new_ids: BTreeSet<&Id> = entry.ids.iter().collect();
        for object_id in old.ids.iter().filter(|i| !new_ids.contains(i)) {
            self.undefine(object_id, path, changes);
        }
        if entry.fingerprint.is_some() || !entry.ids.is_empty() {
            self.files.insert(path.to_owned(), entry);
        }
        self.note_problems(path);
        for object in objects {
            let object_id = id(&object);
            let definers = self.definers.entry(object_id.clone()).or_default();
            definers.insert(path.to_owned());
            if definers.len() > 1 {
                self.duplicated.insert(object_id.clone());
            }
            let is_used = definers.first().map(PathBuf::as_path) == Some(path);
            if is_used && !self.store.holds(&object) {
                changes.kinds.insert(object.kind());
                changes.objects.insert(object_id);
                self.store.insert(object);
            }
        }
    }

    fn forget(&mut self, path: &Path, changes: &mut Changes) {
        self.replace(path, FileEntry::default(), Vec::new(), changes);
    }

    /// `path` no longer defines `object_id`: another definer takes over, or it is removed.
    fn undefine(&mut self, object_id: &Id, path: &Path, changes: &mut Changes) {
        let Some(definers) = self.definers.get_mut(object_id) else {
            return;
        };
        let was_used = definers.first().map(PathBuf::as_path) == Some(path);
        definers.remove(path);
        let next = definers.first().cloned();
        if definers.len() < 2 {
            self.duplicated.remove(object_id);
        }
        if definers.is_empty() {
            self.definers.remove(object_id);
        }
        if !was_used {
            return;
        }
        changes.kinds.insert(object_id.0);
        changes.objects.insert(object_id.clone());
        // Only duplicates get here: read the next definer's version again.
        let replacement = next.and_then(|file| {
            let objects = read_file(&file).ok()?.objects;
            objects.into_iter().find(|o| id(o) == *object_id)
        });
        match replacement {
            Some(object) => {
                self.store.insert(object);
            }
            None => {
                self.store.remove(object_id.0, &object_id.1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("sluice-source-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
        fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn service(name: &str, port: u16) -> String {
        format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{port: {port}}}]}}\n---\n")
    }

    fn slice(name: &str, ip: &str) -> String {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, labels: {{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\nendpoints: [{{addresses: [\"{ip}\"]}}]\n---\n"
        )
    }

    fn port(source: &ManifestSource, name: &str) -> Option<i32> {
        let svc = source.store().services.get(&ObjectKey::new("default", name))?;
        Some(svc.spec.as_ref()?.ports.as_ref()?[0].port)
    }

    #[test]
    fn rewrites_renames_and_deletes_update_only_what_changed() {
        let dir = Dir::new("changes");
        let a = dir.write("a.yaml", &(service("a", 80) + &slice("a", "10.0.0.1")));
        dir.write("b.yaml", &service("b", 80));
        let mut source = ManifestSource::new(vec![dir.0.clone()]);
        assert_eq!((port(&source, "a"), port(&source, "b")), (Some(80), Some(80)));

        // Only the EndpointSlice differs: an endpoint-only change, one file read.
        dir.write("a.yaml", &(service("a", 80) + &slice("a", "10.0.0.2")));
        let changes = source.refresh(std::slice::from_ref(&a));
        assert_eq!(changes.kinds, BTreeSet::from(["EndpointSlice"]), "{changes:?}");
        assert_eq!(changes.files_read, 1);

        // Replaced by rename: a temporary file renamed over b.yaml.
        let tmp = dir.write(".b.yaml.tmp", &service("b", 81));
        let b = dir.0.join("b.yaml");
        std::fs::rename(&tmp, &b).unwrap();
        let changes = source.refresh(&[tmp, b.clone()]);
        assert_eq!(port(&source, "b"), Some(81));
        assert_eq!(changes.kinds, BTreeSet::from(["Service"]));

        // Deleted.
        std::fs::remove_file(&b).unwrap();
        source.refresh(std::slice::from_ref(&b));
        assert_eq!(port(&source, "b"), None);
        assert_eq!(port(&source, "a"), Some(80));

        // Nothing changed: nothing to do.
        assert!(source.refresh(std::slice::from_ref(&a)).is_empty());
    }

    #[test]
    fn a_file_that_stops_parsing_keeps_its_last_good_objects() {
        let dir = Dir::new("broken");
        let a = dir.write("a.yaml", &service("a", 80));
        let mut source = ManifestSource::new(vec![dir.0.clone()]);
        dir.write("a.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: a\n");
        let changes = source.refresh(std::slice::from_ref(&a));
        assert!(changes.is_empty());
        assert_eq!(changes.failed, std::slice::from_ref(&a));
        assert_eq!(port(&source, "a"), Some(80));
        assert_eq!(source.failing_files(), 1);
        assert!(source.diagnostics()[0].to_string().contains("cannot read as YAML"));
        dir.write("a.yaml", &service("a", 90));
        source.refresh(std::slice::from_ref(&a));
        assert_eq!((port(&source, "a"), source.failing_files()), (Some(90), 0));
    }

    #[test]
    fn a_truncated_file_keeps_its_objects_until_confirmed() {
        let dir = Dir::new("truncated");
        let a = dir.write("a.yaml", &service("a", 80));
        let mut source = ManifestSource::new(vec![dir.0.clone()]);
        dir.write("a.yaml", "");
        let changes = source.refresh(std::slice::from_ref(&a));
        assert_eq!((changes.is_empty(), changes.deferred.as_slice()), (true, std::slice::from_ref(&a)));
        assert_eq!(port(&source, "a"), Some(80), "kept while the writer may still be writing");
        dir.write("a.yaml", &service("a", 81));
        source.refresh(std::slice::from_ref(&a));
        assert_eq!(port(&source, "a"), Some(81));
        dir.write("a.yaml", "");
        source.refresh(std::slice::from_ref(&a));
        let changes = source.confirm(std::slice::from_ref(&a));
        assert_eq!(changes.kinds, BTreeSet::from(["Service"]));
        assert_eq!(port(&source, "a"), None, "still empty when confirmed: really emptied");
    }

    #[test]
    fn duplicates_use_the_first_file_and_fall_back_when_it_goes() {
        let dir = Dir::new("dupes");
        let first = dir.write("1.yaml", &service("a", 80));
        dir.write("2.yaml", &service("a", 90));
        let mut source = ManifestSource::new(vec![dir.0.clone()]);
        assert_eq!(port(&source, "a"), Some(80));
        assert!(source.diagnostics()[0].to_string().contains("defined again"));
        std::fs::remove_file(&first).unwrap();
        source.refresh(&[first]);
        assert_eq!(port(&source, "a"), Some(90));
        assert!(source.diagnostics().is_empty());
    }

    #[test]
    fn a_configmap_style_symlink_swap_is_seen() {
        let dir = Dir::new("configmap");
        std::fs::create_dir_all(dir.0.join("..v1")).unwrap();
        std::fs::write(dir.0.join("..v1/svc.yaml"), service("a", 80)).unwrap();
        std::os::unix::fs::symlink("..v1", dir.0.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/svc.yaml", dir.0.join("svc.yaml")).unwrap();
        let mut source = ManifestSource::new(vec![dir.0.clone()]);
        assert_eq!((port(&source, "a"), source.files()), (Some(80), 1));
        std::fs::create_dir_all(dir.0.join("..v2")).unwrap();
        std::fs::write(dir.0.join("..v2/svc.yaml"), service("a", 90)).unwrap();
        std::os::unix::fs::symlink("..v2", dir.0.join("..data_tmp")).unwrap();
        std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).unwrap();
        source.refresh(&[dir.0.join("..data")]);
        assert_eq!(port(&source, "a"), Some(90));
    }
}
