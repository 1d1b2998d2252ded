//! The one route model: what happens to a request once its host and path matched.
//!
//! Shaped after Gateway API's HTTPRoute rule — further match conditions, then filters, then
//! weighted backends (or a redirect) — so that Ingresses with their annotations and Gateway
//! API routes compile into the same values, and the data plane never knows which one it is
//! serving. Everything here was parsed at translation: header names and values, regexes,
//! templates; serving a request only compares and copies.

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;

use crate::backend::Transport;
use crate::balance::Balance;
use crate::template::cookie;
use crate::{Access, BackendId, Cors, ObjectRef, RateLimit, Template};

/// The routes that share one host and path match, tried in order: the first whose
/// conditions all hold serves the request (canary conditions come before the plain route).
#[derive(Debug)]
pub struct RouteGroup {
    /// The resource that holds this host and path (a canary's routes join its group).
    pub owner: Arc<ObjectRef>,
    /// In the order they are tried.
    pub routes: Box<[Route]>,
}

impl RouteGroup {
    /// A group of one unconditional route.
    pub fn single(route: Route) -> Self {
        Self { owner: route.owner.clone(), routes: Box::new([route]) }
    }

    /// Every backend the group's routes forward to, with its weight, in order.
    pub fn backends(&self) -> impl Iterator<Item = WeightedBackend> + '_ {
        self.routes.iter().filter_map(Route::forward).flat_map(|f| f.backends.iter().copied())
    }

    /// The route that serves a request with these headers, if any applies.
    pub fn select(&self, headers: &HeaderMap) -> Option<&Route> {
        self.routes.iter().find(|route| route.conditions.iter().all(|c| c.holds(headers)))
    }
}

/// One rule: conditions beyond host and path, filters, and where the request goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// The resource that defined this route.
    pub owner: Arc<ObjectRef>,
    /// `namespace/name` of the owner, the metrics label.
    pub label: Arc<str>,
    /// All must hold for this route to serve the request.
    pub conditions: Box<[Condition]>,
    /// Applied in order before forwarding (some answer the request themselves).
    pub filters: Box<[Filter]>,
    /// Forward to backends, or redirect.
    pub action: Action,
}

impl Route {
    /// The metrics label of a resource, `namespace/name`.
    pub fn label_of(owner: &ObjectRef) -> Arc<str> {
        format!("{}/{}", owner.namespace, owner.name).into()
    }

    /// The forwarding action, when the route forwards.
    pub fn forward(&self) -> Option<&Forward> {
        match &self.action {
            Action::Forward(forward) => Some(forward),
            Action::Redirect(_) | Action::Fail(_) => None,
        }
    }
}

/// A condition on the request beyond host and path.
#[derive(Debug, Clone)]
pub enum Condition {
    /// A request header's value.
    Header {
        /// The header.
        name: HeaderName,
        /// What its value must be.
        value: ValueMatch,
    },
    /// A cookie's value.
    Cookie {
        /// The cookie name.
        name: Box<str>,
        /// What its value must be.
        value: ValueMatch,
    },
    /// Holds for `weight` out of `total` requests, drawn at random for each (a canary's
    /// weight, when the canary and the main route balance differently).
    Random {
        /// Out of `total`.
        weight: u32,
        /// At least 1.
        total: u32,
    },
}

impl Condition {
    /// Whether the request's headers satisfy the condition.
    pub fn holds(&self, headers: &HeaderMap) -> bool {
        match self {
            Condition::Header { name, value } => {
                headers.get_all(name).iter().any(|v| v.to_str().is_ok_and(|v| value.matches(v)))
            }
            Condition::Cookie { name, value } => cookie(headers, name).is_some_and(|v| value.matches(v)),
            Condition::Random { weight, total } => fastrand::u32(..(*total).max(1)) < *weight,
        }
    }
}

/// How a value is compared.
#[derive(Debug, Clone)]
pub enum ValueMatch {
    /// Equal, case-sensitively.
    Exact(Box<str>),
    /// The regex finds a match anywhere in the value (anchor it to match the whole).
    Regex(regex::Regex),
}

