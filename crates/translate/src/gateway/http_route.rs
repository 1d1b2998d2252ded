//! An HTTPRoute's rules compiled into the route model: each match becomes a path match
//! plus conditions (method, headers, query), its rule's filters and weighted backends.
//! Everything is parsed here; a value that cannot be honoured makes its rule answer 500,
//! as the spec asks, and is reported.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue, HOST};
use http::{Method, StatusCode};
use sluice_config::{
    Action, BackendEdits, BackendId, Balance, Condition, Diagnostic, Filter, Forward, GatewayPath, Location, Mirror,
    MirrorTo, ObjectRef, Redirect, RetryOn, RetryPolicy, Route, Template, UpstreamPolicy, UpstreamProtocol,
    WeightedBackend,
};
use sluice_store::gateway_api::experimental::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesBackendRefsFilters, HttpRouteRulesBackendRefsFiltersType,
    HttpRouteRulesFilters as RuleFilter, HttpRouteRulesFiltersRequestRedirectPathType,
    HttpRouteRulesFiltersRequestRedirectScheme, HttpRouteRulesFiltersType as FilterType,
    HttpRouteRulesFiltersUrlRewritePathType, HttpRouteRulesMatches, HttpRouteRulesMatchesHeadersType,
    HttpRouteRulesMatchesMethod, HttpRouteRulesMatchesPathType, HttpRouteRulesMatchesQueryParamsType,
};
use sluice_store::{ObjectKey, Store};

use super::filters::{
    anchored, bad_code, cors_settings, missing, modifier, redirect_parts, value_match, CompiledMatchRank, Found,
    Problem, RedirectSpec, Rewrite,
};
use super::refs::{self, BackendIds};
use crate::backends::BackendKey;
use crate::ingress::PortRef;

/// One match of a rule, compiled, with what orders it among all matches of a host.
#[derive(Debug, Clone)]
pub(crate) struct CompiledMatch {
    pub path: GatewayPath,
    pub route: Route,
    /// Gateway API precedence within the host, smaller first: path kind and length,
    /// method, header and query counts; then rule and match position.
    pub rank: (u8, std::cmp::Reverse<usize>, bool, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>),
    pub position: (usize, usize),
}

/// An HTTPRoute compiled, before it is attached to any listener.
#[derive(Debug, Default)]
pub(crate) struct CompiledRoute {
    pub matches: Vec<CompiledMatch>,
    /// The first unresolvable reference: (reason, message), for `ResolvedRefs`.
    pub unresolved: Option<(&'static str, String)>,
    /// A value Sluice cannot honour: the route is not accepted.
    pub unsupported: Option<String>,
}

/// Compiles every rule of `route`.
pub(crate) fn compile(
    key: &ObjectKey,
    route: &HttpRoute,
    store: &Store,
    backends: &mut BackendIds,
    diagnostics: &mut Vec<Diagnostic>,
) -> CompiledRoute {
    let owner = Arc::new(ObjectRef::new("HTTPRoute", &key.namespace, &key.name));
    let mut compiled = CompiledRoute::default();
    let violations = super::validate::http_route(route);
    if let Some((_, reason)) = violations.first() {
        compiled.unsupported = Some(format!("refused as the API server would: {reason}"));
    }
    for (field, reason) in violations {
        diagnostics.push(Diagnostic::object((*owner).clone(), field, reason));
    }
    for (r, rule) in route.spec.rules.iter().flatten().enumerate() {
        let mut cx =
            RuleContext { owner: &owner, rule: r, store, diagnostics: &mut *diagnostics, compiled: &mut compiled };
        cx.rule(rule, backends);
    }
    compiled
}

/// A backendRef's own filters: header modifiers only (the others apply to a whole rule).
fn backend_filters(filters: &[HttpRouteRulesBackendRefsFilters]) -> Result<Option<BackendEdits>, Problem> {
    use HttpRouteRulesBackendRefsFiltersType as Type;
    let mut edits = BackendEdits::default();
    for filter in filters {
        match &filter.r#type {
            Type::RequestHeaderModifier => {
                let m = filter.request_header_modifier.as_ref().ok_or_else(|| missing("requestHeaderModifier"))?;
                modify_headers!(&mut edits.request, m)?;
            }
            Type::ResponseHeaderModifier => {
                let m = filter.response_header_modifier.as_ref().ok_or_else(|| missing("responseHeaderModifier"))?;
                modify_headers!(&mut edits.response, m)?;
            }
            other => {
                return Err(Problem::Unsupported(format!(
                    "{other:?} filters on a backendRef are not supported (header modifiers are)"
                )));
            }
        }
    }
    Ok((!filters.is_empty()).then_some(edits))
}

