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
use http::{Method, StatusCode};

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

    /// The route that serves this request, if any applies.
    pub fn select(&self, head: &RequestHead<'_>) -> Option<&Route> {
        self.routes.iter().find(|route| route.applies(head))
    }
}

/// What route conditions read of a request: method, query and headers.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The query, without `?`.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        Self { method: request.method(), query: request.uri().query(), headers: request.headers() }
    }

    /// The first value of query parameter `name` (compared as written), if present.
    pub fn query_param(&self, name: &str) -> Option<&'a str> {
        self.query?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key == name).then_some(value)
        })
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
    /// Whether every condition of the route holds for the request.
    pub fn applies(&self, head: &RequestHead<'_>) -> bool {
        self.conditions.iter().all(|c| c.holds(head))
    }

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
    /// The request method.
    Method(Method),
    /// A query parameter's first value.
    Query {
        /// The parameter name, compared exactly.
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
    /// Whether the request satisfies the condition.
    pub fn holds(&self, head: &RequestHead<'_>) -> bool {
        match self {
            Condition::Header { name, value } => {
                head.headers.get_all(name).iter().any(|v| v.to_str().is_ok_and(|v| value.matches(v)))
            }
            Condition::Cookie { name, value } => cookie(head.headers, name).is_some_and(|v| value.matches(v)),
            Condition::Method(method) => head.method == method,
            Condition::Query { name, value } => head.query_param(name).is_some_and(|v| value.matches(v)),
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
    /// The path sent upstream is replaced, whole or its matched prefix (Gateway API's
    /// URLRewrite); the query is kept.
    SetPath(PathModifier),
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

/// Where request copies go, and which requests are copied.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// The target.
    pub to: MirrorTo,
    /// Whether the body is copied too (`mirror-request-body`, default on).
    pub body: bool,
    /// Copy only this share of requests (`numerator` out of `denominator`, drawn at random
    /// for each); `None` copies every request.
    pub share: Option<(u32, u32)>,
}

impl Mirror {
    /// Whether this request is copied (its share drawn at random).
    pub fn draws(&self) -> bool {
        match self.share {
            None => true,
            Some((numerator, denominator)) => fastrand::u32(..denominator.max(1)) < numerator,
        }
    }
}

/// A mirror's target.
#[derive(Debug, Clone)]
pub enum MirrorTo {
    /// A URL (ingress-nginx's `mirror-target`).
    Url {
        /// `http://host[:port]` followed by a path template (`$request_uri` and the like).
        target: Template,
        /// The `Host` of the copies (`mirror-host`; default the target's host).
        host: HeaderValue,
        /// Cleartext for `http://` targets; for `https://`, TLS built at translation,
        /// without verification (as nginx's default `proxy_ssl_verify off`) and with the
        /// target's name as SNI.
        transport: Transport,
    },
    /// An endpoint of a backend, with the request's own path and `Host` (Gateway API's
    /// RequestMirror).
    Backend(BackendId),
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
    /// Where to.
    pub location: Location,
}

/// The `Location` of a redirect.
#[derive(Debug, Clone)]
pub enum Location {
    /// A URL with variables filled from the request (ingress-nginx's redirects).
    Template(Template),
    /// The request's own URL with some parts replaced (Gateway API's RequestRedirect).
    Parts(RedirectParts),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Template(template) => template.fmt(f),
            Location::Parts(parts) => {
                let scheme = parts.scheme.as_deref().unwrap_or("$scheme");
                let host = parts.host.as_deref().unwrap_or("$host");
                write!(f, "{scheme}://{host}")?;
                if let Some(port) = parts.port {
                    write!(f, ":{port}")?;
                }
                match &parts.path {
                    None => f.write_str("$request_uri"),
                    Some(PathModifier::Full(path)) => write!(f, "{path}$is_args$args"),
                    Some(PathModifier::Prefix { matched, replacement }) => {
                        write!(f, "{replacement}${{path after {matched}}}$is_args$args")
                    }
                }
            }
        }
    }
}

/// The parts of the request URL a redirect replaces; `None` keeps the request's.
#[derive(Debug, Clone, Default)]
pub struct RedirectParts {
    /// `http` or `https`.
    pub scheme: Option<Box<str>>,
    /// The host name (the request's, without its port, when `None`).
    pub host: Option<Box<str>>,
    /// The port; when `None`, the scheme's well-known port if the scheme is replaced, else
    /// the listener's. Left out of the URL when it is the scheme's well-known port.
    pub port: Option<u16>,
    /// The path.
    pub path: Option<PathModifier>,
}

/// A new path: a whole one, or the matched prefix of the request path replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathModifier {
    /// The whole path.
    Full(Box<str>),
    /// The request path begins with `matched` (a path prefix match without trailing `/`,
    /// empty for `/`); that part is replaced by `replacement`.
    Prefix {
        /// The prefix the route matched.
        matched: Box<str>,
        /// What takes its place.
        replacement: Box<str>,
    },
}

