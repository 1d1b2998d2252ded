//! Routing for Gateway listeners: each address and port a Gateway serves HTTP on is a
//! [`Frontend`]; a request is matched to the listener with the most specific hostname there,
//! then, among the routes attached to that listener only, by host, then by the first match
//! in Gateway API precedence order. Listeners that share a port share nothing else.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use foldhash::HashMap;

use crate::host::{normalize, HOST_BUF_LEN};
use crate::{CertificateTable, Hostname, ObjectRef, RequestHead, Route};

/// Every Gateway frontend, by the address and port it is served on.
#[derive(Debug, Default)]
pub struct GatewayFrontends {
    frontends: BTreeMap<SocketAddr, Arc<Frontend>>,
}

impl GatewayFrontends {
    /// The frontends in `frontends`.
    pub fn new(frontends: BTreeMap<SocketAddr, Arc<Frontend>>) -> Self {
        Self { frontends }
    }

    /// The frontend served at `address`.
    pub fn get(&self, address: &SocketAddr) -> Option<&Arc<Frontend>> {
        self.frontends.get(address)
    }

    /// Every frontend with its address, in address order.
    pub fn iter(&self) -> impl Iterator<Item = (&SocketAddr, &Arc<Frontend>)> {
        self.frontends.iter()
    }

    /// True when no Gateway serves HTTP anywhere.
    pub fn is_empty(&self) -> bool {
        self.frontends.is_empty()
    }
}

/// One address and port of a Gateway, with the HTTP or HTTPS listeners it serves there.
#[derive(Debug)]
pub struct Frontend {
    /// The Gateway.
    pub gateway: Arc<ObjectRef>,
    /// What the listeners there speak.
    pub mode: FrontendMode,
    /// The listeners, most specific hostname first.
    listeners: Box<[ListenerRoutes]>,
}

impl Frontend {
    /// A frontend of `listeners` (in any order: they are sorted most specific first).
    pub fn new(gateway: Arc<ObjectRef>, mode: FrontendMode, mut listeners: Vec<ListenerRoutes>) -> Self {
        listeners.sort_by_key(|l| std::cmp::Reverse(l.hostname.specificity()));
        Self { gateway, mode, listeners: listeners.into() }
    }

    /// The certificates it terminates TLS with, if it does.
    pub fn certificates(&self) -> Option<&Arc<CertificateTable>> {
        match &self.mode {
            FrontendMode::Https(table) | FrontendMode::TlsTerminate(table) => Some(table),
            FrontendMode::Http | FrontendMode::TlsPassthrough => None,
        }
    }

    /// The route a TLS connection (passthrough or terminated) with this SNI takes.
    pub fn route_sni(&self, sni: &str) -> Option<&Route> {
        let (method, headers) = (http::Method::GET, http::HeaderMap::new());
        let head = RequestHead { method: &method, query: None, headers: &headers };
        self.route(Some(sni), "/", &head)
    }

    /// The route for a request: `host` the raw `Host`/`:authority`, `path` the normalised
    /// path. `None` when no listener takes the host or no route matches.
    pub fn route(&self, host: Option<&str>, path: &str, head: &RequestHead<'_>) -> Option<&Route> {
        let mut buf = [0u8; HOST_BUF_LEN];
        let host = host.and_then(|h| normalize(h, &mut buf)).unwrap_or("");
        let listener = self.listeners.iter().find(|l| l.hostname.matches(host))?;
        listener.hosts.lookup(host)?.first(path, head)
    }

    /// True when a TLS connection's SNI chose a different listener than the request's host
    /// does (HTTP/2 connection reuse across listeners): such requests get 421.
    pub fn misdirected(&self, sni: Option<&str>, host: Option<&str>) -> bool {
        let (Some(sni), FrontendMode::Https(_)) = (sni, &self.mode) else {
            return false;
        };
        let listener = |name: &str| {
            let mut buf = [0u8; HOST_BUF_LEN];
            let name = normalize(name, &mut buf).unwrap_or("");
            self.listeners.iter().position(|l| l.hostname.matches(name))
        };
        listener(sni) != listener(host.unwrap_or(""))
    }

    /// The listeners, most specific hostname first.
    pub fn listeners(&self) -> &[ListenerRoutes] {
        &self.listeners
    }
}

/// What a frontend's listeners speak.
#[derive(Debug)]
pub enum FrontendMode {
    /// HTTP (HTTP/1.1, h2c).
    Http,
    /// HTTPS: TLS terminated with these certificates (by SNI), then HTTP.
    Https(Arc<CertificateTable>),
    /// TLS listeners in Passthrough mode: connections are relayed untouched to the backend
    /// the ClientHello's SNI routes to (each TLSRoute forwards from path `/` of its hosts).
    TlsPassthrough,
    /// TLS listeners in Terminate mode: TLS terminated with these certificates, then the
    /// bytes relayed to the backend the SNI routes to (TLSRoute).
    TlsTerminate(Arc<CertificateTable>),
}

