//! Distributed tracing: one OpenTelemetry SERVER span per request on the general path,
//! exported over OTLP/HTTP (protobuf) in batches, and the W3C `traceparent` the backend
//! receives.
//!
//! A client's valid `traceparent` is continued (its `tracestate` passed on); anything else
//! starts a new trace and drops the `tracestate`. Sampling is parent-based: a sampled
//! parent is recorded, an unsampled one is not, a new trace by `--otlp-sampling-ratio`.
//! Whatever the decision, the backend gets a `traceparent` naming Sluice's span as its
//! parent (flags `00` when not sampled).
//!
//! The exporter never slows a request: ended spans go into a bounded queue (a batch task
//! on the Tokio runtime exports them); when the queue is full, or an export fails or times
//! out, spans are dropped and counted in `sluice_otlp_spans_dropped_total`.
//!
//! What a request's handling learned on the way (route, backend, the endpoint it was last
//! sent to) comes with the response, in the [`RouteFacts`] `forward.rs` puts in its
//! extensions for the access log too.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, Version};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use crate::headers::Downstream;
use crate::listener::Scheme;
use crate::logged::RouteFacts;
use crate::trace_context::{self, TraceParent, TRACEPARENT, TRACESTATE};

/// Most ended spans waiting for export; more are dropped (and counted).
const MAX_QUEUED: usize = 2048;
/// Most spans in one OTLP request.
const MAX_BATCH: usize = 512;
/// How often the queue is exported when it does not fill a batch first.
const EXPORT_DELAY: Duration = Duration::from_millis(500);
/// How long one OTLP request may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// What `--otlp-*` asks for.
#[derive(Debug, Clone)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP base URL (`http://collector:4318`); spans are POSTed to
    /// `/v1/traces` under it.
    pub endpoint: String,
    /// The share of new traces recorded (0.0..=1.0); a client's sampled flag decides for
    /// the traces it continues.
    pub sampling_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

/// The tracer and its exporter: one per process, shared by every request.
#[derive(Clone)]
pub struct Tracing {
    inner: Arc<Inner>,
}

struct Inner {
    /// Both `Some` until dropped.
    provider: Option<SdkTracerProvider>,
    tracer: Option<SdkTracer>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The SDK's last reference shuts the exporter down, blocking until the batch task
        // (on this runtime) answers: never on a worker thread, which may be the one that
        // task needs. Returns at once after `shutdown`.
        let parts = (self.provider.take(), self.tracer.take());
        let _ = std::thread::Builder::new().name("otel-drop".into()).spawn(move || drop(parts));
    }
}

impl fmt::Debug for Tracing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracing").finish_non_exhaustive()
    }
}