impl PathModifier {
    /// The new path for request path `path`.
    pub fn apply(&self, path: &str) -> String {
        match self {
            PathModifier::Full(full) => full.to_string(),
            PathModifier::Prefix { matched, replacement } => {
                let rest = path.strip_prefix(&**matched).unwrap_or(path);
                let replacement = replacement.trim_end_matches('/');
                let mut out = String::with_capacity(replacement.len() + rest.len() + 1);
                out.push_str(replacement);
                if !rest.is_empty() && !rest.starts_with('/') {
                    out.push('/');
                }
                out.push_str(rest);
                if out.is_empty() {
                    out.push('/');
                }
                out
            }
        }
    }
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
    /// Header edits of each backend, by position in `backends` (Gateway API's filters on a
    /// backendRef); `None` when no backend has any.
    pub backend_edits: Option<Arc<[BackendEdits]>>,
}

/// The header edits that apply when one backend is chosen.
#[derive(Debug, Clone, Default)]
pub struct BackendEdits {
    /// On the request sent to it.
    pub request: HeaderEdits,
    /// On its response.
    pub response: HeaderEdits,
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
        self.pick().map(|index| self.backends[index].id)
    }

    /// The position in `backends` of the backend for one request, drawn by weight.
    pub fn pick(&self) -> Option<usize> {
        match &*self.backends {
            [] => None,
            [_] => Some(0),
            many => {
                let total: u64 = many.iter().map(|b| u64::from(b.weight)).sum();
                if total == 0 {
                    return None;
                }
                let mut ticket = fastrand::u64(..total);
                many.iter().position(|b| match ticket.checked_sub(u64::from(b.weight)) {
                    Some(rest) => {
                        ticket = rest;
                        false
                    }
                    None => true,
                })
            }
        }
    }

    /// The header edits of the backend at `index`, if it has any.
    pub fn edits_of(&self, index: usize) -> Option<&BackendEdits> {
        self.backend_edits.as_deref()?.get(index)
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
    /// Time for the whole exchange up to the response head, retries included (Gateway API's
    /// `timeouts.request`); past it the client gets 504. `None` for no limit.
    pub request_timeout: Option<Duration>,
    /// Requests are written to the access log (`enable-access-log`, default on).
    pub access_log: bool,
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
            request_timeout: None,
            access_log: true,
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
            backend_edits: None,
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
                backend_edits: None,
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
            let (method, query) = (Method::GET, None);
            let head = RequestHead { method: &method, query, headers: &h };
            group.select(&head).and_then(Route::forward).and_then(Forward::pick_backend).map(|b| b.0)
        };
        assert_eq!(pick(&[("x-canary", "always")]), Some(1));
        assert_eq!(pick(&[("x-canary", "never"), ("cookie", "c=always")]), Some(2));
        assert_eq!(pick(&[("cookie", "x=1; c=nope")]), Some(0));

        // A random condition holds for its share of requests.
        let share = Condition::Random { weight: 30, total: 100 };
        let group = RouteGroup { owner: owner.clone(), routes: vec![route(vec![share], 1), route(vec![], 0)].into() };
        let (method, headers) = (Method::GET, HeaderMap::new());
        let head = RequestHead { method: &method, query: Some("a=1&b=2&a=3"), headers: &headers };
        let first = (0..10_000).filter(|_| group.select(&head).unwrap().conditions.len() == 1).count();
        assert!((2_500..3_500).contains(&first), "{first} of 10000");
        let (never, always) = (Condition::Random { weight: 0, total: 1 }, Condition::Random { weight: 5, total: 5 });
        assert!((0..100).all(|_| !never.holds(&head) && always.holds(&head)));
        assert!(!Condition::Random { weight: 0, total: 0 }.holds(&head), "a zero total never holds");

        // Method and query conditions (the first value of a repeated parameter counts).
        assert!(Condition::Method(Method::GET).holds(&head) && !Condition::Method(Method::POST).holds(&head));
        let query =
            |name: &str, value: &str| Condition::Query { name: name.into(), value: ValueMatch::Exact(value.into()) };
        assert!(query("a", "1").holds(&head) && query("b", "2").holds(&head));
        assert!(!query("a", "3").holds(&head) && !query("c", "").holds(&head));
    }

    #[test]
    fn path_modifiers_replace_the_whole_path_or_the_matched_prefix() {
        let prefix = |matched: &str, replacement: &str| PathModifier::Prefix {
            matched: matched.into(),
            replacement: replacement.into(),
        };
        assert_eq!(PathModifier::Full("/x".into()).apply("/a/b"), "/x");
        let cases = [
            ("/foo", "/bar", "/foo/baz", "/bar/baz"),
            ("/foo", "/bar", "/foo", "/bar"),
            ("/foo", "/bar/", "/foo/", "/bar/"),
            ("/foo", "/", "/foo/baz", "/baz"),
            ("/foo", "/", "/foo", "/"),
            ("/foo", "/", "/foo/", "/"),
            ("", "/bar", "/x", "/bar/x"),
            ("", "/bar", "/", "/bar/"),
        ];
        for (matched, replacement, path, expected) in cases {
            assert_eq!(prefix(matched, replacement).apply(path), expected, "{matched} -> {replacement} on {path}");
        }
    }
}
