//! Compiling a validated Ingress path, with its annotations and the global defaults, into
//! the route model the data plane serves (conditions → filters → weighted backends).

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, HOST};
use http::StatusCode;
use sluice_config::{
    Action, AddressSet, Authentication, BackendId, Balance, Condition, Diagnostic, ErrorPages, Filter, Forward,
    HeaderEdits, HostMatch, Location, Redirect, Route, RouteGroup, Template, UpstreamPolicy, ValueMatch,
    WeightedBackend,
};

use sluice_store::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use sluice_store::ObjectKey;

use crate::annotations::{Canary, IngressAnnotations, LoadBalance, PolicyOverrides, SnippetEdits};
use crate::ingress::{ValidIngress, ValidPath};
use crate::regexes::Regexes;

static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");

/// Global defaults for what annotations override: ingress-nginx's ConfigMap keys.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// `ssl-redirect`: plain-HTTP requests to hosts with TLS are redirected (default true).
    pub ssl_redirect: bool,
    /// `force-ssl-redirect`: plain-HTTP requests are redirected even to hosts without TLS.
    pub force_ssl_redirect: bool,
    /// `preserve-trailing-slash`: https redirects keep a trailing `/`.
    pub preserve_trailing_slash: bool,
    /// `http-redirect-code`: the status of https and www redirects (default 308).
    pub redirect_code: StatusCode,
    /// The `Strict-Transport-Security` value sent over https for hosts with TLS (`hsts`,
    /// `hsts-max-age`, `hsts-include-subdomains`, `hsts-preload`); `None` when off.
    pub hsts: Option<HeaderValue>,
    /// Timeouts, body size and retries (`proxy-*` keys); shared by every route that does
    /// not override them.
    pub policy: Arc<UpstreamPolicy>,
    /// `load-balance`: for routes without affinity, hash or their own load-balance.
    pub(crate) load_balance: LoadBalance,
    /// `custom-http-errors`: statuses answered by the default backend.
    pub custom_http_errors: Vec<StatusCode>,
    /// `global-allowed-response-headers`: the headers `custom-headers` may set.
    pub allowed_response_headers: Vec<HeaderName>,
    /// `no-tls-redirect-locations`: routes whose Ingress path starts with one of these are
    /// never redirected to https (cert-manager's HTTP-01 challenges keep working).
    pub no_tls_redirect_locations: Vec<Box<str>>,
    /// `service-upstream`: backends without the annotation are reached through the
    /// Service's ClusterIP instead of its endpoints.
    pub service_upstream: bool,
    /// `allow-cross-namespace-resources`: a `proxy-ssl-secret` may name a Secret in another
    /// namespace than the Ingress (else its routes answer 503).
    pub allow_cross_namespace_resources: bool,
    /// `whitelist-source-range`: who may be served on routes without their own list (an
    /// unreadable value: nobody).
    pub allow_sources: Option<AddressSet>,
    /// `denylist-source-range`: who is refused on routes without their own list.
    pub deny_sources: Option<AddressSet>,
    /// `block-cidrs`: who is refused everywhere.
    pub block_sources: Option<AddressSet>,
    /// `global-auth-*`: external auth for every route whose Ingress has no `auth-url` of its
    /// own nor `enable-global-auth: "false"`; `Some(Err)` when the keys cannot be read (then
    /// those routes answer 503).
    pub(crate) global_auth: Option<Result<Arc<crate::annotations::ExternalAuthSettings>, String>>,
    /// `enable-modsecurity` (or the OWASP rules) in the ConfigMap without
    /// `--allow-unenforced-waf`: every route answers 503 rather than be served unprotected.
    pub waf_required: bool,
    /// `block-user-agents`, `block-referers`: refused on every route.
    pub blocklist: Option<Arc<sluice_config::Blocklist>>,
    /// `no-auth-locations`: path prefixes global auth never applies to.
    pub no_auth_locations: Vec<Box<str>>,
    /// `limit-req-status-code`: the answer over a request rate (503).
    pub limit_req_status: StatusCode,
    /// `limit-conn-status-code`: the answer over the concurrency limit (503).
    pub limit_conn_status: StatusCode,
    /// `server-snippet`: header changes for every route, before the Ingress's own.
    pub(crate) server_snippet: Option<Arc<SnippetEdits>>,
    /// `location-snippet`: header changes for every route, after the Ingress's own.
    pub(crate) location_snippet: Option<Arc<SnippetEdits>>,
}

