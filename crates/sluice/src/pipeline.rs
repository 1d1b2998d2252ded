//! The control-plane pipeline of the manifest source: files → store → translate → snapshot,
//! doing only the work a change needs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;

use sluice_config::{Diagnostic, Snapshot, UpstreamPolicy};
use sluice_manifests::{Changes, ManifestSource};

use crate::source::{allocations_from_status, Source};
use sluice_store::ObjectKey;
use sluice_translate::{Allocations, AnnotationVerdict, Changed, Rebuilt, Translator};

use crate::cli::SourceArgs;
use crate::state::AllocationRecord;

/// What asks for a new snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Re-read everything that changed on disk (SIGHUP, or an unattributable watch event).
    Rescan,
    /// These paths were created, written, renamed or deleted.
    Paths(Vec<PathBuf>),
    /// These files read as empty a moment ago; read them again, empty or not.
    Confirm(Vec<PathBuf>),
    /// Objects changed in the cluster: every object of `kinds` (relisted), and `objects`.
    Cluster {
        /// Kinds whose objects were relisted: any of them may have changed.
        kinds: BTreeSet<&'static str>,
        /// Objects added, modified or deleted, by kind and key.
        objects: BTreeSet<(&'static str, ObjectKey)>,
    },
}

impl Trigger {
    /// Merges two triggers of one burst: a rescan covers any paths.
    pub fn merge(self, other: Trigger) -> Trigger {
        match (self, other) {
            (Trigger::Paths(a), Trigger::Paths(b)) => Trigger::Paths(union(a, b)),
            (Trigger::Confirm(a), Trigger::Confirm(b)) => Trigger::Confirm(union(a, b)),
            // Refreshing a still-empty file defers it again, so nothing is lost.
            (Trigger::Paths(a) | Trigger::Confirm(a), Trigger::Paths(b) | Trigger::Confirm(b)) => {
                Trigger::Paths(union(a, b))
            }
            (Trigger::Cluster { mut kinds, mut objects }, Trigger::Cluster { kinds: more_kinds, objects: more }) => {
                kinds.extend(more_kinds);
                objects.extend(more);
                Trigger::Cluster { kinds, objects }
            }
            _ => Trigger::Rescan,
        }
    }
}

fn union(mut a: Vec<PathBuf>, b: Vec<PathBuf>) -> Vec<PathBuf> {
    a.extend(b);
    a.sort();
    a.dedup();
    a
}

/// Everything that changes between builds, behind one lock so builds are serialised.
#[derive(Debug)]
struct State {
    source: Source,
    /// Remembers what each object translated to, so a build redoes only what changed.
    translator: Translator,
    allocations: Allocations,
    /// Diagnostics of the last translation, without the source's.
    translate_diagnostics: Vec<Diagnostic>,
    generation: u64,
}

/// Reads the configured manifests and translates them; one instance per process.
#[derive(Debug)]
pub struct Pipeline {
    options: sluice_translate::Options,
    record: Option<AllocationRecord>,
    roots: Vec<PathBuf>,
    state: Mutex<State>,
}

/// How a snapshot was built, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildKind {
    /// Ingresses or IngressClasses changed: routes were planned again (only the hosts the
    /// changed Ingresses route; the metric label stays `full`).
    Full,
    /// Ingresses were unchanged: the route table was shared, only the backends of changed
    /// Services or endpoints were resolved again (and certificates of changed Secrets).
    Endpoints,
    /// No object changed; only diagnostics (a file that stopped or started parsing).
    Diagnostics,
}

