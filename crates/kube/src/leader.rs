//! Leader election on a `coordination.k8s.io/v1` Lease, the algorithm of client-go's
//! `leaderelection` (as controller-runtime uses it), so replicas interoperate with its tools.
//!
//! A candidate reads the Lease every retry period. It takes the Lease when nobody holds it
//! or when the holder's record has not changed for a whole lease duration, as observed on this
//! replica's own clock (no clock skew between nodes matters). Every write carries the
//! resourceVersion that was read, so of two candidates at most one wins (the other gets
//! `409 Conflict`). The leader renews every retry period and steps down when it could not
//! renew within the renew deadline, which is shorter than the lease duration: it has stopped
//! acting as leader before anyone else may take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;

use crate::lease;
use crate::{KubeOptions, LeaseTimings};

/// Runs leader election in the background; the receiver says whether this replica is the
/// leader now. Without `options.leader_elect` it is always `true`. The election stops (and
/// the Lease is released, if held) when every receiver has been dropped.
pub fn elect_leader(client: Client, options: &KubeOptions) -> watch::Receiver<bool> {
    let (sender, receiver) = watch::channel(!options.leader_elect);
    if !options.leader_elect {
        // Keep the channel open so that `changed()` waits instead of failing.
        tokio::spawn(async move { sender.closed().await });
        return receiver;
    }
    let elector = Elector {
        api: Api::namespaced(client, &options.lease_namespace),
        name: options.lease_name.clone(),
        identity: options.identity.clone(),
        timings: options.lease_timings,
        observed: None,
    };
    tokio::spawn(elector.run(sender));
    receiver
}

/// The outcome of one attempt to acquire or renew.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// This replica holds the Lease.
    Held,
    /// Another replica holds a valid Lease.
    Taken,
    /// The API server could not be asked, or another replica wrote first.
    Failed,
}

struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: LeaseTimings,
    /// The Lease record last seen and when it was first seen (this replica's clock).
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    async fn run(mut self, leader: watch::Sender<bool>) {
        let retry = self.timings.retry_period;
        loop {
            // Candidate: try every retry period (with jitter, so candidates spread out).
            loop {
                if self.attempt(self.timings.renew_deadline).await == Attempt::Held {
                    break;
                }
                let jitter = retry.mul_f64(1.2 * fastrand::f64());
                tokio::select! {
                    _ = leader.closed() => return,
                    _ = tokio::time::sleep(retry + jitter) => {}
                }
            }
            tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
            leader.send_replace(true);
            // Leader: renew every retry period; step down past the renew deadline.
            let mut renewed = Instant::now();
            loop {
                tokio::select! {
                    _ = leader.closed() => {
                        self.release().await;
                        return;
                    }
                    _ = tokio::time::sleep(retry) => {}
                }
                let left = self.timings.renew_deadline.saturating_sub(renewed.elapsed());
                match self.attempt(left).await {
                    Attempt::Held => renewed = Instant::now(),
                    Attempt::Taken => break,
                    Attempt::Failed if renewed.elapsed() >= self.timings.renew_deadline => break,
                    Attempt::Failed => {}
                }
            }
            tracing::warn!(lease = %self.name, identity = %self.identity, "lost leadership");
            leader.send_replace(false);
        }
    }

    /// One try at acquiring or renewing, given up after `limit`.
    async fn attempt(&mut self, limit: Duration) -> Attempt {
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(Ok(attempt)) => attempt,
            Ok(Err(error)) => {
                tracing::debug!(lease = %self.name, %error, "cannot acquire or renew the lease");
                Attempt::Failed
            }
            Err(_) => Attempt::Failed,
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let now = lease::now();
        let Some(mut current_lease) = self.api.get_opt(&self.name).await? else {
            let created = Lease {
                metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
                spec: Some(self.record(None, now)),
            };
            return Ok(self.outcome(lease::write(&self.api, &created, false).await?));
        };
        let current = current_lease.spec.clone().unwrap_or_default();
        let seen_at = lease::observe(&mut self.observed, &current);
        let holder = current.holder_identity.as_deref().unwrap_or_default();
        if !holder.is_empty() && holder != self.identity && seen_at.elapsed() < self.timings.lease_duration {
            return Ok(Attempt::Taken);
        }
        current_lease.spec = Some(self.record(Some(&current), now));
        Ok(self.outcome(lease::write(&self.api, &current_lease, true).await?))
    }

    /// The record naming this replica as holder, continuing `current`.
    fn record(&self, current: Option<&LeaseSpec>, now: MicroTime) -> LeaseSpec {
        let held = current.is_some_and(|c| c.holder_identity.as_deref() == Some(self.identity.as_str()));
        let transitions = current.and_then(|c| c.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(lease::whole_seconds(self.timings.lease_duration)),
            acquire_time: if held { current.and_then(|c| c.acquire_time.clone()) } else { Some(now.clone()) },
            renew_time: Some(now),
            lease_transitions: Some(if held || current.is_none() { transitions } else { transitions + 1 }),
            ..LeaseSpec::default()
        }
    }

    /// Held when the write went through (the record written is then observed now), failed
    /// when another candidate wrote first.
    fn outcome(&mut self, written: Option<Lease>) -> Attempt {
        match written {
            Some(lease) => {
                self.observed = Some((lease.spec.unwrap_or_default(), Instant::now()));
                Attempt::Held
            }
            None => Attempt::Failed,
        }
    }

    /// Gives the Lease up so another replica can take over at once (on shutdown).
    async fn release(&mut self) {
        let release = async {
            let mut lease = self.api.get(&self.name).await?;
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(lease::now());
            self.api.replace(&self.name, &PostParams::default(), &lease).await.map(drop)
        };
        match tokio::time::timeout(self.timings.renew_deadline, release).await {
            Ok(Ok(())) => tracing::info!(lease = %self.name, "released the lease"),
            Ok(Err(error)) => tracing::warn!(lease = %self.name, %error, "cannot release the lease"),
            Err(_) => tracing::warn!(lease = %self.name, "timed out releasing the lease"),
        }
    }
}