/// A Gateway listener's hostname, or a route's hostname narrowed to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostPattern {
    /// Every host.
    Any,
    /// `*.suffix`: any host ending in `.suffix` (one label or more before it).
    Suffix(Hostname),
    /// Exactly this host.
    Exact(Hostname),
}

impl HostPattern {
    /// Whether request host `host` (lower case, no port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(exact) => exact.as_str() == host,
            HostPattern::Suffix(suffix) => under(host, suffix.as_str()),
        }
    }

    /// Higher is more specific: exact names, then longer wildcard suffixes, then any.
    fn specificity(&self) -> (u8, usize) {
        match self {
            HostPattern::Any => (0, 0),
            HostPattern::Suffix(suffix) => (1, suffix.as_str().len()),
            HostPattern::Exact(host) => (2, host.as_str().len()),
        }
    }
}

/// True when `host` is `suffix` with one label or more before it.
fn under(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1 && host.ends_with(suffix) && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Any => f.write_str("*"),
            HostPattern::Suffix(suffix) => write!(f, "*.{suffix}"),
            HostPattern::Exact(host) => host.fmt(f),
        }
    }
}

/// One listener on a frontend: its hostname, and the routes attached to it by host.
#[derive(Debug)]
pub struct ListenerRoutes {
    /// The listener's name, for introspection.
    pub name: Box<str>,
    /// The hosts the listener takes.
    pub hostname: HostPattern,
    /// Its routes by host.
    pub hosts: HostRoutes,
}

/// A listener's routes by host: exact names first, then the longest matching wildcard
/// suffix, then routes for any host. The most specific host that has routes decides; its
/// matches are the only ones tried.
#[derive(Debug, Default)]
pub struct HostRoutes {
    exact: HashMap<Box<str>, Arc<Matches>>,
    /// Longest suffix first.
    suffixes: Vec<(Hostname, Arc<Matches>)>,
    any: Option<Arc<Matches>>,
}

impl HostRoutes {
    /// Routes by host from `(host, matches)` pairs (one per distinct host).
    pub fn new(entries: impl IntoIterator<Item = (HostPattern, Arc<Matches>)>) -> Self {
        let mut routes = Self::default();
        for (host, matches) in entries {
            match host {
                HostPattern::Exact(host) => {
                    routes.exact.insert(host.as_str().into(), matches);
                }
                HostPattern::Suffix(suffix) => routes.suffixes.push((suffix, matches)),
                HostPattern::Any => routes.any = Some(matches),
            }
        }
        routes.suffixes.sort_by(|(a, _), (b, _)| b.as_str().len().cmp(&a.as_str().len()).then_with(|| a.cmp(b)));
        routes
    }

    fn lookup(&self, host: &str) -> Option<&Arc<Matches>> {
        self.exact
            .get(host)
            .or_else(|| self.suffixes.iter().find(|(suffix, _)| under(host, suffix.as_str())).map(|(_, m)| m))
            .or(self.any.as_ref())
    }

    /// Every host with its matches: exact, wildcard, any.
    pub fn entries(&self) -> Vec<(HostPattern, &Arc<Matches>)> {
        let mut exact: Vec<_> = self.exact.iter().collect();
        exact.sort_by(|a, b| a.0.cmp(b.0));
        let exact = exact.into_iter().filter_map(|(h, m)| Some((HostPattern::Exact(Hostname::parse(h).ok()?), m)));
        let suffixes = self.suffixes.iter().map(|(s, m)| (HostPattern::Suffix(s.clone()), m));
        exact.chain(suffixes).chain(self.any.iter().map(|m| (HostPattern::Any, m))).collect()
    }
}

/// The matches of one host, in precedence order: the first whose path matches and whose
/// conditions hold serves the request.
#[derive(Debug, Default)]
pub struct Matches {
    rules: Box<[RouteMatch]>,
}

impl Matches {
    /// Matches already in precedence order.
    pub fn new(rules: Vec<RouteMatch>) -> Self {
        Self { rules: rules.into() }
    }

    /// The first route matching `path` and `head`.
    pub fn first(&self, path: &str, head: &RequestHead<'_>) -> Option<&Route> {
        self.rules.iter().find(|m| m.path.matches(path) && m.route.applies(head)).map(|m| &m.route)
    }

    /// The matches, in order.
    pub fn rules(&self) -> &[RouteMatch] {
        &self.rules
    }
}

/// A path match with the route it leads to (method, header and query conditions inside).
#[derive(Debug)]
pub struct RouteMatch {
    /// How the path must look.
    pub path: GatewayPath,
    /// The route.
    pub route: Route,
}

/// A Gateway API path match.
#[derive(Debug, Clone)]
pub enum GatewayPath {
    /// `Exact`: the path equals this.
    Exact(Box<str>),
    /// `PathPrefix`: matches whole `/`-separated segments; stored without a trailing `/`
    /// (empty for `/`, which matches every path).
    Prefix(Box<str>),
    /// `RegularExpression`: the whole path matches (compiled at translation, size-limited).
    Regex(regex::Regex),
}

