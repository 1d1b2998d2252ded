//! Distributed tracing end to end: `sluice run --otlp-endpoint` in front of `sluice echo`,
//! exporting to a real OTLP/HTTP receiver in this test (a TCP server taking
//! `POST /v1/traces`, decoding the protobuf with opentelemetry-proto). Checked: a client's
//! `traceparent` continued (span ids, kind, attributes), a new trace without one or with a
//! malformed one, the `traceparent` the backend receives, error status on a 502, and
//! parent-based sampling at ratio 0 (nothing exported, the backend still told).

mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, status::StatusCode, Span};
use prost::Message;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// What the receiver got: every exported span with its resource's `service.name`.
#[derive(Default)]
struct Received {
    spans: Vec<(String, Span)>,
    paths: Vec<String>,
}

/// An OTLP/HTTP receiver on a loopback port, answering every export 200.
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Received>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the OTLP receiver");
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Received::default()));
        let shared = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let shared = shared.clone();
                std::thread::spawn(move || serve_exports(stream, &shared));
            }
        });
        Receiver { addr, received }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans received so far whose trace id is `trace_id` (hex), waiting up to 10 s for
    /// at least one.
    fn wait_for_trace(&self, trace_id: &str) -> Vec<(String, Span)> {
        let mut found = Vec::new();
        wait_until(Duration::from_secs(10), || {
            found = self.spans_of(trace_id);
            !found.is_empty()
        });
        found
    }

    fn spans_of(&self, trace_id: &str) -> Vec<(String, Span)> {
        let received = self.received.lock().unwrap();
        received.spans.iter().filter(|(_, span)| hex(&span.trace_id) == trace_id).cloned().collect()
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().spans.len()
    }
}

