//! The API server's validation of Gateway API objects (the CRDs' CEL rules and the spec's
//! constraints), for objects that never met an API server: manifests. Each rule broken is
//! a problem with the field path and the API server's wording; in a cluster such objects
//! are refused on write, here they are not served.

use std::collections::BTreeSet;

use sluice_store::gateway_api::experimental::gateways::Gateway;
use sluice_store::gateway_api::experimental::httproutes::{
    HttpRoute, HttpRouteRules, HttpRouteRulesFiltersType as FilterType, HttpRouteRulesMatchesPathType,
};

/// A broken rule: the field and why.
pub(crate) type Violation = (String, String);

/// The API server's rules for a Gateway's listeners.
pub(crate) fn gateway(gateway: &Gateway) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut names = BTreeSet::new();
    for (i, listener) in gateway.spec.listeners.iter().enumerate() {
        let at = |field: &str| format!("spec.listeners[{i}].{field}");
        if !names.insert(listener.name.as_str()) {
            violations.push((at("name"), "Listener name must be unique within the Gateway".into()));
        }
        if !(1..=65535).contains(&listener.port) {
            violations.push((at("port"), "must be between 1 and 65535".into()));
        }
        let protocol = listener.protocol.as_str();
        if matches!(protocol, "TCP" | "UDP") && listener.hostname.is_some() {
            violations.push((at("hostname"), "hostname must not be specified for protocols ['TCP', 'UDP']".into()));
        }
        match (protocol, &listener.tls) {
            ("HTTP" | "TCP" | "UDP", Some(_)) => {
                violations.push((at("tls"), "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']".into()))
            }
            ("HTTPS" | "TLS", None) => {
                violations.push((at("tls"), "tls mode must be set for protocols ['HTTPS', 'TLS']".into()))
            }
            _ => {}
        }
    }
    violations
}

/// The API server's rules for an HTTPRoute.
pub(crate) fn http_route(route: &HttpRoute) -> Vec<Violation> {
    let mut violations = Vec::new();
    let rules = route.spec.rules.as_deref().unwrap_or_default();
    if rules.len() > 16 {
        violations.push(("spec.rules".into(), "Too many: must have at most 16 items".into()));
    }
    let total: usize = rules.iter().map(|r| r.matches.as_ref().map_or(0, Vec::len)).sum();
    if total > 128 {
        violations.push(("spec.rules".into(), "While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128".into()));
    }
    let parents = route.spec.parent_refs.as_deref().unwrap_or_default();
    for (i, a) in parents.iter().enumerate() {
        let same = parents[..i].iter().filter(|b| b.name == a.name && b.namespace == a.namespace && b.kind == a.kind);
        if same.clone().any(|b| b.section_name.is_none() && b.port.is_none())
            || same.clone().any(|b| b.section_name == a.section_name && b.port == a.port)
        {
            violations.push((
                format!("spec.parentRefs[{i}]"),
                "sectionName or port must be specified when parentRefs includes 2 or more references to the same parent"
                    .into(),
            ));
        }
    }
    for (r, rule) in rules.iter().enumerate() {
        rule_violations(r, rule, &mut violations);
    }
    violations
}