impl ValueMatch {
    /// Whether `value` satisfies this.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            ValueMatch::Exact(expected) => **expected == *value,
            ValueMatch::Regex(regex) => regex.is_match(value),
        }
    }
}

/// A change to the request or response, or an early answer.
#[derive(Debug, Clone)]
pub enum Filter {
    /// Plain-HTTP requests are answered with a redirect to the same URL over https.
    HttpsRedirect {
        /// 301, 302, 307 or 308.
        code: StatusCode,
        /// Keep a trailing `/` of the request target (ingress-nginx drops it by default).
        preserve_trailing_slash: bool,
    },
    /// A request for exactly `/` is redirected here (ingress-nginx `app-root`).
    AppRoot {
        /// The absolute path to redirect to.
        path: HeaderValue,
    },
    /// The path (and maybe query) sent upstream is rewritten.
    RewritePath(PathRewrite),
    /// Headers of the request sent upstream are changed.
    RequestHeaders(HeaderEdits),
    /// Headers of the response sent to the client are changed.
    ResponseHeaders(HeaderEdits),
    /// `Strict-Transport-Security` with this value on responses over https.
    Hsts(HeaderValue),
    /// A copy of each request goes to another URL; its answer is ignored, and it never
    /// slows or fails the request itself (ingress-nginx `mirror-target`).
    Mirror(Mirror),
    /// Who may be served: checked after the early answers (redirects, CORS preflights) and
    /// before anything is forwarded or mirrored, as nginx's access phase follows its
    /// rewrite phase.
    Access(Arc<Access>),
    /// Preflights (`OPTIONS` from an allowed origin) answered with 204; CORS headers on
    /// every answer to an allowed origin.
    Cors(Arc<Cors>),
    /// Requests per client address limited in rate and concurrency; checked just before
    /// [`Filter::Access`], as nginx's preaccess phase precedes its access phase (failed
    /// logins count too).
    RateLimit(Arc<RateLimit>),
    /// The ConfigMap's `block-user-agents` / `block-referers`: matching requests get 403.
    Block(Arc<crate::Blocklist>),
    /// The client certificate the connection presented, checked before anything else of
    /// the request (nginx verifies it while reading the request).
    ClientCertificate(Arc<crate::ClientCertCheck>),
}

/// Where request copies go.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// `http://host[:port]` followed by a path template (`$request_uri` and the like).
    pub target: Template,
    /// The `Host` of the copies (`mirror-host`; default the target's host).
    pub host: HeaderValue,
    /// Whether the body is copied too (`mirror-request-body`, default on).
    pub body: bool,
    /// Cleartext for `http://` targets; for `https://`, TLS built at translation, without
    /// verification (as nginx's default `proxy_ssl_verify off`) and with the target's name
    /// as SNI.
    pub transport: Transport,
}

/// How the upstream path is rewritten.
#[derive(Debug, Clone)]
pub struct PathRewrite {
    /// Matched against the request path; its groups feed `$1` … `$9` of the target. Where it
    /// does not match, the path is sent unchanged.
    pub regex: regex::Regex,
    /// The new path (and query, if it has `?`).
    pub target: Template,
}

/// Header changes, applied remove → set → add.
#[derive(Debug, Default, Clone)]
pub struct HeaderEdits {
    /// Headers replaced (or added when absent).
    pub set: Vec<(HeaderName, Template)>,
    /// Header values appended.
    pub add: Vec<(HeaderName, Template)>,
    /// Headers removed.
    pub remove: Vec<HeaderName>,
}

