//! The controller ConfigMap (`--configmap NAMESPACE/NAME`): ingress-nginx's global settings,
//! read with its key names and meaning. Every key is honoured or named in a warning; an
//! invalid value keeps the default (with a warning), as ingress-nginx does.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use sluice_config::{AddressSet, Blocklist};
use sluice_config::{ClientTrust, Diagnostic, IpNet, ObjectRef, RealIp};
use sluice_store::k8s_openapi::api::core::v1::ConfigMap;
use sluice_store::ObjectKey;

use crate::annotations::{policy_setting, snippet, status_list, values, LoadBalance, PolicyOverrides, SnippetEdits};
use crate::compile::{merged_policy, Defaults};

/// What the ConfigMap sets: route defaults (what annotations override) and whom the
/// listeners believe about clients.
#[derive(Debug, Clone)]
pub(crate) struct Global {
    /// Defaults for every route.
    pub defaults: Defaults,
    /// PROXY protocol and forwarding headers.
    pub trust: Arc<ClientTrust>,
    /// Ignored keys and invalid values.
    pub diagnostics: Vec<Diagnostic>,
}

/// The settings `configmap` makes of `base` (the command line's); `base` alone when there
/// is no ConfigMap (a missing one is a warning: ingress-nginx starts with its defaults too).
pub(crate) fn read(
    base: &Defaults,
    key: Option<&ObjectKey>,
    configmap: Option<&ConfigMap>,
    allow_unenforced_waf: bool,
) -> Global {
    let mut global = Global { defaults: base.clone(), trust: Arc::default(), diagnostics: Vec::new() };
    let Some(key) = key else {
        return global;
    };
    let object = ObjectRef::new("ConfigMap", &key.namespace, &key.name);
    let Some(configmap) = configmap else {
        let why = "not found; ingress-nginx's defaults apply until it exists";
        global.diagnostics.push(Diagnostic::warning(object, "metadata.name", why));
        return global;
    };
    let data = configmap.data.clone().unwrap_or_default();
    let mut settings = Settings::default();
    for (name, value) in &data {
        if let Some(result) = snippet(&mut global.defaults, name, value) {
            if let Err(reason) = result {
                // Never served half-read: the key is dropped, loudly.
                let reason = format!("{reason}; the key is ignored until it is fixed");
                global.diagnostics.push(Diagnostic::object(object.clone(), format!("data.{name}"), reason));
            }
            continue;
        }
        if name.starts_with("global-auth-") {
            continue; // read together below
        }
        if matches!(name.as_str(), "enable-modsecurity" | "enable-owasp-modsecurity-crs" | "modsecurity-snippet") {
            let on = name == "modsecurity-snippet" || values::boolean(value) != Ok(false);
            if on && allow_unenforced_waf {
                let reason = "Sluice has no web application firewall; every route is served without one \
                              (--allow-unenforced-waf)";
                global.diagnostics.push(Diagnostic::warning(object.clone(), format!("data.{name}"), reason));
            } else if on {
                global.defaults.waf_required = true;
                let reason = "Sluice has no web application firewall; every route answers 503 rather than be served \
                              without one (--allow-unenforced-waf serves them, with a warning)";
                global.diagnostics.push(Diagnostic::object(object.clone(), format!("data.{name}"), reason));
            }
            continue;
        }
        if name == "no-auth-locations" {
            global.defaults.no_auth_locations =
                value.split(',').map(str::trim).filter(|l| !l.is_empty()).map(Into::into).collect();
            continue;
        }
        if matches!(name.as_str(), "block-user-agents" | "block-referers") {
            let items: Vec<&str> = value.split(',').collect();
            let mut list = global
                .defaults
                .blocklist
                .as_deref()
                .cloned()
                .unwrap_or(Blocklist { user_agents: None, referers: None });
            let pattern = match Blocklist::pattern(&items) {
                Ok(pattern) => pattern,
                Err(reason) => {
                    // Fail closed: a list that cannot be read blocks every value.
                    let reason = format!("{reason}; every request is refused (403) until it is fixed");
                    global.diagnostics.push(Diagnostic::object(object.clone(), format!("data.{name}"), reason));
                    Blocklist::pattern(&["~."]).ok().flatten()
                }
            };
            match name.as_str() {
                "block-user-agents" => list.user_agents = pattern,
                _ => list.referers = pattern,
            }
            let any = list.user_agents.is_some() || list.referers.is_some();
            global.defaults.blocklist = any.then(|| Arc::new(list));
            continue;
        }
        if let Some(result) = address_list(&mut global.defaults, name, value) {
            if let Err(reason) = result {
                global.diagnostics.push(Diagnostic::object(object.clone(), format!("data.{name}"), reason));
            }
            continue;
        }
        if let Err(reason) = settings.apply(&mut global.defaults, name, value) {
            global.diagnostics.push(Diagnostic::warning(object.clone(), format!("data.{name}"), reason));
        }
    }
    if let Some(global_auth) = crate::annotations::global_auth(&data) {
        if let Err(reason) = &global_auth {
            let reason = format!("{reason}; every route it would protect answers 503 until it is fixed");
            global.diagnostics.push(Diagnostic::object(object.clone(), "data.global-auth-url", reason));
        }
        global.defaults.global_auth = Some(global_auth);
    }
    if settings.policy != PolicyOverrides::default() || settings.retry_non_idempotent {
        let mut policy = (*merged_policy(&base.policy, &settings.policy)).clone();
        policy.retry.on.non_idempotent |= settings.retry_non_idempotent;
        global.defaults.policy = Arc::new(policy);
    }
    global.defaults.hsts = settings.hsts.header();
    global.trust = Arc::new(settings.trust());
    global
}

