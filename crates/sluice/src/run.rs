//! `sluice run`: serve the manifests, follow their changes, drain on SIGTERM.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_access_log::{AccessLog, AccessLogFormat};
use sluice_config::{SharedSnapshot, Snapshot};
use sluice_l4::{L4Metrics, L4Plane};

use crate::announce::Announcer;
use sluice_proxy::admin::AdminState;
use sluice_proxy::{ConnectionLimits, DataPlane, GatewayListeners, Metrics, ProxyOptions};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::acme::issuer::{EventSink, Issuer};
use crate::acme::storage::Storage;
use crate::acme::{AcmeMetrics, AcmeSettings};
use crate::cli::{AcmeArgs, RunArgs, ServeArgs, SourceArgs};
use crate::control_metrics::ControlMetrics;
use crate::pipeline::{log_diagnostics, AcmeSource, Pipeline, Trigger};

/// After a change is noticed, wait this long for more events of the same burst.
const DEBOUNCE: Duration = Duration::from_millis(10);
/// A file that reads as empty is read again after this long before its objects go.
const CONFIRM_EMPTY_AFTER: Duration = Duration::from_millis(200);
/// A burst that keeps going is applied after this long anyway.
const DEBOUNCE_MAX: Duration = Duration::from_millis(100);

/// Entry point of `sluice run`.
pub fn main(args: RunArgs) -> ExitCode {
    raise_open_files_limit();
    let runtime = match runtime(args.serve.workers) {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    let result = runtime.block_on(async {
        let cluster = match args.source.kubernetes {
            true => Some(Cluster::connect(&args).await?),
            false => None,
        };
        serve(&args.source, &args.serve, Some(&args.state_dir), Some(&args.acme), cluster, || {}).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Every client connection, backend connection and listener is a file descriptor: take the
/// hard limit the system allows rather than the (often 1,024) soft default, as nginx's
/// `worker_rlimit_nofile` lets operators do.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read or write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let soft = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                tracing::debug!(soft, "could not raise the open files limit");
            }
        }
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    ExitCode::FAILURE
}

/// The runtime serving traffic: `workers` threads (default: one per core); with exactly one,
/// a current-thread runtime, which skips the work-stealing machinery.
pub fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n.max(1));
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().map_err(|e| format!("cannot start the runtime: {e}"))
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

/// The Kubernetes side of `--kubernetes`: the watches, and what leader election, status and
/// Events need.
pub struct Cluster {
    source: Arc<sluice_kube::KubeSource>,
    options: sluice_kube::KubeOptions,
    publish_service: Option<String>,
    /// `--gateway-controller`: the `controllerName` of the route status entries written.
    gateway_controller: String,
    /// `--member-lease-duration`.
    member_lease: Duration,
    /// This replica's membership Lease, once started.
    membership: tokio::sync::Mutex<Option<sluice_kube::Membership>>,
}

impl Cluster {
    /// Connects (the watches start; `serve` waits for their initial lists).
    pub async fn connect(args: &RunArgs) -> Result<Self, String> {
        let options = kube_options(&args.source, Some(args));
        let source = Arc::new(sluice_kube::connect(&options).await?);
        let (publish_service, gateway_controller) =
            (args.publish_service.clone(), args.source.gateway_controller.clone());
        let member_lease = args.member_lease_duration;
        let membership = tokio::sync::Mutex::new(None);
        Ok(Self { source, options, publish_service, gateway_controller, member_lease, membership })
    }

    /// Starts this replica's membership Lease (node `node`); the receiver says which
    /// replicas are alive, for choosing the one that holds each address.
    fn membership(&self, node: &str) -> watch::Receiver<BTreeSet<String>> {
        let membership = sluice_kube::Membership::start(
            self.source.client(),
            &self.options.lease_namespace,
            node,
            self.member_lease,
        );
        let live = membership.live();
        if let Ok(mut slot) = self.membership.try_lock() {
            *slot = Some(membership);
        }
        live
    }