/// `no-tls-redirect-locations`' default: where cert-manager's HTTP-01 challenges are served.
const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge";

impl Default for Defaults {
    /// ingress-nginx's defaults.
    fn default() -> Self {
        Self {
            ssl_redirect: true,
            force_ssl_redirect: false,
            preserve_trailing_slash: false,
            redirect_code: StatusCode::PERMANENT_REDIRECT,
            hsts: Some(HeaderValue::from_static("max-age=31536000; includeSubDomains")),
            policy: Arc::default(),
            load_balance: LoadBalance::RoundRobin,
            custom_http_errors: Vec::new(),
            allowed_response_headers: Vec::new(),
            no_tls_redirect_locations: vec![ACME_CHALLENGE_PATH.into()],
            service_upstream: false,
            allow_cross_namespace_resources: false,
            global_auth: None,
            waf_required: false,
            blocklist: None,
            no_auth_locations: vec![ACME_CHALLENGE_PATH.into()],
            allow_sources: None,
            deny_sources: None,
            block_sources: None,
            limit_req_status: StatusCode::SERVICE_UNAVAILABLE,
            limit_conn_status: StatusCode::SERVICE_UNAVAILABLE,
            server_snippet: None,
            location_snippet: None,
        }
    }
}

/// What compiling a route reads besides its Ingress: the global defaults, the ConfigMaps
/// annotations name (`custom-headers`), and the translator's compiled regexes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub defaults: &'a Defaults,
    pub config_maps: &'a BTreeMap<ObjectKey, Arc<ConfigMap>>,
    /// Secrets, for `auth-secret`.
    pub secrets: &'a BTreeMap<ObjectKey, Arc<Secret>>,
    /// Basic-auth users parsed from those Secrets, by version.
    pub users: &'a crate::auth_objects::UsersCache,
    /// Client-certificate policies, by CA Secret version.
    pub policies: &'a crate::client_certs::PolicyCache,
    /// Compiled regexes, shared by pattern text.
    pub regexes: &'a Regexes,
}

/// The response headers of a `custom-headers` ConfigMap, as ingress-nginx checks them:
/// each name must be listed in `global-allowed-response-headers`; values are literal.
fn custom_headers(key: &ObjectKey, cx: &Context<'_>) -> Result<HeaderEdits, String> {
    let configmap = cx
        .config_maps
        .get(key)
        .ok_or_else(|| format!("custom-headers: ConfigMap {}/{} not found", key.namespace, key.name))?;
    let mut edits = HeaderEdits::default();
    for (name, value) in configmap.data.iter().flatten() {
        let header = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .filter(|_| name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .ok_or_else(|| format!("custom-headers: {name:?} is not a header name"))?;
        if !cx.defaults.allowed_response_headers.contains(&header) {
            return Err(format!("custom-headers: {name} is not listed in global-allowed-response-headers"));
        }
        HeaderValue::from_str(value)
            .map_err(|_| format!("custom-headers: the value of {name} is not a header value"))?;
        edits.set.push((header, Template::fixed(value)));
    }
    Ok(edits)
}

/// Where a route's error answers come from: the Ingress's `default-backend` annotation
/// (`own`, which also takes requests when the route's backend has no endpoint), else
/// `--default-backend-service`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ErrorBackends {
    pub own: Option<BackendId>,
    pub global: Option<BackendId>,
}