/// Keys read together: HSTS is one header from four keys, client trust from five.
#[derive(Debug)]
struct Settings {
    policy: PolicyOverrides,
    retry_non_idempotent: bool,
    hsts: Hsts,
    proxy_protocol: bool,
    forwarded_headers: bool,
    real_ip: bool,
    full_forwarded_for: bool,
    forwarded_for_header: HeaderName,
    trusted: Vec<IpNet>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            policy: PolicyOverrides::default(),
            retry_non_idempotent: false,
            hsts: Hsts::default(),
            proxy_protocol: false,
            forwarded_headers: false,
            real_ip: false,
            full_forwarded_for: false,
            forwarded_for_header: HeaderName::from_static("x-forwarded-for"),
            trusted: vec![IpNet::V4(Default::default()), IpNet::V6(Default::default())],
        }
    }
}

impl Settings {
    fn apply(&mut self, defaults: &mut Defaults, name: &str, value: &str) -> Result<(), String> {
        match name {
            "ssl-redirect" => defaults.ssl_redirect = values::boolean(value)?,
            "force-ssl-redirect" => defaults.force_ssl_redirect = values::boolean(value)?,
            "preserve-trailing-slash" => defaults.preserve_trailing_slash = values::boolean(value)?,
            "no-tls-redirect-locations" => {
                defaults.no_tls_redirect_locations =
                    value.split(',').map(str::trim).filter(|l| !l.is_empty()).map(Into::into).collect();
            }
            "service-upstream" => defaults.service_upstream = values::boolean(value)?,
            "allow-cross-namespace-resources" => defaults.allow_cross_namespace_resources = values::boolean(value)?,
            "http-redirect-code" => {
                let code = values::redirect_code(value)?;
                if !matches!(code.as_u16(), 301 | 302 | 307 | 308) {
                    return Err(format!("{value:?} is not 301, 302, 307 or 308"));
                }
                defaults.redirect_code = code;
            }
            "limit-req-status-code" => defaults.limit_req_status = error_status(value)?,
            "limit-conn-status-code" => defaults.limit_conn_status = error_status(value)?,
            "hsts" => self.hsts.on = values::boolean(value)?,
            "hsts-max-age" => self.hsts.max_age = values::number(value, 0, u32::MAX)?,
            "hsts-include-subdomains" => self.hsts.include_subdomains = values::boolean(value)?,
            "hsts-preload" => self.hsts.preload = values::boolean(value)?,
            "retry-non-idempotent" => self.retry_non_idempotent = values::boolean(value)?,
            "use-proxy-protocol" => self.proxy_protocol = values::boolean(value)?,
            "use-forwarded-headers" => self.forwarded_headers = values::boolean(value)?,
            "enable-real-ip" => self.real_ip = values::boolean(value)?,
            "compute-full-forwarded-for" => self.full_forwarded_for = values::boolean(value)?,
            "forwarded-for-header" => {
                self.forwarded_for_header = HeaderName::from_bytes(value.trim().as_bytes())
                    .map_err(|_| format!("{value:?} is not a header name"))?;
            }
            "proxy-real-ip-cidr" => self.trusted = cidrs(value)?,
            "load-balance" => defaults.load_balance = LoadBalance::parse(value)?,
            "custom-http-errors" => defaults.custom_http_errors = status_list(value, 300, 599)?,
            "global-allowed-response-headers" => {
                defaults.allowed_response_headers = value
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| HeaderName::from_bytes(n.as_bytes()).map_err(|_| format!("{n:?} is not a header name")))
                    .collect::<Result<_, _>>()?;
            }
            _ => match policy_setting(&mut self.policy, name, value) {
                Some(result) => result?,
                None => return Err(format!("{name} is not supported by Sluice; ignored")),
            },
        }
        Ok(())
    }

    fn trust(&self) -> ClientTrust {
        let real_ip = (self.forwarded_headers || self.real_ip)
            .then(|| RealIp { header: self.forwarded_for_header.clone(), trusted: self.trusted.clone() });
        ClientTrust {
            proxy_protocol: self.proxy_protocol,
            real_ip,
            forwarded_headers: self.forwarded_headers,
            full_forwarded_for: self.forwarded_headers && self.full_forwarded_for,
        }
    }
}

