//! A GRPCRoute's rules compiled into the route model: a service and method match is a
//! path match on `/service/method`, headers are conditions, and backends are reached over
//! HTTP/2 (h2c), as gRPC needs.

use std::sync::Arc;

use sluice_config::{Condition, GatewayPath, ObjectRef, UpstreamPolicy, UpstreamProtocol};
use sluice_store::gateway_api::experimental::grpcroutes::{
    GrpcRoute, GrpcRouteRules, GrpcRouteRulesFilters, GrpcRouteRulesFiltersType as FilterType, GrpcRouteRulesMatches,
    GrpcRouteRulesMatchesHeadersType, GrpcRouteRulesMatchesMethodType,
};
use sluice_store::{ObjectKey, Store};

use super::filters::{anchored, missing, value_match, Found, Problem};
use super::http_route::{CompiledRoute, MatchParts, Rule, RuleContext};
use super::refs::BackendIds;

/// Compiles every rule of `route`.
pub(crate) fn compile(
    key: &ObjectKey,
    route: &GrpcRoute,
    store: &Store,
    backends: &mut BackendIds,
    diagnostics: &mut Vec<sluice_config::Diagnostic>,
) -> CompiledRoute {
    let owner = Arc::new(ObjectRef::new("GRPCRoute", &key.namespace, &key.name));
    let mut compiled = CompiledRoute::default();
    for (r, rule) in route.spec.rules.iter().flatten().enumerate() {
        let mut cx =
            RuleContext { owner: &owner, rule: r, store, diagnostics: &mut *diagnostics, compiled: &mut compiled };
        grpc_rule(&mut cx, rule, backends);
    }
    compiled
}

fn grpc_rule(cx: &mut RuleContext<'_>, rule: &GrpcRouteRules, ids: &mut BackendIds) {
    let refs = rule.backend_refs.iter().flatten().map(|b| {
        let edits = match b.filters.as_ref().is_some_and(|f| !f.is_empty()) {
            true => Err(Problem::Unsupported("filters on a GRPCRoute backendRef are not supported".into())),
            false => Ok(None),
        };
        ref_view!(b, b.weight, edits)
    });
    let action = cx.action(refs, ids, Some(UpstreamProtocol::H2c));
    let mut found = Found::default();
    let mut invalid = false;
    for (f, filter) in rule.filters.iter().flatten().enumerate() {
        let outcome = grpc_filter(cx, filter, &mut found, ids);
        invalid |= cx.outcome(f, outcome);
    }
    let policy = Arc::new(UpstreamPolicy { max_body: None, ..UpstreamPolicy::default() });
    let default_match = [GrpcRouteRulesMatches::default()];
    let matches = rule.matches.as_deref().filter(|m| !m.is_empty()).unwrap_or(&default_match);
    for (m, spec) in matches.iter().enumerate() {
        match grpc_match(spec) {
            Ok(parts) => {
                let rule = Rule { found: &found, action: action.as_ref(), policy: &policy, invalid };
                cx.push(m, parts, &rule);
            }
            Err(reason) => cx.problem(cx.field(&format!("matches[{m}]")), reason),
        }
    }
}

/// The path (`/service/method`) and header conditions of a match.
fn grpc_match(spec: &GrpcRouteRulesMatches) -> Result<MatchParts, String> {
    use std::cmp::Reverse;
    let method = spec.method.as_ref();
    let service = method.and_then(|m| m.service.as_deref()).filter(|s| !s.is_empty());
    let name = method.and_then(|m| m.method.as_deref()).filter(|s| !s.is_empty());
    let regex = method.and_then(|m| m.r#type.as_ref()) == Some(&GrpcRouteRulesMatchesMethodType::RegularExpression);
    let path = match (regex, service, name) {
        (false, Some(s), Some(m)) => GatewayPath::Exact(format!("/{s}/{m}").into()),
        (false, Some(s), None) => GatewayPath::Prefix(format!("/{s}").into()),
        (false, None, Some(m)) => GatewayPath::Regex(anchored(&format!("/[^/]+/{}", regex::escape(m)))?),
        (false, None, None) => GatewayPath::Prefix("".into()),
        (true, s, m) => {
            GatewayPath::Regex(anchored(&format!("/(?:{})/(?:{})", s.unwrap_or("[^/]+"), m.unwrap_or("[^/]+")))?)
        }
    };
    let (kind, length) = match &path {
        GatewayPath::Exact(p) => (0, p.len()),
        GatewayPath::Regex(_) => (1, service.map_or(0, str::len) + name.map_or(0, str::len)),
        GatewayPath::Prefix(p) => (2, p.len()),
    };
    let mut conditions = Vec::new();
    let mut seen = Vec::new();
    for header in spec.headers.iter().flatten() {
        let name = http::HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("{:?} is not a header name", header.name))?;
        if seen.contains(&name) {
            continue;
        }
        seen.push(name.clone());
        let regex = header.r#type.as_ref() == Some(&GrpcRouteRulesMatchesHeadersType::RegularExpression);
        conditions.push(Condition::Header { name, value: value_match(&header.value, regex)? });
    }
    let headers = seen.len();
    Ok((path, conditions, (kind, Reverse(length), true, Reverse(headers), Reverse(0))))
}

fn grpc_filter(
    cx: &mut RuleContext<'_>,
    filter: &GrpcRouteRulesFilters,
    found: &mut Found,
    ids: &mut BackendIds,
) -> Result<(), Problem> {
    match filter.r#type {
        FilterType::RequestHeaderModifier => {
            let m = filter.request_header_modifier.as_ref().ok_or_else(|| missing("requestHeaderModifier"))?;
            modify_headers!(&mut found.edits, m)
        }
        FilterType::ResponseHeaderModifier => {
            let m = filter.response_header_modifier.as_ref().ok_or_else(|| missing("responseHeaderModifier"))?;
            modify_headers!(&mut found.response, m)
        }
        FilterType::RequestMirror => {
            let m = filter.request_mirror.as_ref().ok_or_else(|| missing("requestMirror"))?;
            let b = &m.backend_ref;
            let target = ref_view!(b, None, Ok(None));
            let fraction = m.fraction.as_ref().map(|f| (f.numerator, f.denominator));
            let mirror = cx.mirror(&target, m.percent, fraction, ids, Some(UpstreamProtocol::H2c))?;
            found.mirrors.push(mirror);
            Ok(())
        }
        FilterType::ExtensionRef => Err(Problem::Unsupported("ExtensionRef filters are not supported".into())),
    }
}
