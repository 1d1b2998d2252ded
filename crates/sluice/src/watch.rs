//! Watching the `--manifests` paths: file-system events become reload triggers.
//!
//! A file being written is applied when its writer closes it, not at the first write, so a
//! writer that pauses half-way is never served half a file; a writer that keeps the file
//! open is applied after [`OPEN_WRITE_GRACE`] anyway. Renames, deletes and ConfigMap swaps
//! apply at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

use crate::pipeline::Trigger;

/// How long a file may stay open for writing before what it holds is applied anyway.
const OPEN_WRITE_GRACE: Duration = Duration::from_secs(1);
/// How often files still open for writing are checked against the grace period.
const OPEN_WRITE_CHECK: Duration = Duration::from_millis(100);

/// Files written to and not yet closed, with when the first write was seen.
type OpenWrites = Arc<Mutex<HashMap<PathBuf, Instant>>>;

/// Starts watching `roots`; events are sent as triggers until the returned watcher is
/// dropped. Directories are watched recursively; a file is watched through its directory,
/// so that editors replacing it by rename (and ConfigMap symlink swaps) are seen.
pub fn start(roots: &[PathBuf], triggers: UnboundedSender<Trigger>) -> notify::Result<RecommendedWatcher> {
    let watched: Vec<PathBuf> = roots.to_vec();
    let open: OpenWrites = Arc::default();
    spawn_grace_checker(open.clone(), triggers.clone());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
        Ok(event) => {
            if let Some(trigger) = trigger_for(&event, &watched, &open) {
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

/// Applies files whose writer has kept them open longer than the grace period; ends when
/// the reload loop is gone.
fn spawn_grace_checker(open: OpenWrites, triggers: UnboundedSender<Trigger>) {
    std::thread::spawn(move || {
        while !triggers.is_closed() {
            std::thread::sleep(OPEN_WRITE_CHECK);
            let due: Vec<PathBuf> = {
                let mut open = open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let due: Vec<PathBuf> = open
                    .iter()
                    .filter(|(_, since)| since.elapsed() >= OPEN_WRITE_GRACE)
                    .map(|(p, _)| p.clone())
                    .collect();
                for path in &due {
                    open.remove(path);
                }
                due
            };
            if !due.is_empty() {
                let _ = triggers.send(Trigger::Paths(due));
            }
        }
    });
}

/// The trigger for one event, or `None` for events that change nothing: reads (including
/// Sluice's own, which would otherwise re-trigger forever), paths outside the roots, and
/// writes still in progress (the close that ends them triggers).
fn trigger_for(event: &Event, roots: &[PathBuf], open: &OpenWrites) -> Option<Trigger> {
    tracing::trace!(?event, "file event");
    if event.need_rescan() {
        return Some(Trigger::Rescan);
    }
    let paths: Vec<PathBuf> = event
        .paths
        .iter()
        .filter(|path| roots.iter().any(|root| if root.is_dir() { path.starts_with(root) } else { *path == root }))
        .cloned()
        .collect();
    if paths.is_empty() {
        return None;
    }
    let mut open = open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
            let closed: Vec<PathBuf> = paths.into_iter().filter(|p| open.remove(p).is_some()).collect();
            (!closed.is_empty()).then_some(Trigger::Paths(closed))
        }
        EventKind::Access(_) => None,
        EventKind::Create(CreateKind::File) | EventKind::Modify(ModifyKind::Data(_)) => {
            for path in paths {
                open.entry(path).or_insert_with(Instant::now);
            }
            None
        }
        _ => {
            for path in &paths {
                open.remove(path);
            }
            Some(Trigger::Paths(paths))
        }
    }
}
