//! A fake Kubernetes API server on loopback, for Sluice's tests.
//!
//! It speaks enough of the wire protocol (JSON over HTTP/1.1, no TLS, no authentication) for
//! the real `kube` client and for `sluice run --kubernetes` pointed at it by a kubeconfig:
//!
//! - paged lists (`limit`/`continue`, at most 2 items a page whatever `limit` asks) with a
//!   `resourceVersion`, and `fieldSelector` terms `a.b=value`;
//! - watch streams from a resourceVersion, with bookmarks when asked, ADDED/MODIFIED/DELETED
//!   as the selector sees them; `410 Gone` (as an `ERROR` event or as HTTP 410, see [`Gone`])
//!   after [`FakeApi::compact`];
//! - create (`POST`, `409 AlreadyExists`), replace (`PUT`) with optimistic concurrency
//!   (`409 Conflict` on a stale resourceVersion), JSON merge patches (`PATCH`, on `/status`
//!   only the `status` counts), get;
//! - the core kinds and the Gateway API ones at their real paths (`gateway.networking.k8s.io`
//!   `v1`, TCPRoutes and UDPRoutes `v1alpha2`); a known collection asked at another version,
//!   or a CustomResourceDefinition removed with [`FakeApi::uninstall`], answers 404 with the
//!   real server's plain-text body; the discovery documents (`/apis`, `/apis/GROUP/VERSION`)
//!   list what is installed;
//! - an outage switch ([`FakeApi::set_down`]: every request answers 503, open watches end)
//!   and failing Lease writes for one holder ([`FakeApi::fail_lease_writes_of`]).
//!
//! Tests change objects directly ([`FakeApi::apply`], [`FakeApi::delete`]), as other clients
//! of a real API server would, and assert on what the clients did: every request is recorded
//! ([`FakeApi::requests`], [`Recorded`]) with its method, path, query, body, bearer token
//! and answer status.
//!
//! Start it with [`FakeApi::start`] inside a Tokio runtime, or with [`FakeApi::spawn`] from
//! blocking code (it then runs on a thread of its own). [`objects`] builds the objects.

pub mod objects;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

type Body = BoxBody<Bytes, Infallible>;

/// How an expired watch resourceVersion is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// HTTP 200 and an `ERROR` watch event with a 410 Status (what real API servers do).
    Event,
    /// HTTP 410 with a Status body.
    Http,
}

/// A request the fake received, for assertions.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, `PUT`, `PATCH`, ...
    pub method: String,
    /// The path, e.g. `/apis/networking.k8s.io/v1/namespaces/a/ingresses/web/status`.
    pub path: String,
    /// The raw query string (percent-encoded), empty when none.
    pub query: String,
    /// The `Content-Type` header, empty when none.
    pub content_type: String,
    /// The body as JSON (`null` when empty or not JSON).
    pub body: Value,
    /// The bearer token of `Authorization`, if any: tells clients apart (see
    /// [`FakeApi::kubeconfig_with_token`]).
    pub token: Option<String>,
    /// The HTTP status the fake answered (200 for a watch that started).
    pub status: u16,
}

impl Recorded {
    /// Whether the fake answered 2xx.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether this is a watch request.
    pub fn is_watch(&self) -> bool {
        query_param(&self.query, "watch").as_deref() == Some("true")
    }
}

#[derive(Debug)]
struct Change {
    rv: u64,
    plural: String,
    kind: &'static str,
    object: Value,
    /// The version before this change, for selectors the change makes match or not.
    old: Option<Value>,
}

#[derive(Debug)]
struct State {
    rv: u64,
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    history: Vec<Change>,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
    gone: Gone,
    down: bool,
    /// Bumped to end every open watch stream.
    epoch: u64,
    /// Most items per list page, whatever `limit` asks.
    page_cap: usize,
    requests: Vec<Recorded>,
    /// Lease writes naming this holder answer 503 (a leader cut off from the API server).
    fail_lease_writes_of: Option<String>,
    /// Collections whose CustomResourceDefinition is not installed: every request on them
    /// answers 404.
    uninstalled: BTreeSet<String>,
}

