//! State kept per runtime worker thread: each worker returns to and takes from its own
//! share first (a lock no other worker contends for, memory that stays in its core's
//! cache), as nginx's upstream keep-alive pools are per worker process; a worker whose
//! share has nothing looks in the others' before making anything new.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Shares for up to this many threads; more threads share them round-robin.
const SHARES: usize = 16;

/// Which share a thread uses, given out in turn on first use.
static NEXT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARES;
}

/// One `T` per worker thread.
#[derive(Debug)]
pub(crate) struct PerWorker<T> {
    shares: Box<[T]>,
}

impl<T: Default> Default for PerWorker<T> {
    fn default() -> Self {
        Self { shares: (0..SHARES).map(|_| T::default()).collect() }
    }
}

impl<T> PerWorker<T> {
    /// The calling thread's share.
    pub(crate) fn local(&self) -> &T {
        &self.shares[self.local_index()]
    }

    /// Every share, the calling thread's first.
    pub(crate) fn local_first(&self) -> impl Iterator<Item = &T> {
        let start = self.local_index();
        self.shares[start..].iter().chain(&self.shares[..start])
    }

    fn local_index(&self) -> usize {
        SHARE.with(|share| *share) % self.shares.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn each_thread_keeps_to_its_share() {
        let state: std::sync::Arc<PerWorker<Mutex<Vec<u32>>>> = Default::default();
        state.local().lock().unwrap().push(1);
        let other = state.clone();
        let seen = std::thread::spawn(move || other.local().lock().unwrap().clone()).join().unwrap();
        assert!(seen.is_empty(), "another thread sees its own share");
        assert_eq!(*state.local().lock().unwrap(), [1]);
        let other = state.clone();
        let found = std::thread::spawn(move || other.local_first().find_map(|share| share.lock().unwrap().pop()));
        assert_eq!(found.join().unwrap(), Some(1), "the others' shares are looked in after its own");
    }
}
