//! Request-rate and concurrency limits per client address, as ingress-nginx's `limit-rps`,
//! `limit-rpm` and `limit-connections` (nginx's `limit_req … nodelay` and `limit_conn`).
//! The settings live here; the counters live in the data plane, keyed by [`Rate::zone`] so
//! that they survive configuration changes that leave a limit as it was.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

use crate::AddressSet;

/// The limits of a route.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Requests per second (`limit-rps`), when limited.
    pub per_second: Option<Rate>,
    /// Requests per minute (`limit-rpm`), when limited.
    pub per_minute: Option<Rate>,
    /// Requests in progress at once (`limit-connections`), when limited.
    pub connections: Option<Concurrency>,
    /// Clients never limited (`limit-allowlist`).
    pub exempt: Option<AddressSet>,
    /// The answer over a rate (`limit-req-status-code`, 503 by default).
    pub rate_status: StatusCode,
    /// The answer over the concurrency limit (`limit-conn-status-code`, 503 by default).
    pub connection_status: StatusCode,
}

/// A rate: `limit` requests per `period`, with `burst` more allowed at once (nginx's
/// `burst`, with `nodelay`: the burst is served at once, not queued).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// Whose counters: the Ingress and the setting, e.g. `default/api rps 5 burst 25`.
    pub zone: Arc<str>,
    /// Requests per period.
    pub limit: u32,
    /// Extra requests allowed at once.
    pub burst: u32,
    /// One second or one minute.
    pub period: Duration,
}

impl Rate {
    /// The time one request uses up: the period divided by the limit.
    pub fn interval(&self) -> Duration {
        self.period / self.limit.max(1)
    }

    /// How far ahead of the steady rate a client may be before it is refused.
    pub fn tolerance(&self) -> Duration {
        self.interval() * self.burst
    }
}

/// A cap on requests in progress from one client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Concurrency {
    /// Whose counters: the Ingress and the setting.
    pub zone: Arc<str>,
    /// Requests in progress at once.
    pub limit: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_tolerance_follow_nginx() {
        let rate = Rate { zone: "z".into(), limit: 5, burst: 25, period: Duration::from_secs(1) };
        assert_eq!(rate.interval(), Duration::from_millis(200));
        assert_eq!(rate.tolerance(), Duration::from_secs(5));
        let per_minute = Rate { zone: "z".into(), limit: 30, burst: 150, period: Duration::from_secs(60) };
        assert_eq!(per_minute.interval(), Duration::from_secs(2));
    }
}
