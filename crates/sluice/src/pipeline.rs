//! The control-plane pipeline of the manifest source: files → store → translate → snapshot.

use std::path::PathBuf;

use sluice_config::Snapshot;
use sluice_store::ObjectKey;

use crate::cli::SourceArgs;

/// Reads the configured manifests and translates them; one instance per process.
#[derive(Debug)]
pub struct Pipeline {
    paths: Vec<PathBuf>,
    options: sluice_translate::Options,
}

impl Pipeline {
    /// A pipeline for the `--manifests` paths and class options of `source`.
    pub fn new(source: &SourceArgs) -> Result<Self, String> {
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
        };
        Ok(Self {
            paths: source.manifests.clone(),
            options,
        })
    }

    /// Reads every manifest and builds snapshot number `generation`; file and document
    /// problems come first among its diagnostics.
    pub fn build(&self, generation: u64) -> Snapshot {
        let loaded = sluice_manifests::load(&self.paths);
        let mut snapshot = sluice_translate::translate(&loaded.store, &self.options, generation);
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
