//! The counters behind a route's [`RateLimit`]: a GCRA table per rate (nginx's
//! `limit_req … nodelay`: `burst` requests beyond the steady rate pass at once, then one per
//! interval) and a table of requests in progress per concurrency limit, both per client
//! address and bounded in size. Tables are kept by zone name, so a configuration change
//! that leaves a limit as it was keeps its counters. With `--rate-limit-redis`, rates are
//! counted in Redis for all replicas ([`redis`]), these tables standing in while it is away.

mod redis;

pub use redis::SharedRates;

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sluice_config::{Concurrency, Rate};

/// Shards per table, so that clients rarely wait for each other.
const SHARDS: usize = 16;
/// Clients remembered per shard: beyond, clients whose counters are spent are forgotten,
/// and if none is, a new client is refused (never let through uncounted).
const CLIENTS_PER_SHARD: usize = 4096;

/// Every rate and concurrency table, by zone, and the shared counters when configured.
#[derive(Debug, Default)]
pub(crate) struct Limiters {
    rates: RwLock<HashMap<Arc<str>, Arc<RateTable>>>,
    concurrency: RwLock<HashMap<Arc<str>, Arc<ConcurrencyTable>>>,
    shared: Option<SharedRates>,
}

impl Limiters {
    /// Limiters counting in this replica only, or in `shared` Redis when given.
    pub(crate) fn new(shared: Option<SharedRates>) -> Self {
        Self { shared, ..Self::default() }
    }

    /// Whether `client` may make one more request at `rate` now: across replicas when
    /// Redis is configured and answers, else by this replica's counters (`fell_back` is
    /// called when Redis should have answered and did not).
    pub(crate) async fn admit_rate(&self, rate: &Rate, client: IpAddr, fell_back: impl FnOnce()) -> bool {
        if let Some(shared) = &self.shared {
            match shared.admit(rate, client).await {
                Some(verdict) => return verdict,
                None => fell_back(),
            }
        }
        table(&self.rates, &rate.zone, || RateTable::new(rate)).admit(client, Instant::now())
    }

    /// A slot for one more request of `client` in progress, if under `limit`.
    pub(crate) fn acquire(&self, limit: &Concurrency, client: IpAddr) -> Option<Slot> {
        let table = table(&self.concurrency, &limit.zone, || ConcurrencyTable::new(limit.limit));
        table.acquire(client).then_some(Slot { table, client })
    }
}

/// Zones kept before idle ones are forgotten (zones of limits no longer configured stay
/// until then; an idle table is the same as a fresh one).
const MAX_ZONES: usize = 1024;

/// A table that may be dropped when it holds nothing that a fresh one would not.
trait Idle {
    fn idle(&self, now: Instant) -> bool;
}

/// The table of `zone`, created on first use.
fn table<T: Idle>(tables: &RwLock<HashMap<Arc<str>, Arc<T>>>, zone: &Arc<str>, create: impl FnOnce() -> T) -> Arc<T> {
    if let Some(table) = tables.read().unwrap_or_else(PoisonError::into_inner).get(zone) {
        return table.clone();
    }
    let mut tables = tables.write().unwrap_or_else(PoisonError::into_inner);
    if tables.len() >= MAX_ZONES && !tables.contains_key(zone) {
        let now = Instant::now();
        // In use (a slot holds it) or still counting: kept.
        tables.retain(|_, table| Arc::strong_count(table) > 1 || !table.idle(now));
    }
    tables.entry(zone.clone()).or_insert_with(|| Arc::new(create())).clone()
}

/// Client-keyed shards.
#[derive(Debug)]
struct Shards<V> {
    shards: Box<[Mutex<HashMap<IpAddr, V>>]>,
    hasher: foldhash::fast::RandomState,
}

impl<V> Shards<V> {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, client: &IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, V>> {
        let index = self.hasher.hash_one(client) as usize % self.shards.len();
        self.shards[index].lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One rate's counters: each client's theoretical arrival time.
#[derive(Debug)]
struct RateTable {
    clients: Shards<Instant>,
    interval: Duration,
    tolerance: Duration,
}

impl RateTable {
    fn new(rate: &Rate) -> Self {
        Self { clients: Shards::new(), interval: rate.interval(), tolerance: rate.tolerance() }
    }

