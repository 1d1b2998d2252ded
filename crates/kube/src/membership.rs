//! Which Sluice replicas are alive, by node name, from one `coordination.k8s.io/v1` Lease per
//! replica: the basis for choosing the one node that holds each LoadBalancer address.
//!
//! Every replica renews its own Lease (`sluice-node-<node>`) every third of the lease
//! duration and watches all member Leases (selected by label, so the leader-election Lease
//! and others' Leases in the namespace are not members). A member is alive while its Lease
//! record keeps changing: a record that stays the same for a whole lease duration, measured
//! on this replica's clock from when it saw the record change, has expired (client-go's
//! rule; no two nodes' clocks are compared). A deleted Lease (a replica that stopped) is gone
//! at once.
//!
//! This replica counts itself alive only while its own renewals succeed: a renewal is dated
//! by when it was sent, so this replica drops itself out no later than any other replica
//! stops counting it. When a replica is cut off from the API server there is a short time
//! with no holder, never two.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::DeleteParams;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::lease;

/// The labels of every member Lease; the members' watch selects them.
const MEMBER_LABELS: [(&str, &str); 2] = [("app.kubernetes.io/name", "sluice"), ("sluice.dev/role", "member")];

/// What a member Lease's name starts with; the node name follows.
const LEASE_NAME_PREFIX: &str = "sluice-node-";

/// Shortest lease duration used: renewing more often than every 100 ms would only load the
/// API server.
const MIN_DURATION: Duration = Duration::from_millis(300);

/// Which Sluice replicas (by node name) are alive, from one Lease per replica: the basis for
/// choosing the one node that holds each LoadBalancer address. Each replica creates and renews
/// `sluice-node-<node>` in `namespace` (labels `app.kubernetes.io/name=sluice`,
/// `sluice.dev/role=member`; holderIdentity = node name; leaseDurationSeconds; renewTime with
/// microseconds) every `duration/3`, watches all member Leases, and counts a member alive while
/// the Lease was renewed within its duration — measured on this replica's own clock from when it
/// saw renewTime change (as client-go's leader election does; no clock-skew trust).
/// The receiver's value is the sorted set of live node names. Our own node is in it only while
/// our own renewals succeed (if they fail for a whole duration we drop ourselves out: better no
/// holder than two). The set stays empty until a first list of the member Leases has completed,
/// so that a starting replica never believes it is alone.
/// `stop()` deletes our Lease so that the others take over at once; dropping a `Membership`
/// instead aborts its tasks and leaves the Lease to expire, as a crash would.
pub struct Membership {
    api: Api<Lease>,
    name: String,
    duration: Duration,
    live: watch::Sender<BTreeSet<String>>,
    /// The renewing task and the watching task.
    tasks: [JoinHandle<()>; 2],
}

impl Membership {
    /// Joins: starts renewing this node's Lease and watching the others', on the current Tokio
    /// runtime. `duration` is the lease duration (at least 300 ms is used).
    pub fn start(client: Client, namespace: &str, node: &str, duration: Duration) -> Self {
        let api: Api<Lease> = Api::namespaced(client, namespace);
        let name = format!("{LEASE_NAME_PREFIX}{node}");
        let duration = duration.max(MIN_DURATION);
        let live = watch::Sender::new(BTreeSet::new());
        let (renewed_sender, renewed) = watch::channel(None);
        let renewer = Renewer { api: api.clone(), name: name.clone(), node: node.to_owned(), duration, current: None };
        let follower = Follower {
            own_name: name.clone(),
            own_node: node.to_owned(),
            duration,
            members: BTreeMap::new(),
            listed: false,
            renewed,
        };
        let tasks = [tokio::spawn(renewer.run(renewed_sender)), tokio::spawn(follower.run(api.clone(), live.clone()))];
        Self { api, name, duration, live, tasks }
    }

    /// The sorted set of live node names, updated as members come, renew, expire and leave.
    pub fn live(&self) -> watch::Receiver<BTreeSet<String>> {
        self.live.subscribe()
    }