/// The route of one path of `ingress` to `backend`; `tls` says whether the host has TLS.
pub(crate) fn route(
    ingress: &ValidIngress,
    path: Option<&ValidPath>,
    backend: BackendId,
    tls: bool,
    cx: &Context<'_>,
    error_backends: ErrorBackends,
    problems: &mut Vec<Diagnostic>,
) -> Route {
    let defaults = cx.defaults;
    let a = &ingress.annotations;
    let custom = ingress.custom_headers().map(|key| custom_headers(&key, cx));
    let action = match (&a.redirect, &custom) {
        (_, Some(Err(reason))) => {
            let key = a.custom_headers.as_ref().map_or("custom-headers", |(_, _, key)| key);
            let field = format!("metadata.annotations[{key}]");
            let reason = format!("{reason}; the Ingress's paths answer 503 until this is fixed");
            problems.push(Diagnostic::object((*ingress.owner).clone(), field, reason));
            Action::Fail(StatusCode::SERVICE_UNAVAILABLE)
        }
        (Some((code, location)), _) => {
            Action::Redirect(Redirect { code: *code, location: Location::Template(location.clone()) })
        }
        (None, _) => Action::Forward(Forward {
            backends: Box::new([WeightedBackend { id: backend, weight: 1 }]),
            policy: merged_policy(&defaults.policy, &a.policy),
            balance: balance(a, path, defaults),
            errors: error_pages(ingress, path, defaults, error_backends),
            backend_edits: None,
        }),
    };
    let mut filters = Vec::new();
    if let Some(app_root) = &a.app_root {
        filters.push(Filter::AppRoot { path: app_root.clone() });
    }
    // A CORS preflight is answered before the https redirect, as ingress-nginx's location
    // `if` blocks run before its Lua redirect; its headers go on every answer.
    if let Some(cors) = &a.cors {
        filters.push(Filter::Cors(cors.clone()));
    }
    let redirects_to_https = a.force_ssl_redirect.unwrap_or(defaults.force_ssl_redirect)
        || (tls && a.ssl_redirect.unwrap_or(defaults.ssl_redirect));
    // ingress-nginx tests the location's path as written (a plain string prefix).
    let location = path.map(|p| &*p.written).filter(|p| !p.is_empty()).unwrap_or("/");
    let exempt = defaults.no_tls_redirect_locations.iter().any(|prefix| location.starts_with(&**prefix));
    if redirects_to_https && !exempt && matches!(action, Action::Forward(_)) {
        filters.push(Filter::HttpsRedirect {
            code: defaults.redirect_code,
            preserve_trailing_slash: a.preserve_trailing_slash.unwrap_or(defaults.preserve_trailing_slash),
        });
    }
    if let Some(rewrite) = path.and_then(|p| p.rewrite.as_ref()) {
        filters.push(Filter::RewritePath(rewrite.clone()));
    }
    let rewrites = path.is_some_and(|p| p.rewrite.is_some());
    let request = request_edits(a, rewrites, defaults);
    if !request.is_empty() {
        filters.push(Filter::RequestHeaders(request));
    }
    // Server-level headers first, then the location's, as nginx runs them.
    let snippets = [defaults.server_snippet.as_deref(), Some(&a.snippet), defaults.location_snippet.as_deref()];
    for snippet in snippets.into_iter().flatten().filter(|s| !s.response.is_empty()) {
        filters.push(Filter::ResponseHeaders(snippet.response.clone()));
    }
    if let Some(Ok(edits)) = custom {
        filters.push(Filter::ResponseHeaders(edits));
    }
    if let Some(blocklist) = &defaults.blocklist {
        filters.push(Filter::Block(blocklist.clone()));
    }
    if let Some(settings) = &a.auth_tls {
        filters.push(crate::client_certs::filter(ingress, settings, cx.secrets, defaults, cx.policies, problems));
    }
    if let Some(limits) = a.limits.compile(&ingress.label, defaults.limit_req_status, defaults.limit_conn_status) {
        filters.push(Filter::RateLimit(limits));
    }
    let mut auth = Vec::new();
    auth.extend(a.auth.as_ref().map(|settings| crate::auth_objects::authentication(ingress, settings, cx, problems)));
    let policy = merged_policy(&defaults.policy, &a.policy);
    let global = defaults.global_auth.as_ref().filter(|_| {
        let exempt = defaults.no_auth_locations.iter().any(|prefix| location.starts_with(&**prefix));
        a.external_auth.is_none() && !a.no_global_auth && !exempt
    });
    let external = match (&a.external_auth, global) {
        (Some(own), _) => Some(crate::auth_objects::external(ingress, own, &policy, cx, problems)),
        (None, Some(Ok(global))) => Some(crate::auth_objects::external(ingress, global, &policy, cx, problems)),
        (None, Some(Err(_))) => Some(Authentication::Unavailable),
        (None, None) => None,
    };
    auth.extend(external);
    if defaults.waf_required {
        auth.push(Authentication::Unavailable);
    }
    if let Some(access) = a.access.compile(auth, defaults) {
        filters.push(Filter::Access(access));
    }
    if let Some(mirror) = &a.mirror {
        filters.push(Filter::Mirror(mirror.clone()));
    }
    if let (true, Some(hsts)) = (tls, &defaults.hsts) {
        filters.push(Filter::Hsts(hsts.clone()));
    }
    Route {
        owner: ingress.owner.clone(),
        label: ingress.label.clone(),
        conditions: Box::new([]),
        filters: filters.into(),
        action,
    }
}

