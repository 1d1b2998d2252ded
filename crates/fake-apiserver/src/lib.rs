//! A fake Kubernetes API server on loopback, for Sluice's tests.
//!
//! It speaks enough of the wire protocol (JSON over HTTP/1.1, no TLS, no authentication) for
//! the real `kube` client and for `sluice run --kubernetes` pointed at it by a kubeconfig:
//!
//! - paged lists (`limit`/`continue`, at most 2 items a page whatever `limit` asks) with a
//!   `resourceVersion`, `fieldSelector` terms `a.b=value` and equality-based `labelSelector`
//!   terms (`k=v`, `k!=v`, `k`, `!k`);
//! - watch streams from a resourceVersion, with bookmarks when asked, ADDED/MODIFIED/DELETED
//!   as the selector sees them; `410 Gone` (as an `ERROR` event or as HTTP 410, see [`Gone`])
//!   after [`FakeApi::compact`];
//! - create (`POST`, `409 AlreadyExists`), replace (`PUT`) with optimistic concurrency
//!   (`409 Conflict` on a stale resourceVersion), JSON merge patches (`PATCH`, on `/status`
//!   only the `status` counts), get, delete;
//! - the core kinds (Nodes among them), the Gateway API ones (`gateway.networking.k8s.io`
//!   `v1`, TCPRoutes and UDPRoutes `v1alpha2`) and MetalLB's (`metallb.io` `v1beta1`,
//!   BGPPeers `v1beta2`) at their real paths; a known collection asked at another version, or
//!   a CustomResourceDefinition removed with [`FakeApi::uninstall`] ([`GATEWAY_API_CRDS`],
//!   [`METALLB_CRDS`]), answers 404 with the real server's plain-text body; the discovery
//!   documents (`/apis`, `/apis/GROUP/VERSION`) list what is installed;
//! - an outage switch ([`FakeApi::set_down`]: every request answers 503, open watches end),
//!   failing Lease writes for one holder ([`FakeApi::fail_lease_writes_of`]) and collections
//!   a role does not grant ([`FakeApi::forbid`]: 403).
//!
//! Tests change objects directly ([`FakeApi::apply`], [`FakeApi::delete`]), as other clients
//! of a real API server would, and assert on what the clients did: every request is recorded
//! ([`FakeApi::requests`], [`Recorded`]) with its method, path, query, body, bearer token
//! and answer status.
//!
//! Start it with [`FakeApi::start`] inside a Tokio runtime, with [`FakeApi::start_on`] on a
//! listener bound by the caller (inside a network namespace, say), or with [`FakeApi::spawn`]
//! from blocking code (it then runs on a thread of its own). [`objects`] builds the objects.

mod collections;
pub mod objects;
mod serve;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

use collections::type_of;
pub use collections::{GATEWAY_API_CRDS, METALLB_CRDS};
use serve::{accept, query_param};

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
pub(crate) struct State {
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
    /// Collections the client's role does not grant: every request on them answers 403.
    forbidden: BTreeSet<String>,
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

impl FakeApi {
    /// Starts the fake on 127.0.0.1 with an ephemeral port, on the current Tokio runtime.
    pub async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        Self::serve(listener)
    }

    /// Starts the fake on a listener the caller bound, on the current Tokio runtime: one bound
    /// inside a network namespace (on a thread that entered it) serves there, wherever this
    /// runs. Panics when the listener cannot be handed to Tokio.
    pub fn start_on(listener: std::net::TcpListener) -> FakeApi {
        listener.set_nonblocking(true).expect("a non-blocking listener");
        Self::serve(TcpListener::from_std(listener).expect("a listener for the current Tokio runtime"))
    }

    fn serve(listener: TcpListener) -> FakeApi {
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

    /// `http://ADDRESS:PORT`.
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
        self.lock().remove(plural, namespace, name);
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

    /// Makes Lease writes (create, replace, patch, delete) of Leases naming `holder` as
    /// holderIdentity answer 503, as for a replica cut off from the API server; `None` ends
    /// that.
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

    /// Answers every request on these collections (plurals, e.g. `nodes`) with `403
    /// Forbidden`, as for a ClusterRole from before a kind was read.
    pub fn forbid(&self, plurals: &[&str]) {
        let mut state = self.lock();
        state.forbidden.extend(plurals.iter().map(|plural| (*plural).to_owned()));
        state.epoch += 1;
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
        forbidden: BTreeSet::new(),
    }));
    (state, watch::channel(0).0)
}

pub(crate) fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
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

    /// Removes an object, recording the watch event; returns it as it was last stored.
    fn remove(&mut self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut object = self.objects.entry(plural.to_owned()).or_default().remove(&key)?;
        let last = object.clone();
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let rv = self.rv;
        self.history.push(Change { rv, plural: plural.to_owned(), kind: "DELETED", object, old: None });
        Some(last)
    }
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