impl HeaderEdits {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Where a matched request goes.
#[derive(Debug, Clone)]
pub enum Action {
    /// Proxied to one of the backends.
    Forward(Forward),
    /// Answered with a redirect; nothing is forwarded.
    Redirect(Redirect),
    /// Answered with this error status; nothing is forwarded. For a route whose settings
    /// cannot be honoured (a missing ConfigMap or Secret it depends on): it fails closed
    /// rather than being served without them.
    Fail(StatusCode),
}

/// A redirect answer.
#[derive(Debug, Clone)]
pub struct Redirect {
    /// The status, 300 to 308.
    pub code: StatusCode,
    /// The `Location`, variables filled from the request.
    pub location: Template,
}

/// Weighted backends and how to talk to them.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Chosen by weight for each request; a weight of 0 is never chosen.
    pub backends: Box<[WeightedBackend]>,
    /// Timeouts, limits and retries.
    pub policy: Arc<UpstreamPolicy>,
    /// How an endpoint of the chosen backend is picked.
    pub balance: Balance,
    /// Where error answers come from instead (`custom-http-errors`, `default-backend`).
    pub errors: Option<Arc<ErrorPages>>,
}

/// Error answers served by another backend, as ingress-nginx's `custom-http-errors` and
/// `default-backend` do: the error backend is asked `/` with the original method and headers
/// plus `X-Code`, `X-Format`, `X-Original-URI`, `X-Namespace`, `X-Ingress-Name`,
/// `X-Service-Name`, `X-Service-Port` and `X-Request-ID`, and its answer is returned as is.
#[derive(Debug)]
pub struct ErrorPages {
    /// The backend that answers.
    pub backend: BackendId,
    /// Statuses (from the backend, or Sluice's own 413/502/503/504) replaced by its answer.
    pub codes: Box<[StatusCode]>,
    /// When the route's backend has no ready endpoint, the whole request (method, path, body)
    /// goes to `backend` with `X-Code: 503` (the `default-backend` annotation).
    pub when_unavailable: bool,
    /// `X-Namespace`, `X-Ingress-Name`, `X-Service-Name`, `X-Service-Port` values.
    pub context: [(HeaderName, HeaderValue); 4],
}

impl Forward {
    /// The backend for one request: by weight, at random, like ingress-nginx's canary split.
    pub fn pick_backend(&self) -> Option<BackendId> {
        match &*self.backends {
            [] => None,
            [only] => Some(only.id),
            many => {
                let total: u64 = many.iter().map(|b| u64::from(b.weight)).sum();
                if total == 0 {
                    return None;
                }
                let mut ticket = fastrand::u64(..total);
                many.iter().find_map(|b| match ticket.checked_sub(u64::from(b.weight)) {
                    Some(rest) => {
                        ticket = rest;
                        None
                    }
                    None => Some(b.id),
                })
            }
        }
    }
}

/// A backend with its share of requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedBackend {
    /// The backend.
    pub id: BackendId,
    /// Its relative weight.
    pub weight: u32,
}

/// How requests are sent upstream for one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamPolicy {
    /// Time to establish a connection to an endpoint.
    pub connect_timeout: Duration,
    /// Time to wait for the response head once the request is sent, and between two reads
    /// of the response body.
    pub read_timeout: Duration,
    /// Time the backend may take to accept the next piece of the request body.
    pub send_timeout: Duration,
    /// Speak HTTP/1.0 to HTTP/1 backends (`proxy-http-version: "1.0"`): no keep-alive, no
    /// chunked bodies, no upgrades.
    pub http10: bool,
    /// Largest request body accepted; `None` for no limit. Larger ones get 413.
    pub max_body: Option<u64>,
    /// When another endpoint is tried.
    pub retry: RetryPolicy,
}

impl Default for UpstreamPolicy {
    /// ingress-nginx's defaults.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            http10: false,
            max_body: Some(1024 * 1024),
            retry: RetryPolicy::default(),
        }
    }
}

/// When a failed attempt is repeated on another endpoint (ingress-nginx
/// `proxy-next-upstream`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The conditions that allow another attempt.
    pub on: RetryOn,
    /// Most attempts in all (0: as many as there are endpoints).
    pub tries: u32,
    /// Time for all attempts together; `None` for no limit.
    pub timeout: Option<Duration>,
}

