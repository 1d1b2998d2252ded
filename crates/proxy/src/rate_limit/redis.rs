//! Rates shared by every replica through Redis (`--rate-limit-redis`): one GCRA step per
//! request as a Lua script on Redis's own clock, so that replicas agree without agreeing on
//! time. Never in the way of traffic: each call has a small time budget, and when Redis
//! does not answer in it the request is limited by the replica's own counters (and counted
//! in `sluice_rate_limit_redis_unavailable_total`), with Redis left alone for a moment
//! before it is tried again.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sluice_config::Rate;

/// How long Redis is left alone after it failed to answer in time.
const BACKOFF: Duration = Duration::from_secs(1);

/// One GCRA step: KEYS[1] holds the client's theoretical arrival time (µs on Redis's clock);
/// ARGV[1] is the interval, ARGV[2] the tolerance, both µs. Returns 1 when the request
/// passes (and moves the time on), 0 when it is over the rate.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local due = tonumber(redis.call('GET', KEYS[1]) or now)
if due < now then due = now end
if due - now > tolerance then return 0 end
local next = due + interval
redis.call('SET', KEYS[1], next, 'PX', math.ceil((next - now) / 1000) + 1)
return 1
";

/// A connection to the Redis that holds the shared counters.
#[derive(Clone)]
pub struct SharedRates {
    connection: ConnectionManager,
    script: Arc<redis::Script>,
    budget: Duration,
    /// Until when (ms after `epoch`) Redis is skipped after a failure.
    skip_until: Arc<AtomicU64>,
    epoch: Instant,
}

impl std::fmt::Debug for SharedRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedRates").field("budget", &self.budget).finish_non_exhaustive()
    }
}

impl SharedRates {
    /// Prepares the connection to `url` (`redis://[:password@]host:port[/db]`; TLS is not
    /// built in), made on first use and remade in the background after failures; each
    /// request waits at most `budget` for Redis. Must be called within the Tokio runtime.
    pub fn connect(url: &str, budget: Duration) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("--rate-limit-redis {url:?}: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(budget));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("--rate-limit-redis {url:?}: {e}"))?;
        Ok(Self {
            connection,
            script: Arc::new(redis::Script::new(GCRA)),
            budget,
            skip_until: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        })
    }

    /// Whether `client` may make one more request at `rate` across all replicas; `None`
    /// when Redis did not answer in time (the caller limits locally).
    pub(crate) async fn admit(&self, rate: &Rate, client: IpAddr) -> Option<bool> {
        let now = self.epoch.elapsed().as_millis() as u64;
        if now < self.skip_until.load(Ordering::Relaxed) {
            return None;
        }
        let key = format!("sluice:rate:{}:{client}", rate.zone);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(key);
        invocation.arg(rate.interval().as_micros() as u64).arg(rate.tolerance().as_micros() as u64);
        let answer = tokio::time::timeout(self.budget, invocation.invoke_async::<i64>(&mut connection)).await;
        match answer {
            Ok(Ok(passed)) => Some(passed == 1),
            Ok(Err(e)) => self.failed(&e.to_string()),
            Err(_) => self.failed("no answer in time"),
        }
    }

    fn failed(&self, why: &str) -> Option<bool> {
        let now = self.epoch.elapsed().as_millis() as u64;
        let previous = self.skip_until.swap(now + BACKOFF.as_millis() as u64, Ordering::Relaxed);
        if previous + BACKOFF.as_millis() as u64 <= now {
            tracing::warn!(error = why, "rate-limit Redis unavailable: limiting with this replica's counters");
        }
        None
    }
}
