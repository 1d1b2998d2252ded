//! Watches on the API server feeding a [`Store`].
//!
//! One task per kind runs kube's `watcher` (initial list in pages, then a watch from the
//! list's resourceVersion, with the default backoff on errors). A relist (first start, or after
//! `410 Gone`) is collected aside and replaces that kind's objects in one step when complete,
//! so the store keeps serving the previous objects meanwhile; nothing is dropped when the API
//! server is away.
//!
//! The kinds: IngressClasses, Ingresses, Services, EndpointSlices, Secrets (only those
//! [`sluice_store::keeps_secret`] accepts), ConfigMaps, Namespaces, the Gateway API kinds
//! (GatewayClasses, Gateways, HTTP/GRPC/TLS/TCP/UDPRoutes, ReferenceGrants,
//! BackendTLSPolicies), Nodes, and MetalLB's kinds (IPAddressPools, L2Advertisements,
//! BGPAdvertisements, Communities at `metallb.io/v1beta1`, BGPPeers at `v1beta2`). Cluster-scoped
//! kinds (IngressClasses, Namespaces, GatewayClasses, Nodes) are always watched cluster-wide,
//! the others within the watched namespace when one is set. Managed fields are dropped from
//! every object, and a Node's `status.images`, `volumesInUse` and `volumesAttached` (the bulk
//! of a Node, never read) before it is stored.
//!
//! The Gateway API and MetalLB kinds are CustomResourceDefinitions a cluster may lack (all
//! of them, or some: TCPRoutes and UDPRoutes come only with the Gateway API's experimental
//! channel). Before listing one, the source asks API discovery (`GET /apis`, then the
//! group's versions; one answer shared by every kind for a few seconds) whether it is served;
//! a kind that is not (or whose list answers `404` anyway, or `403`: a ClusterRole from before
//! these kinds) counts as a complete list of no objects, so readiness never waits for it, and
//! is asked about again every [`crate::KubeOptions::missing_kind_retry`] (30 s): a CRD
//! installed later is picked up then. A CRD deleted while watched (re-watching then fails) is
//! noticed the same way, and empties its kind. Discovery rather than listing, because a real
//! API server answers an unknown resource with a plain-text 404 that kube's client logs as a
//! warning each time. Namespaces (needed only for Gateway listeners' namespace selectors) and
//! Nodes (needed only for LoadBalancer announcements) are optional in the `403` sense, so that
//! an upgrade without the new RBAC keeps serving Ingresses.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Config, Resource};
use sluice_store::gateway_api::backendtlspolicies::BackendTlsPolicy;
use sluice_store::gateway_api::experimental::gatewayclasses::GatewayClass;
use sluice_store::gateway_api::experimental::gateways::Gateway;
use sluice_store::gateway_api::experimental::grpcroutes::GrpcRoute;
use sluice_store::gateway_api::experimental::httproutes::HttpRoute;
use sluice_store::gateway_api::experimental::referencegrants::ReferenceGrant;
use sluice_store::gateway_api::experimental::tcproutes::TcpRoute;
use sluice_store::gateway_api::experimental::tlsroutes::TlsRoute;
use sluice_store::gateway_api::experimental::udproutes::UdpRoute;
use sluice_store::metallb::METALLB_GROUP;
use sluice_store::{BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement, ObjectKey, Store};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::discovery::Discovery;
use crate::kinds::{Kind, KINDS};
use crate::KubeOptions;

/// The API group of the Gateway API's CustomResourceDefinitions.
const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";

/// Longest wait before relisting after repeated `410 Gone` answers to a watch request.
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);

/// Objects from the API server, kept current by watches. Dropping it stops the watches.
pub struct KubeSource {
    client: Client,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the watch tasks and the source share.
#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    /// One bit per kind whose initial list has completed.
    listed: watch::Sender<u32>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Notice>>>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn notify(&self, kind: &'static str, key: Option<ObjectKey>) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        subscribers.retain(|subscriber| subscriber.send(Notice { kind, key: key.clone() }).is_ok());
    }
}