/// What stops the server when the [`FakeApi`] is dropped.
enum Stopper {
    /// Started with [`FakeApi::start`]: the accept loop on the caller's runtime.
    Task(tokio::task::JoinHandle<()>),
    /// Started with [`FakeApi::spawn`]: a thread running its own runtime.
    Thread { stop: Option<oneshot::Sender<()>>, thread: Option<std::thread::JoinHandle<()>> },
}

impl Drop for Stopper {
    fn drop(&mut self) {
        match self {
            Stopper::Task(task) => task.abort(),
            Stopper::Thread { stop, thread } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                if let Some(thread) = thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}

/// The fake API server, listening on `127.0.0.1` on an ephemeral port.
///
/// Dropping it stops accepting connections; with [`FakeApi::spawn`] it also ends every open
/// connection and watch (its runtime shuts down), with [`FakeApi::start`] open connections
/// are served until their clients close them.
pub struct FakeApi {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    wake: watch::Sender<u64>,
    _stopper: Stopper,
}

impl std::fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApi").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// The Gateway API collections, each defined by a CustomResourceDefinition that a cluster may
/// lack: see [`FakeApi::uninstall`]. All are installed when the fake starts.
pub const GATEWAY_API_CRDS: &[&str] = &[
    "gatewayclasses",
    "gateways",
    "httproutes",
    "grpcroutes",
    "tlsroutes",
    "tcproutes",
    "udproutes",
    "referencegrants",
    "backendtlspolicies",
];

/// Every collection the fake serves: plural, apiVersion, kind, namespaced.
const COLLECTIONS: &[(&str, &str, &str, bool)] = &[
    ("ingresses", "networking.k8s.io/v1", "Ingress", true),
    ("ingressclasses", "networking.k8s.io/v1", "IngressClass", false),
    ("services", "v1", "Service", true),
    ("secrets", "v1", "Secret", true),
    ("configmaps", "v1", "ConfigMap", true),
    ("endpoints", "v1", "Endpoints", true),
    ("namespaces", "v1", "Namespace", false),
    ("endpointslices", "discovery.k8s.io/v1", "EndpointSlice", true),
    ("leases", "coordination.k8s.io/v1", "Lease", true),
    ("events", "events.k8s.io/v1", "Event", true),
    ("gatewayclasses", "gateway.networking.k8s.io/v1", "GatewayClass", false),
    ("gateways", "gateway.networking.k8s.io/v1", "Gateway", true),
    ("httproutes", "gateway.networking.k8s.io/v1", "HTTPRoute", true),
    ("grpcroutes", "gateway.networking.k8s.io/v1", "GRPCRoute", true),
    ("tlsroutes", "gateway.networking.k8s.io/v1", "TLSRoute", true),
    ("tcproutes", "gateway.networking.k8s.io/v1alpha2", "TCPRoute", true),
    ("udproutes", "gateway.networking.k8s.io/v1alpha2", "UDPRoute", true),
    ("referencegrants", "gateway.networking.k8s.io/v1", "ReferenceGrant", true),
    ("backendtlspolicies", "gateway.networking.k8s.io/v1", "BackendTLSPolicy", true),
];

/// apiVersion and kind of the objects of a collection.
fn type_of(plural: &str) -> (&'static str, &'static str) {
    COLLECTIONS
        .iter()
        .find(|(name, ..)| *name == plural)
        .map_or(("v1", "Unknown"), |(_, api_version, kind, _)| (*api_version, *kind))
}

/// The discovery documents of the API groups (`GET /apis`: the groups and versions serving
/// some installed collection; `GET /apis/GROUP/VERSION`: its resources), as `kubectl` and
/// clients checking for CustomResourceDefinitions read them. `None` for other paths.
fn discovery(state: &State, path: &str) -> Option<Response<Body>> {
    let served = || {
        COLLECTIONS
            .iter()
            .filter(|(plural, api_version, ..)| api_version.contains('/') && !state.uninstalled.contains(*plural))
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["apis"] => {
            let mut groups: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
            for (_, api_version, ..) in served() {
                let (group, version) = api_version.split_once('/')?;
                let versions = groups.entry(group).or_default();
                let entry = json!({"groupVersion": api_version, "version": version});
                if !versions.contains(&entry) {
                    versions.push(entry);
                }
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(name, versions)| {
                    json!({"name": name, "preferredVersion": versions[0].clone(), "versions": versions})
                })
                .collect();
            Some(respond(200, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})))
        }
        ["apis", group, version] => {
            let group_version = format!("{group}/{version}");
            let mut resources = Vec::new();
            for (plural, _, kind, namespaced) in served().filter(|(_, v, ..)| *v == group_version) {
                let verbs = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
                resources.push(json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced,
                                      "kind": kind, "verbs": verbs}));
                resources
                    .push(json!({"name": format!("{plural}/status"), "singularName": "", "namespaced": namespaced,
                                      "kind": kind, "verbs": ["get", "patch", "update"]}));
            }
            if resources.is_empty() {
                return Some(not_served());
            }
            let list = json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                              "resources": resources});
            Some(respond(200, &list))
        }
        _ => None,
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn respond(code: u16, body: &Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = StatusCode::from_u16(code).expect("a valid status code");
    response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
    response
}

