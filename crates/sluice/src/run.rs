//! `sluice run`: serve the manifests until told to stop; re-read them on SIGHUP.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sluice_l4::{L4Metrics, L4Plane};
use sluice_proxy::admin::AdminState;
use sluice_proxy::{DataPlane, Metrics, ProxyOptions};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::{RunArgs, ServeArgs, SourceArgs};
use crate::pipeline::{log_diagnostics, Pipeline};

/// Entry point of `sluice run`.
pub fn main(args: RunArgs) -> ExitCode {
    let runtime = match runtime(args.serve.workers) {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(serve(
        &args.source,
        &args.serve,
        Some(&args.state_dir),
        || {},
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    tracing::error!("{message}");
    ExitCode::FAILURE
}

/// A multi-thread runtime with `workers` threads (default: one per core).
pub fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime, String> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers.max(1));
    }
    builder
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

/// Builds the first snapshot, opens the listeners, calls `on_ready` once traffic is served,
/// then reloads on SIGHUP until SIGTERM or SIGINT.
pub async fn serve(
    source: &SourceArgs,
    serve: &ServeArgs,
    state_dir: Option<&std::path::Path>,
    on_ready: impl FnOnce(),
) -> Result<(), String> {
    let pipeline = Arc::new(Pipeline::new(source, state_dir)?);
    let first = pipeline.build(1);
    log_diagnostics(&first);
    tracing::info!(
        ingresses = first.summary.ingresses,
        routes = first.summary.routes,
        certificates = first.summary.certificates,
        diagnostics = first.diagnostics.len(),
        "configuration loaded"
    );
    let snapshot = sluice_config::share(first);
    let mut metrics = Metrics::new();
    let l4 = L4Plane::new(Arc::new(L4Metrics::new(metrics.registry_mut())));
    let metrics = Arc::new(metrics);
    metrics.set_generation(1);
    report_unbound(l4.apply(&snapshot.load().l4).await);

    let http = bind(serve.http, "--http").await?;
    let https = bind(serve.https, "--https").await?;
    let admin = bind(serve.admin, "--admin").await?;
    let options = ProxyOptions {
        upstream_timeout: serve.upstream_timeout,
        ..ProxyOptions::default()
    };
    let plane = DataPlane::new(snapshot.clone(), metrics.clone(), options);
    let tls = sluice_proxy::server_config(snapshot.clone())
        .map_err(|e| format!("TLS configuration: {e}"))?;
    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        ready: false.into(),
        snapshot: snapshot.clone(),
        publish: publish_addresses(serve),
    });

    let tasks = [
        tokio::spawn(sluice_proxy::serve(http, plane.clone(), None)),
        tokio::spawn(sluice_proxy::serve(https, plane, Some(tls))),
        tokio::spawn(sluice_proxy::admin::serve(admin, admin_state.clone())),
    ];
    admin_state.ready.store(true, Ordering::Release);
    tracing::info!(http = %serve.http, https = %serve.https, admin = %serve.admin, "serving");
    on_ready();

    let signal_error = |e: std::io::Error| format!("cannot install signal handlers: {e}");
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_error)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut generation = 1;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                generation += 1;
                let builder = pipeline.clone();
                let next = tokio::task::spawn_blocking(move || builder.build(generation))
                    .await
                    .map_err(|e| format!("reload task failed: {e}"))?;
                log_diagnostics(&next);
                snapshot.store(Arc::new(next));
                report_unbound(l4.apply(&snapshot.load().l4).await);
                metrics.set_generation(generation);
                tracing::info!(generation, "configuration reloaded");
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("stopping");
    l4.stop_accepting();
    for task in tasks {
        task.abort();
    }
    Ok(())
}

/// Logs the L4 listeners that could not be bound (e.g. an address not on this host).
fn report_unbound(failures: Vec<(sluice_config::L4Key, std::io::Error)>) {
    for ((protocol, address), error) in failures {
        tracing::warn!(?protocol, %address, %error, "cannot listen for a LoadBalancer Service");
    }
}

/// `--publish-address`, or the --http listener's IP when it is a specific address.
fn publish_addresses(serve: &ServeArgs) -> Vec<String> {
    if !serve.publish_address.is_empty() {
        return serve.publish_address.clone();
    }
    let ip = serve.http.ip();
    if ip.is_unspecified() {
        Vec::new()
    } else {
        vec![ip.to_string()]
    }
}