/// `hsts`, `hsts-max-age`, `hsts-include-subdomains`, `hsts-preload`.
#[derive(Debug)]
struct Hsts {
    on: bool,
    max_age: u32,
    include_subdomains: bool,
    preload: bool,
}

impl Default for Hsts {
    /// ingress-nginx's: on, a year, subdomains included, no preload.
    fn default() -> Self {
        Self { on: true, max_age: 31_536_000, include_subdomains: true, preload: false }
    }
}

impl Hsts {
    fn header(&self) -> Option<HeaderValue> {
        if !self.on {
            return None;
        }
        let mut text = format!("max-age={}", self.max_age);
        if self.include_subdomains {
            text.push_str("; includeSubDomains");
        }
        if self.preload {
            text.push_str("; preload");
        }
        HeaderValue::from_str(&text).ok()
    }
}

/// `server-snippet` and `location-snippet`: header lines for every route, read like the
/// snippet annotations; `None` for any other key. Anything but header lines is an error.
fn snippet(defaults: &mut Defaults, name: &str, value: &str) -> Option<Result<(), String>> {
    let slot = match name {
        "server-snippet" => &mut defaults.server_snippet,
        "location-snippet" => &mut defaults.location_snippet,
        _ => return None,
    };
    let mut edits = SnippetEdits::default();
    Some(snippet::parse(value, &mut edits).map(|()| *slot = Some(Arc::new(edits))))
}

/// A comma-separated list of CIDRs (a bare address is a /32 or /128).
/// The global address lists (`whitelist-source-range`, `denylist-source-range`,
/// `block-cidrs`); `None` when `name` is not one. An unreadable list never opens anything:
/// an allow list then allows nobody, a deny list denies everybody.
fn address_list(defaults: &mut Defaults, name: &str, value: &str) -> Option<Result<(), String>> {
    let slot = match name {
        "whitelist-source-range" => &mut defaults.allow_sources,
        "denylist-source-range" => &mut defaults.deny_sources,
        "block-cidrs" => &mut defaults.block_sources,
        _ => return None,
    };
    let everybody = || AddressSet::parse("0.0.0.0/0, ::/0").ok();
    let (set, result) = match AddressSet::parse(value) {
        Ok(set) => ((!set.is_empty()).then_some(set), Ok(())),
        Err(reason) => {
            // Fail closed: an allow list of nobody, or a deny list of everybody.
            let closed = if name == "whitelist-source-range" { AddressSet::parse("").ok() } else { everybody() };
            (closed, Err(format!("{reason}; every request is refused (403) until it is fixed")))
        }
    };
    *slot = set;
    Some(result)
}

/// A 4xx or 5xx status (the limits' answers).
fn error_status(value: &str) -> Result<http::StatusCode, String> {
    let code = values::number(value, 400, 599)?;
    http::StatusCode::from_u16(code as u16).map_err(|_| format!("{value:?} is not a status"))
}