    /// Deletes this replica's membership Lease, so that the others take over its
    /// addresses at once.
    async fn leave(&self) {
        if let Some(membership) = self.membership.lock().await.take() {
            membership.stop().await;
        }
    }

    /// The Kubernetes source alone, for `sluice check --kubernetes`.
    pub async fn source_only(source: &SourceArgs) -> Result<Arc<sluice_kube::KubeSource>, String> {
        let kube = Arc::new(sluice_kube::connect(&kube_options(source, None)).await?);
        tokio::time::timeout(Duration::from_secs(60), kube.ready())
            .await
            .map_err(|_| "the Kubernetes API did not list every kind within 60 s".to_owned())?;
        Ok(kube)
    }

    /// Starts forwarding watch changes as triggers, leader election, status writing (Ingress
    /// and Service addresses; Gateway API objects) and Events.
    /// Returns the leader-election outcome, for the other leader-only writers.
    fn start(
        &self,
        triggers: mpsc::UnboundedSender<Trigger>,
        snapshot: &Arc<SharedSnapshot>,
        publish: Vec<String>,
        changed: watch::Receiver<u64>,
    ) -> watch::Receiver<bool> {
        let mut notices = self.source.subscribe();
        tokio::spawn(async move {
            while let Some(notice) = notices.recv().await {
                let trigger = match notice.key {
                    Some(key) => {
                        Trigger::Cluster { kinds: BTreeSet::new(), objects: BTreeSet::from([(notice.kind, key)]) }
                    }
                    None => Trigger::Cluster { kinds: BTreeSet::from([notice.kind]), objects: BTreeSet::new() },
                };
                if triggers.send(trigger).is_err() {
                    break;
                }
            }
        });
        let client = self.source.client();
        let leader = sluice_kube::elect_leader(client.clone(), &self.options);
        tokio::spawn(sluice_kube::emit_events(client.clone(), snapshot.clone(), leader.clone(), changed.clone()));
        let (source, controller) = (self.source.clone(), self.gateway_controller.clone());
        tokio::spawn(sluice_kube::write_gateway_status(
            client.clone(),
            snapshot.clone(),
            move || source.store(),
            controller,
            leader.clone(),
            changed.clone(),
        ));
        if !publish.is_empty() || self.publish_service.is_none() {
            let source = self.source.clone();
            let store = move || source.store();
            tokio::spawn(sluice_kube::write_status(client, snapshot.clone(), store, publish, leader.clone(), changed));
            return leader;
        }
        // --publish-service: its addresses can appear or change at any time (a LoadBalancer
        // gets its address after Sluice starts), so the writer restarts with the new ones.
        let (source, snapshot, service) = (self.source.clone(), snapshot.clone(), self.publish_service.clone());
        let elected = leader.clone();
        tokio::spawn(async move {
            let mut watched = changed.clone();
            let mut current = published_addresses(&source, service.as_deref());
            loop {
                let writer_source = source.clone();
                let writer = tokio::spawn(sluice_kube::write_status(
                    client.clone(),
                    snapshot.clone(),
                    move || writer_source.store(),
                    current.clone(),
                    leader.clone(),
                    changed.clone(),
                ));
                loop {
                    if watched.changed().await.is_err() {
                        writer.abort();
                        return;
                    }
                    let now = published_addresses(&source, service.as_deref());
                    if now != current {
                        tracing::info!(addresses = ?now, "--publish-service addresses changed");
                        current = now;
                        break;
                    }
                }
                writer.abort();
            }
        });
        elected
    }
}

/// The addresses of the `--publish-service` Service (`namespace/name`): its
/// `status.loadBalancer.ingress`, else its `spec.externalIPs`.
fn published_addresses(source: &sluice_kube::KubeSource, service: Option<&str>) -> Vec<String> {
    let Some((namespace, name)) = service.and_then(|s| s.split_once('/')) else {
        return Vec::new();
    };
    let store = source.store();
    let Some(service) = store.services.get(&sluice_store::ObjectKey::new(namespace, name)) else {
        return Vec::new();
    };
    let ingress = service.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
    let addresses: Vec<String> =
        ingress.into_iter().flatten().filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone())).collect();
    if addresses.is_empty() {
        return service.spec.as_ref().and_then(|s| s.external_ips.clone()).unwrap_or_default();
    }
    addresses
}