impl Pipeline {
    /// A pipeline for `source`: the `--manifests` paths (read once now), or `kube` when
    /// given. With manifests and `state_dir`, LoadBalancer allocations are loaded from and
    /// saved to the record there; with Kubernetes, Services' status is the record.
    pub fn new(
        source: &SourceArgs,
        state_dir: Option<&Path>,
        kube: Option<Arc<sluice_kube::KubeSource>>,
        acme: Option<&AcmeSource>,
    ) -> Result<Self, String> {
        let default_tls_secret = source
            .default_tls_secret
            .as_deref()
            .map(|text| parse_object_ref("--default-tls-secret", text))
            .transpose()?;
        let default_backend_service = source
            .default_backend_service
            .as_deref()
            .map(|text| parse_object_ref("--default-backend-service", text))
            .transpose()?;
        let configmap = source.configmap.as_deref().map(|text| parse_object_ref("--configmap", text)).transpose()?;
        let mut defaults = sluice_translate::Defaults::default();
        let policy = UpstreamPolicy { read_timeout: source.upstream_timeout, ..UpstreamPolicy::default() };
        defaults.policy = Arc::new(policy);
        let options = sluice_translate::Options {
            ingress_class: source.ingress_class.clone(),
            watch_without_class: source.watch_ingress_without_class,
            default_tls_secret,
            lb_pools: source.lb_pools.clone(),
            controller_class: source.controller_class.clone(),
            annotations_prefix: source.annotations_prefix.clone(),
            defaults,
            configmap,
            default_backend_service,
            enable_ssl_passthrough: source.enable_ssl_passthrough,
            allow_unenforced_waf: source.allow_unenforced_waf,
            gateway_controller: source.gateway_controller.clone(),
            node_name: source.node(),
            upstream_mode: match source.upstream_mode {
                crate::cli::UpstreamModeArg::Endpoints => sluice_translate::UpstreamMode::Endpoints,
                crate::cli::UpstreamModeArg::Nodeport => sluice_translate::UpstreamMode::NodePort,
            },
            acme_challenges: acme.map(|acme| acme.challenges.clone()),
            acme_dns01: acme.is_some_and(|acme| acme.dns01),
            acme_gateways: acme.is_some_and(|acme| acme.gateways),
            ..sluice_translate::Options::new(crate::default_cert::generate()?)
        };
        // The record is written only when allocations change: without pools, never.
        let mut roots = absolute_roots(&source.manifests);
        if let Some(dir) = acme.and_then(|acme| acme.objects_dir.clone()) {
            roots.extend(absolute_roots(&[dir]));
        }
        let (source, record, allocations) = match kube {
            Some(kube) => (Source::Kube(kube), None, Allocations::default()),
            None => {
                let record = state_dir.map(AllocationRecord::new);
                let allocations = record.as_ref().map(AllocationRecord::load).unwrap_or_default();
                (Source::Manifests(Box::new(ManifestSource::new(roots.clone()))), record, allocations)
            }
        };
        let translator = Translator::new(options.clone());
        let state = State { source, translator, allocations, translate_diagnostics: Vec::new(), generation: 0 };
        Ok(Self { options, record, roots, state: Mutex::new(state) })
    }

    /// The `--manifests` paths, made absolute (as file-watch events name them).
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The first snapshot: a full translation of what the source holds. With Kubernetes, the
    /// LoadBalancer Services' status (read now that the lists are in) seeds allocation.
    pub fn first(&self) -> Snapshot {
        let mut state = self.lock();
        if let Source::Kube(kube) = &state.source {
            state.allocations = kube.read(allocations_from_status);
        }
        self.build(&mut state, Changed::All).0
    }

    /// What the controller ConfigMap's keys and each Ingress's annotations amount to
    /// (honoured, ignored, refused), one object per paragraph, for `sluice check`.
    pub fn annotation_report(&self) -> String {
        use std::fmt::Write;
        let state = self.lock();
        let reports = state.source.with_store(|store| {
            let configmap = sluice_translate::configmap_report(store, &self.options);
            configmap.into_iter().chain(sluice_translate::annotation_reports(store, &self.options)).collect::<Vec<_>>()
        });
        let mut out = String::new();
        for (ingress, annotations) in reports {
            let _ = writeln!(out, "{ingress}:");
            for report in annotations {
                let _ = match report.verdict {
                    AnnotationVerdict::Honoured => writeln!(out, "  honoured  {}", report.key),
                    AnnotationVerdict::Ignored(why) => writeln!(out, "  ignored   {}: {why}", report.key),
                    AnnotationVerdict::Refused(why) => writeln!(out, "  refused   {}: {why}", report.key),
                };
            }
        }
        out
    }

