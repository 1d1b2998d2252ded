//! Leader election on the fake API server's Lease.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, FakeApi, FakeClient};
use sluice_kube::{elect_leader, KubeOptions, LeaseTimings};
use tokio::sync::watch;

const SECOND: Duration = Duration::from_secs(1);
const FAST: LeaseTimings = LeaseTimings {
    lease_duration: Duration::from_millis(1000),
    renew_deadline: Duration::from_millis(600),
    retry_period: Duration::from_millis(150),
};

fn options(identity: &str) -> KubeOptions {
    KubeOptions {
        leader_elect: true,
        lease_name: "sluice-leader".to_owned(),
        lease_namespace: "sluice".to_owned(),
        identity: identity.to_owned(),
        lease_timings: FAST,
        ..KubeOptions::default()
    }
}

fn holder(fake: &FakeApi) -> Option<String> {
    let lease = fake.get("leases", "sluice", "sluice-leader")?;
    lease["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

/// Samples both receivers for `during`; fails if both ever say leader at once.
async fn never_both(a: &watch::Receiver<bool>, b: &watch::Receiver<bool>, during: Duration) {
    let start = Instant::now();
    while start.elapsed() < during {
        assert!(!(*a.borrow() && *b.borrow()), "two leaders at once");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn exactly_one_of_two_candidates_leads() {
    let fake = FakeApi::start().await;
    let a = elect_leader(fake.client(), &options("a"));
    let b = elect_leader(fake.client(), &options("b"));
    assert!(eventually(3 * SECOND, || *a.borrow() || *b.borrow()).await, "someone leads");
    never_both(&a, &b, 3 * SECOND).await;
    let leader = if *a.borrow() { "a" } else { "b" };
    assert_eq!(holder(&fake).as_deref(), Some(leader));
    let lease = fake.get("leases", "sluice", "sluice-leader").unwrap();
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 1);
    assert!(lease["spec"]["renewTime"].is_string());
    // The leader renews: several PUTs over 3 s, all by the leader.
    let puts = fake.writes("PUT", "/leases/sluice-leader");
    assert!(puts.len() >= 5, "{} renewals", puts.len());
}

#[tokio::test]
async fn a_leader_that_cannot_renew_steps_down_and_the_other_takes_over() {
    let fake = FakeApi::start().await;
    let a = elect_leader(fake.client(), &options("a"));
    assert!(eventually(2 * SECOND, || *a.borrow()).await, "a leads alone");
    let b = elect_leader(fake.client(), &options("b"));
    never_both(&a, &b, SECOND).await;
    assert!(*a.borrow() && !*b.borrow());

    // The leader is cut off from the API server (its renewals fail).
    fake.fail_lease_writes_of(Some("a"));
    let cut = Instant::now();
    let watcher = {
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move { never_both(&a, &b, 3 * SECOND).await })
    };
    assert!(eventually(3 * SECOND, || !*a.borrow()).await, "a steps down");
    assert!(cut.elapsed() <= FAST.renew_deadline + 3 * FAST.retry_period, "a stepped down late");
    assert!(eventually(3 * SECOND, || *b.borrow()).await, "b takes over");
    let took = cut.elapsed();
    assert!(took <= FAST.lease_duration + 4 * FAST.retry_period, "took over after {took:?}");
    assert!(took >= FAST.renew_deadline, "took over before the lease could expire: {took:?}");
    watcher.await.unwrap();
    assert_eq!(holder(&fake).as_deref(), Some("b"));
    let lease = fake.get("leases", "sluice", "sluice-leader").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

#[tokio::test]
async fn dropping_the_receiver_releases_the_lease() {
    let fake = FakeApi::start().await;
    let a = elect_leader(fake.client(), &options("a"));
    assert!(eventually(2 * SECOND, || *a.borrow()).await);
    let b = elect_leader(fake.client(), &options("b"));
    tokio::time::sleep(3 * FAST.retry_period).await;
    assert!(!*b.borrow());
    let dropped = Instant::now();
    drop(a);
    assert!(eventually(2 * SECOND, || *b.borrow()).await, "b takes over");
    assert!(dropped.elapsed() < FAST.lease_duration, "released, not expired: {:?}", dropped.elapsed());
}

#[tokio::test]
async fn stale_writes_get_conflicts_and_are_retried() {
    let fake = FakeApi::start().await;
    let candidates: Vec<_> = ["a", "b", "c"].iter().map(|id| elect_leader(fake.client(), &options(id))).collect();
    assert!(eventually(3 * SECOND, || candidates.iter().any(|c| *c.borrow())).await);
    let start = Instant::now();
    while start.elapsed() < 2 * SECOND {
        assert!(candidates.iter().filter(|c| *c.borrow()).count() <= 1, "two leaders at once");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(candidates.iter().filter(|c| *c.borrow()).count(), 1);
}

#[tokio::test]
async fn without_leader_election_this_replica_always_leads() {
    let fake = FakeApi::start().await;
    let mut leader = elect_leader(fake.client(), &KubeOptions { leader_elect: false, ..options("a") });
    assert!(*leader.borrow());
    assert!(tokio::time::timeout(Duration::from_millis(200), leader.changed()).await.is_err(), "stays open");
    assert!(fake.requests().is_empty());
}