/// What a real API server answers for a resource it does not serve (an unknown group,
/// version or resource, such as a CustomResourceDefinition that is not installed): not a
/// Status object, the Go HTTP mux's plain text.
fn not_served() -> Response<Body> {
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

/// Whether `object` matches a `fieldSelector` of `a.b=value` terms.
fn selected(object: &Value, selector: &str) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let Some((path, wanted)) = term.split_once('=') else { return true };
        let value = path.split('.').fold(object, |v, key| &v[key]);
        value.as_str() == Some(wanted.trim_start_matches('='))
    })
}

fn query_param(query: &str, name: &str) -> Option<String> {
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

impl FakeApi {
    /// Starts the fake on 127.0.0.1 with an ephemeral port, on the current Tokio runtime.
    pub async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (state, wake) = new_state();
        let task = tokio::spawn(accept(listener, state.clone(), wake.clone()));
        FakeApi { addr, state, wake, _stopper: Stopper::Task(task) }
    }

    /// Starts the fake on a thread of its own (with its own Tokio runtime), for blocking
    /// tests. Dropping the returned value shuts that runtime down, which closes every
    /// connection; do not drop it from inside an async task (it joins the thread).
    pub fn spawn() -> FakeApi {
        let (started_tx, started) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("fake-apiserver".to_owned())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the fake API server");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
                    let addr = listener.local_addr().expect("local address");
                    let (state, wake) = new_state();
                    let task = tokio::spawn(accept(listener, state.clone(), wake.clone()));
                    let _ = started_tx.send((addr, state, wake));
                    let _ = stopped.await;
                    task.abort();
                });
                // Dropping the runtime here cancels every connection and watch task.
            })
            .expect("spawn the fake API server's thread");
        let (addr, state, wake) = started.recv_timeout(Duration::from_secs(10)).expect("the fake API server starts");
        FakeApi { addr, state, wake, _stopper: Stopper::Thread { stop: Some(stop), thread: Some(thread) } }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn poke(&self) {
        self.wake.send_modify(|n| *n += 1);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes `dir/kubeconfig` naming the fake (no credentials) and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig_text(None)).expect("write the kubeconfig");
        path
    }

    /// Writes a kubeconfig at `path` naming the fake with a bearer `token`, so that the
    /// requests of a client using it can be told apart ([`Recorded::token`]).
    pub fn kubeconfig_with_token(&self, path: &Path, token: &str) -> PathBuf {
        std::fs::write(path, self.kubeconfig_text(Some(token))).expect("write the kubeconfig");
        path.to_owned()
    }

    fn kubeconfig_text(&self, token: Option<&str>) -> String {
        let user = match token {
            Some(token) => format!("\n    token: {token}"),
            None => " {}".to_owned(),
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             users:\n- name: nobody\n  user:{user}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n\
             current-context: fake\n",
            self.url()
        )
    }

    /// Creates or replaces an object (an ADDED or MODIFIED watch event). `plural` names the
    /// collection (`ingresses`, `services`, `endpointslices`, `leases`, ...); apiVersion,
    /// kind, resourceVersion, uid and creationTimestamp are filled in. Returns the stored
    /// object.
    pub fn apply(&self, plural: &str, mut object: Value) -> Value {
        let mut state = self.lock();
        let stored = state.put(plural, &mut object);
        drop(state);
        self.poke();
        stored
    }

    /// Deletes an object (a DELETED watch event); nothing happens when it does not exist.
    pub fn delete(&self, plural: &str, namespace: &str, name: &str) {
        let mut state = self.lock();
        let key = (namespace.to_owned(), name.to_owned());
        if let Some(mut object) = state.objects.entry(plural.to_owned()).or_default().remove(&key) {
            state.rv += 1;
            object["metadata"]["resourceVersion"] = json!(state.rv.to_string());
            let rv = state.rv;
            state.history.push(Change { rv, plural: plural.to_owned(), kind: "DELETED", object, old: None });
        }
        drop(state);
        self.poke();
    }

    /// Deletes an object without any watch event (as if it happened while the history is
    /// compacted; only a relist shows it).
    pub fn delete_silently(&self, plural: &str, namespace: &str, name: &str) {
        let key = (namespace.to_owned(), name.to_owned());
        self.lock().objects.entry(plural.to_owned()).or_default().remove(&key);
    }

    /// Forgets the watch history: open watches end, and resuming any earlier
    /// resourceVersion answers 410 Gone in the given way.
    pub fn compact(&self, gone: Gone) {
        let mut state = self.lock();
        state.rv += 1;
        state.compacted = state.rv;
        state.history.clear();
        state.gone = gone;
        state.epoch += 1;
        drop(state);
        self.poke();
    }

    /// Outage switch: while down every request (lists, watches, writes) answers 503, and
    /// open watches end (their streams close) when it goes down. Objects can still be
    /// changed with [`FakeApi::apply`] meanwhile; watches resuming afterwards see them.
    pub fn set_down(&self, down: bool) {
        let mut state = self.lock();
        state.down = down;
        state.epoch += 1;
        drop(state);
        self.poke();
    }

    /// Makes Lease writes (create, replace) naming `holder` as holderIdentity answer 503;
    /// `None` ends that.
    pub fn fail_lease_writes_of(&self, holder: Option<&str>) {
        self.lock().fail_lease_writes_of = holder.map(str::to_owned);
    }

    /// Removes CustomResourceDefinitions, as `kubectl delete crd` would: their collections
    /// (plurals, e.g. [`GATEWAY_API_CRDS`]) lose their objects and answer 404 to every request
    /// (lists, watches, gets, writes); open watches end.
    pub fn uninstall(&self, plurals: &[&str]) {
        let mut state = self.lock();
        for plural in plurals {
            state.uninstalled.insert((*plural).to_owned());
            state.objects.remove(*plural);
            state.history.retain(|change| change.plural != *plural);
        }
        state.epoch += 1;
        drop(state);
        self.poke();
    }

    /// Installs CustomResourceDefinitions removed by [`FakeApi::uninstall`]: their collections
    /// are served again, empty.
    pub fn install(&self, plurals: &[&str]) {
        let mut state = self.lock();
        for plural in plurals {
            state.uninstalled.remove(*plural);
        }
        drop(state);
        self.poke();
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// Number of list (not watch) requests on a collection.
    pub fn lists(&self, plural: &str) -> usize {
        let state = self.lock();
        state.requests.iter().filter(|r| r.method == "GET" && r.path.ends_with(plural) && !r.is_watch()).count()
    }

    /// Number of watch requests on a collection.
    pub fn watches(&self, plural: &str) -> usize {
        let state = self.lock();
        state.requests.iter().filter(|r| r.path.ends_with(plural) && r.is_watch()).count()
    }

    /// The requests with a method (PATCH, POST, PUT) on paths ending with `suffix`.
    pub fn writes(&self, method: &str, suffix: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.method == method && r.path.ends_with(suffix)).collect()
    }

    /// The stored object, if any (`namespace` is empty for cluster-scoped ones).
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.lock().objects.get(plural)?.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Every stored object of a collection.
    pub fn all(&self, plural: &str) -> Vec<Value> {
        self.lock().objects.get(plural).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }
}