    /// An empty snapshot (generation 0) to serve the admin listener before the first one.
    pub fn placeholder(&self) -> Snapshot {
        sluice_translate::translate(&sluice_store::Store::default(), &self.options, &Default::default(), 0)
    }

    /// Applies `trigger` and builds the next snapshot, or `None` when nothing changed
    /// (`current` is what is served). Returns the changes seen and how the snapshot was built.
    pub fn update(&self, trigger: &Trigger, current: &Snapshot) -> (Changes, Option<(Snapshot, BuildKind)>) {
        let mut state = self.lock();
        let changes = state.source.apply(trigger);
        // SIGHUP compares every object, in case anything was missed; otherwise the source
        // says which objects changed (or which kinds, after a Kubernetes relist).
        let changed = if *trigger == Trigger::Rescan {
            Changed::All
        } else if changes.objects.is_empty() {
            Changed::Kinds(&changes.kinds)
        } else {
            Changed::Objects(&changes.objects)
        };
        let next = if !changes.is_empty() {
            let (snapshot, rebuilt) = self.build(&mut state, changed);
            let kind = match rebuilt {
                Rebuilt::Routes => BuildKind::Full,
                Rebuilt::Backends => BuildKind::Endpoints,
            };
            Some((snapshot, kind))
        } else if !changes.failed.is_empty()
            || *trigger == Trigger::Rescan
            || current.diagnostics != combine(&state.source, &state.translate_diagnostics)
        {
            // An explicit reload (SIGHUP) always yields a new generation, as confirmation.
            Some((self.build(&mut state, changed).0, BuildKind::Diagnostics))
        } else {
            None
        };
        (changes, next)
    }

    /// Translates what the source holds now, redoing only the work of changed objects, and
    /// adds the source's own diagnostics.
    fn build(&self, state: &mut State, changed: Changed<'_>) -> (Snapshot, Rebuilt) {
        state.generation += 1;
        let (translator, allocations, generation) = (&mut state.translator, &state.allocations, state.generation);
        let (mut snapshot, rebuilt) =
            state.source.with_store(|store| translator.build(store, changed, allocations, generation));
        if snapshot.l4.addresses != state.allocations {
            state.allocations.clone_from(&snapshot.l4.addresses);
            if let Some(record) = &self.record {
                record.store(&state.allocations);
            }
        }
        state.translate_diagnostics = std::mem::take(&mut snapshot.diagnostics);
        snapshot.diagnostics = combine(&state.source, &state.translate_diagnostics);
        (snapshot, rebuilt)
    }

    /// Object counts by kind and files failing to parse, for metrics.
    pub fn stats(&self) -> (Vec<(&'static str, usize)>, usize) {
        let state = self.lock();
        (state.source.counts(), state.source.failing_files())
    }
}

/// `paths` made absolute against the working directory, symlinks left unresolved so that a
/// ConfigMap mount's `..data` swap stays visible.
fn absolute_roots(paths: &[PathBuf]) -> Vec<PathBuf> {
    paths.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())).collect()
}

/// File and document problems first, then translation's.
fn combine(source: &Source, translated: &[Diagnostic]) -> Vec<Diagnostic> {
    let mut all = source.diagnostics();
    all.extend_from_slice(translated);
    all
}

fn parse_object_ref(flag: &str, text: &str) -> Result<ObjectKey, String> {
    match text.split_once('/') {
        Some((namespace, name)) if !namespace.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(ObjectKey::new(namespace, name))
        }
        _ => Err(format!("{flag} {text:?}: expected NAMESPACE/NAME")),
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

/// What automatic HTTPS adds to the pipeline.
#[derive(Debug, Clone)]
pub struct AcmeSource {
    /// The challenge Secret, read into every snapshot.
    pub challenges: ObjectKey,
    /// Wildcard hosts can be ordered (DNS-01 is configured).
    pub dns01: bool,
    /// `--acme-gateways`.
    pub gateways: bool,
    /// On manifests, the directory of Secrets the issuer writes (another manifests root).
    pub objects_dir: Option<PathBuf>,
}