/// Compiling one rule of a route (HTTPRoute or GRPCRoute).
pub(super) struct RuleContext<'a> {
    pub owner: &'a Arc<ObjectRef>,
    pub rule: usize,
    pub store: &'a Store,
    pub diagnostics: &'a mut Vec<Diagnostic>,
    pub compiled: &'a mut CompiledRoute,
}

/// A backendRef, whatever the route kind.
pub(super) struct RefView<'a> {
    pub group: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub port: Option<i32>,
    pub weight: Option<i32>,
    /// Its own filters, read: header edits, or why they cannot be honoured.
    pub edits: Result<Option<BackendEdits>, Problem>,
}

/// What every match of a rule shares.
pub(super) struct Rule<'a> {
    pub found: &'a Found,
    pub action: Option<&'a Forward>,
    pub policy: &'a Arc<UpstreamPolicy>,
    /// A filter's value is invalid: the rule answers 500.
    pub invalid: bool,
}

/// A match's path, conditions and precedence.
pub(super) type MatchParts = (GatewayPath, Vec<Condition>, CompiledMatchRank);

impl RuleContext<'_> {
    pub(super) fn problem(&mut self, field: String, reason: String) {
        self.diagnostics.push(Diagnostic::object((**self.owner).clone(), field, reason));
    }

    pub(super) fn field(&self, rest: &str) -> String {
        format!("spec.rules[{}].{rest}", self.rule)
    }

    fn rule(&mut self, rule: &HttpRouteRules, ids: &mut BackendIds) {
        let refs = rule
            .backend_refs
            .iter()
            .flatten()
            .map(|b| ref_view!(b, b.weight, backend_filters(b.filters.as_deref().unwrap_or_default())));
        let action = self.action(refs, ids, None);
        let mut found = Found::default();
        let mut invalid = false;
        for (f, filter) in rule.filters.iter().flatten().enumerate() {
            let outcome = self.filter(filter, &mut found, ids);
            invalid |= self.outcome(f, outcome);
        }
        let policy = self.policy(rule);
        let default_match = [HttpRouteRulesMatches::default()];
        let matches = rule.matches.as_deref().filter(|m| !m.is_empty()).unwrap_or(&default_match);
        for (m, spec) in matches.iter().enumerate() {
            if let Some((path, conditions, rank)) = self.read_match(m, spec) {
                let rule = Rule { found: &found, action: action.as_ref(), policy: &policy, invalid };
                self.push(m, (path, conditions, rank), &rule);
            }
        }
    }

    /// Records how reading filter `index` went; true when the rule must answer 500.
    pub(super) fn outcome(&mut self, index: usize, outcome: Result<(), Problem>) -> bool {
        let at = self.field(&format!("filters[{index}]"));
        match outcome {
            Ok(()) => false,
            Err(Problem::Invalid(reason)) => {
                self.problem(at, reason);
                true
            }
            Err(Problem::Unsupported(reason)) => {
                self.problem(at, reason.clone());
                self.compiled.unsupported.get_or_insert(reason);
                false
            }
            Err(Problem::Ignored(reason)) => {
                self.problem(at, reason);
                false
            }
        }
    }

    /// Adds match `index` of the current rule: its path and conditions, the rule's filters
    /// (a prefix rewrite finished with the match's prefix) and action.
    pub(super) fn push(&mut self, index: usize, (path, conditions, rank): MatchParts, rule: &Rule<'_>) {
        let Found { edits, response, rewrite, redirect, mirrors, cors } = rule.found;
        let mut filters = Vec::new();
        let prefix = match &path {
            GatewayPath::Prefix(prefix) => Some(prefix.clone()),
            _ => None,
        };
        let mut bad = rule.invalid;
        if let Some(rewrite) = rewrite {
            match modifier(rewrite, prefix.as_deref()) {
                Some(modifier) => filters.push(Filter::SetPath(modifier)),
                None => bad = true,
            }
        }
        if let Some(cors) = cors {
            filters.push(Filter::Cors(cors.clone()));
        }
        if !edits.is_empty() {
            filters.push(Filter::RequestHeaders(edits.clone()));
        }
        filters.extend(mirrors.iter().cloned().map(Filter::Mirror));
        if !response.is_empty() {
            filters.push(Filter::ResponseHeaders(response.clone()));
        }
        let action = match (redirect, bad) {
            (_, true) => Action::Fail(StatusCode::INTERNAL_SERVER_ERROR),
            (Some((code, parts)), false) => match redirect_parts(parts, prefix.as_deref()) {
                Some(parts) => Action::Redirect(Redirect { code: *code, location: Location::Parts(parts) }),
                None => Action::Fail(StatusCode::INTERNAL_SERVER_ERROR),
            },
            (None, false) => match rule.action {
                Some(forward) => {
                    let mut forward = forward.clone();
                    forward.policy = rule.policy.clone();
                    Action::Forward(forward)
                }
                None => Action::Fail(StatusCode::INTERNAL_SERVER_ERROR),
            },
        };
        let route = Route {
            owner: self.owner.clone(),
            label: Route::label_of(self.owner),
            conditions: conditions.into(),
            filters: filters.into(),
            action,
        };
        self.compiled.matches.push(CompiledMatch { path, route, rank, position: (self.rule, index) });
    }

    /// The rule's weighted backends, reached with `protocol` when given; `None` when none
    /// can take a request (500).
    pub(super) fn action<'r>(
        &mut self,
        refs: impl Iterator<Item = RefView<'r>>,
        ids: &mut BackendIds,
        protocol: Option<UpstreamProtocol>,
    ) -> Option<Forward> {
        let mut backends = Vec::new();
        let mut edits = Vec::new();
        for (b, backend) in refs.enumerate() {
            let at = self.field(&format!("backendRefs[{b}]"));
            let weight = u32::try_from(backend.weight.unwrap_or(1)).unwrap_or(0);
            let mut invalid = false;
            match backend.edits {
                Ok(found) => edits.push(found.unwrap_or_default()),
                Err(Problem::Unsupported(reason)) => {
                    self.problem(format!("{at}.filters"), reason.clone());
                    self.compiled.unsupported.get_or_insert(reason);
                    edits.push(BackendEdits::default());
                }
                Err(Problem::Invalid(reason) | Problem::Ignored(reason)) => {
                    self.problem(format!("{at}.filters"), reason);
                    invalid = true;
                    edits.push(BackendEdits::default());
                }
            }
            let target = (backend.group, backend.kind, backend.namespace);
            let id = match self.backend(target, backend.name, backend.port) {
                // A backend whose filters are invalid gets 500 for its share.
                Ok(_) if invalid => BackendId::UNRESOLVED,
                Ok(mut key) => {
                    key.options.protocol = protocol;
                    ids.id(key)
                }
                Err((reason, message)) => {
                    self.problem(at, message.clone());
                    self.compiled.unresolved.get_or_insert((reason, message));
                    BackendId::UNRESOLVED
                }
            };
            backends.push(WeightedBackend { id, weight });
        }
        if backends.iter().all(|b| b.weight == 0) {
            return None;
        }
        let any_edits = edits.iter().any(|e| !e.request.is_empty() || !e.response.is_empty());
        Some(Forward {
            backends: backends.into(),
            policy: Arc::default(),
            balance: Balance::RoundRobin,
            errors: None,
            backend_edits: any_edits.then(|| edits.into()),
        })
    }

    /// A RequestMirror filter's target and share (`percent`, or `fraction` as numerator and
    /// denominator, 100 by default).
    pub(super) fn mirror(
        &mut self,
        target: &RefView<'_>,
        percent: Option<i32>,
        fraction: Option<(i32, Option<i32>)>,
        ids: &mut BackendIds,
        protocol: Option<UpstreamProtocol>,
    ) -> Result<Mirror, Problem> {
        let id = match self.backend((target.group, target.kind, target.namespace), target.name, target.port) {
            Ok(mut key) => {
                key.options.protocol = protocol;
                ids.id(key)
            }
            Err((reason, message)) => {
                self.compiled.unresolved.get_or_insert((reason, message.clone()));
                return Err(Problem::Ignored(message));
            }
        };
        let share = match (percent, fraction) {
            (Some(percent), _) => Some((u32::try_from(percent.clamp(0, 100)).unwrap_or(0), 100)),
            (None, Some((numerator, denominator))) => {
                let denominator = u32::try_from(denominator.unwrap_or(100)).unwrap_or(0);
                let numerator = u32::try_from(numerator).unwrap_or(0).min(denominator);
                (denominator > 0).then_some((numerator, denominator))
            }
            (None, None) => None,
        };
        Ok(Mirror { to: MirrorTo::Backend(id), body: true, share })
    }

    /// A backendRef: a Service port in this namespace, or in another one that allows it.
    pub(super) fn backend(
        &self,
        (group, kind, namespace): (Option<&str>, Option<&str>, Option<&str>),
        name: &str,
        port: Option<i32>,
    ) -> Result<BackendKey, (&'static str, String)> {
        let (group, kind) = (group.unwrap_or(""), kind.unwrap_or("Service"));
        if !group.is_empty() || kind != "Service" {
            return Err(("InvalidKind", format!("backend kind {group}/{kind} is not supported; only Service")));
        }
        let namespace = namespace.unwrap_or(&self.owner.namespace);
        if namespace != self.owner.namespace
            && !refs::granted(self.store, (self.owner.kind, &self.owner.namespace), ("", "Service", namespace, name))
        {
            return Err(("RefNotPermitted", format!("no ReferenceGrant in {namespace} allows Service {name}")));
        }
        let service = ObjectKey::new(namespace, name);
        let Some(found) = self.store.services.get(&service) else {
            return Err(("BackendNotFound", format!("Service {namespace}/{name} does not exist")));
        };
        let Some(port) = port else {
            return Err(("BackendNotFound", format!("Service {namespace}/{name}: port is required")));
        };
        let ports = found.spec.as_ref().and_then(|s| s.ports.as_deref()).unwrap_or_default();
        if !ports.iter().any(|p| p.port == port) {
            return Err(("BackendNotFound", format!("Service {namespace}/{name} has no port {port}")));
        }
        Ok(BackendKey { service, port: PortRef::Number(port), options: Default::default() })
    }

    /// Timeouts and retries: `timeouts.request` bounds the whole exchange,
    /// `timeouts.backendRequest` each attempt (`0s` disables either); `retry` repeats
    /// attempts that failed to connect or answered one of its codes.
    fn policy(&mut self, rule: &HttpRouteRules) -> Arc<UpstreamPolicy> {
        let mut policy = UpstreamPolicy { max_body: None, ..UpstreamPolicy::default() };
        let duration = |cx: &mut Self, field: &str, text: Option<&str>| {
            let text = text?;
            let parsed = crate::duration::parse(text);
            if parsed.is_none() {
                cx.problem(cx.field(field), format!("{text:?} is not a duration"));
            }
            parsed.filter(|d| !d.is_zero())
        };
        if let Some(timeouts) = &rule.timeouts {
            policy.request_timeout = duration(self, "timeouts.request", timeouts.request.as_deref());
            if let Some(backend) = duration(self, "timeouts.backendRequest", timeouts.backend_request.as_deref()) {
                policy.read_timeout = backend;
            } else if let Some(request) = policy.request_timeout {
                policy.read_timeout = request;
            }
        }
        if let Some(retry) = &rule.retry {
            let statuses = retry.codes.iter().flatten().filter_map(|c| u16::try_from(*c).ok());
            let statuses = statuses.filter_map(|c| StatusCode::from_u16(c).ok()).collect();
            let attempts = retry.attempts.unwrap_or(1).clamp(0, 100);
            policy.retry = RetryPolicy {
                on: RetryOn { error: true, timeout: false, statuses, non_idempotent: true },
                tries: u32::try_from(attempts + 1).unwrap_or(1),
                timeout: None,
            };
        }
        Arc::new(policy)
    }

    /// A match's path and conditions; `None` (reported) when a value is invalid.
    fn read_match(&mut self, index: usize, spec: &HttpRouteRulesMatches) -> Option<MatchParts> {
        let at = |rest: &str| format!("spec.rules[{}].matches[{index}].{rest}", self.rule);
        let value = spec.path.as_ref().and_then(|p| p.value.as_deref()).unwrap_or("/");
        let kind =
            spec.path.as_ref().and_then(|p| p.r#type.clone()).unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix);
        let path = match kind {
            _ if !value.starts_with('/') => Err(format!("{value:?} must start with /")),
            HttpRouteRulesMatchesPathType::Exact => Ok(GatewayPath::Exact(value.into())),
            HttpRouteRulesMatchesPathType::PathPrefix => Ok(GatewayPath::Prefix(value.trim_end_matches('/').into())),
            HttpRouteRulesMatchesPathType::RegularExpression => anchored(value).map(GatewayPath::Regex),
        };
        let path = match path {
            Ok(path) => path,
            Err(reason) => {
                self.problem(at("path"), reason);
                return None;
            }
        };
        let (kind_rank, length) = match &path {
            GatewayPath::Exact(p) => (0, p.len()),
            GatewayPath::Regex(_) => (1, value.len()),
            GatewayPath::Prefix(p) => (2, p.len()),
        };
        let mut conditions = Vec::new();
        if let Some(method) = &spec.method {
            use HttpRouteRulesMatchesMethod as M;
            conditions.push(Condition::Method(match method {
                M::Get => Method::GET,
                M::Head => Method::HEAD,
                M::Post => Method::POST,
                M::Put => Method::PUT,
                M::Delete => Method::DELETE,
                M::Connect => Method::CONNECT,
                M::Options => Method::OPTIONS,
                M::Trace => Method::TRACE,
                M::Patch => Method::PATCH,
            }));
        }
        let mut seen = Vec::new();
        for (h, header) in spec.headers.iter().flatten().enumerate() {
            let Ok(name) = HeaderName::from_bytes(header.name.as_bytes()) else {
                self.problem(at(&format!("headers[{h}].name")), format!("{:?} is not a header name", header.name));
                return None;
            };
            if seen.contains(&name) {
                continue;
            }
            seen.push(name.clone());
            let regex = header.r#type.as_ref() == Some(&HttpRouteRulesMatchesHeadersType::RegularExpression);
            let value = match value_match(&header.value, regex) {
                Ok(value) => value,
                Err(reason) => {
                    self.problem(at(&format!("headers[{h}].value")), reason);
                    return None;
                }
            };
            conditions.push(Condition::Header { name, value });
        }
        let headers = seen.len();
        let mut names: Vec<&str> = Vec::new();
        for (q, param) in spec.query_params.iter().flatten().enumerate() {
            if names.contains(&param.name.as_str()) {
                continue;
            }
            names.push(&param.name);
            let regex = param.r#type.as_ref() == Some(&HttpRouteRulesMatchesQueryParamsType::RegularExpression);
            let value = match value_match(&param.value, regex) {
                Ok(value) => value,
                Err(reason) => {
                    self.problem(at(&format!("queryParams[{q}].value")), reason);
                    return None;
                }
            };
            conditions.push(Condition::Query { name: param.name.as_str().into(), value });
        }
        let queries = names.len();
        let has_method = spec.method.is_some();
        use std::cmp::Reverse;
        Some((path, conditions, (kind_rank, Reverse(length), !has_method, Reverse(headers), Reverse(queries))))
    }

    fn filter(&mut self, filter: &RuleFilter, found: &mut Found, ids: &mut BackendIds) -> Result<(), Problem> {
        let Found { edits, response, rewrite, redirect, mirrors, cors } = found;
        match filter.r#type {
            FilterType::RequestHeaderModifier => {
                let m = filter.request_header_modifier.as_ref().ok_or_else(|| missing("requestHeaderModifier"))?;
                modify_headers!(edits, m)
            }
            FilterType::ResponseHeaderModifier => {
                let m = filter.response_header_modifier.as_ref().ok_or_else(|| missing("responseHeaderModifier"))?;
                modify_headers!(response, m)
            }
            FilterType::RequestRedirect => {
                let r = filter.request_redirect.as_ref().ok_or_else(|| missing("requestRedirect"))?;
                let code = match r.status_code.unwrap_or(302) {
                    code @ (301 | 302 | 303 | 307 | 308) => {
                        StatusCode::from_u16(code as u16).map_err(|_| bad_code())?
                    }
                    _ => return Err(bad_code()),
                };
                let path = r.path.as_ref().map(|p| match p.r#type {
                    HttpRouteRulesFiltersRequestRedirectPathType::ReplaceFullPath => {
                        Rewrite::Full(p.replace_full_path.clone().unwrap_or_default())
                    }
                    HttpRouteRulesFiltersRequestRedirectPathType::ReplacePrefixMatch => {
                        Rewrite::Prefix(p.replace_prefix_match.clone().unwrap_or_default())
                    }
                });
                let scheme = r.scheme.as_ref().map(|s| match s {
                    HttpRouteRulesFiltersRequestRedirectScheme::Http => "http",
                    HttpRouteRulesFiltersRequestRedirectScheme::Https => "https",
                });
                let port = match r.port {
                    None => None,
                    Some(port) => {
                        Some(u16::try_from(port).map_err(|_| Problem::Invalid(format!("{port} is not a port")))?)
                    }
                };
                *redirect = Some((code, RedirectSpec { scheme, host: r.hostname.clone(), port, path }));
                Ok(())
            }
            FilterType::UrlRewrite => {
                let r = filter.url_rewrite.as_ref().ok_or_else(|| missing("urlRewrite"))?;
                if let Some(host) = &r.hostname {
                    let value =
                        HeaderValue::from_str(host).map_err(|_| Problem::Invalid(format!("{host:?} is not a host")))?;
                    let text = value.to_str().unwrap_or_default().to_owned();
                    edits.set.push((HOST, Template::fixed(&text)));
                }
                if let Some(p) = &r.path {
                    *rewrite = Some(match p.r#type {
                        HttpRouteRulesFiltersUrlRewritePathType::ReplaceFullPath => {
                            Rewrite::Full(p.replace_full_path.clone().unwrap_or_default())
                        }
                        HttpRouteRulesFiltersUrlRewritePathType::ReplacePrefixMatch => {
                            Rewrite::Prefix(p.replace_prefix_match.clone().unwrap_or_default())
                        }
                    });
                }
                Ok(())
            }
            FilterType::RequestMirror => {
                let m = filter.request_mirror.as_ref().ok_or_else(|| missing("requestMirror"))?;
                let b = &m.backend_ref;
                let target = ref_view!(b, None, Ok(None));
                let fraction = m.fraction.as_ref().map(|f| (f.numerator, f.denominator));
                mirrors.push(self.mirror(&target, m.percent, fraction, ids, None)?);
                Ok(())
            }
            FilterType::Cors => {
                let c = filter.cors.as_ref().ok_or_else(|| missing("cors"))?;
                *cors = Some(Arc::new(cors_settings(c)?));
                Ok(())
            }
            FilterType::ExternalAuth => Err(Problem::Unsupported("ExternalAuth is not supported".into())),
            FilterType::ExtensionRef => Err(Problem::Unsupported("ExtensionRef filters are not supported".into())),
        }
    }
}