impl Default for RetryPolicy {
    /// `proxy-next-upstream: error timeout`, 3 tries, no overall limit.
    fn default() -> Self {
        Self { on: RetryOn { error: true, timeout: true, ..RetryOn::default() }, tries: 3, timeout: None }
    }
}

/// The `proxy-next-upstream` conditions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryOn {
    /// A connection could not be made, or broke before the response head.
    pub error: bool,
    /// The endpoint did not answer in time.
    pub timeout: bool,
    /// The endpoint answered with one of these statuses.
    pub statuses: Vec<StatusCode>,
    /// Also retry methods that are not idempotent (POST, PATCH, LOCK).
    pub non_idempotent: bool,
}

impl RetryOn {
    /// True when nothing is retried (`off`).
    pub fn is_off(&self) -> bool {
        !self.error && !self.timeout && self.statuses.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_picks_follow_weights_and_skip_zero() {
        let forward = |weights: &[u32]| Forward {
            backends: weights
                .iter()
                .enumerate()
                .map(|(i, w)| WeightedBackend { id: BackendId(i as u32), weight: *w })
                .collect(),
            policy: Arc::default(),
            balance: Balance::RoundRobin,
            errors: None,
        };
        let f = forward(&[0, 10]);
        assert!((0..200).all(|_| f.pick_backend() == Some(BackendId(1))));
        let f = forward(&[50, 50]);
        let ones = (0..2000).filter(|_| f.pick_backend() == Some(BackendId(1))).count();
        assert!((800..1200).contains(&ones), "{ones}");
        assert_eq!(forward(&[0, 0]).pick_backend(), None);
        assert_eq!(forward(&[]).pick_backend(), None);
    }

    #[test]
    fn conditions_pick_the_first_route_that_applies() {
        let owner = Arc::new(ObjectRef::new("Ingress", "ns", "a"));
        let route = |conditions: Vec<Condition>, id| Route {
            owner: owner.clone(),
            label: Route::label_of(&owner),
            conditions: conditions.into(),
            filters: Box::new([]),
            action: Action::Forward(Forward {
                backends: Box::new([WeightedBackend { id: BackendId(id), weight: 1 }]),
                policy: Arc::default(),
                balance: Balance::RoundRobin,
                errors: None,
            }),
        };
        let canary =
            Condition::Header { name: HeaderName::from_static("x-canary"), value: ValueMatch::Exact("always".into()) };
        let cookie =
            Condition::Cookie { name: "c".into(), value: ValueMatch::Regex(regex::Regex::new("^al").unwrap()) };
        let group = RouteGroup {
            owner: owner.clone(),
            routes: vec![route(vec![canary], 1), route(vec![cookie], 2), route(vec![], 0)].into(),
        };
        let pick = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_static(v));
            }
            group.select(&h).and_then(Route::forward).and_then(Forward::pick_backend).map(|b| b.0)
        };
        assert_eq!(pick(&[("x-canary", "always")]), Some(1));
        assert_eq!(pick(&[("x-canary", "never"), ("cookie", "c=always")]), Some(2));
        assert_eq!(pick(&[("cookie", "x=1; c=nope")]), Some(0));

        // A random condition holds for its share of requests.
        let share = Condition::Random { weight: 30, total: 100 };
        let group = RouteGroup { owner: owner.clone(), routes: vec![route(vec![share], 1), route(vec![], 0)].into() };
        let first = (0..10_000).filter(|_| group.select(&HeaderMap::new()).unwrap().conditions.len() == 1).count();
        assert!((2_500..3_500).contains(&first), "{first} of 10000");
        let (never, always) = (Condition::Random { weight: 0, total: 1 }, Condition::Random { weight: 5, total: 5 });
        assert!((0..100).all(|_| !never.holds(&HeaderMap::new()) && always.holds(&HeaderMap::new())));
        assert!(!Condition::Random { weight: 0, total: 0 }.holds(&HeaderMap::new()), "a zero total never holds");
    }
}