    /// Leaves: stops renewing and watching, empties the set, and deletes this node's Lease so
    /// that the other replicas see it gone at once (a failed delete leaves the Lease to expire).
    pub async fn stop(mut self) {
        for task in &mut self.tasks {
            task.abort();
            // Wait until it is gone, so that no renewal follows the deletion.
            let _ = task.await;
        }
        self.live.send_replace(BTreeSet::new());
        let params = DeleteParams::default();
        match tokio::time::timeout(self.duration, self.api.delete(&self.name, &params)).await {
            Ok(Ok(_)) => tracing::info!(lease = %self.name, "left the members: deleted the lease"),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => {}
            Ok(Err(error)) => tracing::warn!(lease = %self.name, %error, "cannot delete the membership lease"),
            Err(_) => tracing::warn!(lease = %self.name, "timed out deleting the membership lease"),
        }
    }
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership").field("lease", &self.name).field("live", &*self.live.borrow()).finish()
    }
}

/// Aborts renewing and watching without deleting the Lease (the others see it expire, as after
/// a crash) and empties the set.
impl Drop for Membership {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.live.send_replace(BTreeSet::new());
    }
}

/// Renews this node's Lease.
struct Renewer {
    api: Api<Lease>,
    name: String,
    node: String,
    duration: Duration,
    /// The Lease as last written (its resourceVersion guards the next write).
    current: Option<Lease>,
}

impl Renewer {
    /// Renews every third of the duration; sends when each successful renewal was started.
    async fn run(mut self, renewed: watch::Sender<Option<Instant>>) {
        let period = self.duration / 3;
        let mut failing = false;
        loop {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(period, self.renew()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {period:?}")),
            };
            match outcome {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!(lease = %self.name, "renewing the membership lease again");
                    }
                    renewed.send_replace(Some(started));
                }
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(lease = %self.name, %error, "cannot renew the membership lease; this node leaves the members if it goes on");
                }
                Err(error) => tracing::debug!(lease = %self.name, %error, "cannot renew the membership lease"),
            }
            tokio::time::sleep_until((started + period).into()).await;
        }
    }

    /// One renewal (or creation); reads the Lease again when someone else wrote it meanwhile.
    async fn renew(&mut self) -> Result<(), String> {
        for _ in 0..2 {
            let current = match self.current.take() {
                Some(lease) => Some(lease),
                None => self.api.get_opt(&self.name).await.map_err(|e| e.to_string())?,
            };
            let exists = current.is_some();
            match lease::write(&self.api, &self.renewed(current), exists).await {
                Ok(Some(written)) => {
                    self.current = Some(written);
                    return Ok(());
                }
                // Changed or deleted by someone else since it was read: read it again.
                Ok(None) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(error) => return Err(error.to_string()),
            }
        }
        Err("the lease changed under every write".to_owned())
    }

    /// `current` (or a new Lease) renewed now, naming this node as holder.
    fn renewed(&self, current: Option<Lease>) -> Lease {
        let now = lease::now();
        let mut renewed = current.unwrap_or_else(|| Lease {
            metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
            spec: None,
        });
        let labels = renewed.metadata.labels.get_or_insert_with(Default::default);
        for (key, value) in MEMBER_LABELS {
            labels.insert(key.to_owned(), value.to_owned());
        }
        let previous = renewed.spec.take().unwrap_or_default();
        let held = previous.holder_identity.as_deref() == Some(self.node.as_str());
        renewed.spec = Some(LeaseSpec {
            holder_identity: Some(self.node.clone()),
            lease_duration_seconds: Some(lease::whole_seconds(self.duration)),
            acquire_time: if held { previous.acquire_time.or_else(|| Some(now.clone())) } else { Some(now.clone()) },
            renew_time: Some(now),
            ..previous
        });
        renewed
    }
}

/// Another replica's Lease as this replica follows it.
struct Member {
    /// Its holderIdentity.
    node: String,
    /// Its leaseDurationSeconds.
    duration: Duration,
    /// Its record and when this replica saw it change.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Member {
    /// When it expires unless renewed (on this replica's clock).
    fn expiry(&self) -> Option<Instant> {
        self.observed.as_ref().map(|(_, since)| *since + self.duration)
    }
}

/// Watches the member Leases and publishes the live set.
struct Follower {
    own_name: String,
    own_node: String,
    duration: Duration,
    /// Other replicas' Leases, by Lease name.
    members: BTreeMap<String, Member>,
    /// Whether a first list of the member Leases completed.
    listed: bool,
    /// When this replica's last successful renewal was started.
    renewed: watch::Receiver<Option<Instant>>,
}