fn rule_violations(r: usize, rule: &HttpRouteRules, violations: &mut Vec<Violation>) {
    let at = |field: String| format!("spec.rules[{r}].{field}");
    let matches = rule.matches.as_deref().unwrap_or_default();
    if matches.len() > 64 {
        violations.push((at("matches".into()), "Too many: must have at most 64 items".into()));
    }
    for (m, spec) in matches.iter().enumerate() {
        let Some(path) = &spec.path else { continue };
        let kind = path.r#type.clone().unwrap_or(HttpRouteRulesMatchesPathType::PathPrefix);
        let value = path.value.as_deref().unwrap_or("/");
        if kind != HttpRouteRulesMatchesPathType::RegularExpression {
            if let Some(reason) = path_problem(value) {
                violations.push((at(format!("matches[{m}].path.value")), reason));
            }
        }
    }
    let filters = rule.filters.as_deref().unwrap_or_default();
    let has = |kind: FilterType| filters.iter().any(|f| f.r#type == kind);
    if has(FilterType::RequestRedirect) && has(FilterType::UrlRewrite) {
        violations.push((
            at("filters".into()),
            "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both".into(),
        ));
    }
    if has(FilterType::RequestRedirect) && rule.backend_refs.as_ref().is_some_and(|b| !b.is_empty()) {
        violations
            .push((at("filters".into()), "RequestRedirect filter must not be used together with backendRefs".into()));
    }
    let once = [
        FilterType::RequestHeaderModifier,
        FilterType::ResponseHeaderModifier,
        FilterType::RequestRedirect,
        FilterType::UrlRewrite,
        FilterType::Cors,
    ];
    for kind in once {
        if filters.iter().filter(|f| f.r#type == kind).count() > 1 {
            violations.push((at("filters".into()), format!("{kind:?} filter cannot be repeated")));
        }
    }
    let prefix_matches = matches.iter().filter(|m| {
        m.path
            .as_ref()
            .is_none_or(|p| p.r#type.as_ref().is_none_or(|t| *t == HttpRouteRulesMatchesPathType::PathPrefix))
    });
    let replaces_prefix = filters.iter().any(|f| {
        f.url_rewrite.as_ref().and_then(|u| u.path.as_ref()).is_some_and(|p| p.replace_prefix_match.is_some())
            || f.request_redirect
                .as_ref()
                .and_then(|u| u.path.as_ref())
                .is_some_and(|p| p.replace_prefix_match.is_some())
    });
    if replaces_prefix && !matches.is_empty() && prefix_matches.count() != matches.len() {
        violations.push((
            at("filters".into()),
            "When using a filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified".into(),
        ));
    }
    for (f, filter) in filters.iter().enumerate() {
        let present = match filter.r#type {
            FilterType::RequestHeaderModifier => filter.request_header_modifier.is_some(),
            FilterType::ResponseHeaderModifier => filter.response_header_modifier.is_some(),
            FilterType::RequestMirror => filter.request_mirror.is_some(),
            FilterType::RequestRedirect => filter.request_redirect.is_some(),
            FilterType::UrlRewrite => filter.url_rewrite.is_some(),
            FilterType::ExtensionRef => filter.extension_ref.is_some(),
            FilterType::Cors => filter.cors.is_some(),
            FilterType::ExternalAuth => filter.external_auth.is_some(),
        };
        if !present {
            violations.push((
                at(format!("filters[{f}]")),
                format!("filter.{:?} must be specified for {:?} filter.type", filter.r#type, filter.r#type),
            ));
        }
        if let Some(mirror) = &filter.request_mirror {
            if mirror.percent.is_some() && mirror.fraction.is_some() {
                violations.push((
                    at(format!("filters[{f}].requestMirror")),
                    "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter".into(),
                ));
            }
            if let Some(fraction) = &mirror.fraction {
                if fraction.numerator > fraction.denominator.unwrap_or(100) {
                    violations.push((
                        at(format!("filters[{f}].requestMirror.fraction")),
                        "numerator must be less than or equal to denominator".into(),
                    ));
                }
            }
        }
        if let Some(modifier) = &filter.request_header_modifier {
            let names =
                modifier.set.iter().flatten().map(|h| &h.name).chain(modifier.add.iter().flatten().map(|h| &h.name));
            if has_duplicates(names.chain(modifier.remove.iter().flatten())) {
                violations
                    .push((at(format!("filters[{f}].requestHeaderModifier")), "header names must be unique".into()));
            }
        }
    }
    if let Some(timeouts) = &rule.timeouts {
        let parse = |t: &Option<String>| t.as_deref().and_then(crate::duration::parse);
        if let (Some(request), Some(backend)) = (parse(&timeouts.request), parse(&timeouts.backend_request)) {
            if !request.is_zero() && backend > request {
                violations.push((
                    at("timeouts".into()),
                    "backendRequest timeout cannot be longer than request timeout".into(),
                ));
            }
        }
    }
}

/// Why an `Exact` or `PathPrefix` value is refused, as the CRD's CEL rules word it.
fn path_problem(value: &str) -> Option<String> {
    if !value.starts_with('/') {
        return Some(
            "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']".into(),
        );
    }
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        if value.contains(bad) {
            return Some(format!("must not contain '{bad}' when type one of ['Exact', 'PathPrefix']"));
        }
    }
    for bad in ["/..", "/."] {
        if value.ends_with(bad) {
            return Some(format!("must not end with '{bad}' when type one of ['Exact', 'PathPrefix']"));
        }
    }
    None
}

fn has_duplicates<'a>(names: impl Iterator<Item = &'a String>) -> bool {
    let mut seen = BTreeSet::new();
    names.map(|n| n.to_ascii_lowercase()).any(|n| !seen.insert(n))
}
