//! `sluice run`: serve the manifests until told to stop; re-read them on SIGHUP.

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

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
    match runtime.block_on(serve(&args.source, &args.serve, || {})) {
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
    on_ready: impl FnOnce(),
) -> Result<(), String> {
    let pipeline = Arc::new(Pipeline::new(source)?);
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
    let metrics = Arc::new(Metrics::new());
    metrics.set_generation(1);

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
                metrics.set_generation(generation);
                tracing::info!(generation, "configuration reloaded");
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("stopping");
    for task in tasks {
        task.abort();
    }
    Ok(())
}
