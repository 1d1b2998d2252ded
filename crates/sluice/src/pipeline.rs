//! The control-plane pipeline of the manifest source: files → store → translate → snapshot.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sluice_config::Snapshot;
use sluice_store::ObjectKey;

use crate::cli::SourceArgs;
use crate::state::AllocationRecord;

/// Reads the configured manifests and translates them; one instance per process. Keeps the
/// LoadBalancer address allocations between builds (and in the record, when given one).
#[derive(Debug)]
pub struct Pipeline {
    paths: Vec<PathBuf>,
    options: sluice_translate::Options,
    allocations: Mutex<sluice_translate::Allocations>,
    record: Option<AllocationRecord>,
}

impl Pipeline {
    /// A pipeline for the `--manifests` paths and class options of `source`; with
    /// `state_dir`, allocations are loaded from and saved to the record there.
    pub fn new(source: &SourceArgs, state_dir: Option<&Path>) -> Result<Self, String> {
        let default_tls_secret = source
            .default_tls_secret
            .as_deref()
            .map(parse_secret_ref)
            .transpose()?;
        let options = sluice_translate::Options {
            ingress_class: source.ingress_class.clone(),
            watch_without_class: source.watch_ingress_without_class,
            default_tls_secret,
            fallback_certificate: crate::default_cert::generate()?,
            lb_pools: source.lb_pools.clone(),
        };
        // Without pools there is nothing to allocate, and nothing to record.
        let record = state_dir
            .filter(|_| !source.lb_pools.is_empty())
            .map(AllocationRecord::new);
        let allocations = record
            .as_ref()
            .map(AllocationRecord::load)
            .unwrap_or_default();
        Ok(Self {
            paths: source.manifests.clone(),
            options,
            allocations: Mutex::new(allocations),
            record,
        })
    }

    /// Reads every manifest and builds snapshot number `generation`; file and document
    /// problems come first among its diagnostics.
    pub fn build(&self, generation: u64) -> Snapshot {
        let loaded = sluice_manifests::load(&self.paths);
        // Builds are serialised by this lock, so allocations always follow the last snapshot.
        let mut allocations = self
            .allocations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut snapshot =
            sluice_translate::translate(&loaded.store, &self.options, &allocations, generation);
        if snapshot.l4.addresses != *allocations {
            allocations.clone_from(&snapshot.l4.addresses);
            if let Some(record) = &self.record {
                record.store(&allocations);
            }
        }
        drop(allocations);
        let mut diagnostics = loaded.diagnostics;
        diagnostics.append(&mut snapshot.diagnostics);
        snapshot.diagnostics = diagnostics;
        snapshot
    }
}

fn parse_secret_ref(text: &str) -> Result<ObjectKey, String> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok(ObjectKey::new(namespace, name))
        }
        _ => Err(format!(
            "--default-tls-secret {text:?}: expected NAMESPACE/NAME"
        )),
    }
}

/// Logs every diagnostic of `snapshot` as a structured warning.
pub fn log_diagnostics(snapshot: &Snapshot) {
    for diagnostic in &snapshot.diagnostics {
        tracing::warn!(
            subject = %diagnostic.subject,
            field = %diagnostic.field,
            reason = %diagnostic.reason,
            "resource problem: {diagnostic}"
        );
    }
}