/// A redirect of every request to the same URL on `target` (`from-to-www-redirect`);
/// `None` if the host cannot be written into a URL (a valid host name always can).
pub(crate) fn www_redirect(ingress: &ValidIngress, target: &HostMatch, defaults: &Defaults) -> Option<Route> {
    let location = Template::parse(&format!("$scheme://{target}$request_uri"), false).ok()?;
    Some(Route {
        owner: ingress.owner.clone(),
        label: ingress.label.clone(),
        conditions: Box::new([]),
        filters: Box::new([]),
        action: Action::Redirect(Redirect { code: defaults.redirect_code, location: Location::Template(location) }),
    })
}

/// The route's error pages, if it has any: its Ingress's `custom-http-errors` (else the
/// ConfigMap's) answered by its `default-backend` (else the global one).
fn error_pages(
    ingress: &ValidIngress,
    path: Option<&ValidPath>,
    defaults: &Defaults,
    backends: ErrorBackends,
) -> Option<Arc<ErrorPages>> {
    let codes = ingress.annotations.custom_http_errors.as_ref().unwrap_or(&defaults.custom_http_errors);
    let backend = backends.own.or(backends.global)?;
    let when_unavailable = backends.own.is_some();
    if codes.is_empty() && !when_unavailable {
        return None;
    }
    let target = path.map(|p| &p.backend).or(ingress.default_backend.as_ref());
    let text = |t: &str| HeaderValue::from_str(t).unwrap_or(HeaderValue::from_static(""));
    let (service, port) =
        target.map_or((String::new(), String::new()), |t| (t.key.service.name.clone(), t.key.port.to_string()));
    Some(Arc::new(ErrorPages {
        backend,
        codes: codes.clone().into(),
        when_unavailable,
        context: [
            (HeaderName::from_static("x-namespace"), text(&ingress.owner.namespace)),
            (HeaderName::from_static("x-ingress-name"), text(&ingress.owner.name)),
            (HeaderName::from_static("x-service-name"), text(&service)),
            (HeaderName::from_static("x-service-port"), text(&port)),
        ],
    }))
}

/// How the route picks endpoints, in ingress-nginx's precedence: affinity cookie, then
/// upstream-hash-by, then load-balance, then the ConfigMap's load-balance.
fn balance(a: &IngressAnnotations, path: Option<&ValidPath>, defaults: &Defaults) -> Balance {
    if let Some(affinity) = &a.balance.affinity {
        let mut affinity = affinity.clone();
        if affinity.path.is_empty() {
            affinity.path = path.map_or("/", |p| &p.written).to_owned();
        }
        return Balance::Cookie(Box::new(affinity));
    }
    if let Some(key) = &a.balance.hash_by {
        return Balance::Hash(key.clone());
    }
    algorithm(a.balance.algorithm.unwrap_or(defaults.load_balance))
}

fn algorithm(load_balance: LoadBalance) -> Balance {
    match load_balance {
        LoadBalance::RoundRobin => Balance::RoundRobin,
        LoadBalance::Ewma => Balance::Ewma,
    }
}

/// The request header changes (the data plane applies one list per route): the snippets'
/// (the ConfigMap's `server-snippet`, the Ingress's, the ConfigMap's `location-snippet`),
/// then `X-Forwarded-Prefix`, only where the path is rewritten, as ingress-nginx sends it.
fn request_edits(a: &IngressAnnotations, rewrites: bool, defaults: &Defaults) -> HeaderEdits {
    let mut edits = HeaderEdits::default();
    let snippets = [defaults.server_snippet.as_deref(), Some(&a.snippet), defaults.location_snippet.as_deref()];
    for snippet in snippets.into_iter().flatten() {
        edits.set.extend(snippet.request.set.iter().cloned());
        edits.add.extend(snippet.request.add.iter().cloned());
        edits.remove.extend(snippet.request.remove.iter().cloned());
    }
    if let Some(prefix) = a.forwarded_prefix.as_ref().filter(|_| rewrites) {
        edits.set.push((X_FORWARDED_PREFIX.clone(), prefix.clone()));
    }
    if let Some(vhost) = &a.upstream_vhost {
        edits.set.push((HOST, vhost.clone()));
    }
    edits
}