impl GatewayPath {
    /// Whether request path `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        match self {
            GatewayPath::Exact(exact) => **exact == *path,
            GatewayPath::Prefix(prefix) => {
                path.starts_with(&**prefix) && matches!(path.as_bytes().get(prefix.len()), None | Some(b'/'))
            }
            GatewayPath::Regex(regex) => regex.is_match(path),
        }
    }

    /// `Exact`, `PathPrefix` or `RegularExpression` with the value, for introspection.
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            GatewayPath::Exact(p) => ("Exact", p.to_string()),
            GatewayPath::Prefix(p) if p.is_empty() => ("PathPrefix", "/".into()),
            GatewayPath::Prefix(p) => ("PathPrefix", p.to_string()),
            GatewayPath::Regex(r) => ("RegularExpression", r.as_str().trim_start_matches("^(?:").to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Action, Condition, ValueMatch};
    use http::{HeaderMap, Method, StatusCode};

    fn route(code: u16, conditions: Vec<Condition>) -> Route {
        let owner = Arc::new(ObjectRef::new("HTTPRoute", "ns", "r"));
        Route {
            label: Route::label_of(&owner),
            owner,
            conditions: conditions.into(),
            filters: Box::new([]),
            action: Action::Fail(StatusCode::from_u16(code).unwrap()),
        }
    }

    fn code(route: Option<&Route>) -> Option<u16> {
        route.map(|r| match r.action {
            Action::Fail(code) => code.as_u16(),
            _ => 0,
        })
    }

    fn host(text: &str) -> HostPattern {
        match text.strip_prefix("*.") {
            Some(suffix) => HostPattern::Suffix(Hostname::parse(suffix).unwrap()),
            None if text == "*" => HostPattern::Any,
            None => HostPattern::Exact(Hostname::parse(text).unwrap()),
        }
    }

    #[test]
    fn paths_match_like_the_gateway_api_says() {
        let prefix = GatewayPath::Prefix("/foo".into());
        assert!(prefix.matches("/foo") && prefix.matches("/foo/") && prefix.matches("/foo/bar"));
        assert!(!prefix.matches("/foobar") && !prefix.matches("/fo"));
        assert!(GatewayPath::Prefix("".into()).matches("/anything"));
        assert!(GatewayPath::Exact("/a".into()).matches("/a") && !GatewayPath::Exact("/a".into()).matches("/a/"));
    }

    #[test]
    fn wildcards_match_one_label_or_more_and_the_most_specific_listener_wins() {
        assert!(host("*.example.com").matches("a.example.com") && host("*.example.com").matches("a.b.example.com"));
        assert!(!host("*.example.com").matches("example.com") && !host("*.example.com").matches("aexample.com"));
        let matches = |code| {
            Arc::new(Matches::new(vec![RouteMatch {
                path: GatewayPath::Prefix("".into()),
                route: route(code, vec![]),
            }]))
        };
        let listener = |name: &str, code| ListenerRoutes {
            name: name.into(),
            hostname: host(name),
            hosts: HostRoutes::new([(host(name), matches(code))]),
        };
        let gateway = Arc::new(ObjectRef::new("Gateway", "ns", "gw"));
        let frontend = Frontend::new(
            gateway,
            FrontendMode::Http,
            vec![listener("*", 200), listener("*.example.com", 201), listener("foo.example.com", 202)],
        );
        let (method, headers) = (Method::GET, HeaderMap::new());
        let head = RequestHead { method: &method, query: None, headers: &headers };
        assert_eq!(code(frontend.route(Some("FOO.example.com:80"), "/", &head)), Some(202));
        assert_eq!(code(frontend.route(Some("bar.example.com"), "/", &head)), Some(201));
        assert_eq!(code(frontend.route(Some("other.test"), "/", &head)), Some(200));
        assert_eq!(code(frontend.route(None, "/", &head)), Some(200));
    }

    #[test]
    fn the_first_match_in_order_whose_conditions_hold_serves() {
        let get = Condition::Method(Method::GET);
        let header = Condition::Header { name: "x-a".parse().unwrap(), value: ValueMatch::Exact("1".into()) };
        let matches = Matches::new(vec![
            RouteMatch { path: GatewayPath::Exact("/a".into()), route: route(201, vec![header]) },
            RouteMatch { path: GatewayPath::Prefix("/a".into()), route: route(202, vec![get]) },
            RouteMatch { path: GatewayPath::Prefix("".into()), route: route(203, vec![]) },
        ]);
        let method = Method::POST;
        let mut headers = HeaderMap::new();
        let head = RequestHead { method: &method, query: None, headers: &headers };
        assert_eq!(code(matches.first("/a", &head)), Some(203));
        headers.insert("x-a", "1".parse().unwrap());
        let head = RequestHead { method: &method, query: None, headers: &headers };
        assert_eq!(code(matches.first("/a", &head)), Some(201));
        let get = Method::GET;
        let head = RequestHead { method: &get, query: None, headers: &headers };
        assert_eq!(code(matches.first("/a/b", &head)), Some(202));
    }
}
