//! The record of addresses given to LoadBalancer Services (`--state-dir`), so that each
//! Service keeps its address across restarts in manifests mode.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use sluice_config::ObjectRef;
use sluice_translate::Allocations;

/// File name of the record inside the state directory.
const FILE_NAME: &str = "lb-allocations.json";

/// Reads and writes the allocation record in one directory.
#[derive(Debug)]
pub struct AllocationRecord {
    path: PathBuf,
}

impl AllocationRecord {
    /// The record in `dir` (created on first write).
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join(FILE_NAME) }
    }

    /// The recorded allocations; an absent or unreadable record means none (logged).
    pub fn load(&self) -> Allocations {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Allocations::new(),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the allocation record");
                return Allocations::new();
            }
        };
        let parsed: BTreeMap<String, Vec<IpAddr>> = match serde_json::from_str(&text) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "ignoring a corrupt allocation record");
                return Allocations::new();
            }
        };
        parsed
            .into_iter()
            .filter_map(|(key, ips)| {
                // Services as `namespace/name`, other kinds as `Kind:namespace/name`.
                let (kind, key) = match key.split_once(':') {
                    Some(("Gateway", key)) => ("Gateway", key),
                    Some(_) => return None,
                    None => ("Service", key.as_str()),
                };
                let (namespace, name) = key.split_once('/')?;
                Some((ObjectRef::new(kind, namespace, name), ips))
            })
            .collect()
    }

    /// Replaces the record with `allocations`, atomically (write then rename).
    pub fn store(&self, allocations: &Allocations) {
        let by_name: BTreeMap<String, &Vec<IpAddr>> = allocations
            .iter()
            .map(|(object, ips)| match object.kind {
                "Service" => (format!("{}/{}", object.namespace, object.name), ips),
                kind => (format!("{kind}:{}/{}", object.namespace, object.name), ips),
            })
            .collect();
        let result = (|| -> std::io::Result<()> {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let temporary = self.path.with_extension("json.tmp");
            std::fs::write(&temporary, serde_json::to_vec_pretty(&by_name)?)?;
            std::fs::rename(&temporary, &self.path)
        })();
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot write the allocation record");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_and_gateways_keep_their_addresses_across_restarts() {
        let dir = std::env::temp_dir().join(format!("sluice-state-{}", std::process::id()));
        let record = AllocationRecord::new(&dir);
        let mut allocations = Allocations::new();
        allocations.insert(ObjectRef::new("Service", "web", "lb"), vec!["198.18.0.1".parse().unwrap()]);
        allocations.insert(ObjectRef::new("Gateway", "web", "lb"), vec!["198.18.0.2".parse().unwrap()]);
        record.store(&allocations);
        assert_eq!(record.load(), allocations, "a Service and a Gateway of the same name stay apart");
        // Records written before Gateways existed name Services as namespace/name.
        std::fs::write(dir.join(FILE_NAME), r#"{"a/b": ["198.18.0.3"], "Other:x/y": ["198.18.0.4"]}"#).unwrap();
        let loaded: Vec<_> = record.load().into_keys().collect();
        assert_eq!(loaded, [ObjectRef::new("Service", "a", "b")]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
