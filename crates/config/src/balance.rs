//! How a route spreads requests over a backend's endpoints: round robin, peak EWMA, a
//! consistent hash of a request key, or a sticky cookie (ingress-nginx's `load-balance`,
//! `upstream-hash-by`, `affinity`; Gateway API's session persistence later).

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use crate::backend::Backend;
use crate::same_site::same_site_none_is_safe;
use crate::template::{RequestFacts, Template};

/// A route's balancing policy, compiled at translation.
#[derive(Debug, Clone, Default)]
pub enum Balance {
    /// Each endpoint in turn (ingress-nginx's `round_robin`, the default).
    #[default]
    RoundRobin,
    /// The less loaded of two random endpoints, by peak-EWMA response time times requests
    /// in flight (ingress-nginx's `ewma`).
    Ewma,
    /// A consistent hash of a request key (`upstream-hash-by`): the same key goes to the
    /// same endpoint (or subset of endpoints), and a change of endpoints moves few keys.
    Hash(HashBy),
    /// Sticky sessions by cookie (`affinity: cookie`).
    Cookie(Box<Affinity>),
}

/// What `upstream-hash-by` hashes and onto what: a key filled from the request, mapped to
/// one endpoint, or (`upstream-hash-by-subset`) to a subset of endpoints of which a random
/// one serves each request, so that one hot key spreads over a few endpoints.
#[derive(Debug, Clone)]
pub struct HashBy {
    /// The key (`$request_uri`, `$http_x_user`, …).
    pub key: Template,
    /// `upstream-hash-by-subset-size` when `upstream-hash-by-subset` is on: the endpoints
    /// (in address order) form groups of this many, the last one filled up by wrapping
    /// around to the first endpoints, as ingress-nginx's `chashsubset` does.
    pub subset: Option<NonZeroU32>,
}

impl HashBy {
    /// A key hashed onto single endpoints.
    pub fn new(key: Template) -> Self {
        Self { key, subset: None }
    }

    /// Writes the key for this request to `out` (see [`Template::render`]).
    pub fn render(&self, facts: &RequestFacts<'_>, captures: Option<&regex::Captures<'_>>, out: &mut String) {
        self.key.render(facts, captures, out);
    }

    /// The endpoint of `backend` for a key whose hash is `hash`.
    pub fn pick(&self, backend: &Backend, hash: u64) -> Option<SocketAddr> {
        match self.subset {
            None => backend.pick_hashed(hash),
            Some(size) => backend.pick_hashed_subset(hash, size),
        }
    }
}

impl fmt::Display for HashBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.subset {
            None => write!(f, "{}", self.key),
            Some(size) => write!(f, "{} over subsets of {size}", self.key),
        }
    }
}

/// Jump consistent hash (Lamping and Veach, 2014): `key` to a bucket in `0..buckets` (at
/// least one), moving only about `1/buckets` of the keys when a bucket is added. No table.
pub(crate) fn jump_hash(mut key: u64, buckets: u64) -> u64 {
    let (mut bucket, mut next) = (0u64, 0u64);
    while next < buckets {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as u64;
    }
    bucket
}

/// A session-affinity cookie and its attributes.
#[derive(Debug, Clone)]
pub struct Affinity {
    /// `session-cookie-name` (default `INGRESSCOOKIE`).
    pub name: String,
    /// `affinity-mode`.
    pub mode: AffinityMode,
    /// `Path` (`session-cookie-path`, else the Ingress path as written).
    pub path: String,
    /// `Domain` (`session-cookie-domain`).
    pub domain: Option<String>,
    /// `Expires` = now + this (`session-cookie-expires`).
    pub expires: Option<Duration>,
    /// `Max-Age` (`session-cookie-max-age`).
    pub max_age: Option<u64>,
    /// `SameSite` as written (`session-cookie-samesite`: None, Lax or Strict).
    pub same_site: Option<String>,
    /// `session-cookie-conditional-samesite-none`: `SameSite=None` is left out for browsers
    /// that reject or misread it ([`same_site_none_is_safe`]).
    pub conditional_same_site_none: bool,
    /// `session-cookie-secure`: always `Secure` (otherwise only over https).
    pub secure: bool,
    /// `session-cookie-change-on-failure`: a retry goes to another endpoint and the cookie
    /// is set again (otherwise retries stay on the cookie's endpoint).
    pub change_on_failure: bool,
}