pub(crate) fn cidrs(value: &str) -> Result<Vec<IpNet>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| format!("{item:?} is not an address or CIDR"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_config::UpstreamPolicy;

    use super::*;

    fn global(data: &[(&str, &str)]) -> Global {
        let data = data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        let configmap = ConfigMap { data: Some(data), ..ConfigMap::default() };
        read(&Defaults::default(), Some(&ObjectKey::new("ingress-nginx", "controller")), Some(&configmap), false)
    }

    #[test]
    fn hsts_keys_make_one_header() {
        let g = global(&[("hsts-max-age", "86400"), ("hsts-include-subdomains", "false"), ("hsts-preload", "true")]);
        assert_eq!(g.defaults.hsts.unwrap(), "max-age=86400; preload");
        assert!(global(&[("hsts", "false")]).defaults.hsts.is_none());
    }

    #[test]
    fn policy_keys_and_invalid_values() {
        let g =
            global(&[("proxy-read-timeout", "5"), ("proxy-connect-timeout", "50k"), ("retry-non-idempotent", "true")]);
        assert_eq!(g.defaults.policy.read_timeout.as_secs(), 5);
        assert_eq!(g.defaults.policy.connect_timeout, UpstreamPolicy::default().connect_timeout);
        assert!(g.defaults.policy.retry.on.non_idempotent);
        let fields: Vec<_> = g.diagnostics.iter().map(|d| d.field.clone()).collect();
        assert_eq!(fields, ["data.proxy-connect-timeout"]);
    }

    #[test]
    fn client_trust() {
        let g = global(&[("use-forwarded-headers", "true"), ("proxy-real-ip-cidr", "10.0.0.0/8, 192.0.2.1")]);
        let real_ip = g.trust.real_ip.clone().unwrap();
        assert_eq!(real_ip.trusted.len(), 2);
        assert!(g.trust.forwarded_headers && !g.trust.proxy_protocol && !g.trust.full_forwarded_for);
        let g = global(&[("enable-real-ip", "true"), ("use-proxy-protocol", "true"), ("unknown-key", "1")]);
        assert!(g.trust.real_ip.is_some() && !g.trust.forwarded_headers && g.trust.proxy_protocol);
        assert_eq!(g.diagnostics.len(), 1);
        assert!(global(&[("proxy-real-ip-cidr", "10.0.0.0/33")]).diagnostics[0].reason.contains("not an address"));
    }

    #[test]
    fn redirect_exemptions_and_backend_defaults() {
        let g = global(&[]);
        assert_eq!(g.defaults.no_tls_redirect_locations, ["/.well-known/acme-challenge".into()]);
        assert!(!g.defaults.service_upstream && !g.defaults.allow_cross_namespace_resources);
        let g = global(&[
            ("no-tls-redirect-locations", "/.well-known/acme-challenge, /health,,"),
            ("service-upstream", "true"),
            ("allow-cross-namespace-resources", "true"),
        ]);
        assert_eq!(g.defaults.no_tls_redirect_locations, ["/.well-known/acme-challenge".into(), "/health".into()]);
        assert!(g.defaults.service_upstream && g.defaults.allow_cross_namespace_resources);
        assert!(g.diagnostics.is_empty(), "{:?}", g.diagnostics);
        let g = global(&[("service-upstream", "yes")]);
        assert!(!g.defaults.service_upstream);
        assert_eq!(g.diagnostics[0].field, "data.service-upstream");
    }

    #[test]
    fn snippets_are_header_lines_or_an_error() {
        let g = global(&[
            ("server-snippet", "more_set_headers \"X-Server: s\"; proxy_set_header X-Up u;"),
            ("location-snippet", "add_header X-Loc l always;"),
        ]);
        assert!(g.diagnostics.is_empty(), "{:?}", g.diagnostics);
        let server = g.defaults.server_snippet.as_ref().unwrap();
        assert_eq!(server.response.set[0].0, "x-server");
        assert_eq!(server.request.set[0].0, "x-up");
        assert_eq!(g.defaults.location_snippet.as_ref().unwrap().response.add[0].0, "x-loc");

        let g = global(&[("location-snippet", "more_set_headers \"X-A: b\"; lua_need_request_body on;")]);
        assert!(g.defaults.location_snippet.is_none(), "a snippet is used whole or not at all");
        let d = &g.diagnostics[0];
        assert!(d.is_error() && d.field == "data.location-snippet", "{d:?}");
        assert!(d.reason.contains("lua_need_request_body") && d.reason.contains("ignored"), "{d:?}");
    }

    #[test]
    fn a_missing_configmap_is_a_warning_with_defaults() {
        let g = read(&Defaults::default(), Some(&ObjectKey::new("a", "b")), None, false);
        assert_eq!(g.diagnostics.len(), 1);
        assert!(!g.diagnostics[0].is_error());
        assert!(g.defaults.ssl_redirect);
    }

    #[test]
    fn global_address_lists_never_fail_open() {
        let g = global(&[("whitelist-source-range", "10.0.0.0/8"), ("block-cidrs", "10.9.0.0/16")]);
        assert!(g.diagnostics.is_empty(), "{:?}", g.diagnostics);
        assert!(g.defaults.allow_sources.as_ref().unwrap().contains("10.1.1.1".parse().unwrap()));
        assert!(g.defaults.block_sources.as_ref().unwrap().contains("10.9.1.1".parse().unwrap()));
        let typo = global(&[("whitelist-source-range", "10.0.0.0/33"), ("denylist-source-range", "nope")]);
        assert_eq!(typo.diagnostics.len(), 2);
        assert!(typo.diagnostics.iter().all(|d| d.is_error()));
        let allow = typo.defaults.allow_sources.unwrap();
        assert!(allow.is_empty(), "an unreadable allow list allows nobody");
        assert!(typo.defaults.deny_sources.unwrap().contains("192.0.2.1".parse().unwrap()), "denies everybody");
    }

    #[test]
    fn a_global_waf_closes_every_route_unless_allowed() {
        let g = global(&[("enable-modsecurity", "true")]);
        assert!(g.defaults.waf_required);
        assert!(g.diagnostics[0].is_error());
        assert!(!global(&[("enable-modsecurity", "false")]).defaults.waf_required);
    }
}
