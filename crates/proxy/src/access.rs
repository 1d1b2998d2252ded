//! Enforcing a route's protection before anything of a request is forwarded or mirrored:
//! its [`RateLimit`] first (nginx's preaccess phase), then its [`Access`] rules (address
//! lists, and, combined by `satisfy`, the authentication they name).

use std::net::IpAddr;

use http::StatusCode;
use sluice_config::{Access, AddressVerdict, Filter, RateLimit, Route};

use crate::metrics::Metrics;
use crate::rate_limit::{Limiters, Slot};

/// Why a request was refused, and with what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Denial {
    /// The `reason` label of `sluice_http_requests_denied_total`.
    pub reason: Reason,
    /// The answer.
    pub status: StatusCode,
}

/// What refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The address lists.
    Address,
    /// A request rate (`limit-rps`, `limit-rpm`).
    RateLimit,
    /// The concurrency limit (`limit-connections`).
    ConnectionLimit,
}

impl Reason {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Address => "address",
            Reason::RateLimit => "rate_limit",
            Reason::ConnectionLimit => "connection_limit",
        }
    }
}

/// Checks the request of `client` (the real client address) against the route's limits
/// and access rules: `Ok` with the concurrency slot it holds while in progress, if limited.
pub(crate) async fn admit(
    limiters: &Limiters,
    metrics: &Metrics,
    route: &Route,
    client: IpAddr,
) -> Result<Option<Slot>, Denial> {
    let mut slot = None;
    for filter in &*route.filters {
        match filter {
            Filter::RateLimit(limits) => slot = limit(limiters, metrics, limits, client).await?,
            Filter::Access(access) => check(access, client)?,
            _ => {}
        }
    }
    Ok(slot)
}

async fn limit(
    limiters: &Limiters,
    metrics: &Metrics,
    limits: &RateLimit,
    client: IpAddr,
) -> Result<Option<Slot>, Denial> {
    let client = sluice_config::canonical(client);
    if limits.exempt.as_ref().is_some_and(|exempt| exempt.contains(client)) {
        return Ok(None);
    }
    let over_rate = Denial { reason: Reason::RateLimit, status: limits.rate_status };
    for rate in [&limits.per_second, &limits.per_minute].into_iter().flatten() {
        if !limiters.admit_rate(rate, client, || metrics.redis_unavailable()).await {
            return Err(over_rate);
        }
    }
    match &limits.connections {
        Some(limit) => limiters
            .acquire(limit, client)
            .map(Some)
            .ok_or(Denial { reason: Reason::ConnectionLimit, status: limits.connection_status }),
        None => Ok(None),
    }
}

fn check(access: &Access, client: IpAddr) -> Result<(), Denial> {
    match access.addresses(client) {
        AddressVerdict::Refused => Err(Denial { reason: Reason::Address, status: StatusCode::FORBIDDEN }),
        AddressVerdict::Allowed | AddressVerdict::Unlisted => Ok(()),
    }
}

/// Whether the route has limits or access rules to check.
pub(crate) fn guards(route: &Route) -> bool {
    route.filters.iter().any(|f| matches!(f, Filter::RateLimit(_) | Filter::Access(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{AddressSet, Satisfy};

    #[test]
    fn address_lists_decide() {
        let access = Access { allow: Some(AddressSet::parse("127.0.0.2").unwrap()), deny: None, satisfy: Satisfy::All };
        assert_eq!(check(&access, "127.0.0.2".parse().unwrap()), Ok(()));
        let denial = check(&access, "127.0.0.3".parse().unwrap()).unwrap_err();
        assert_eq!((denial.reason, denial.status), (Reason::Address, StatusCode::FORBIDDEN));
    }
}