fn kube_options(source: &SourceArgs, run: Option<&RunArgs>) -> sluice_kube::KubeOptions {
    let defaults = sluice_kube::KubeOptions::default();
    sluice_kube::KubeOptions {
        kubeconfig: source.kubeconfig.clone(),
        watch_namespace: source.watch_namespace.clone(),
        leader_elect: run.is_some_and(|r| r.leader_elect),
        lease_name: run.map_or(defaults.lease_name.clone(), |r| r.lease_name.clone()),
        lease_namespace: run.and_then(|r| r.lease_namespace.clone()).unwrap_or(defaults.lease_namespace.clone()),
        ..defaults
    }
}

/// The running pieces a reload updates.
struct Control {
    pipeline: Arc<Pipeline>,
    snapshot: Arc<SharedSnapshot>,
    metrics: Arc<Metrics>,
    control_metrics: ControlMetrics,
    l4: L4Plane,
    /// The Gateways' HTTP and HTTPS frontends.
    gateways: GatewayListeners,
    /// Adds announced addresses before their listeners are bound.
    announcer: Arc<Announcer>,
    /// For re-checking files that read as empty (a writer mid-rewrite).
    triggers: mpsc::UnboundedSender<Trigger>,
    /// The generation being served, for the status and Event writers.
    changed: watch::Sender<u64>,
}