    fn admit(&self, client: IpAddr, now: Instant) -> bool {
        let mut shard = self.clients.shard(&client);
        let due = shard.get(&client).copied().filter(|due| *due > now).unwrap_or(now);
        if due - now > self.tolerance {
            return false;
        }
        if !shard.contains_key(&client) && shard.len() >= CLIENTS_PER_SHARD {
            shard.retain(|_, due| *due > now);
            if shard.len() >= CLIENTS_PER_SHARD {
                return false;
            }
        }
        shard.insert(client, due + self.interval);
        true
    }
}

impl Idle for RateTable {
    fn idle(&self, now: Instant) -> bool {
        self.clients
            .shards
            .iter()
            .all(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).values().all(|due| *due <= now))
    }
}

/// One concurrency limit's counters: requests in progress per client.
#[derive(Debug)]
struct ConcurrencyTable {
    clients: Shards<u32>,
    limit: u32,
}

impl ConcurrencyTable {
    fn new(limit: u32) -> Self {
        Self { clients: Shards::new(), limit }
    }

    fn acquire(&self, client: IpAddr) -> bool {
        let mut shard = self.clients.shard(&client);
        let full = shard.len() >= CLIENTS_PER_SHARD && !shard.contains_key(&client);
        let count = shard.entry(client).or_insert(0);
        if full || *count >= self.limit {
            if *count == 0 {
                shard.remove(&client);
            }
            return false;
        }
        *count += 1;
        true
    }

    fn release(&self, client: IpAddr) {
        let mut shard = self.clients.shard(&client);
        if let Some(count) = shard.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                shard.remove(&client);
            }
        }
    }
}

impl Idle for ConcurrencyTable {
    fn idle(&self, _now: Instant) -> bool {
        self.clients.shards.iter().all(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).is_empty())
    }
}

/// A request in progress under a concurrency limit; released when dropped (with the
/// response body, so a long download keeps counting, as nginx's `limit_conn`).
#[derive(Debug)]
pub(crate) struct Slot {
    table: Arc<ConcurrencyTable>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.release(self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(limit: u32, burst: u32) -> Rate {
        Rate { zone: format!("t {limit} {burst}").into(), limit, burst, period: Duration::from_secs(1) }
    }

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let table = RateTable::new(&rate(10, 4));
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let start = Instant::now();
        let passed = (0..20).filter(|_| table.admit(client, start)).count();
        assert_eq!(passed, 5, "burst + 1 at once, as nginx's nodelay");
        assert!(!table.admit(client, start + Duration::from_millis(50)));
        assert!(table.admit(client, start + Duration::from_millis(110)), "one interval later");
        assert!(table.admit("192.0.2.2".parse().unwrap(), start), "other clients have their own");
    }

    #[test]
    fn slots_count_until_dropped() {
        let limiters = Limiters::default();
        let limit = Concurrency { zone: "c".into(), limit: 2 };
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let first = limiters.acquire(&limit, client).unwrap();
        let _second = limiters.acquire(&limit, client).unwrap();
        assert!(limiters.acquire(&limit, client).is_none());
        drop(first);
        assert!(limiters.acquire(&limit, client).is_some());
    }

    #[test]
    fn idle_zones_are_forgotten_past_the_cap_and_live_ones_kept() {
        let limiters = Limiters::default();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let held = limiters.acquire(&Concurrency { zone: "held".into(), limit: 1 }, client).unwrap();
        for i in 0..MAX_ZONES + 10 {
            let _ = limiters.acquire(&Concurrency { zone: format!("z{i}").into(), limit: 1 }, client);
        }
        let zones = limiters.concurrency.read().unwrap().len();
        assert!(zones <= MAX_ZONES, "{zones}");
        assert!(limiters.acquire(&Concurrency { zone: "held".into(), limit: 1 }, client).is_none(), "still counted");
        drop(held);
    }

    #[test]
    fn a_full_table_refuses_new_clients_rather_than_forgetting_live_ones() {
        let table = RateTable::new(&rate(1, 0));
        let now = Instant::now();
        let admitted = (0..(SHARDS * CLIENTS_PER_SHARD * 2) as u32)
            .filter(|i| table.admit(IpAddr::from(i.to_be_bytes()), now))
            .count();
        assert!(admitted <= SHARDS * CLIENTS_PER_SHARD);
        assert!(admitted > SHARDS * CLIENTS_PER_SHARD / 2);
        let later = now + Duration::from_secs(2);
        assert!(table.admit("198.51.100.1".parse().unwrap(), later), "spent counters are forgotten");
    }
}
