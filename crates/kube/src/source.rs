//! Watches on the API server feeding a [`Store`].
//!
//! One task per kind runs kube's `watcher` (initial list in pages, then a watch from the
//! list's resourceVersion, with the default backoff on errors). A relist (first start, or after
//! `410 Gone`) is collected aside and replaces that kind's objects in one step when complete,
//! so the store keeps serving the previous objects meanwhile; nothing is dropped when the API
//! server is away.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Config, Resource};
use serde::de::DeserializeOwned;
use sluice_store::{keeps_secret, ObjectKey, Store};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::KubeOptions;

/// Number of kinds watched; `ready` waits for all of them.
const KINDS: u32 = 6;
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
/// or in-cluster) and starts watching IngressClasses, Ingresses, Services, EndpointSlices and
/// Secrets (keeping those with certificates or trust anchors) and ConfigMaps, within
/// `watch_namespace` when set. Does not wait for the API server: see
/// [`KubeSource::ready`].
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
    Ok(KubeSource::start(client, options.watch_namespace.as_deref()))
}

impl KubeSource {
    /// Starts the watches with an existing client.
    pub fn start(client: Client, namespace: Option<&str>) -> Self {
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::default()),
            listed: watch::Sender::new(0),
            subscribers: Mutex::new(Vec::new()),
        });
        let all = watcher::Config::default();
        let tasks = vec![
            spawn::<IngressClass>(Api::all(client.clone()), all.clone(), &shared),
            spawn::<Ingress>(api(&client, namespace), all.clone(), &shared),
            spawn::<Service>(api(&client, namespace), all.clone(), &shared),
            spawn::<EndpointSlice>(api(&client, namespace), all.clone(), &shared),
            // Every type: `proxy-ssl-secret` Secrets are often Opaque; `wanted` keeps only
            // those holding certificates or trust anchors.
            spawn::<Secret>(api(&client, namespace), all, &shared),
            spawn::<ConfigMap>(api(&client, namespace), watcher::Config::default(), &shared),
        ];
        Self { client, shared, tasks }
    }

    /// Resolves once the initial list of every kind has completed.
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

/// A kind Sluice watches: where its objects live in the [`Store`].
trait Kind: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + PartialEq + Send + Sync + 'static {
    /// Bit of this kind in [`Shared::listed`].
    const BIT: u32;
    /// The kind's name, as sent to subscribers.
    const KIND: &'static str;
    /// This kind's objects in the store.
    fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>>;
    /// The store key.
    fn key(&self) -> ObjectKey {
        ObjectKey::of(self.meta())
    }
    /// Whether Sluice keeps this object.
    fn wanted(&self) -> bool {
        true
    }
}

impl Kind for IngressClass {
    const BIT: u32 = 0;
    const KIND: &'static str = "IngressClass";
    fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>> {
        &mut store.ingress_classes
    }
    fn key(&self) -> ObjectKey {
        ObjectKey::new("", self.metadata.name.as_deref().unwrap_or_default())
    }
}

impl Kind for Ingress {
    const BIT: u32 = 1;
    const KIND: &'static str = "Ingress";
    fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>> {
        &mut store.ingresses
    }
}

impl Kind for Service {
    const BIT: u32 = 2;
    const KIND: &'static str = "Service";
    fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>> {
        &mut store.services
    }
}

impl Kind for EndpointSlice {
    const BIT: u32 = 3;
    const KIND: &'static str = "EndpointSlice";
    fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>> {
        &mut store.endpoint_slices
    }
}

impl Kind for Secret {
    const BIT: u32 = 4;
    const KIND: &'static str = "Secret";
    fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>> {
        &mut store.secrets
    }
    fn wanted(&self) -> bool {
        keeps_secret(self)
    }
}

impl Kind for ConfigMap {
    const BIT: u32 = 5;
    const KIND: &'static str = "ConfigMap";
    fn objects(store: &mut Store) -> &mut BTreeMap<ObjectKey, Arc<Self>> {
        &mut store.config_maps
    }
}

fn spawn<K: Kind>(api: Api<K>, config: watcher::Config, shared: &Arc<Shared>) -> JoinHandle<()> {
    tokio::spawn(follow(api, config, shared.clone()))
}

/// Follows one kind forever: list, watch, and relist whenever the watch cannot resume.
async fn follow<K: Kind>(api: Api<K>, config: watcher::Config, shared: Arc<Shared>) {
    let mut restarts = 0u32;
    loop {
        let mut events = std::pin::pin!(watcher(api.clone(), config.clone()).default_backoff());
        // Objects of a relist in progress; they replace the kind's objects when it completes.
        let mut relist: Option<BTreeMap<ObjectKey, K>> = None;
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
                Ok(watcher::Event::InitApply(object)) => {
                    if let (Some(objects), Some(object)) = (relist.as_mut(), trim(object)) {
                        objects.insert(object.key(), object);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let objects = relist.take().unwrap_or_default();
                    replace(&shared, objects);
                }
                Ok(watcher::Event::Apply(object)) => {
                    restarts = 0;
                    apply(&shared, object);
                }
                Ok(watcher::Event::Delete(object)) => {
                    restarts = 0;
                    let key = object.key();
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
                    break;
                }
                Err(error) => tracing::warn!(kind = K::KIND, %error, "Kubernetes watch failed; retrying"),
            }
        }
        let delay = Duration::from_secs(1 << restarts.min(5)).min(MAX_RESTART_DELAY);
        restarts += 1;
        tokio::time::sleep(delay).await;
    }
}

/// The object as kept: none when unwanted, without managed fields (large, never read).
fn trim<K: Kind>(mut object: K) -> Option<K> {
    object.meta_mut().managed_fields = None;
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
