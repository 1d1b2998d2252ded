//! The admin listener: liveness, readiness and metrics for probes and Prometheus, the
//! snapshot as JSON, and a read-only live dashboard for people ([`dashboard`]).

pub mod dashboard;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use sluice_config::SharedSnapshot;

use crate::Metrics;

/// What the admin endpoints report on.
#[derive(Debug)]
pub struct AdminState {
    /// Metrics for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Set once the first snapshot is being served; `/readyz` answers 200 from then on.
    pub ready: AtomicBool,
    /// The snapshot being served, for `/status`.
    pub snapshot: Arc<SharedSnapshot>,
    /// Addresses (IPs or hostnames) to report for Ingresses (`--publish-address`).
    pub publish: Vec<String>,
    /// How LoadBalancer addresses are announced from this replica right now (holders, BGP
    /// sessions), for `/status`; asked at each request.
    pub announcements: Option<LiveStatus>,
    /// The dashboard's tables of the snapshot served last.
    pub dashboard: dashboard::DashboardCache,
}

/// A part of `/status` computed when asked (it changes without a new snapshot).
#[derive(Clone)]
pub struct LiveStatus(pub Arc<dyn Fn() -> serde_json::Value + Send + Sync>);

impl std::fmt::Debug for LiveStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveStatus")
    }
}

/// Serves `/healthz`, `/readyz`, `/metrics`, `/status`, `/config` and the dashboard (`/`,
/// `/api/dashboard`, `/api/rates`) on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(secure(answer(&state, &request))) }
            });
            let io = TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

fn answer(state: &AdminState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".into());
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n".into()),
        "/readyz" if state.ready.load(Ordering::Acquire) => text(StatusCode::OK, "ready\n".into()),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n".into()),
        "/config" => json(&crate::config_view::document(&state.snapshot.load())),
        "/status" => {
            let mut document = crate::status::document(&state.snapshot.load(), &state.publish);
            if let Some(announcements) = &state.announcements {
                document["announcements"] = (announcements.0)();
            }
            json(&document)
        }

        "/metrics" => {
            let mut response = text(StatusCode::OK, state.metrics.encode());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            );
            response
        }
        "/" | "/index.html" => asset(dashboard::HTML, "text/html; charset=utf-8"),
        "/dashboard.js" => asset(dashboard::SCRIPT, "text/javascript; charset=utf-8"),
        "/dashboard.css" => asset(dashboard::STYLE, "text/css; charset=utf-8"),
        "/api/dashboard" => no_store(json(&dashboard::document(state, request.uri().query()))),
        "/api/rates" => no_store(json(&dashboard::rates(state))),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

/// Headers on every admin answer: the dashboard loads nothing but its own files, and no
/// answer is sniffed into another type.
fn secure(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn no_store(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json(document: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::OK, document.to_string());
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}
