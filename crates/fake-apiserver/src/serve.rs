//! Answering requests: the HTTP side of the fake API server.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::collections::{discovery, type_of};
use crate::{lock, Gone, Recorded, State};

/// The body of every answer: whole JSON documents, or a watch stream.
pub(crate) type Body = BoxBody<Bytes, Infallible>;

pub(crate) fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

pub(crate) fn respond(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = StatusCode::from_u16(code).expect("a valid status code");
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    response
}

/// What a real API server answers for a resource it does not serve (an unknown group,
/// version or resource, such as a CustomResourceDefinition that is not installed): not a
/// Status object, the Go HTTP mux's plain text.
pub(crate) fn not_served() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"404 page not found\n")).boxed());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

/// The `fieldSelector` and `labelSelector` of a list or watch request.
struct Selector {
    /// `a.b=value` terms (`==` too), all of which must hold.
    fields: Option<String>,
    /// Equality-based terms: `key=value` (`==` too), `key!=value`, `key` (present), `!key`
    /// (absent); set-based terms (`in`, `notin`) are not supported.
    labels: Option<String>,
}

impl Selector {
    fn of(query: &str) -> Self {
        Self { fields: query_param(query, "fieldSelector"), labels: query_param(query, "labelSelector") }
    }

    /// Whether `object` matches both selectors.
    fn admits(&self, object: &Value) -> bool {
        fn terms(selector: &Option<String>) -> impl Iterator<Item = &str> {
            selector.as_deref().unwrap_or_default().split(',').filter(|term| !term.is_empty())
        }
        let fields_hold = terms(&self.fields).all(|term| {
            let Some((path, wanted)) = term.split_once('=') else { return true };
            let value = path.split('.').fold(object, |v, key| &v[key]);
            value.as_str() == Some(wanted.trim_start_matches('='))
        });
        let labels = &object["metadata"]["labels"];
        let labels_hold = terms(&self.labels).all(|term| {
            if let Some((key, wanted)) = term.split_once("!=") {
                labels[key.trim()].as_str() != Some(wanted.trim())
            } else if let Some((key, wanted)) = term.split_once('=') {
                labels[key.trim()].as_str() == Some(wanted.trim_start_matches('=').trim())
            } else if let Some(key) = term.trim().strip_prefix('!') {
                labels[key].is_null()
            } else {
                !labels[term.trim()].is_null()
            }
        });
        fields_hold && labels_hold
    }
}

pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').filter_map(|pair| pair.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| decode(v))
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The parts of a resource path.
struct Target {
    /// `v1` for the core group, else `group/version`.
    api_version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match segments.first() {
        Some(&"api") => (segments.get(1)?.to_string(), segments.get(2..)?),
        Some(&"apis") => (format!("{}/{}", segments.get(1)?, segments.get(2)?), segments.get(3..)?),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        rest => (None, rest),
    };
    Some(Target {
        api_version,
        plural: rest.first()?.to_string(),
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

/// Serves HTTP/1.1 connections from `listener` forever.
pub(crate) async fn accept(listener: TcpListener, state: Arc<Mutex<State>>, wake: watch::Sender<u64>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let (state, wake) = (state.clone(), wake.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (state, wake) = (state.clone(), wake.clone());
                async move { Ok::<_, Infallible>(handle(request, state, wake).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// Records the request, answers it, and records the answer's status.
pub(crate) async fn handle(
    request: Request<Incoming>,
    state: Arc<Mutex<State>>,
    wake: watch::Sender<u64>,
) -> Response<Body> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let content_type = header("content-type").unwrap_or_default();
    let token = header("authorization").and_then(|a| a.strip_prefix("Bearer ").map(|t| t.trim().to_owned()));
    let bytes = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut guard = lock(&state);
    let index = guard.requests.len();
    guard.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type,
        body: body.clone(),
        token,
        status: 0,
    });
    let response = answer(guard, &state, &wake, method, &path, &query, body);
    lock(&state).requests[index].status = response.status().as_u16();
    response
}

fn answer(
    mut guard: MutexGuard<'_, State>,
    state: &Arc<Mutex<State>>,
    wake: &watch::Sender<u64>,
    method: Method,
    path: &str,
    query: &str,
    body: Value,
) -> Response<Body> {
    if guard.down {
        return respond(503, &status(503, "ServiceUnavailable", "the fake API server is down"));
    }
    if method == Method::GET {
        if let Some(response) = discovery(&guard, path) {
            return response;
        }
    }
    let Some(target) = parse_path(path) else {
        return respond(404, &status(404, "NotFound", "no such path"));
    };
    let (api_version, kind) = type_of(&target.plural);
    // A known collection asked at another group or version, or a CRD not installed.
    if (kind != "Unknown" && api_version != target.api_version) || guard.uninstalled.contains(&target.plural) {
        return not_served();
    }
    if guard.forbidden.contains(&target.plural) {
        let message = format!(
            "{} is forbidden: User \"system:serviceaccount:sluice:sluice\" cannot {} resource \"{}\"",
            target.plural,
            method.as_str().to_lowercase(),
            target.plural
        );
        return respond(403, &status(403, "Forbidden", &message));
    }
    let namespace = target.namespace.clone();
    let key = |name: &str, body: &Value| {
        let ns = namespace.clone().or_else(|| body["metadata"]["namespace"].as_str().map(str::to_owned));
        (ns.unwrap_or_default(), name.to_owned())
    };
    match (method, &target.name) {
        (Method::GET, None) if query_param(query, "watch").as_deref() == Some("true") => {
            drop(guard);
            start_watch(target, query, state.clone(), wake.clone())
        }
        (Method::GET, None) => list(&guard, &target, query),
        (Method::GET, Some(name)) => {
            match guard.objects.get(&target.plural).and_then(|m| m.get(&key(name, &Value::Null))) {
                Some(object) => respond(200, object),
                None => respond(404, &status(404, "NotFound", &format!("{} {name} not found", target.plural))),
            }
        }
        (Method::POST, None) => {
            let mut object = body;
            if let Some(ns) = &target.namespace {
                object["metadata"]["namespace"] = json!(ns);
            }
            let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            if guard.objects.get(&target.plural).is_some_and(|m| m.contains_key(&key(&name, &object))) {
                return respond(409, &status(409, "AlreadyExists", &format!("{name} already exists")));
            }
            if target.plural == "leases" && lease_write_fails(&guard, &object) {
                return respond(503, &status(503, "ServiceUnavailable", "lease writes fail"));
            }
            let stored = guard.put(&target.plural, &mut object);
            drop(guard);
            wake.send_modify(|n| *n += 1);
            respond(201, &stored)
        }
        (Method::PUT, Some(name)) => {
            let mut object = body;
            let k = key(name, &object);
            let Some(current) = guard.objects.get(&target.plural).and_then(|m| m.get(&k)) else {
                return respond(404, &status(404, "NotFound", "not found"));
            };
            if object["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"] {
                let message = "the object has been modified; please apply your changes to the latest version";
                return respond(409, &status(409, "Conflict", message));
            }
            if target.plural == "leases" && lease_write_fails(&guard, &object) {
                return respond(503, &status(503, "ServiceUnavailable", "lease writes fail"));
            }
            object["metadata"]["namespace"] = json!(k.0);
            let stored = guard.put(&target.plural, &mut object);
            drop(guard);
            wake.send_modify(|n| *n += 1);
            respond(200, &stored)
        }
        (Method::PATCH, Some(name)) => {
            let k = key(name, &Value::Null);
            let Some(mut object) = guard.objects.get(&target.plural).and_then(|m| m.get(&k)).cloned() else {
                return respond(404, &status(404, "NotFound", "not found"));
            };
            let mut patch = body;
            if target.subresource.as_deref() == Some("status") {
                // Only the status of a /status patch counts.
                patch = json!({ "status": patch["status"].clone() });
            }
            merge(&mut object, &patch);
            if target.plural == "leases" && lease_write_fails(&guard, &object) {
                return respond(503, &status(503, "ServiceUnavailable", "lease writes fail"));
            }
            let stored = guard.put(&target.plural, &mut object);
            drop(guard);
            wake.send_modify(|n| *n += 1);
            respond(200, &stored)
        }
        (Method::DELETE, Some(name)) => {
            let (namespace, name) = key(name, &Value::Null);
            let Some(current) =
                guard.objects.get(&target.plural).and_then(|m| m.get(&(namespace.clone(), name.clone())))
            else {
                return respond(404, &status(404, "NotFound", &format!("{} {name} not found", target.plural)));
            };
            if target.plural == "leases" && lease_write_fails(&guard, current) {
                return respond(503, &status(503, "ServiceUnavailable", "lease writes fail"));
            }
            let removed = guard.remove(&target.plural, &namespace, &name);
            drop(guard);
            wake.send_modify(|n| *n += 1);
            respond(200, &removed.unwrap_or(Value::Null))
        }
        _ => respond(405, &status(405, "MethodNotAllowed", "not supported by the fake")),
    }
}

fn lease_write_fails(state: &State, lease: &Value) -> bool {
    let holder = lease["spec"]["holderIdentity"].as_str();
    state.fail_lease_writes_of.is_some() && holder == state.fail_lease_writes_of.as_deref()
}

fn matches(object: &Value, target: &Target, selector: &Selector) -> bool {
    let in_namespace = match &target.namespace {
        Some(ns) => object["metadata"]["namespace"].as_str() == Some(ns),
        None => true,
    };
    in_namespace && selector.admits(object)
}

fn list(state: &State, target: &Target, query: &str) -> Response<Body> {
    let selector = Selector::of(query);
    let items: Vec<&Value> = state
        .objects
        .get(&target.plural)
        .map(|m| m.values().filter(|o| matches(o, target, &selector)).collect())
        .unwrap_or_default();
    let start: usize = query_param(query, "continue").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit = query_param(query, "limit").and_then(|l| l.parse().ok()).unwrap_or(usize::MAX).min(state.page_cap);
    let page: Vec<&Value> = items.iter().skip(start).take(limit).copied().collect();
    let next = start + page.len();
    let continue_token = if next < items.len() { next.to_string() } else { String::new() };
    let (api_version, kind) = type_of(&target.plural);
    respond(
        200,
        &json!({
            "apiVersion": api_version,
            "kind": format!("{kind}List"),
            "metadata": {"resourceVersion": state.rv.to_string(), "continue": continue_token},
            "items": page,
        }),
    )
}

fn start_watch(target: Target, query: &str, state: Arc<Mutex<State>>, wake: watch::Sender<u64>) -> Response<Body> {
    let selector = Selector::of(query);
    let from: u64 = query_param(query, "resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
    let bookmarks = query_param(query, "allowWatchBookmarks").as_deref() == Some("true");
    let (gone, compacted, epoch) = {
        let s = lock(&state);
        (s.gone, s.compacted, s.epoch)
    };
    let expired = status(410, "Expired", &format!("too old resource version: {from} ({compacted})"));
    if from < compacted && gone == Gone::Http {
        return respond(410, &expired);
    }
    let (sender, mut receiver) = mpsc::channel::<Bytes>(64);
    let mut woken = wake.subscribe();
    tokio::spawn(async move {
        let line = |value: Value| Bytes::from(format!("{value}\n"));
        if from < compacted {
            let _ = sender.send(line(json!({"type": "ERROR", "object": expired}))).await;
            return;
        }
        let mut sent = from;
        loop {
            let (lines, rv) = {
                let s = lock(&state);
                if s.epoch != epoch || s.down {
                    return;
                }
                let lines: Vec<Bytes> = s
                    .history
                    .iter()
                    .filter(|c| c.rv > sent && c.plural == target.plural)
                    .filter_map(|c| {
                        let was = c.old.as_ref().is_some_and(|old| matches(old, &target, &selector));
                        // Like the API server: leaving a selector is DELETED, entering is ADDED.
                        let kind = match (was, matches(&c.object, &target, &selector)) {
                            (_, true) if c.kind == "DELETED" => "DELETED",
                            (true, true) => c.kind,
                            (false, true) => "ADDED",
                            (true, false) => "DELETED",
                            (false, false) => return None,
                        };
                        Some(line(json!({"type": kind, "object": c.object})))
                    })
                    .collect();
                (lines, s.rv)
            };
            for l in lines {
                if sender.send(l).await.is_err() {
                    return;
                }
            }
            sent = rv;
            if bookmarks {
                let (api_version, kind) = type_of(&target.plural);
                let mark = json!({"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind,
                                  "metadata": {"resourceVersion": rv.to_string()}}});
                if sender.send(line(mark)).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                changed = woken.changed() => if changed.is_err() { return },
                _ = sender.closed() => return,
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b)))));
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    response
}
