//! What leader election and node membership share about `coordination.k8s.io/v1` Leases:
//! their timestamps, durations in whole seconds, judging expiry on this replica's own clock,
//! and guarded writes.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;

/// Now, as a Lease's `acquireTime`/`renewTime`: microsecond precision, as client-go writes it.
pub(crate) fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// `leaseDurationSeconds` for `duration`: whole seconds, rounded up, at least one.
pub(crate) fn whole_seconds(duration: Duration) -> i32 {
    duration.as_secs_f64().ceil().clamp(1.0, f64::from(i32::MAX)) as i32
}

/// When `record` was first seen as it is now, on this replica's clock: now when it differs
/// from the record `observed` holds (which then becomes it), else when that was noted. A
/// holder counts as gone once its record stays unchanged for a whole lease duration measured
/// this way, so no two nodes' clocks are ever compared (client-go's rule).
pub(crate) fn observe(observed: &mut Option<(LeaseSpec, Instant)>, record: &LeaseSpec) -> Instant {
    match observed {
        Some((seen, at)) if seen == record => *at,
        _ => {
            let at = Instant::now();
            *observed = Some((record.clone(), at));
            at
        }
    }
}

/// Writes `lease`: creates it when `exists` is false, else replaces it, guarded by the
/// resourceVersion it was read with. `Ok(None)` when another writer came first (`409`); the
/// caller reads again.
pub(crate) async fn write(api: &Api<Lease>, lease: &Lease, exists: bool) -> Result<Option<Lease>, kube::Error> {
    let written = if exists {
        let name = lease.metadata.name.as_deref().unwrap_or_default();
        api.replace(name, &PostParams::default(), lease).await
    } else {
        api.create(&PostParams::default(), lease).await
    };
    match written {
        Ok(lease) => Ok(Some(lease)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(error) => Err(error),
    }
}