/// A change in the store, as sent to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The kind, as manifests name it (`"Ingress"`, `"EndpointSlice"`, ...).
    pub kind: &'static str,
    /// The object added, modified or deleted; `None` when a relist replaced the kind's objects
    /// (any of them may have changed).
    pub key: Option<ObjectKey>,
}

/// Connects to the API server (kubeconfig from the options, `KUBECONFIG`, `~/.kube/config`,
/// or in-cluster) and starts watching IngressClasses, Ingresses, Services, EndpointSlices,
/// Secrets (keeping those with certificates or trust anchors), ConfigMaps, Namespaces, the
/// Gateway API kinds (GatewayClasses, Gateways, HTTP/GRPC/TLS/TCP/UDPRoutes,
/// ReferenceGrants, BackendTLSPolicies), Nodes and MetalLB's kinds (IPAddressPools,
/// L2Advertisements, BGPAdvertisements, BGPPeers, Communities); kinds whose CRD is missing
/// have no objects. Namespaced kinds are watched within `watch_namespace` when set
/// (cluster-scoped kinds are always watched cluster-wide). Does not wait for the API server:
/// see [`KubeSource::ready`].
pub async fn connect(options: &KubeOptions) -> Result<KubeSource, String> {
    let config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|e| format!("cannot read kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => Config::infer().await.map_err(|e| format!("cannot find the Kubernetes API: {e}"))?,
    };
    let client = Client::try_from(config).map_err(|e| format!("cannot create the Kubernetes client: {e}"))?;
    Ok(KubeSource::start_with_retry(client, options.watch_namespace.as_deref(), options.missing_kind_retry))
}

impl KubeSource {
    /// Starts the watches with an existing client; kinds the API server does not serve are
    /// asked for again every 30 s.
    pub fn start(client: Client, namespace: Option<&str>) -> Self {
        Self::start_with_retry(client, namespace, crate::MISSING_KIND_RETRY)
    }

    /// Starts the watches with an existing client; kinds the API server does not serve (a
    /// Gateway API or MetalLB CRD not installed) are asked for again every
    /// `missing_kind_retry`.
    pub fn start_with_retry(client: Client, namespace: Option<&str>, missing_kind_retry: Duration) -> Self {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            listed: watch::Sender::new(0),
            subscribers: Mutex::new(Vec::new()),
        });
        let discovery = Arc::new(Discovery::new(client.clone(), &[GATEWAY_API_GROUP, METALLB_GROUP]));
        let watcher = Watcher { shared: shared.clone(), discovery, missing_kind_retry };
        let tasks = vec![
            watcher.spawn::<IngressClass>(Api::all(client.clone())),
            watcher.spawn::<Ingress>(api(&client, namespace)),
            watcher.spawn::<Service>(api(&client, namespace)),
            watcher.spawn::<EndpointSlice>(api(&client, namespace)),
            // Every type: `proxy-ssl-secret` Secrets are often Opaque; `wanted` keeps only
            // those holding certificates or trust anchors.
            watcher.spawn::<Secret>(api(&client, namespace)),
            watcher.spawn::<ConfigMap>(api(&client, namespace)),
            watcher.spawn::<Namespace>(Api::all(client.clone())),
            watcher.spawn::<GatewayClass>(Api::all(client.clone())),
            watcher.spawn::<Gateway>(api(&client, namespace)),
            watcher.spawn::<HttpRoute>(api(&client, namespace)),
            watcher.spawn::<GrpcRoute>(api(&client, namespace)),
            watcher.spawn::<TlsRoute>(api(&client, namespace)),
            watcher.spawn::<TcpRoute>(api(&client, namespace)),
            watcher.spawn::<UdpRoute>(api(&client, namespace)),
            watcher.spawn::<ReferenceGrant>(api(&client, namespace)),
            watcher.spawn::<BackendTlsPolicy>(api(&client, namespace)),
            watcher.spawn::<Node>(Api::all(client.clone())),
            watcher.spawn::<IPAddressPool>(api(&client, namespace)),
            watcher.spawn::<L2Advertisement>(api(&client, namespace)),
            watcher.spawn::<BGPAdvertisement>(api(&client, namespace)),
            watcher.spawn::<BGPPeer>(api(&client, namespace)),
            watcher.spawn::<Community>(api(&client, namespace)),
        ];
        Self { client, shared, tasks }
    }

    /// Resolves once the initial list of every kind has completed (or the API server said it
    /// does not serve an optional kind: see the module documentation).
    pub async fn ready(&self) {
        let all = (1 << KINDS) - 1;
        // The sender lives in `self.shared`, so waiting cannot fail while `self` exists.
        let _ = self.shared.listed.subscribe().wait_for(|listed| *listed == all).await;
    }

    /// A copy of all current objects.
    pub fn store(&self) -> Store {
        self.shared.store().clone()
    }

    /// Runs `f` on the current objects without copying them; watch updates wait meanwhile,
    /// so `f` should be quick (an incremental translation is).
    pub fn read<R>(&self, f: impl FnOnce(&Store) -> R) -> R {
        f(&self.shared.store())
    }

    /// Objects held, by kind (without copying them).
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        self.shared.store().counts()
    }

    /// A channel receiving every change: an object added, modified or deleted, or a relist
    /// that changed something.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Notice> {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.shared.subscribers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(sender);
        receiver
    }

    /// The Kubernetes client, for status writes, events and leader election.
    pub fn client(&self) -> Client {
        self.client.clone()
    }
}