/// Builds the first snapshot, opens the listeners, calls `on_ready` once traffic is served,
/// then follows changes (file events, SIGHUP) until SIGTERM or SIGINT, and drains.
pub async fn serve(
    source: &SourceArgs,
    serve: &ServeArgs,
    state_dir: Option<&std::path::Path>,
    acme: Option<&AcmeArgs>,
    cluster: Option<Cluster>,
    on_ready: impl FnOnce(),
) -> Result<(), String> {
    // Installed first: a SIGHUP or SIGTERM must never find the default action (exit).
    let signal_error = |e: std::io::Error| format!("cannot install signal handlers: {e}");
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let acme = match acme {
        Some(args) => acme_setup(args, state_dir, cluster.as_ref())?,
        None => None,
    };
    let acme_source = acme.as_ref().map(|(_, storage)| AcmeSource {
        challenges: storage.challenge_secret(),
        dns01: acme.as_ref().is_some_and(|(settings, _)| settings.dns.is_some()),
        gateways: acme.as_ref().is_some_and(|(settings, _)| settings.gateways),
        objects_dir: match storage {
            Storage::Files { dir } => Some(dir.join("objects")),
            Storage::Kube { .. } => None,
        },
    });
    let kube = cluster.as_ref().map(|c| c.source.clone());
    let pipeline = Arc::new(Pipeline::new(source, state_dir, kube, acme_source.as_ref())?);

    // The admin listener comes first: /healthz answers at once, /readyz says 503 until the
    // first real snapshot serves (with --kubernetes, after the initial lists).
    let snapshot = sluice_config::share(pipeline.placeholder());
    let mut metrics = Metrics::new();
    let access_log = access_log(serve.access_log, metrics.registry_mut());
    let l4 = L4Plane::new(Arc::new(L4Metrics::new(metrics.registry_mut())), access_log.clone());
    let control_metrics = ControlMetrics::new(metrics.registry_mut());
    let acme_metrics = AcmeMetrics::new(metrics.registry_mut());
    let live = match &cluster {
        Some(cluster) => cluster.membership(&source.node()),
        None => watch::channel(BTreeSet::from([source.node()])).1,
    };
    let announcer = Arc::new(Announcer::new(metrics.registry_mut(), source.node(), live));
    let tracing = match serve.tracing.config() {
        Some(config) => Some(sluice_proxy::Tracing::start(&config, metrics.registry_mut())?),
        None => None,
    };
    let metrics = Arc::new(metrics);
    let admin = bind(serve.admin, "--admin").await?;
    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        ready: false.into(),
        snapshot: snapshot.clone(),
        publish: publish_addresses(serve, cluster.as_ref()),
        announcements: Some({
            let announcer = announcer.clone();
            sluice_proxy::admin::LiveStatus(Arc::new(move || announcer.status()))
        }),
        dashboard: Default::default(),
    });
    let admin_task = tokio::spawn(sluice_proxy::admin::serve(admin, admin_state.clone()));
    if let Some(cluster) = &cluster {
        tracing::info!("waiting for the initial list of every kind from the Kubernetes API");
        tokio::select! {
            () = cluster.source.ready() => {}
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        }
    }

    let first = pipeline.first();
    log_diagnostics(&first);
    tracing::info!(
        ingresses = first.summary.ingresses,
        routes = first.summary.routes,
        certificates = first.summary.certificates,
        diagnostics = first.diagnostics.len(),
        "configuration loaded"
    );
    let generation = first.generation;
    snapshot.store(Arc::new(first));
    metrics.set_generation(generation);
    let (counts, failing) = pipeline.stats();
    control_metrics.set_objects(&counts, failing);
    control_metrics.served(&snapshot.load());
    announcer.prepare(&snapshot.load()).await;
    report_unbound(l4.apply(&snapshot.load().l4).await);

    let http = bind(serve.http, "--http").await?;
    let https = bind(serve.https, "--https").await?;
    let options = ProxyOptions {
        https_port: serve.https.port(),
        header_timeout: serve.client_header_timeout,
        client_body_timeout: serve.client_body_timeout,
        connection_limits: ConnectionLimits {
            total: serve.max_connections,
            per_client: serve.max_connections_per_client,
        },
        tls_session_resumption: serve.tls_session_resumption,
        access_log: access_log.clone(),
        shared_rates: match &serve.rate_limit_redis {
            Some(url) => Some(sluice_proxy::SharedRates::connect(url, serve.rate_limit_redis_timeout)?),
            None => None,
        },
        tracing: tracing.clone(),
        ..ProxyOptions::default()
    };
    let plane = DataPlane::new(snapshot.clone(), metrics.clone(), options);
    let tls = sluice_proxy::server_config(snapshot.clone(), serve.tls_session_resumption)
        .map_err(|e| format!("TLS configuration: {e}"))?;
    tokio::spawn(sluice_proxy::serve(http, plane.clone(), None));
    tokio::spawn(sluice_proxy::serve(https, plane.clone(), Some(tls)));
    let gateways = GatewayListeners::new(plane.clone());
    report_unbound_frontends(gateways.apply(&snapshot.load().gateways).await);

    let (triggers, mut changes) = mpsc::unbounded_channel();
    let (changed, changed_rx) = watch::channel(generation);
    let changed_rx_announce = changed_rx.clone();
    let changed_rx_acme = changed_rx.clone();
    // On manifests this replica is the only writer.
    let (_sole_writer, mut leader) = watch::channel(true);
    let _watcher = match &cluster {
        Some(cluster) => {
            leader = cluster.start(triggers.clone(), &snapshot, admin_state.publish.clone(), changed_rx);
            None
        }
        None => match crate::watch::start(pipeline.roots(), triggers.clone()) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the manifests; send SIGHUP to reload");
                None
            }
        },
    };
    announcer.spawn(snapshot.clone(), changed_rx_announce);
    if let Some((settings, storage)) = acme {
        let events = cluster
            .as_ref()
            .map(|c| EventSink { client: c.source.client(), instance: sluice_kube::default_identity() });
        let issuer = Issuer::new(settings, storage, snapshot.clone(), acme_metrics, events);
        tokio::spawn(issuer.run(changed_rx_acme, leader));
    }
    admin_state.ready.store(true, Ordering::Release);
    tracing::info!(http = %serve.http, https = %serve.https, admin = %serve.admin, "serving");
    on_ready();

    let control = Control {
        pipeline,
        snapshot,
        metrics,
        control_metrics,
        l4,
        gateways,
        announcer: announcer.clone(),
        triggers,
        changed,
    };
    loop {
        tokio::select! {
            Some(first) = changes.recv() => {
                let noticed = Instant::now();
                let trigger = debounce(first, &mut changes, noticed).await;
                control.reload(trigger, noticed).await?;
            }
            _ = hangup.recv() => control.reload(Trigger::Rescan, Instant::now()).await?,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    tracing::info!(drain_timeout = ?serve.drain_timeout, "stopping: no new connections; draining");
    admin_state.ready.store(false, Ordering::Release);
    // Routers and neighbours move traffic elsewhere first; the addresses stay while
    // connections drain.
    announcer.withdraw().await;
    if let Some(cluster) = &cluster {
        cluster.leave().await;
    }
    control.l4.stop_accepting();
    if plane.shutdown(serve.drain_timeout).await {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!("drain timeout reached; exiting with requests still in flight");
    }
    if let Some(tracing) = &tracing {
        // The spans of the last requests, in bounded time.
        tracing.shutdown(Duration::from_secs(5)).await;
    }
    announcer.release().await;
    admin_task.abort();
    // The lines of the last requests, not left to the writer thread's next turn.
    access_log.flush();
    Ok(())
}

/// Collects the rest of a burst of changes into one trigger.
async fn debounce(first: Trigger, changes: &mut mpsc::UnboundedReceiver<Trigger>, noticed: Instant) -> Trigger {
    let mut trigger = first;
    while noticed.elapsed() < DEBOUNCE_MAX {
        match tokio::time::timeout(DEBOUNCE, changes.recv()).await {
            Ok(Some(more)) => trigger = trigger.merge(more),
            _ => break,
        }
    }
    trigger
}

impl Control {
    /// Builds the next snapshot off the async workers and swaps it in, in one step.
    async fn reload(&self, trigger: Trigger, noticed: Instant) -> Result<(), String> {
        let current = self.snapshot.load_full();
        let pipeline = self.pipeline.clone();
        let (changes, next) = tokio::task::spawn_blocking(move || pipeline.update(&trigger, &current))
            .await
            .map_err(|e| format!("reload task failed: {e}"))?;
        if !changes.deferred.is_empty() {
            let (triggers, paths) = (self.triggers.clone(), changes.deferred.clone());
            tokio::spawn(async move {
                tokio::time::sleep(CONFIRM_EMPTY_AFTER).await;
                // A send error means the reload loop is gone: shutting down.
                let _ = triggers.send(Trigger::Confirm(paths));
            });
        }
        let Some((next, kind)) = next else {
            self.control_metrics.failed(changes.failed.len());
            return Ok(());
        };
        log_new_diagnostics(&self.snapshot.load(), &next);
        let generation = next.generation;
        let previous = self.snapshot.swap(Arc::new(next));
        // Freeing a large snapshot takes milliseconds: not on the path to serving the new one.
        tokio::task::spawn_blocking(move || drop(previous));
        self.metrics.set_generation(generation);
        self.announcer.prepare(&self.snapshot.load()).await;
        self.changed.send_replace(generation);
        report_unbound(self.l4.apply(&self.snapshot.load().l4).await);
        report_unbound_frontends(self.gateways.apply(&self.snapshot.load().gateways).await);
        let seconds = noticed.elapsed().as_secs_f64();
        self.control_metrics.reloaded(kind, seconds, changes.failed.len());
        let (counts, failing) = self.pipeline.stats();
        self.control_metrics.set_objects(&counts, failing);
        self.control_metrics.served(&self.snapshot.load());
        tracing::info!(
            generation,
            ?kind,
            changed = ?changes.kinds,
            files_read = changes.files_read,
            ms = seconds * 1000.0,
            "configuration applied"
        );
        Ok(())
    }
}

/// Logs the diagnostics of `next` that `current` did not have.
fn log_new_diagnostics(current: &Snapshot, next: &Snapshot) {
    let known: BTreeSet<_> = current.diagnostics.iter().collect();
    for diagnostic in next.diagnostics.iter().filter(|d| !known.contains(d)) {
        tracing::warn!(
            subject = %diagnostic.subject,
            field = %diagnostic.field,
            reason = %diagnostic.reason,
            "resource problem: {diagnostic}"
        );
    }
}

/// Logs the L4 listeners that could not be bound (e.g. an address not on this host).
fn report_unbound(failures: Vec<(sluice_config::L4Key, std::io::Error)>) {
    for ((protocol, address), error) in failures {
        tracing::warn!(?protocol, %address, %error, "cannot listen for a LoadBalancer Service");
    }
}

/// Logs the Gateway frontends that could not be bound.
fn report_unbound_frontends(failures: Vec<(std::net::SocketAddr, std::io::Error)>) {
    for (address, error) in failures {
        tracing::warn!(%address, %error, "cannot listen for a Gateway");
    }
}

/// `--publish-address`; else, unless `--publish-service` decides (with --kubernetes), the
/// --http listener's IP when it is a specific address.
fn publish_addresses(serve: &ServeArgs, cluster: Option<&Cluster>) -> Vec<String> {
    if !serve.publish_address.is_empty() {
        return serve.publish_address.clone();
    }
    if cluster.is_some_and(|c| c.publish_service.is_some()) {
        return Vec::new();
    }
    let ip = serve.http.ip();
    if ip.is_unspecified() {
        Vec::new()
    } else {
        vec![ip.to_string()]
    }
}

/// The issuer's settings and storage: Secrets through the API server in a cluster, else
/// files under `state_dir` when `--acme-directory` or `--acme-email` turns it on (without a
/// usable directory, automatic HTTPS is off, said loudly).
fn acme_setup(
    args: &AcmeArgs,
    state_dir: Option<&std::path::Path>,
    cluster: Option<&Cluster>,
) -> Result<Option<(AcmeSettings, Storage)>, String> {
    let settings = AcmeSettings::from_args(args)?;
    let storage = match (cluster, state_dir) {
        (Some(cluster), _) => Storage::Kube {
            writer: sluice_kube::SecretWriter::new(cluster.source.client()),
            namespace: cluster.options.lease_namespace.clone(),
        },
        (None, _) if args.acme_directory.is_none() && args.acme_email.is_none() => return Ok(None),
        (None, Some(state_dir)) => {
            let objects = Storage::objects_dir(state_dir);
            if let Err(error) = std::fs::create_dir_all(&objects) {
                tracing::error!(
                    dir = %objects.display(),
                    %error,
                    "automatic HTTPS is off: --state-dir is not writable; kubernetes.io/tls-acme Ingresses get the default certificate"
                );
                return Ok(None);
            }
            Storage::Files { dir: state_dir.join("acme") }
        }
        (None, None) => return Ok(None),
    };
    Ok(Some((settings, storage)))
}

/// The access log `--access-log` asks for, with its dropped-lines counter registered.
fn access_log(format: crate::cli::AccessLogArg, registry: &mut prometheus_client::registry::Registry) -> AccessLog {
    let format = match format {
        crate::cli::AccessLogArg::Json => AccessLogFormat::Json,
        crate::cli::AccessLogArg::Nginx => AccessLogFormat::Nginx,
        crate::cli::AccessLogArg::Off => return AccessLog::off(),
    };
    let dropped = prometheus_client::metrics::counter::Counter::default();
    registry.register(
        "access_log_dropped_lines",
        "Access log lines dropped because stdout did not keep up",
        dropped.clone(),
    );
    AccessLog::stdout(format, dropped)
}