/// How a cookie names its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AffinityMode {
    /// A random key placed on the consistent-hash ring: a scale-out moves some sessions,
    /// a stale cookie still maps to a live endpoint (no new cookie).
    Balanced,
    /// The cookie names the endpoint itself: sessions never move while it lives; when it
    /// is gone, another endpoint is chosen and the cookie set again.
    Persistent,
}

impl Affinity {
    /// The `Set-Cookie` value for `value`; `https` says whether the request came over TLS,
    /// `user_agent` is the request's `User-Agent` (unknown: taken for a current browser).
    pub fn set_cookie(&self, value: &str, https: bool, user_agent: Option<&str>, now: std::time::SystemTime) -> String {
        let mut cookie = format!("{}={}; Path={}", self.name, value, self.path);
        if let Some(expires) = self.expires {
            cookie.push_str("; Expires=");
            cookie.push_str(&httpdate::fmt_http_date(now + expires));
        }
        if let Some(max_age) = self.max_age {
            cookie.push_str(&format!("; Max-Age={max_age}"));
        }
        if let Some(domain) = &self.domain {
            cookie.push_str("; Domain=");
            cookie.push_str(domain);
        }
        if self.secure || https {
            cookie.push_str("; Secure");
        }
        cookie.push_str("; HttpOnly");
        // As ingress-nginx: only the value written exactly `None` is conditional.
        let unsafe_none = |same_site: &str| {
            self.conditional_same_site_none
                && same_site == "None"
                && user_agent.is_some_and(|agent| !same_site_none_is_safe(agent))
        };
        if let Some(same_site) = self.same_site.as_deref().filter(|s| !unsafe_none(s)) {
            cookie.push_str("; SameSite=");
            cookie.push_str(same_site);
        }
        cookie
    }
}