impl std::fmt::Debug for KubeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSource").field("objects", &self.shared.store().counts()).finish_non_exhaustive()
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// What every watch task needs.
struct Watcher {
    shared: Arc<Shared>,
    discovery: Arc<Discovery>,
    missing_kind_retry: Duration,
}

impl Watcher {
    fn spawn<K: Kind>(&self, api: Api<K::Wire>) -> JoinHandle<()> {
        let (shared, discovery) = (self.shared.clone(), self.discovery.clone());
        tokio::spawn(follow::<K>(api, shared, discovery, self.missing_kind_retry))
    }
}

/// How one run of the watcher ended.
enum End {
    /// The watch cannot resume (`410 Gone`, or kube's stream ended): list again.
    Relist,
    /// An optional kind the API server does not serve (`404`) or refuses (`403`).
    Missing(u16),
}

/// Follows one kind forever: list, watch, and relist whenever the watch cannot resume. An
/// optional kind that is not served holds no objects and is asked for again every
/// `missing_kind_retry`.
async fn follow<K: Kind>(
    api: Api<K::Wire>,
    shared: Arc<Shared>,
    discovery: Arc<Discovery>,
    missing_kind_retry: Duration,
) {
    let mut restarts = 0u32;
    // Why the kind is missing, if it is (logged once per change).
    let mut missing: Option<u16> = None;
    loop {
        let end = if not_served::<K>(&discovery).await {
            End::Missing(404)
        } else {
            watch::<K>(&api, &shared, &discovery, &mut restarts, &mut missing).await
        };
        match end {
            End::Missing(code) => {
                if missing != Some(code) {
                    let retry = missing_kind_retry;
                    if code == 403 {
                        tracing::warn!(kind = K::KIND, ?retry, "listing is forbidden (a ClusterRole without this kind?); holding none, asking again periodically");
                    } else {
                        tracing::info!(
                            kind = K::KIND,
                            ?retry,
                            "not served by the API server (CRD not installed); holding none, asking again periodically"
                        );
                    }
                }
                missing = Some(code);
                // As good as a complete list of nothing: readiness does not wait for it, and
                // the objects of a CRD deleted meanwhile go.
                replace::<K>(&shared, BTreeMap::new());
                tokio::time::sleep(missing_kind_retry).await;
            }
            End::Relist => {
                let delay = Duration::from_secs(1 << restarts.min(5)).min(MAX_RESTART_DELAY);
                restarts += 1;
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Whether `K` is a CustomResourceDefinition that API discovery says is not served.
async fn not_served<K: Kind>(discovery: &Discovery) -> bool {
    let crd = K::OPTIONAL && !K::group(&()).is_empty();
    crd && discovery.serves(&K::group(&()), &K::version(&()), &K::plural(&())).await == Some(false)
}

/// One run of kube's watcher (list, then watch), until it cannot go on.
async fn watch<K: Kind>(
    api: &Api<K::Wire>,
    shared: &Shared,
    discovery: &Discovery,
    restarts: &mut u32,
    missing: &mut Option<u16>,
) -> End {
    let mut events = std::pin::pin!(watcher(api.clone(), watcher::Config::default()).default_backoff());
    // Objects of a relist in progress; they replace the kind's objects when it completes.
    let mut relist: Option<BTreeMap<ObjectKey, K>> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
            Ok(watcher::Event::InitApply(object)) => {
                if let (Some(objects), Some(object)) = (relist.as_mut(), trim(K::from_wire(object))) {
                    objects.insert(object.key(), object);
                }
            }
            Ok(watcher::Event::InitDone) => {
                if missing.take().is_some() {
                    tracing::info!(kind = K::KIND, "the API server serves this kind now");
                }
                let objects = relist.take().unwrap_or_default();
                replace(shared, objects);
            }
            Ok(watcher::Event::Apply(object)) => {
                *restarts = 0;
                apply(shared, K::from_wire(object));
            }
            Ok(watcher::Event::Delete(object)) => {
                *restarts = 0;
                let key = K::from_wire(object).key();
                let removed = K::objects(&mut shared.store()).remove(&key).is_some();
                if removed {
                    shared.notify(K::KIND, Some(key));
                }
            }
            // kube relists after a 410 sent as a watch event, but keeps re-watching from
            // the same resourceVersion when the watch request itself answers 410.
            Err(
                watcher::Error::WatchFailed(kube::Error::Api(status))
                | watcher::Error::WatchStartFailed(kube::Error::Api(status)),
            ) if status.code == 410 => {
                tracing::info!(kind = K::KIND, "watch expired (410 Gone); listing again");
                return End::Relist;
            }
            Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))
                if K::OPTIONAL && matches!(status.code, 403 | 404) =>
            {
                return End::Missing(status.code);
            }
            Err(error) => {
                // A CRD deleted while watched: re-watching answers a plain-text 404 that kube
                // reports as an undecodable event, forever; discovery tells.
                if not_served::<K>(discovery).await {
                    return End::Missing(404);
                }
                tracing::warn!(kind = K::KIND, %error, "Kubernetes watch failed; retrying");
            }
        }
    }
    End::Relist
}

