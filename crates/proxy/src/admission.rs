//! Who may hold a connection: caps on client connections in all and per client address, so
//! that one greedy or malicious client cannot take every socket and task from the others.
//! A connection over a cap is closed at once (before TLS or HTTP) and counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use sluice_config::canonical;

/// The caps; 0 means no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Client connections open at once, all listeners together.
    pub total: usize,
    /// Client connections open at once from one address.
    pub per_client: usize,
}

impl Default for ConnectionLimits {
    /// 65,536 in all, no per-client cap (nginx has none by default either).
    fn default() -> Self {
        Self { total: 65_536, per_client: 0 }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverLimit {
    Total,
    PerClient,
}

impl OverLimit {
    /// The `reason` label of `sluice_connections_refused_total`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OverLimit::Total => "total",
            OverLimit::PerClient => "per_client",
        }
    }
}

/// Open client connections, counted against [`ConnectionLimits`].
#[derive(Debug)]
pub(crate) struct Admission {
    limits: ConnectionLimits,
    open: AtomicUsize,
    by_client: Mutex<HashMap<IpAddr, usize>>,
}

impl Admission {
    pub(crate) fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self { limits, open: AtomicUsize::new(0), by_client: Mutex::new(HashMap::new()) })
    }

    /// Admits a connection from `client`; the ticket gives its place back when dropped.
    pub(crate) fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Ticket, OverLimit> {
        let open = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if self.limits.total != 0 && open > self.limits.total {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(OverLimit::Total);
        }
        let client = canonical(client);
        if self.limits.per_client != 0 {
            let mut by_client = self.by_client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let count = by_client.entry(client).or_insert(0);
            if *count >= self.limits.per_client {
                drop(by_client);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(OverLimit::PerClient);
            }
            *count += 1;
        }
        Ok(Ticket { admission: self.clone(), client })
    }
}

/// A place held by one open connection.
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Ordering::AcqRel);
        if self.admission.limits.per_client != 0 {
            let mut by_client = self.admission.by_client.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(count) = by_client.get_mut(&self.client) {
                *count -= 1;
                if *count == 0 {
                    by_client.remove(&self.client);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_places_come_back() {
        let admission = Admission::new(ConnectionLimits { total: 3, per_client: 2 });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), OverLimit::PerClient);
        let _third = admission.admit(b).unwrap();
        assert_eq!(admission.admit(b).unwrap_err(), OverLimit::Total);
        drop(first);
        assert!(admission.admit("::ffff:192.0.2.1".parse().unwrap()).is_ok(), "IPv4-mapped is the same client");
        assert!(admission.by_client.lock().unwrap().len() <= 2);
    }
}
