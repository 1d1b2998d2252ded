//! Idle tracking shared by the two directions of a connection or flow.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// When bytes last moved, as milliseconds since creation, so both directions (and the UDP
/// receive loop) can record activity without a lock.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Self { start: Instant::now(), last_ms: AtomicU64::new(0) }
    }

    /// Records that bytes moved now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long nothing has moved.
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Completes once nothing has moved for `timeout`; never when `timeout` is zero (no idle
    /// timeout configured).
    pub async fn expired(&self, timeout: Duration) {
        if timeout.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let idle = self.idle_for();
            if idle >= timeout {
                return;
            }
            tokio::time::sleep(timeout - idle).await;
        }
    }

    /// The instant this becomes idle for `timeout` if nothing moves meanwhile, saturating far
    /// in the future for zero (disabled) or absurdly long timeouts.
    pub fn deadline(&self, timeout: Duration) -> Instant {
        let far = Duration::from_secs(100 * 365 * 24 * 3600);
        let remaining = if timeout.is_zero() { far } else { timeout.saturating_sub(self.idle_for()).min(far) };
        Instant::now() + remaining
    }
}