impl Tracing {
    /// Starts the exporter (a task on the current Tokio runtime) and registers
    /// `sluice_otlp_spans_dropped_total` in `registry`.
    pub fn start(config: &TracingConfig, registry: &mut Registry) -> Result<Self, String> {
        let endpoint = traces_url(&config.endpoint)?;
        if !(0.0..=1.0).contains(&config.sampling_ratio) {
            return Err(format!("--otlp-sampling-ratio {} is not within 0.0..=1.0", config.sampling_ratio));
        }
        let dropped = Counter::default();
        registry.register(
            "otlp_spans_dropped",
            "Sampled spans not exported: the export queue was full, or the OTLP request failed or timed out",
            dropped.clone(),
        );
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| format!("--otlp-endpoint: {e}"))?;
        let queued = Arc::new(AtomicUsize::new(0));
        let resource = Resource::builder().with_service_name(config.service_name.clone()).build();
        let mut exporter = Counted { inner: exporter, queued: queued.clone(), dropped: dropped.clone() };
        // The async-runtime processor does not hand the resource on to its exporter.
        exporter.set_resource(&resource);
        let batch = BatchConfigBuilder::default()
            // Room past MAX_QUEUED: the bound is kept by `Bounded`, so this queue never
            // drops uncounted.
            .with_max_queue_size(MAX_QUEUED + MAX_BATCH)
            .with_max_export_batch_size(MAX_BATCH)
            .with_scheduled_delay(EXPORT_DELAY)
            .with_max_export_timeout(EXPORT_TIMEOUT)
            .build();
        // The async-runtime processor exports from a task on this runtime: the default
        // one exports from a thread without a reactor, where the hyper client panics.
        let processor =
            BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).with_batch_config(batch).build();
        let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(config.sampling_ratio)));
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded { inner: processor, queued, dropped })
            .with_sampler(sampler)
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("sluice");
        Ok(Self { inner: Arc::new(Inner { provider: Some(provider), tracer: Some(tracer) }) })
    }

    /// Exports what is queued and stops the exporter, waiting at most `timeout`.
    pub async fn shutdown(&self, timeout: Duration) {
        let Some(provider) = self.inner.provider.clone() else {
            return;
        };
        // The SDK blocks the calling thread until its batch task answers: not on a worker.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout));
        match tokio::time::timeout(timeout, stopped).await {
            Ok(Ok(Ok(()))) => tracing::debug!("trace exporter flushed"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "trace exporter shutdown failed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "trace exporter shutdown failed"),
            Err(_) => tracing::warn!("trace exporter did not flush in time; spans dropped"),
        }
    }

    /// Serves `request` by `answer` inside its SERVER span: the incoming trace context is
    /// continued (or a new trace started), the backend's `traceparent` set in its place,
    /// and the span ended with the answer's status and what the handling learned.
    pub(crate) async fn around<B, F, A>(
        &self,
        downstream: &Downstream,
        mut request: Request<B>,
        answer: A,
    ) -> Response<crate::responses::ProxyBody>
    where
        A: FnOnce(Request<B>) -> F,
        F: Future<Output = Response<crate::responses::ProxyBody>>,
    {
        let headers = request.headers_mut();
        let parent = TraceParent::from_headers(headers);
        let context = match parent {
            Some(parent) => {
                let state = headers
                    .get(&TRACESTATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<TraceState>().ok())
                    .unwrap_or_default();
                let flags = TraceFlags::default().with_sampled(parent.sampled());
                let remote = SpanContext::new(
                    TraceId::from_bytes(parent.trace_id),
                    SpanId::from_bytes(parent.parent_id),
                    flags,
                    true,
                    state,
                );
                Context::new().with_remote_span_context(remote)
            }
            None => {
                // A tracestate belongs to the traceparent it came with.
                headers.remove(&TRACESTATE);
                Context::new()
            }
        };
        let method = method_name(request.method());
        let mut attributes = Vec::with_capacity(12);
        attributes.push(KeyValue::new("http.request.method", method));
        if method == "_OTHER" {
            attributes.push(KeyValue::new("http.request.method_original", request.method().as_str().to_owned()));
        }
        attributes.push(KeyValue::new("url.path", request.uri().path().to_owned()));
        attributes.push(KeyValue::new("url.scheme", if downstream.scheme == Scheme::Https { "https" } else { "http" }));
        if let Some(host) = server_address(&request) {
            attributes.push(KeyValue::new("server.address", host.to_owned()));
        }
        attributes.push(KeyValue::new("server.port", i64::from(downstream.port)));
        attributes.push(KeyValue::new("client.address", downstream.client.ip().to_string()));
        attributes.push(KeyValue::new("network.protocol.name", "http"));
        attributes.push(KeyValue::new("network.protocol.version", protocol_version(request.version())));
        let Some(tracer) = &self.inner.tracer else {
            return answer(request).await;
        };
        let span = tracer
            .span_builder(method)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, &context);
        let own = span.span_context();
        let value = trace_context::format(own.trace_id().to_bytes(), own.span_id().to_bytes(), own.is_sampled());
        request.headers_mut().insert(&TRACEPARENT, value);
        let response = answer(request).await;
        finish(span, &response);
        response
    }
}

/// Ends `span` with the response status and what handling learned ([`RouteFacts`]).
fn finish<S: opentelemetry::trace::Span>(mut span: S, response: &Response<impl Sized>) {
    if !span.is_recording() {
        return;
    }
    let status = response.status();
    span.set_attribute(KeyValue::new("http.response.status_code", i64::from(status.as_u16())));
    if let Some(facts) = response.extensions().get::<RouteFacts>() {
        if let (Some(route), Some(backend)) = (&facts.route, &facts.service) {
            span.set_attribute(KeyValue::new("sluice.route", route.to_string()));
            span.set_attribute(KeyValue::new("sluice.backend", backend.to_string()));
        }
        if let Some(peer) = facts.upstream {
            span.set_attribute(KeyValue::new("network.peer.address", peer.ip().to_string()));
            span.set_attribute(KeyValue::new("network.peer.port", i64::from(peer.port())));
        }
    }
    if status.is_server_error() {
        // OTel HTTP conventions: 5xx is an error of a SERVER span, 4xx is not.
        span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
        span.set_status(Status::error(status.to_string()));
    }
    span.end();
}

