//! Node membership on the fake API server's Leases: who is alive, a crashed replica expiring,
//! a stopped one leaving at once, and a replica cut off from the API server dropping itself.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{eventually, FakeApi, FakeClient};
use serde_json::json;
use sluice_kube::Membership;
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);
/// The lease duration of every test: renewals every third of it.
const DURATION: Duration = SECOND;
const RENEW_PERIOD: Duration = Duration::from_millis(333);
const NAMESPACE: &str = "sluice";

fn set(nodes: &[&str]) -> BTreeSet<String> {
    nodes.iter().map(|node| (*node).to_owned()).collect()
}

fn join(fake: &FakeApi, node: &str) -> Membership {
    Membership::start(fake.client(), NAMESPACE, node, DURATION)
}

/// Waits (up to 10 s) until `live` holds exactly `nodes`; returns how long that took.
async fn until(live: &watch::Receiver<BTreeSet<String>>, nodes: &[&str]) -> Duration {
    let start = Instant::now();
    let wanted = set(nodes);
    assert!(eventually(10 * SECOND, || *live.borrow() == wanted).await, "{:?}, not {wanted:?}", *live.borrow());
    start.elapsed()
}

/// Three members that all see each other.
async fn three(fake: &FakeApi) -> [Membership; 3] {
    let members = [join(fake, "a"), join(fake, "b"), join(fake, "c")];
    for member in &members {
        until(&member.live(), &["a", "b", "c"]).await;
    }
    members
}

#[tokio::test]
async fn every_member_sees_all_live_nodes_and_renews_a_labelled_lease() {
    let fake = FakeApi::start().await;
    // Not members: the leader-election Lease, and a Lease without the member labels.
    fake.apply(
        "leases",
        json!({"metadata": {"namespace": NAMESPACE, "name": "sluice-leader"},
                                "spec": {"holderIdentity": "x", "leaseDurationSeconds": 15}}),
    );
    fake.apply(
        "leases",
        json!({"metadata": {"namespace": NAMESPACE, "name": "sluice-node-y",
                                             "labels": {"sluice.dev/role": "other"}},
                                "spec": {"holderIdentity": "y", "leaseDurationSeconds": 15}}),
    );
    let members = three(&fake).await;
    // Stays so while everyone renews.
    let start = Instant::now();
    while start.elapsed() < 2 * DURATION {
        for member in &members {
            assert_eq!(*member.live().borrow(), set(&["a", "b", "c"]));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let lease = fake.get("leases", NAMESPACE, "sluice-node-b").expect("b's lease");
    assert_eq!(lease["metadata"]["labels"]["app.kubernetes.io/name"], "sluice");
    assert_eq!(lease["metadata"]["labels"]["sluice.dev/role"], "member");
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 1);
    let renew_time = lease["spec"]["renewTime"].as_str().unwrap();
    let fraction = renew_time.rsplit('.').next().unwrap();
    assert!(fraction.len() == 7 && fraction.ends_with('Z'), "microseconds: {renew_time}");
    // Renewed every third of the duration (about 6 times in 2 s), by replacing it.
    let renewals = fake.writes("PUT", "/leases/sluice-node-b").len();
    assert!((4..=12).contains(&renewals), "{renewals} renewals");
    assert!(fake.writes("PUT", "/leases/sluice-node-b").iter().all(|r| r.succeeded()));
}

#[tokio::test]
async fn a_crashed_member_expires_after_its_lease_duration() {
    let fake = FakeApi::start().await;
    let [a, b, c] = three(&fake).await;
    // Dropping aborts its renewals but leaves its Lease, as a crash would.
    drop(b);
    let (a_live, c_live) = (a.live(), c.live());
    let took = until(&a_live, &["a", "c"]).await;
    until(&c_live, &["a", "c"]).await;
    assert!(took <= DURATION + RENEW_PERIOD + Duration::from_millis(500), "expired after {took:?}");
    assert!(took >= DURATION - RENEW_PERIOD - Duration::from_millis(100), "expired early, after {took:?}");
    assert!(fake.get("leases", NAMESPACE, "sluice-node-b").is_some(), "the Lease is left");
}

#[tokio::test]
async fn a_stopped_member_is_gone_at_once() {
    let fake = FakeApi::start().await;
    let [a, b, c] = three(&fake).await;
    let live = b.live();
    let stopping = Instant::now();
    c.stop().await;
    until(&live, &["a", "b"]).await;
    until(&a.live(), &["a", "b"]).await;
    let took = stopping.elapsed();
    assert!(took < DURATION / 2, "gone after {took:?}: deleted, not expired");
    assert!(fake.get("leases", NAMESPACE, "sluice-node-c").is_none(), "the Lease is deleted");
}

#[tokio::test]
async fn a_member_whose_renewals_fail_drops_itself_within_the_duration() {
    let fake = FakeApi::start().await;
    let [a, b, _c] = three(&fake).await;
    let (a_live, b_live) = (a.live(), b.live());
    fake.fail_lease_writes_of(Some("a"));
    let cut = Instant::now();
    let took = until(&a_live, &["b", "c"]).await;
    assert!(took <= DURATION + Duration::from_millis(200), "a dropped itself after {took:?}");
    until(&b_live, &["b", "c"]).await;
    assert!(cut.elapsed() <= DURATION + RENEW_PERIOD + Duration::from_millis(500), "b saw a gone late");

    // Back in once its writes go through again.
    fake.fail_lease_writes_of(None);
    until(&a_live, &["a", "b", "c"]).await;
    until(&b_live, &["a", "b", "c"]).await;
}

#[tokio::test]
async fn a_replica_that_cannot_reach_the_api_server_claims_nothing() {
    let fake = FakeApi::start().await;
    fake.set_down(true);
    let a = join(&fake, "a");
    let live = a.live();
    tokio::time::sleep(DURATION).await;
    assert!(live.borrow().is_empty(), "alone and unable to renew: {:?}", *live.borrow());
    fake.set_down(false);
    until(&live, &["a"]).await;
}
