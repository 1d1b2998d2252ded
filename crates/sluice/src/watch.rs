//! Watching the `--manifests` paths: file-system events become reload triggers.

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use crate::pipeline::Trigger;

/// Starts watching `roots`; events are sent as triggers until the returned watcher is
/// dropped. Directories are watched recursively; a file is watched through its directory,
/// so that editors replacing it by rename (and ConfigMap symlink swaps) are seen.
pub fn start(roots: &[PathBuf], triggers: UnboundedSender<Trigger>) -> notify::Result<RecommendedWatcher> {
    let watched: Vec<PathBuf> = roots.to_vec();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
        Ok(event) => {
            if let Some(trigger) = trigger_for(&event, &watched) {
                // A send error means the reload loop is gone: shutting down.
                let _ = triggers.send(trigger);
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "file watch error; rescanning");
            let _ = triggers.send(Trigger::Rescan);
        }
    })?;
    for root in roots {
        if root.is_dir() {
            watcher.watch(root, RecursiveMode::Recursive)?;
        } else {
            let parent = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            watcher.watch(parent, RecursiveMode::NonRecursive)?;
        }
    }
    Ok(watcher)
}

/// The trigger for one event, or `None` for events that change nothing: reads (including
/// Sluice's own, which would otherwise re-trigger forever) and paths outside the roots.
fn trigger_for(event: &Event, roots: &[PathBuf]) -> Option<Trigger> {
    tracing::trace!(?event, "file event");

    if let EventKind::Access(kind) = event.kind {
        if kind != AccessKind::Close(AccessMode::Write) {
            return None;
        }
    }
    if event.need_rescan() {
        return Some(Trigger::Rescan);
    }
    let paths: Vec<PathBuf> = event
        .paths
        .iter()
        .filter(|path| roots.iter().any(|root| if root.is_dir() { path.starts_with(root) } else { *path == root }))
        .cloned()
        .collect();
    (!paths.is_empty()).then_some(Trigger::Paths(paths))
}