/// The defaults with the route's overrides; the shared defaults when there are none.
pub(crate) fn merged_policy(defaults: &Arc<UpstreamPolicy>, overrides: &PolicyOverrides) -> Arc<UpstreamPolicy> {
    if *overrides == PolicyOverrides::default() {
        return defaults.clone();
    }
    let mut policy = (**defaults).clone();
    policy.connect_timeout = overrides.connect_timeout.unwrap_or(policy.connect_timeout);
    policy.read_timeout = overrides.read_timeout.unwrap_or(policy.read_timeout);
    policy.send_timeout = overrides.send_timeout.unwrap_or(policy.send_timeout);
    policy.http10 = overrides.http10.unwrap_or(policy.http10);
    policy.max_body = overrides.max_body.unwrap_or(policy.max_body);
    policy.access_log = overrides.access_log.unwrap_or(policy.access_log);
    if let Some(on) = &overrides.retry_on {
        policy.retry.on = on.clone();
    }
    policy.retry.tries = overrides.retry_tries.unwrap_or(policy.retry.tries);
    policy.retry.timeout = overrides.retry_timeout.unwrap_or(policy.retry.timeout);
    Arc::new(policy)
}

/// `main` with a canary's routes in front, in ingress-nginx's precedence: the header, then
/// the cookie, then the weight. The canary's requests keep the main route's filters and
/// balancing, affinity cookie included, unless the canary asks for `legacy` affinity: then
/// they are balanced as routes without balancing annotations (`defaults`), and the weight
/// becomes a random condition in front of the main route, so that each side keeps its own
/// balancing. `None` when the main route redirects: it answers every request, there is
/// nothing to split.
pub(crate) fn with_canary(
    main: &RouteGroup,
    canary: &Canary,
    from: &ValidIngress,
    backend: BackendId,
    defaults: &Defaults,
) -> Option<RouteGroup> {
    let base = main.routes.last()?;
    let Action::Forward(forward) = &base.action else {
        return None;
    };
    let legacy = canary.legacy_affinity && matches!(forward.balance, Balance::Cookie(_));
    let canary_balance = if legacy { algorithm(defaults.load_balance) } else { forward.balance.clone() };
    let to_canary = |condition: Condition| Route {
        owner: from.owner.clone(),
        label: from.label.clone(),
        conditions: Box::new([condition]),
        filters: base.filters.clone(),
        action: Action::Forward(Forward {
            backends: Box::new([WeightedBackend { id: backend, weight: 1 }]),
            policy: forward.policy.clone(),
            balance: canary_balance.clone(),
            errors: forward.errors.clone(),
            backend_edits: None,
        }),
    };
    let to_main = |condition: Condition| Route { conditions: Box::new([condition]), ..base.clone() };
    let mut routes = Vec::new();
    if let Some(header) = &canary.header {
        let condition = |value| Condition::Header { name: header.clone(), value };
        match (&canary.header_value, &canary.header_pattern) {
            (Some(value), _) => routes.push(to_canary(condition(ValueMatch::Exact(value.as_str().into())))),
            (None, Some(pattern)) => routes.push(to_canary(condition(ValueMatch::Regex(pattern.clone())))),
            (None, None) => {
                routes.push(to_canary(condition(ValueMatch::Exact("always".into()))));
                routes.push(to_main(condition(ValueMatch::Exact("never".into()))));
            }
        }
    }
    if let Some(cookie) = &canary.cookie {
        let condition =
            |value: &str| Condition::Cookie { name: cookie.as_str().into(), value: ValueMatch::Exact(value.into()) };
        routes.push(to_canary(condition("always")));
        routes.push(to_main(condition("never")));
    }
    let mut weighted = base.clone();
    if canary.weight > 0 && legacy {
        routes.push(to_canary(Condition::Random { weight: canary.weight, total: canary.weight_total }));
    } else if canary.weight > 0 {
        let main_weight = canary.weight_total - canary.weight;
        let mut backends: Vec<WeightedBackend> =
            forward.backends.iter().map(|b| WeightedBackend { id: b.id, weight: main_weight }).collect();
        backends.push(WeightedBackend { id: backend, weight: canary.weight });
        weighted.action = Action::Forward(Forward {
            backends: backends.into(),
            policy: forward.policy.clone(),
            balance: forward.balance.clone(),
            errors: forward.errors.clone(),
            backend_edits: None,
        });
    }
    routes.push(weighted);
    Some(RouteGroup { owner: main.owner.clone(), routes: routes.into() })
}
