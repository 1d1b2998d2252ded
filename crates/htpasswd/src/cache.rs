//! Remembers successful verifications, because bcrypt at htpasswd's default cost takes ~10 ms
//! of CPU and a browser sends the same credentials with every request.
//!
//! Entries are keyed digests of (user, password): HMAC-SHA-256 under a key drawn for each cache.
//! The password is never kept, and neither is a plain digest of it, which would be a fast
//! unsalted hash to brute-force from a memory dump. HMAC is built here on sha2 (already
//! in the graph through sha-crypt) rather than taking another crate for twenty lines.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

/// How many successful (user, password) pairs one [`Cache`] remembers; the oldest goes first.
/// A few hundred users of one Ingress log in at once at most; 1,024 digests are 32 KiB or so.
pub(crate) const CAPACITY: usize = 1024;

/// The keyed digest of one (user, password).
pub(crate) type Key = [u8; 32];

/// A bounded set of keyed digests of (user, password) pairs that verified.
pub(crate) struct Cache {
    /// SHA-256 after absorbing the HMAC key XOR ipad.
    inner: Sha256,
    /// SHA-256 after absorbing the HMAC key XOR opad.
    outer: Sha256,
    recent: Mutex<Recent>,
}

#[derive(Default)]
struct Recent {
    keys: HashSet<Key>,
    /// The same keys, oldest first, for eviction.
    order: VecDeque<Key>,
}

impl Cache {
    /// An empty cache with a fresh random key.
    pub(crate) fn new() -> Cache {
        Cache::with_key(random_key())
    }

    fn with_key(key: [u8; 32]) -> Cache {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key);
        let pad = |byte: u8| Sha256::new().chain_update(block.map(|b| b ^ byte));
        Cache { inner: pad(0x36), outer: pad(0x5c), recent: Mutex::default() }
    }

    /// The keyed digest of the user's length, the user and the password (the length keeps
    /// ("ab", "c") and ("a", "bc") apart).
    pub(crate) fn key(&self, user: &str, password: &[u8]) -> Key {
        self.hmac(&[&(user.len() as u64).to_le_bytes(), user.as_bytes(), password])
    }

    /// HMAC-SHA-256 of the concatenated `parts` under this cache's key.
    fn hmac(&self, parts: &[&[u8]]) -> Key {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        self.outer.clone().chain_update(inner.finalize()).finalize().into()
    }

    /// Whether `key` verified before (and is still remembered).
    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.lock().keys.contains(key)
    }

    /// Remembers `key`, forgetting the oldest when full.
    pub(crate) fn insert(&self, key: Key) {
        let mut recent = self.lock();
        if recent.keys.insert(key) {
            recent.order.push_back(key);
            if recent.order.len() > CAPACITY {
                if let Some(oldest) = recent.order.pop_front() {
                    recent.keys.remove(&oldest);
                }
            }
        }
    }

    /// Nothing panics while the lock is held, but a poisoned set is still a valid set.
    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// 32 bytes from std's `RandomState`, whose SipHash keys the standard library draws from the
/// operating system's random source ("a reasonable best-effort is made to generate this seed
/// from a high quality, secure source of randomness", std's `HashMap` docs): 128 bits of
/// entropy per thread, each new `RandomState` a different key. That is plenty for an HMAC key
/// that never leaves the process, and it needs no random-number crate.
fn random_key() -> [u8; 32] {
    let state = RandomState::new();
    let mut key = [0u8; 32];
    for (index, chunk) in key.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&state.hash_one(index).to_le_bytes());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_user_password_and_cache() {
        let cache = Cache::new();
        let key = cache.key("ab", b"c");
        assert_eq!(key, cache.key("ab", b"c"));
        assert_ne!(key, cache.key("a", b"bc"));
        assert_ne!(key, cache.key("ab", b"d"));
        assert_ne!(key, Cache::new().key("ab", b"c"), "each cache has its own key");
    }

    #[test]
    fn is_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", which HMAC pads with zeros as `with_key` does.
        let mut key = [0u8; 32];
        key[..4].copy_from_slice(b"Jefe");
        let mac = Cache::with_key(key).hmac(&[b"what do ya ", b"want for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn forgets_the_oldest_when_full() {
        let cache = Cache::new();
        let keys: Vec<Key> = (0..=CAPACITY).map(|i| cache.key(&i.to_string(), b"pw")).collect();
        for key in &keys {
            cache.insert(*key);
            cache.insert(*key); // a second insert neither duplicates nor evicts
        }
        assert!(!cache.contains(&keys[0]));
        assert!(keys[1..].iter().all(|key| cache.contains(key)));
        assert_eq!(cache.lock().order.len(), CAPACITY);
        assert_eq!(cache.lock().keys.len(), CAPACITY);
    }
}
