//! The checks of the Go tests that are not `ExpectedResponse` literals: weighted
//! distributions, mirrors, WebSockets, the backend header of weighted backends.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cases::{self, HttpCase};
use crate::client;
use crate::common;
use crate::fixture;
use crate::grpc;
use crate::l4;
use crate::runner::{request_id, Running};
use crate::status;
use crate::table::{Extra, Proto, Target};
use crate::CASE_TIMEOUT;

/// The Deployment of a pod (`extractBackendName`: the name without its last two parts).
pub fn backend_of(pod: &str) -> String {
    let parts: Vec<&str> = pod.split('-').collect();
    if parts.len() < 3 {
        pod.to_owned()
    } else {
        parts[..parts.len() - 2].join("-")
    }
}

/// Retries `attempt` for [`CASE_TIMEOUT`] until it succeeds.
pub fn eventually(mut attempt: impl FnMut() -> Result<(), String>) -> Result<(), String> {
    let deadline = Instant::now() + CASE_TIMEOUT;
    loop {
        match attempt() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// One request of a distribution check: the pod that answered.
fn sender(proto: Proto, addr: SocketAddr) -> impl Fn() -> Result<String, String> + Sync {
    move || match proto {
        Proto::Http => {
            let ep = client::Endpoint { addr, tls: None };
            let case = plain_get(Some(request_id()))?;
            let (sent, got) = client::round_trip(&ep, &case)?;
            cases::compare(&case, &sent, &got)?;
            Ok(got.request.pod)
        }
        Proto::Grpc => {
            let case = grpc::parse(&serde_json::json!({"EchoRequest": {}, "Namespace": status::INFRA}))?;
            let reply = grpc::call(addr, &case, Some(&request_id()))?;
            if reply.code != tonic::Code::Ok {
                return Err(format!("expected OK response, got {:?}", reply.code));
            }
            Ok(reply.pod().to_owned())
        }
        Proto::Tcp => l4::tcp_pod(addr),
        Proto::Udp => l4::udp_pod(addr),
    }
}

/// A plain `GET /` expecting 200 from namespace `gateway-conformance-infra`, as the weight
/// and backend-header checks send.
pub fn plain_get(jitter: Option<String>) -> Result<HttpCase, String> {
    let mut v =
        serde_json::json!({"Request": {"Path": "/"}, "Response": {"StatusCode": 200}, "Namespace": status::INFRA});
    if let Some(j) = jitter {
        v["Request"]["Headers"] = serde_json::json!({"X-Jitter": j});
    }
    cases::parse_http(&v)
}

/// The checks that are not literals.
pub fn run_extra(running: &Running<'_>, extra: &Extra) -> Result<(), String> {
    match extra {
        Extra::Case { .. }
        | Extra::CaseTo { .. }
        | Extra::Missing { .. }
        | Extra::MirrorDistribution { .. }
        | Extra::CheckAt { .. } => Err("not an extra check".to_owned()),
        Extra::Rejected { target, server_name, .. } => eventually(|| {
            let addr = running.status().and_then(|doc| running.addr(target, &doc))?;
            l4::tls_rejected(addr, server_name)
        }),
        Extra::Dns { target, name } => eventually(|| {
            let addr = running.status().and_then(|doc| running.addr(target, &doc))?;
            l4::dns_query(addr, name)
        }),
        Extra::OnlyBackend { target, proto, backend, requests } => {
            let addr = running.status().and_then(|doc| running.addr(target, &doc))?;
            let send = sender(*proto, addr);
            // The route may take a moment: wait for a first answer, as the Go test polls.
            eventually(|| send().map(|_| ()))?;
            for i in 0..*requests {
                let pod = send().map_err(|e| format!("request {}/{requests}: {e}", i + 1))?;
                if backend_of(&pod) != *backend {
                    return Err(format!(
                        "request {}/{requests} reached {pod}; only the oldest route's backend {backend} should answer",
                        i + 1
                    ));
                }
            }
            Ok(())
        }
        Extra::WebSocket { target, path } => {
            let deadline = Instant::now() + CASE_TIMEOUT;
            loop {
                let result = running
                    .status()
                    .and_then(|doc| running.endpoint(target, "", &doc))
                    .and_then(|ep| websocket_echo(ep.addr, &ep.url_host(), path));
                match result {
                    Ok(()) => return Ok(()),
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        }
        Extra::Weights { target, proto, weights } => {
            let addr = running.status().and_then(|doc| running.addr(target, &doc))?;
            let send = sender(*proto, addr);
            // `ExpectEchoResponse` / the first `MakeRequestAndExpectEventuallyConsistentResponse`.
            eventually(|| send().map(|_| ()))?;
            let mut last = String::new();
            for _ in 0..3 {
                match weighted_distribution(&send, weights) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
        Extra::BackendHeaderNamesPod { target, requests } => {
            let ep = running.status().and_then(|doc| running.endpoint(target, "", &doc))?;
            let case = plain_get(None)?;
            for i in 0..*requests {
                let (sent, got) = client::round_trip(&ep, &case)?;
                cases::compare(&case, &sent, &got).map_err(|e| format!("request {i}: {e}"))?;
                let backends: Vec<String> = got
                    .request
                    .headers
                    .as_ref()
                    .and_then(|h| h.iter().find(|(n, _)| n.eq_ignore_ascii_case("Backend")).map(|(_, v)| v.clone()))
                    .unwrap_or_default();
                let [backend] = backends.as_slice() else {
                    return Err(format!("request {i}: expected a single Backend header, got {backends:?}"));
                };
                if !got.request.pod.starts_with(backend.as_str()) {
                    return Err(format!("request {i}: Backend {backend} but pod {}", got.request.pod));
                }
            }
            Ok(())
        }
    }
}

/// The echo logs of the pods of Service `ns/name`.
pub fn service_logs(running: &Running<'_>, ns: &str, name: &str) -> Result<Vec<PathBuf>, String> {
    let service = running
        .all_docs
        .iter()
        .find(|d| fixture::identity(d) == ("Service", ns, name))
        .ok_or_else(|| format!("Service {ns}/{name} not in the manifests"))?;
    let selector = service.pointer("/spec/selector").and_then(Value::as_object).cloned().unwrap_or_default();
    let logs: Vec<PathBuf> = running
        .pods()
        .filter(|e| {
            e.pod.namespace == ns && selector.iter().all(|(k, v)| e.pod.labels.get(k).map(String::as_str) == v.as_str())
        })
        .map(|e| e.log.clone())
        .collect();
    if logs.is_empty() {
        Err(format!("Service {ns}/{name} has no running echo pod"))
    } else {
        Ok(logs)
    }
}

/// How many requests with this target the logs hold.
pub fn logged(logs: &[PathBuf], path: &str) -> usize {
    let needle = format!("Echoing back request made to {path} to client");
    logs.iter().map(|l| std::fs::read_to_string(l).unwrap_or_default().matches(&needle).count()).sum()
}

/// `HTTPRouteRequestPercentageMirror`'s distribution check (`testMirroredRequestsDistribution`).
pub fn mirror_distribution(running: &Running<'_>, case: &HttpCase, target: &Target) -> Result<(), String> {
    const TOTAL: usize = 500;
    const CONCURRENT: usize = 10;
    const STD_DEVS: f64 = 3.0;
    let ep = running.status().and_then(|doc| running.endpoint(target, &case.request.host, &doc))?;
    let mut last = String::new();
    for _ in 0..5 {
        let mut case = case.clone();
        cases::add_request_id(&mut case, &request_id());
        let next = AtomicUsize::new(0);
        let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..CONCURRENT {
                scope.spawn(|| {
                    while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
                        let result =
                            client::round_trip(&ep, &case).and_then(|(sent, got)| cases::compare(&case, &sent, &got));
                        if let Err(e) = result {
                            errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                        }
                    }
                });
            }
        });
        let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(first) = errors.first() {
            return Err(format!("{} of {TOTAL} requests failed, first: {first}", errors.len()));
        }
        let mut problems = Vec::new();
        for mirror in case.mirrored_to.iter().filter(|m| m.percent.is_some()) {
            let ns = if mirror.namespace.is_empty() { status::INFRA } else { mirror.namespace.as_str() };
            let logs = service_logs(running, ns, &mirror.name)?;
            // Copies travel on their own: count until the number stops growing.
            let mut count = logged(&logs, &case.request.path);
            let settle = Instant::now() + Duration::from_secs(5);
            loop {
                std::thread::sleep(Duration::from_millis(300));
                let now = logged(&logs, &case.request.path);
                if now == count || Instant::now() > settle {
                    count = now;
                    break;
                }
                count = now;
            }
            let p = f64::from(mirror.percent.unwrap_or(0)) / 100.0;
            let expected = TOTAL as f64 * p;
            let margin = STD_DEVS * (TOTAL as f64 * p * (1.0 - p)).sqrt();
            if (count as f64) < expected - margin || (count as f64) > expected + margin {
                problems.push(format!(
                    "mirror {ns}/{} got {count} of {TOTAL}, want {:.0}..{:.0} ({}%)",
                    mirror.name,
                    expected - margin,
                    expected + margin,
                    mirror.percent.unwrap_or(0)
                ));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        last = problems.join("; ");
    }
    Err(last)
}

/// `weight.TestWeightedDistribution`: 500 requests, 10 at a time, each answered by the pod
/// `send` returns.
fn weighted_distribution(
    send: &(dyn Fn() -> Result<String, String> + Sync),
    weights: &[(&str, f64)],
) -> Result<(), String> {
    const TOTAL: usize = 500;
    const CONCURRENT: usize = 10;
    const TOLERANCE: f64 = 0.05;
    let seen: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..CONCURRENT {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::SeqCst) < TOTAL {
                    let result = send();
                    match result {
                        Ok(pod) => {
                            *seen.lock().unwrap_or_else(|p| p.into_inner()).entry(backend_of(&pod)).or_default() += 1;
                        }
                        Err(e) => errors.lock().unwrap_or_else(|p| p.into_inner()).push(e),
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_else(|p| p.into_inner());
    if let Some(first) = errors.first() {
        return Err(format!("{} of {TOTAL} requests failed, first: {first}", errors.len()));
    }
    let seen = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut problems = Vec::new();
    for backend in seen.keys() {
        if !weights.iter().any(|(b, _)| b == backend) {
            problems.push(format!("unexpected backend {backend}"));
        }
    }
    for (backend, want) in weights {
        let got = *seen.get(*backend).unwrap_or(&0) as f64 / TOTAL as f64;
        if *want == 0.0 && got > 0.0 {
            problems.push(format!("{backend} got {got:.3} of the traffic, want none"));
        } else if (got - want).abs() > TOLERANCE {
            problems.push(format!("{backend} got {got:.3} of the traffic, want {want} ± {TOLERANCE}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} (seen {seen:?})", problems.join("; ")))
    }
}

/// `HTTPRouteBackendProtocolWebSocket`: a text and a binary message echoed.
pub fn websocket_echo(addr: SocketAddr, host: &str, path: &str) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = common::ws_connect(addr, host, path)?;
    common::ws_echo(&mut ws, "Websocket Support!")?;
    let binary = vec![1u8, 2, 3, 4, 5, 6, 7];
    ws.send(Message::binary(binary.clone())).map_err(|e| format!("send binary: {e}"))?;
    loop {
        match ws.read() {
            Ok(Message::Binary(got)) if got.as_ref() == binary.as_slice() => return Ok(()),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(other) => return Err(format!("binary echo: got {other:?}")),
            Err(e) => return Err(format!("binary echo: {e}")),
        }
    }
}