impl Follower {
    async fn run(mut self, api: Api<Lease>, live: watch::Sender<BTreeSet<String>>) {
        let selector = MEMBER_LABELS.map(|(key, value)| format!("{key}={value}")).join(",");
        let config = watcher::Config::default().labels(&selector);
        let follow = || -> BoxStream<'static, Result<watcher::Event<Lease>, watcher::Error>> {
            watcher(api.clone(), config.clone()).default_backoff().boxed()
        };
        let mut events = follow();
        // Members of a relist in progress; they replace the members when it completes.
        let mut relist: Option<BTreeMap<String, Member>> = None;
        loop {
            let next_expiry = self.next_expiry().map_or_else(far_future, tokio::time::Instant::from_std);
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(watcher::Event::Init)) => relist = Some(BTreeMap::new()),
                    Some(Ok(watcher::Event::InitApply(lease))) => {
                        if let Some((name, member)) = self.member(lease) {
                            relist.get_or_insert_with(BTreeMap::new).insert(name, member);
                        }
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        self.members = relist.take().unwrap_or_default();
                        self.listed = true;
                    }
                    Some(Ok(watcher::Event::Apply(lease))) => {
                        let name = lease.metadata.name.clone().unwrap_or_default();
                        match self.member(lease) {
                            Some((name, member)) => self.members.insert(name, member),
                            // Released (no holder): not a member any more.
                            None => self.members.remove(&name),
                        };
                    }
                    Some(Ok(watcher::Event::Delete(lease))) => {
                        self.members.remove(lease.metadata.name.as_deref().unwrap_or_default());
                    }
                    Some(Err(error)) => tracing::warn!(%error, "watching the membership leases failed; retrying"),
                    // kube's watcher never ends; should it, follow anew.
                    None => events = follow(),
                },
                changed = self.renewed.changed() => {
                    if changed.is_err() {
                        // The renewer is gone: so is this membership.
                        return;
                    }
                }
                () = tokio::time::sleep_until(next_expiry) => {}
            }
            if self.listed {
                let now = self.live_nodes();
                live.send_if_modified(|before| {
                    let changed = *before != now;
                    if changed {
                        tracing::info!(members = ?now, "live members changed");
                        *before = now;
                    }
                    changed
                });
            }
        }
    }

    /// The member a Lease names, keeping when it was last seen changing; `None` for this
    /// replica's own Lease (its renewals tell) and for a Lease without a holder.
    fn member(&self, lease: Lease) -> Option<(String, Member)> {
        let name = lease.metadata.name?;
        let record = lease.spec.unwrap_or_default();
        let node = record.holder_identity.clone().filter(|node| !node.is_empty())?;
        if name == self.own_name {
            return None;
        }
        let seconds = record.lease_duration_seconds.and_then(|s| u64::try_from(s).ok()).filter(|s| *s > 0);
        let duration = seconds.map_or(self.duration, Duration::from_secs);
        let mut observed = self.members.get(&name).and_then(|member| member.observed.clone());
        lease::observe(&mut observed, &record);
        Some((name, Member { node, duration, observed }))
    }

    /// When this replica's own membership expires unless renewed.
    fn own_expiry(&self) -> Option<Instant> {
        self.renewed.borrow().map(|started| started + self.duration)
    }

    /// The next time the live set may shrink without any event.
    fn next_expiry(&self) -> Option<Instant> {
        let now = Instant::now();
        let members = self.members.values().filter_map(Member::expiry);
        members.chain(self.own_expiry()).filter(|expiry| *expiry > now).min()
    }

    /// The nodes alive now.
    fn live_nodes(&self) -> BTreeSet<String> {
        let now = Instant::now();
        let alive = |expiry: Option<Instant>| expiry.is_some_and(|expiry| expiry > now);
        let mut nodes: BTreeSet<String> =
            self.members.values().filter(|member| alive(member.expiry())).map(|member| member.node.clone()).collect();
        if alive(self.own_expiry()) {
            nodes.insert(self.own_node.clone());
        }
        nodes
    }
}

/// A deadline that never comes in practice.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}