fn new_state() -> (Arc<Mutex<State>>, watch::Sender<u64>) {
    let state = Arc::new(Mutex::new(State {
        rv: 100,
        objects: BTreeMap::new(),
        history: Vec::new(),
        compacted: 0,
        gone: Gone::Event,
        down: false,
        epoch: 0,
        page_cap: 2,
        requests: Vec::new(),
        fail_lease_writes_of: None,
        uninstalled: BTreeSet::new(),
    }));
    (state, watch::channel(0).0)
}

async fn accept(listener: TcpListener, state: Arc<Mutex<State>>, wake: watch::Sender<u64>) {
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

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl State {
    /// Stores `object` with a new resourceVersion; records the watch event.
    fn put(&mut self, plural: &str, object: &mut Value) -> Value {
        let (api_version, kind) = type_of(plural);
        object["apiVersion"] = json!(api_version);
        object["kind"] = json!(kind);
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default().to_owned();
        let name = object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        if object["metadata"]["uid"].is_null() {
            object["metadata"]["uid"] = json!(format!("uid-{plural}-{namespace}-{name}"));
        }
        if object["metadata"]["creationTimestamp"].is_null() {
            object["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        let existed = self.objects.entry(plural.to_owned()).or_default().insert((namespace, name), object.clone());
        let kind = if existed.is_some() { "MODIFIED" } else { "ADDED" };
        let rv = self.rv;
        self.history.push(Change { rv, plural: plural.to_owned(), kind, object: object.clone(), old: existed });
        object.clone()
    }
}

/// Records the request, answers it, and records the answer's status.
async fn handle(request: Request<Incoming>, state: Arc<Mutex<State>>, wake: watch::Sender<u64>) -> Response<Body> {
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
            let stored = guard.put(&target.plural, &mut object);
            drop(guard);
            wake.send_modify(|n| *n += 1);
            respond(200, &stored)
        }
        _ => respond(405, &status(405, "MethodNotAllowed", "not supported by the fake")),
    }
}

fn lease_write_fails(state: &State, lease: &Value) -> bool {
    let holder = lease["spec"]["holderIdentity"].as_str();
    state.fail_lease_writes_of.is_some() && holder == state.fail_lease_writes_of.as_deref()
}

fn matches(object: &Value, target: &Target, selector: &Option<String>) -> bool {
    let in_namespace = match &target.namespace {
        Some(ns) => object["metadata"]["namespace"].as_str() == Some(ns),
        None => true,
    };
    in_namespace && selector.as_deref().is_none_or(|s| selected(object, s))
}

fn list(state: &State, target: &Target, query: &str) -> Response<Body> {
    let selector = query_param(query, "fieldSelector");
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
    let selector = query_param(query, "fieldSelector");
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

/// Polls `check` every 10 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if check() {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
