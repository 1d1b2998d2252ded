//! Finding manifest files under the configured paths.

use std::path::{Path, PathBuf};

use sluice_config::Diagnostic;

/// Deepest directory nesting walked, a guard against symlink loops.
const MAX_DEPTH: usize = 16;

/// The manifest files under `paths`, sorted and deduplicated. A path given explicitly is
/// read whatever its extension; inside directories only `*.yaml`, `*.yml` and `*.json` are,
/// and names starting with `.` are skipped (editor swap files, and the `..data` links of
/// Kubernetes ConfigMap mounts, whose files also appear under their plain names).
pub fn manifest_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, 0, &mut files, &mut diagnostics);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            diagnostics.push(Diagnostic::file(path.clone(), "no such file or directory"));
        }
    }
    files.sort();
    files.dedup();
    (files, diagnostics)
}

fn walk(dir: &Path, depth: usize, files: &mut Vec<PathBuf>, diagnostics: &mut Vec<Diagnostic>) {
    if depth > MAX_DEPTH {
        diagnostics
            .push(Diagnostic::file(dir.to_owned(), format!("nested deeper than {MAX_DEPTH} directories; not read")));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            diagnostics.push(Diagnostic::file(dir.to_owned(), format!("cannot list directory: {e}")));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, depth + 1, files, diagnostics);
        } else if is_manifest(&path) {
            files.push(path);
        }
    }
}

/// True when a path component below `root` starts with `.` (skipped by the walk).
pub(crate) fn is_hidden_below(root: &Path, path: &Path) -> bool {
    path.strip_prefix(root)
        .map(|rest| rest.components().any(|c| c.as_os_str().to_string_lossy().starts_with('.')))
        .unwrap_or(false)
}

/// True for the `..`-prefixed entries a Kubernetes ConfigMap volume swaps atomically.
pub(crate) fn is_configmap_swap(root: &Path, path: &Path) -> bool {
    path.strip_prefix(root)
        .map(|rest| rest.components().any(|c| c.as_os_str().to_string_lossy().starts_with("..")))
        .unwrap_or(false)
}

/// True for the file names read inside directories.
pub(crate) fn is_manifest(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"))
}