/// Reads HTTP/1.1 requests from one exporter connection.
fn serve_exports(stream: TcpStream, received: &Mutex<Received>) {
    let mut writer = stream.try_clone().expect("clone the receiver stream");
    let mut reader = BufReader::new(stream);
    while let Ok(Some(request)) = read_request(&mut reader) {
        let path = request.target().to_owned();
        let export = ExportTraceServiceRequest::decode(&request.body[..]).expect("an OTLP ExportTraceServiceRequest");
        {
            let mut received = received.lock().unwrap();
            received.paths.push(path);
            for resource_spans in export.resource_spans {
                let service = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref())
                    .and_then(|v| match &v.value {
                        Some(Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        received.spans.push((service.clone(), span));
                    }
                }
            }
        }
        let answer = "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A span attribute, as text (strings as they are, integers in decimal).
fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

/// The trace id and parent id of a `traceparent` the backend received, checked for form.
fn parts_of(traceparent: &str) -> (String, String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00", "{traceparent}");
    assert_eq!(parts[1].len(), 32, "{traceparent}");
    assert_eq!(parts[2].len(), 16, "{traceparent}");
    assert!(parts[1].bytes().chain(parts[2].bytes()).all(|b| b.is_ascii_hexdigit()), "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned(), parts[3].to_owned())
}

/// One echo backend `echo` behind Ingress `main` (host-less `Prefix /`), a Service `dead`
/// whose only endpoint refuses connections behind host `dead.test`, and Sluice exporting
/// to `receiver`.
fn setup(receiver: &Receiver, extra: &[&str]) -> (Fixture, Sluice, SocketAddr) {
    let mut fx = Fixture::new("otlp");
    let backend = fx.backend("echo");
    let dead = free_addr("127.0.0.1");
    fx.write_service("dead", None, None, dead.port(), &[dead.ip().to_string()], true);
    fx.ingress(&Ingress::new("main").path(None, "Prefix", "/", "echo"));
    fx.ingress(&Ingress::new("broken").path(Some("dead.test"), "Prefix", "/", "dead"));
    let endpoint = receiver.endpoint();
    let mut args = vec!["--otlp-endpoint", endpoint.as_str(), "--otlp-service-name", "edge"];
    args.extend_from_slice(extra);
    let sluice = fx.start(&args);
    (fx, sluice, backend)
}

#[test]
fn a_client_trace_is_continued_and_the_backend_is_told() {
    let receiver = Receiver::start();
    let (_fx, sluice, backend) = setup(&receiver, &[]);
    let incoming = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let request = http_request(
        "GET",
        "traced.test",
        "/orders/42?secret=1",
        &[("traceparent", &incoming), ("tracestate", "vendor=abc")],
        b"",
    );
    let resp = sluice.send(&request);
    assert_eq!(resp.status, 200, "{resp:?}");
    let echo = resp.echo();
    let seen = echo.header("traceparent").expect("the backend got a traceparent").to_owned();
    assert_eq!(echo.header("tracestate"), Some("vendor=abc"));
    let (trace_id, parent_id, flags) = parts_of(&seen);
    assert_eq!(trace_id, TRACE_ID);
    assert_ne!(parent_id, PARENT_ID, "the backend's parent is Sluice's span");
    assert_eq!(flags, "01");

    let spans = receiver.wait_for_trace(TRACE_ID);
    assert_eq!(spans.len(), 1, "one span per request: {spans:?}");
    let (service, span) = &spans[0];
    assert_eq!(service, "edge");
    assert_eq!(hex(&span.parent_span_id), PARENT_ID);
    assert_eq!(hex(&span.span_id), parent_id, "the backend's parent id is the span's id");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.name, "GET");
    assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
    let expected = [
        ("http.request.method", "GET".to_owned()),
        ("url.path", "/orders/42".to_owned()),
        ("url.scheme", "http".to_owned()),
        ("server.address", "traced.test".to_owned()),
        ("http.response.status_code", "200".to_owned()),
        ("network.protocol.version", "1.1".to_owned()),
        ("sluice.route", "default/main".to_owned()),
        ("sluice.backend", "default/echo:8080".to_owned()),
        ("network.peer.address", backend.ip().to_string()),
        ("network.peer.port", backend.port().to_string()),
        ("client.address", "127.0.0.1".to_owned()),
    ];
    for (key, value) in expected {
        assert_eq!(attribute(span, key).as_deref(), Some(value.as_str()), "{key} in {span:?}");
    }
    assert_ne!(span.status.as_ref().map_or(0, |s| s.code), StatusCode::Error as i32);
    assert!(attribute(span, "url.query").is_none(), "the query is not recorded");
    let paths = receiver.received.lock().unwrap().paths.clone();
    assert!(paths.iter().all(|p| p == "/v1/traces"), "{paths:?}");
}

#[test]
fn without_a_valid_traceparent_a_new_trace_starts() {
    let receiver = Receiver::start();
    let (_fx, mut sluice, _backend) = setup(&receiver, &[]);
    let invalid = [
        None,
        Some("00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-00f067aa0ba902b7-01".to_owned()),
        Some(format!("00-{TRACE_ID}-{PARENT_ID}-1")),
        Some(format!("00-{}-{PARENT_ID}-01", &TRACE_ID[..30])),
        Some(format!("ff-{TRACE_ID}-{PARENT_ID}-01")),
        Some(format!("00-{}-{PARENT_ID}-01", "0".repeat(32))),
        Some(format!("00-{}-{PARENT_ID}-01", TRACE_ID.to_uppercase())),
        Some("garbage".to_owned()),
        Some(format!("00-{TRACE_ID}-{}-01", &PARENT_ID[..15])),
        Some(format!("00-{TRACE_ID}-{PARENT_ID}-01-extra")),
    ];
    let mut traces = Vec::new();
    for traceparent in &invalid {
        let mut headers = vec![("tracestate", "stale=1")];
        if let Some(value) = traceparent {
            headers.push(("traceparent", value.as_str()));
        }
        let resp = sluice.send(&http_request("GET", "new.test", "/fresh", &headers, b""));
        assert_eq!(resp.status, 200, "{traceparent:?}: {resp:?}");
        let echo = resp.echo();
        let seen = echo.header("traceparent").expect("the backend got a traceparent").to_owned();
        let (trace_id, parent_id, flags) = parts_of(&seen);
        assert_ne!(trace_id, TRACE_ID, "{traceparent:?}");
        assert_ne!(trace_id, "0".repeat(32));
        assert_eq!(flags, "01", "ratio 1.0 samples every new trace");
        assert_eq!(echo.header("tracestate"), None, "a tracestate without its traceparent is dropped");
        traces.push((trace_id, parent_id));
    }
    for (trace_id, parent_id) in &traces {
        let spans = receiver.wait_for_trace(trace_id);
        assert_eq!(spans.len(), 1, "{trace_id}: {spans:?}");
        let span = &spans[0].1;
        assert!(span.parent_span_id.is_empty(), "a root span: {span:?}");
        assert_eq!(&hex(&span.span_id), parent_id);
        assert_eq!(attribute(span, "http.response.status_code").as_deref(), Some("200"));
    }
    let distinct: std::collections::BTreeSet<_> = traces.iter().map(|(t, _)| t).collect();
    assert_eq!(distinct.len(), traces.len(), "each request its own trace");
    sluice.proc.assert_running();
}

#[test]
fn a_dead_backend_is_an_error_span() {
    let receiver = Receiver::start();
    let (_fx, sluice, _backend) = setup(&receiver, &[]);
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    let resp = sluice.send(&http_request("POST", "dead.test", "/pay", &[("traceparent", &traceparent)], b"x"));
    assert_eq!(resp.status, 502, "{resp:?}");
    let spans = receiver.wait_for_trace(trace_id);
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = &spans[0].1;
    assert_eq!(span.name, "POST");
    assert_eq!(attribute(span, "http.response.status_code").as_deref(), Some("502"));
    assert_eq!(attribute(span, "error.type").as_deref(), Some("502"));
    assert_eq!(attribute(span, "sluice.route").as_deref(), Some("default/broken"));
    assert_eq!(attribute(span, "sluice.backend").as_deref(), Some("default/dead:8080"));
    assert_eq!(span.status.as_ref().map(|s| s.code), Some(StatusCode::Error as i32), "{span:?}");
}

#[test]
fn ratio_zero_exports_nothing_but_the_backend_still_gets_a_traceparent() {
    let receiver = Receiver::start();
    let (_fx, mut sluice, _backend) = setup(&receiver, &["--otlp-sampling-ratio", "0"]);
    let unsampled = format!("00-{TRACE_ID}-{PARENT_ID}-00");
    for headers in [vec![], vec![("traceparent", unsampled.as_str())]] {
        let resp = sluice.send(&http_request("GET", "quiet.test", "/", &headers, b""));
        assert_eq!(resp.status, 200, "{resp:?}");
        let seen = resp.echo().header("traceparent").expect("the backend got a traceparent").to_owned();
        let (trace_id, parent_id, flags) = parts_of(&seen);
        assert_eq!(flags, "00", "{seen}");
        assert_ne!(parent_id, PARENT_ID);
        if !headers.is_empty() {
            assert_eq!(trace_id, TRACE_ID, "an unsampled trace is still continued");
        }
    }
    // A sampled parent is honoured whatever the ratio.
    let sampled_trace = "1af7651916cd43dd8448eb211c80319c";
    let sampled = format!("00-{sampled_trace}-{PARENT_ID}-01");
    let resp = sluice.send(&http_request("GET", "quiet.test", "/", &[("traceparent", &sampled)], b""));
    assert_eq!(parts_of(resp.echo().header("traceparent").unwrap()).2, "01");
    assert_eq!(receiver.wait_for_trace(sampled_trace).len(), 1);
    // Stop gracefully (the exporter flushes on drain): still only the sampled span.
    sluice.proc.signal("TERM");
    assert!(sluice.proc.wait_exit(Duration::from_secs(20)).is_some_and(|s| s.success()), "{}", sluice.proc.log());
    assert_eq!(receiver.count(), 1, "only the sampled parent's span is exported");
    assert!(receiver.spans_of(TRACE_ID).is_empty());
}

#[test]
fn spans_are_flushed_on_shutdown_and_drops_are_a_metric() {
    let receiver = Receiver::start();
    let (_fx, mut sluice, _backend) = setup(&receiver, &[]);
    let metrics = sluice.metrics();
    assert_eq!(metric_value(&metrics, "sluice_otlp_spans_dropped_total"), Some(0.0), "{metrics}");
    let trace_id = "2af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-{PARENT_ID}-01");
    let resp = sluice.send(&http_request("GET", "last.test", "/", &[("traceparent", &traceparent)], b""));
    assert_eq!(resp.status, 200);
    sluice.proc.signal("TERM");
    assert!(sluice.proc.wait_exit(Duration::from_secs(20)).is_some_and(|s| s.success()), "{}", sluice.proc.log());
    assert_eq!(receiver.spans_of(trace_id).len(), 1, "the last span is exported before exit");
}

#[test]
fn a_collector_that_is_down_slows_nothing() {
    // Nothing listens there: exports fail, requests do not notice, drops are counted.
    let down = free_addr("127.0.0.1");
    let mut fx = Fixture::new("otlp-down");
    fx.backend("echo");
    fx.ingress(&Ingress::new("main").path(None, "Prefix", "/", "echo"));
    let endpoint = format!("http://{down}");
    let mut sluice = fx.start(&["--otlp-endpoint", &endpoint]);
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let resp = sluice.get("down.test", "/");
        assert_eq!(resp.status, 200);
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    }
    let dropped = wait_until(Duration::from_secs(10), || {
        metric_value(&sluice.metrics(), "sluice_otlp_spans_dropped_total").is_some_and(|n| n >= 20.0)
    });
    assert!(dropped, "{}", sluice.metrics());
    sluice.proc.signal("TERM");
    assert!(sluice.proc.wait_exit(Duration::from_secs(20)).is_some(), "{}", sluice.proc.log());
}