/// The object as kept: none when unwanted, without managed fields and what [`Kind::slim`]
/// drops (large, never read).
fn trim<K: Kind>(mut object: K) -> Option<K> {
    object.meta_mut().managed_fields = None;
    object.slim();
    object.wanted().then_some(object)
}

/// Stores an added or modified object; notifies when it differs from the stored one.
fn apply<K: Kind>(shared: &Shared, object: K) {
    let key = object.key();
    let changed = {
        let mut store = shared.store();
        let objects = K::objects(&mut store);
        match trim(object) {
            Some(object) if objects.get(&key).map(|held| &**held) != Some(&object) => {
                objects.insert(key.clone(), Arc::new(object));
                true
            }
            Some(_) => false,
            // No longer wanted (a Secret whose type changed): as if deleted.
            None => objects.remove(&key).is_some(),
        }
    };
    if changed {
        shared.notify(K::KIND, Some(key));
    }
}

/// Replaces all objects of a kind after a (re)list; marks the kind listed. An object equal
/// to the one held stays the same allocation, so translation sees it as unchanged.
fn replace<K: Kind>(shared: &Shared, objects: BTreeMap<ObjectKey, K>) {
    let changed = {
        let mut store = shared.store();
        let current = K::objects(&mut store);
        let mut changed = current.len() != objects.len();
        let mut next = BTreeMap::new();
        for (key, object) in objects {
            let kept = current.remove(&key).filter(|held| **held == object);
            changed |= kept.is_none();
            next.insert(key, kept.unwrap_or_else(|| Arc::new(object)));
        }
        *current = next;
        changed
    };

    let first = shared.listed.send_if_modified(|listed| {
        let before = *listed;
        *listed |= 1 << K::BIT;
        *listed != before
    });
    if changed || first {
        shared.notify(K::KIND, None);
    }
}