/// The OTLP/HTTP traces URL under the `--otlp-endpoint` base URL.
fn traces_url(base: &str) -> Result<String, String> {
    let uri: http::Uri = base.parse().map_err(|e| format!("--otlp-endpoint {base:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(_) => return Err(format!("--otlp-endpoint {base:?}: only http:// is supported")),
        None => return Err(format!("--otlp-endpoint {base:?}: give a URL such as http://collector:4318")),
    }
    if uri.query().is_some() {
        return Err(format!("--otlp-endpoint {base:?}: a base URL takes no query"));
    }
    Ok(format!("{}/v1/traces", base.trim_end_matches('/')))
}

/// The method as OTel's conventions name it: the known ones, else `_OTHER`.
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

fn protocol_version(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// The host the client addressed, without its port.
fn server_address<B>(request: &Request<B>) -> Option<&str> {
    let host = match request.uri().host() {
        Some(host) => host,
        None => {
            let value = request.headers().get(header::HOST).map(HeaderValue::to_str)?.ok()?;
            // An IPv6 address is bracketed; any other colon starts the port.
            match value.strip_prefix('[') {
                Some(rest) => rest.split(']').next()?,
                None => value.split(':').next()?,
            }
        }
    };
    Some(host.trim_start_matches('[').trim_end_matches(']')).filter(|h| !h.is_empty())
}

/// Keeps the export queue bounded, counting what does not fit: the SDK's own queue drops
/// without telling. `queued` counts spans accepted and not yet done exporting.
#[derive(Debug)]
struct Bounded<P> {
    inner: P,
    queued: Arc<AtomicUsize>,
    dropped: Counter,
}

impl<P: opentelemetry_sdk::trace::SpanProcessor> opentelemetry_sdk::trace::SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.dropped.inc();
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, counting the spans of failed (or abandoned) exports as dropped and
/// releasing their places in the queue.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    queued: Arc<AtomicUsize>,
    dropped: Counter,
}

/// Settles one export's spans when the export finishes or is abandoned (timed out).
struct Settle<'a> {
    spans: usize,
    queued: &'a AtomicUsize,
    dropped: &'a Counter,
    exported: bool,
}

impl Settle<'_> {
    fn done(&mut self, exported: bool) {
        self.exported = exported;
    }
}

impl Drop for Settle<'_> {
    fn drop(&mut self) {
        self.queued.fetch_sub(self.spans, Ordering::Relaxed);
        if !self.exported {
            self.dropped.inc_by(self.spans as u64);
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let mut settle = Settle { spans: batch.len(), queued: &self.queued, dropped: &self.dropped, exported: false };
        let export = self.inner.export(batch);
        async move {
            let result = export.await;
            settle.done(result.is_ok());
            if let Err(e) = &result {
                tracing::debug!(error = %e, spans = settle.spans, "span export failed");
            }
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traces_url_appends_the_signal_path() {
        assert_eq!(traces_url("http://collector:4318").unwrap(), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/base/").unwrap(), "http://c:4318/base/v1/traces");
        assert!(traces_url("https://c:4318").is_err());
        assert!(traces_url("collector:4318").is_err());
        assert!(traces_url("http://c/?q").is_err());
    }

    #[test]
    fn server_address_drops_the_port() {
        let with = |host: &str| {
            let request = Request::builder().uri("/").header(header::HOST, host).body(()).unwrap();
            server_address(&request).map(str::to_owned)
        };
        assert_eq!(with("a.test:8080").as_deref(), Some("a.test"));
        assert_eq!(with("a.test").as_deref(), Some("a.test"));
        assert_eq!(with("[::1]:80").as_deref(), Some("::1"));
        assert_eq!(with("[::1]").as_deref(), Some("::1"));
        let absolute = Request::builder().uri("http://b.test:81/x").body(()).unwrap();
        assert_eq!(server_address(&absolute), Some("b.test"));
    }
}