/// A stable 64-bit hash (FNV-1a, then a SplitMix64 finish for spread): the same on every
/// replica and across restarts, so that hashing and persistent cookies agree between them.
pub fn stable_hash(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325 ^ seed;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// Maglev table sizes (primes): the small one up to [`SMALL_TABLE_ENDPOINTS`] endpoints (at
/// least 100 slots each), the large one above. The size must not follow every change of the
/// endpoint count: a new size would move nearly every key.
const SMALL_TABLE: usize = 16_381;
const LARGE_TABLE: usize = 65_521;
const SMALL_TABLE_ENDPOINTS: usize = 160;

/// A Maglev lookup table (Eisenbud et al., NSDI 2016): a key hashes to a slot, each slot
/// names an endpoint. Every endpoint owns nearly the same number of slots, and when one is
/// added or removed only about its share of slots changes owner.
#[derive(Debug)]
pub struct Maglev {
    slots: Box<[u32]>,
}

impl Maglev {
    /// The table for `endpoints` (at least one).
    pub fn new(endpoints: &[SocketAddr]) -> Self {
        let n = endpoints.len();
        let size = if n <= SMALL_TABLE_ENDPOINTS { SMALL_TABLE } else { LARGE_TABLE };
        let mut slots = vec![u32::MAX; size];
        if n == 0 {
            return Self { slots: slots.into() };
        }
        let permutations: Vec<(usize, usize)> = endpoints
            .iter()
            .map(|endpoint| {
                let name = endpoint.to_string();
                let offset = stable_hash(1, &[name.as_bytes()]) as usize % size;
                let skip = stable_hash(2, &[name.as_bytes()]) as usize % (size - 1) + 1;
                (offset, skip)
            })
            .collect();
        let mut next = vec![0usize; n];
        let mut filled = 0;
        'fill: loop {
            for (i, &(offset, skip)) in permutations.iter().enumerate() {
                let mut slot = (offset + next[i] * skip) % size;
                while slots[slot] != u32::MAX {
                    next[i] += 1;
                    slot = (offset + next[i] * skip) % size;
                }
                slots[slot] = u32::try_from(i).unwrap_or(0);
                next[i] += 1;
                filled += 1;
                if filled == size {
                    break 'fill;
                }
            }
        }
        Self { slots: slots.into() }
    }

    /// The index of the endpoint that `hash` maps to.
    pub fn lookup(&self, hash: u64) -> usize {
        self.slots[(hash % self.slots.len() as u64) as usize] as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: u16) -> Vec<SocketAddr> {
        (0..n).map(|i| SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 8080))).collect()
    }

    #[test]
    fn maglev_spreads_evenly_and_moves_few_keys() {
        let before = Maglev::new(&endpoints(10));
        let mut counts = [0usize; 10];
        for key in 0..100_000u64 {
            counts[before.lookup(stable_hash(0, &[&key.to_le_bytes()]))] += 1;
        }
        assert!(counts.iter().all(|&c| (8_000..12_000).contains(&c)), "{counts:?}");
        // One endpoint more: about 1/11 of the keys move, nearly all to the new one.
        let after = Maglev::new(&endpoints(11));
        let (mut moved, mut to_new) = (0, 0);
        for key in 0..100_000u64 {
            let hash = stable_hash(0, &[&key.to_le_bytes()]);
            let (a, b) = (before.lookup(hash), after.lookup(hash));
            if a != b {
                moved += 1;
                to_new += usize::from(b == 10);
            }
        }
        assert!(moved < 100_000 / 11 + 4_000, "{moved} keys moved");
        assert!(to_new * 10 > moved * 7, "{to_new} of {moved} moved to the new endpoint");
    }

    #[test]
    fn stable_hash_is_stable() {
        assert_eq!(stable_hash(0, &[b"a", b"b"]), stable_hash(0, &[b"a", b"b"]));
        assert_ne!(stable_hash(0, &[b"ab"]), stable_hash(0, &[b"a", b"b"]));
    }

    #[test]
    fn cookie_attributes() {
        let affinity = Affinity {
            name: "INGRESSCOOKIE".into(),
            mode: AffinityMode::Balanced,
            path: "/app".into(),
            domain: None,
            expires: None,
            max_age: Some(60),
            same_site: Some("Lax".into()),
            conditional_same_site_none: true,
            secure: false,
            change_on_failure: false,
        };
        let now = std::time::SystemTime::now();
        assert_eq!(
            affinity.set_cookie("k", false, None, now),
            "INGRESSCOOKIE=k; Path=/app; Max-Age=60; HttpOnly; SameSite=Lax"
        );
        assert!(affinity.set_cookie("k", true, None, now).contains("; Secure"));
        let chrome_60 = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.113 \
                         Safari/537.36";
        assert!(affinity.set_cookie("k", false, Some(chrome_60), now).ends_with("; SameSite=Lax"), "only None");
        let none = Affinity { same_site: Some("None".into()), ..affinity.clone() };
        assert!(none.set_cookie("k", false, Some(chrome_60), now).ends_with("; HttpOnly"));
        assert!(none.set_cookie("k", false, Some("Chrome/131.0.0.0 Safari"), now).ends_with("; SameSite=None"));
        assert!(none.set_cookie("k", false, None, now).ends_with("; SameSite=None"), "no User-Agent");
        let always = Affinity { conditional_same_site_none: false, ..none };
        assert!(always.set_cookie("k", false, Some(chrome_60), now).ends_with("; SameSite=None"));
    }

    #[test]
    fn jump_hash_is_consistent_and_even() {
        let mut counts = [0usize; 5];
        let mut moved = 0;
        for key in 0..50_000u64 {
            let hash = stable_hash(0, &[&key.to_le_bytes()]);
            let bucket = jump_hash(hash, 5);
            counts[bucket as usize] += 1;
            moved += usize::from(jump_hash(hash, 6) != bucket);
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
        assert!((7_000..9_700).contains(&moved), "about a sixth of the keys move: {moved}");
        assert_eq!(jump_hash(u64::MAX, 1), 0);
    }
}
