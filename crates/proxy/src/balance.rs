//! Picking the endpoint of a backend for one request, by the route's [`Balance`]: round
//! robin, peak EWMA, a consistent hash of a request key, or a sticky cookie (which may
//! need a `Set-Cookie` on the response).

use std::net::SocketAddr;
use std::time::SystemTime;

use http::header::{HeaderValue, USER_AGENT};
use http::request::Parts;
use sluice_config::{cookie, stable_hash, Affinity, AffinityMode, Backend, Balance};

use crate::filters::Arrival;

/// The endpoint for an attempt, and the cookie that pins the client to it when one must be
/// (re)set.
#[derive(Debug)]
pub(crate) struct Choice {
    pub endpoint: SocketAddr,
    pub set_cookie: Option<HeaderValue>,
}

impl Choice {
    fn plain(endpoint: SocketAddr) -> Self {
        Self { endpoint, set_cookie: None }
    }
}

/// The endpoint for the first attempt; `None` when the backend has none ready.
pub(crate) fn first(
    balance: &Balance,
    backend: &Backend,
    parts: &Parts,
    arrival: Option<&Arrival<'_>>,
    https: bool,
) -> Option<Choice> {
    match balance {
        Balance::RoundRobin => backend.pick().map(Choice::plain),
        Balance::Ewma => backend.pick_least_loaded().map(Choice::plain),
        Balance::Hash(key) => {
            let mut text = String::new();
            if let Some(arrival) = arrival {
                key.render(&arrival.facts(parts), None, &mut text);
            }
            key.pick(backend, stable_hash(0, &[text.as_bytes()])).map(Choice::plain)
        }
        Balance::Cookie(affinity) => {
            let agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
            let sent = cookie(&parts.headers, &affinity.name).filter(|v| !v.is_empty());
            match (affinity.mode, sent) {
                (AffinityMode::Balanced, Some(key)) => {
                    backend.pick_hashed(stable_hash(0, &[key.as_bytes()])).map(Choice::plain)
                }
                (AffinityMode::Persistent, Some(key)) => match backend.endpoint_of_key(key) {
                    Some(endpoint) => Some(Choice::plain(endpoint)),
                    None => pin(affinity, backend, None, https, agent),
                },
                (_, None) => pin(affinity, backend, None, https, agent),
            }
        }
    }
}

/// The endpoint for another attempt after `failed` did not answer.
pub(crate) fn next(balance: &Balance, backend: &Backend, failed: SocketAddr, https: bool) -> Option<Choice> {
    match balance {
        Balance::Ewma => backend.pick_least_loaded().map(Choice::plain),
        Balance::Cookie(affinity) if !affinity.change_on_failure => Some(Choice::plain(failed)),
        Balance::Cookie(affinity) => pin(affinity, backend, Some(failed), https, None),
        Balance::RoundRobin | Balance::Hash(_) => backend.pick().map(Choice::plain),
    }
}

/// A new endpoint for a client without a (usable) cookie, other than `avoid` when there is
/// another, and the cookie naming it.
fn pin(
    affinity: &Affinity,
    backend: &Backend,
    avoid: Option<SocketAddr>,
    https: bool,
    agent: Option<&str>,
) -> Option<Choice> {
    let (endpoint, value) = match affinity.mode {
        AffinityMode::Persistent => {
            let endpoint = (0..backend.endpoints.len().max(1))
                .filter_map(|_| backend.pick())
                .find(|e| Some(*e) != avoid)
                .or_else(|| backend.pick())?;
            (endpoint, backend.endpoint_key(endpoint))
        }
        AffinityMode::Balanced => {
            // A random key on the ring; a few draws find one off the failed endpoint.
            let mut drawn = None;
            for _ in 0..16 {
                let key = format!("{:016x}", fastrand::u64(..));
                let endpoint = backend.pick_hashed(stable_hash(0, &[key.as_bytes()]))?;
                drawn = Some((endpoint, key));
                if Some(endpoint) != avoid {
                    break;
                }
            }
            drawn?
        }
    };
    let cookie = affinity.set_cookie(&value, https, agent, SystemTime::now());
    Some(Choice { endpoint, set_cookie: HeaderValue::from_str(&cookie).ok() })
}
