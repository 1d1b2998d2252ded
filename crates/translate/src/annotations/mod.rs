//! ingress-nginx annotations (`nginx.ingress.kubernetes.io/*`, or `--annotations-prefix`),
//! parsed into typed values with ingress-nginx's semantics.
//!
//! Every annotation under the prefix gets a verdict: honoured; ignored (served without it,
//! with a warning — also what ingress-nginx does with an invalid value); or refused — a
//! security setting Sluice does not enforce yet, or a snippet it cannot read as data — which
//! rejects the Ingress, so it is never served unprotected.

mod access;
mod auth;
mod auth_tls;
mod balance;
mod cors;
mod external_auth;
mod limits;
pub(crate) mod snippet;
mod upstream_tls;
pub(crate) mod values;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use rustls::pki_types::ServerName;
use sluice_config::{
    HostMatch, Mirror, MirrorTo, RetryOn, Template, Transport, UpstreamProtocol, UpstreamTls, UpstreamTlsOptions,
    REGEX_SIZE_LIMIT,
};

pub(crate) use access::AccessSettings;
pub(crate) use auth::AuthSettings;
pub(crate) use auth_tls::AuthTlsSettings;
pub(crate) use balance::{BalanceSettings, LoadBalance};
pub(crate) use external_auth::{global as global_auth, ExternalAuthSettings};
pub(crate) use limits::LimitSettings;
pub(crate) use snippet::SnippetEdits;
pub(crate) use upstream_tls::ProxySsl;

/// The default `--annotations-prefix`, ingress-nginx's.
pub const DEFAULT_ANNOTATIONS_PREFIX: &str = "nginx.ingress.kubernetes.io";

/// What Sluice does with one annotation of an Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnotationVerdict {
    /// Applied with ingress-nginx's meaning.
    Honoured,
    /// Not applied (unsupported, or an invalid value): the Ingress is served without it.
    Ignored(String),
    /// The Ingress is rejected: Sluice cannot enforce this.
    Refused(String),
}

/// One annotation and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationReport {
    /// The annotation's full key.
    pub key: String,
    /// What Sluice does with it.
    pub verdict: AnnotationVerdict,
}

/// Requests that go to the canary backend instead of the main one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Canary {
    /// `canary-by-header`.
    pub header: Option<HeaderName>,
    /// `canary-by-header-value`: the header must equal this (instead of `always`).
    pub header_value: Option<String>,
    /// `canary-by-header-pattern`: the header must match this.
    pub header_pattern: Option<regex::Regex>,
    /// `canary-by-cookie`.
    pub cookie: Option<String>,
    /// `canary-weight` out of `canary-weight-total`.
    pub weight: u32,
    /// `canary-weight-total` (default 100).
    pub weight_total: u32,
    /// `affinity-canary-behavior: legacy` (on the canary Ingress): the canary's requests get
    /// no affinity cookie and are balanced as routes without balancing annotations are.
    pub legacy_affinity: bool,
}

/// Route-level overrides of the upstream policy; `None` keeps the global default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PolicyOverrides {
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    /// `proxy-http-version`: `Some(true)` for 1.0.
    pub http10: Option<bool>,
    /// `Some(None)`: no limit (`0`).
    pub max_body: Option<Option<u64>>,
    pub retry_on: Option<RetryOn>,
    pub retry_tries: Option<u32>,
    /// `Some(None)`: no limit (`0`).
    pub retry_timeout: Option<Option<Duration>>,
    /// `enable-access-log` (an annotation only; the ConfigMap's is `disable-access-log`).
    pub access_log: Option<bool>,
}

/// How the backends of an Ingress are reached; part of each backend's identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BackendOptions {
    /// `backend-protocol`, when set.
    pub protocol: Option<UpstreamProtocol>,
    /// `service-upstream`: the Service's ClusterIP instead of its endpoints; `None` when the
    /// annotation is absent, and the controller ConfigMap's `service-upstream` decides when
    /// the backend is resolved.
    pub service_upstream: Option<bool>,
    /// `proxy-ssl-*`, for `HTTPS`/`GRPCS` backends.
    pub proxy_ssl: Option<ProxySsl>,
}

/// The annotations of one Ingress, typed.
#[derive(Debug, Default)]
pub(crate) struct IngressAnnotations {
    /// `use-regex`: every path of the Ingress's hosts is a regex.
    pub use_regex: bool,
    /// `rewrite-target` (implies regex paths).
    pub rewrite_target: Option<Template>,
    /// `x-forwarded-prefix`.
    pub forwarded_prefix: Option<Template>,
    /// `app-root`.
    pub app_root: Option<HeaderValue>,
    /// `ssl-redirect` when set (else the global default).
    pub ssl_redirect: Option<bool>,
    /// `force-ssl-redirect` when set (else the global default).
    pub force_ssl_redirect: Option<bool>,
    /// `preserve-trailing-slash` when set (else the global default).
    pub preserve_trailing_slash: Option<bool>,
    /// `permanent-redirect` or `temporal-redirect` with its code.
    pub redirect: Option<(StatusCode, Template)>,
    /// `from-to-www-redirect`.
    pub from_to_www: bool,
    /// `upstream-vhost`.
    pub upstream_vhost: Option<Template>,
    /// `backend-protocol`, `service-upstream`.
    pub backend: BackendOptions,
    /// Timeouts, body size, retries.
    pub policy: PolicyOverrides,
    /// `canary: "true"` and its settings.
    pub canary: Option<Canary>,
    /// `server-alias`.
    pub server_aliases: Vec<HostMatch>,
    /// `ssl-passthrough`: TLS for this Ingress's hosts is relayed to the `/` backend
    /// (with `--enable-ssl-passthrough`).
    pub ssl_passthrough: bool,
    /// Header changes from `configuration-snippet` and `server-snippet`.
    pub snippet: SnippetEdits,
    /// `load-balance`, `upstream-hash-by`, `affinity` and the `session-cookie-*` settings.
    pub balance: BalanceSettings,
    /// `default-backend`: a Service of the Ingress's namespace for error answers and for
    /// when the Ingress's own backend has no endpoint.
    pub default_backend: Option<String>,
    /// `custom-http-errors`: replaces the ConfigMap's list for this Ingress's paths.
    pub custom_http_errors: Option<Vec<StatusCode>>,
    /// `mirror-target`, `mirror-host`, `mirror-request-body`.
    pub mirror: Option<Mirror>,
    /// `custom-headers`: the ConfigMap (`namespace/name`, or a name in the Ingress's
    /// namespace) of response headers, and the annotation's full key.
    pub custom_headers: Option<(Option<String>, String, Box<str>)>,
    /// Address lists and `satisfy`.
    pub access: AccessSettings,
    /// `enable-cors` and the `cors-*` settings.
    pub cors: Option<Arc<sluice_config::Cors>>,
    /// `limit-*`.
    pub limits: LimitSettings,
    /// `auth-type: basic` and its Secret.
    pub auth: Option<AuthSettings>,
    /// `auth-url` and its family.
    pub external_auth: Option<Arc<ExternalAuthSettings>>,
    /// `auth-tls-*`: client certificates.
    pub auth_tls: Option<AuthTlsSettings>,
    /// `enable-global-auth: "false"`: the ConfigMap's `global-auth-url` does not apply.
    pub no_global_auth: bool,
}

/// How annotations are read: under which prefix, and what the command line allows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading<'a> {
    /// `--annotations-prefix`.
    pub prefix: &'a str,
    /// `--allow-unenforced-waf`: serve Ingresses asking for ModSecurity, with a warning.
    pub allow_unenforced_waf: bool,
}

impl IngressAnnotations {
    /// True when the paths of the Ingress's hosts are regexes.
    pub(crate) fn regex_paths(&self) -> bool {
        self.use_regex || self.rewrite_target.is_some()
    }
}

/// Annotations that are security settings Sluice does not enforce yet: an Ingress carrying
/// one is refused rather than served without the protection it asks for.
fn is_unenforced_security(name: &str) -> bool {
    name.starts_with("global-rate-limit")
}

/// Parses the annotations under `prefix` into typed values, with a verdict for each.
pub(crate) fn parse(
    reading: Reading<'_>,
    annotations: &BTreeMap<String, String>,
) -> (IngressAnnotations, Vec<AnnotationReport>) {
    let prefix = reading.prefix;
    let mut parsed = IngressAnnotations::default();
    let mut reports = Vec::new();
    let ours: BTreeMap<&str, &str> = annotations
        .iter()
        .filter_map(|(key, value)| Some((key.strip_prefix(prefix)?.strip_prefix('/')?, value.as_str())))
        .collect();
    let canary = ours.get("canary").map(|v| values::boolean(v));
    let is_canary = matches!(canary, Some(Ok(true)));
    for (&name, &value) in &ours {
        let verdict = if is_unenforced_security(name) {
            AnnotationVerdict::Refused(
                "security annotations are not enforced by Sluice yet; the Ingress is not served without them".into(),
            )
        } else if is_canary && !name.starts_with("canary") && name != "affinity-canary-behavior" {
            AnnotationVerdict::Ignored("a canary Ingress takes its other settings from its main Ingress".into())
        } else {
            match apply(&mut parsed, name, value, &ours, reading.allow_unenforced_waf) {
                Ok(()) => AnnotationVerdict::Honoured,
                Err(Problem::Ignored(reason)) => AnnotationVerdict::Ignored(reason),
                Err(Problem::Refused(reason)) => AnnotationVerdict::Refused(reason),
            }
        };
        reports.push(AnnotationReport { key: format!("{prefix}/{name}"), verdict });
    }
    if let Some((_, _, key)) = parsed.custom_headers.as_mut() {
        *key = format!("{prefix}/custom-headers").into();
    }
    parsed.cors = cors::compile(&ours);
    let protected = parsed.auth.is_some()
        || parsed.external_auth.is_some()
        || parsed.auth_tls.is_some()
        || parsed.access.allow.is_some()
        || parsed.access.deny.is_some()
        || parsed.limits.compile("", StatusCode::OK, StatusCode::OK).is_some();
    if parsed.ssl_passthrough && protected {
        // Relayed TLS is never read: no credentials, no request to count.
        let key = format!("{prefix}/ssl-passthrough");
        let reason = "relayed TLS cannot carry this Ingress's authentication, address lists or limits; \
                      the Ingress is not served without them";
        for report in reports.iter_mut().filter(|r| r.key == key) {
            report.verdict = AnnotationVerdict::Refused(reason.into());
        }
    }
    if let Some(canary) = parsed.canary.as_mut() {
        canary.weight = canary.weight.min(canary.weight_total);
        canary.legacy_affinity = ours.get("affinity-canary-behavior").is_some_and(|v| legacy_affinity(v) == Ok(true));
    }
    (parsed, reports)
}

enum Problem {
    Ignored(String),
    Refused(String),
}

impl From<String> for Problem {
    fn from(reason: String) -> Self {
        Problem::Ignored(reason)
    }
}

fn apply(
    a: &mut IngressAnnotations,
    name: &str,
    value: &str,
    all: &BTreeMap<&str, &str>,
    allow_unenforced_waf: bool,
) -> Result<(), Problem> {
    match name {
        "use-regex" => a.use_regex = values::boolean(value)?,
        "rewrite-target" => a.rewrite_target = Some(Template::parse(value, true).map_err(|e| e.0)?),
        "x-forwarded-prefix" => {
            header_value(value)?;
            a.forwarded_prefix = Some(template(value)?);
        }
        "app-root" => {
            if !value.starts_with('/') {
                return Err(format!("{value:?} is not an absolute path").into());
            }
            a.app_root = Some(header_value(value)?);
        }
        "ssl-redirect" => a.ssl_redirect = Some(values::boolean(value)?),
        "force-ssl-redirect" => a.force_ssl_redirect = Some(values::boolean(value)?),
        "preserve-trailing-slash" => a.preserve_trailing_slash = Some(values::boolean(value)?),
        "permanent-redirect" | "temporal-redirect" => {
            let permanent = name == "permanent-redirect";
            if permanent && all.contains_key("temporal-redirect") {
                return Err("temporal-redirect is set too, and takes precedence".to_owned().into());
            }
            let (code_key, default, highest) = match permanent {
                true => ("permanent-redirect-code", StatusCode::MOVED_PERMANENTLY, 308),
                false => ("temporal-redirect-code", StatusCode::FOUND, 307),
            };
            let code = all
                .get(code_key)
                .and_then(|c| values::redirect_code(c).ok())
                .filter(|c| c.as_u16() <= highest)
                .unwrap_or(default);
            if value.is_empty() {
                return Err("an empty redirect URL".to_owned().into());
            }
            a.redirect = Some((code, template(value)?));
        }
        "permanent-redirect-code" | "temporal-redirect-code" => {
            let code = values::redirect_code(value)?;
            if name == "temporal-redirect-code" && code == StatusCode::PERMANENT_REDIRECT {
                return Err("308 is permanent; temporal-redirect answers 302".to_owned().into());
            }
            let url_key = name.trim_end_matches("-code");
            if !all.contains_key(url_key) {
                return Err(format!("has no effect without {url_key}").into());
            }
        }
        "from-to-www-redirect" => a.from_to_www = values::boolean(value)?,
        "upstream-vhost" => a.upstream_vhost = Some(template(value)?),
        "enable-access-log" => a.policy.access_log = Some(values::boolean(value)?),
        "backend-protocol" => {
            a.backend.protocol = match value.to_ascii_uppercase().as_str() {
                "HTTP" | "AUTO_HTTP" => Some(UpstreamProtocol::Http1),
                "GRPC" | "H2C" => Some(UpstreamProtocol::H2c),
                "HTTPS" => Some(UpstreamProtocol::Https),
                "GRPCS" => Some(UpstreamProtocol::H2),
                "FCGI" => return Err(Problem::Refused("FCGI: FastCGI backends are not supported".into())),
                _ => return Err(format!("{value:?} is not one of HTTP, HTTPS, GRPC, GRPCS, AUTO_HTTP, FCGI").into()),
            }
        }
        "service-upstream" => {
            // As ingress-nginx: an invalid value means false, not the ConfigMap's default.
            let parsed = values::boolean(value);
            a.backend.service_upstream = Some(parsed == Ok(true));
            parsed?;
        }
        // Keys are visited in order: `backend-protocol` has been read.
        "proxy-ssl-secret" => a.backend.proxy_ssl = Some(upstream_tls::parse(value, all, a.backend.protocol)?),
        "proxy-ssl-verify" | "proxy-ssl-name" | "proxy-ssl-server-name" => {
            upstream_tls::check_setting(name, value, all)?
        }
        "ssl-passthrough" => a.ssl_passthrough = values::boolean(value)?,
        // Keys are visited in order: `canary` comes before every `canary-*` key.
        "canary" => {
            if values::boolean(value)? {
                a.canary = Some(Canary { weight_total: 100, ..Canary::default() });
            }
        }
        "canary-by-header"
        | "canary-by-header-value"
        | "canary-by-header-pattern"
        | "canary-by-cookie"
        | "canary-weight"
        | "canary-weight-total" => {
            let canary = a.canary.as_mut().ok_or_else(|| "has no effect without canary: \"true\"".to_owned())?;
            canary_key(canary, name, value)?;
        }
        "server-alias" => {
            for alias in value.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                let host = HostMatch::parse(Some(alias)).map_err(|e| format!("{alias:?}: {}", e.0))?;
                a.server_aliases.push(host);
            }
        }
        "default-backend" => {
            let name = value.trim();
            if !crate::ingress::is_dns_label(name) {
                return Err(format!("{value:?} is not a Service name").into());
            }
            a.default_backend = Some(name.to_owned());
        }
        "custom-http-errors" => a.custom_http_errors = Some(status_list(value, 400, 599)?),
        "mirror-target" => a.mirror = Some(mirror(value, all)?),
        "custom-headers" => {
            let (namespace, name) =
                object_ref(value).ok_or_else(|| format!("{value:?} is not a ConfigMap reference (namespace/name)"))?;
            a.custom_headers = Some((namespace, name, "custom-headers".into()));
        }
        "mirror-host" | "mirror-request-body" => {
            if !all.contains_key("mirror-target") {
                return Err("has no effect without mirror-target".to_owned().into());
            }
            if name == "mirror-host" {
                header_value(value)?;
            }
        }
        // Set on the canary when it is read (`canary` comes after it), as ingress-nginx
        // reads it on the canary Ingress.
        "affinity-canary-behavior" => {
            let canary = all.get("canary").is_some_and(|v| values::boolean(v) == Ok(true));
            if legacy_affinity(value)? && !canary {
                return Err("has no effect on a main Ingress: set it on the canary Ingress".to_owned().into());
            }
        }
        "configuration-snippet" | "server-snippet" => {
            snippet::parse(value, &mut a.snippet).map_err(Problem::Refused)?;
        }
        "stream-snippet" => {
            return Err(Problem::Refused("stream snippets configure raw TCP/UDP and are never rendered".into()))
        }
        "enable-cors" => drop(values::boolean(value)?),
        "enable-global-auth" => a.no_global_auth = !values::boolean(value)?,
        _ => {
            let result = balance::setting(&mut a.balance, name, value, all)
                .map(|result| result.map_err(Problem::from))
                .or_else(|| policy_setting(&mut a.policy, name, value).map(|result| result.map_err(Problem::from)))
                .or_else(|| access::setting(&mut a.access, name, value, all, allow_unenforced_waf))
                .or_else(|| limits::setting(&mut a.limits, name, value, all))
                .or_else(|| auth::setting(&mut a.auth, name, value, all))
                .or_else(|| external_auth::setting(&mut a.external_auth, name, value, all))
                .or_else(|| auth_tls::setting(&mut a.auth_tls, name, value, all))
                .or_else(|| cors::setting(name, value, all));
            match result {
                Some(result) => result?,
                None => {
                    return Err(format!("{name} is not supported by Sluice; the Ingress is served without it").into())
                }
            }
        }
    }
    Ok(())
}

/// Applies one `proxy-*` timeout, body-size or retry setting (an annotation, or a key of the
/// controller ConfigMap, which share names and meaning); `None` when `name` is not one.
pub(crate) fn policy_setting(p: &mut PolicyOverrides, name: &str, value: &str) -> Option<Result<(), String>> {
    let result = match name {
        "proxy-body-size" => values::size(value).map(|limit| p.max_body = Some(limit)),
        "proxy-connect-timeout" => timeout(value).map(|t| p.connect_timeout = Some(t)),
        "proxy-read-timeout" => timeout(value).map(|t| p.read_timeout = Some(t)),
        "proxy-send-timeout" => timeout(value).map(|t| p.send_timeout = Some(t)),
        "proxy-http-version" => match value.trim() {
            "1.0" => Ok(true),
            "1.1" => Ok(false),
            _ => Err(format!("{value:?} is not 1.0 or 1.1")),
        }
        .map(|http10| p.http10 = Some(http10)),
        "proxy-next-upstream" => retry_on(value).map(|on| p.retry_on = Some(on)),
        "proxy-next-upstream-tries" => values::number(value, 0, 100).map(|tries| p.retry_tries = Some(tries)),
        "proxy-next-upstream-timeout" => {
            values::duration(value).map(|limit| p.retry_timeout = Some((!limit.is_zero()).then_some(limit)))
        }
        _ => return None,
    };
    Some(result)
}

fn timeout(value: &str) -> Result<Duration, String> {
    positive(values::duration(value)?)
}

/// `mirror-target` with its `mirror-host` and `mirror-request-body`.
fn mirror(value: &str, all: &BTreeMap<&str, &str>) -> Result<Mirror, String> {
    let (authority, transport) = url_target(value)?;
    let host = match all.get("mirror-host") {
        Some(written) => header_value(written)?,
        None => header_value(authority.host())?,
    };
    let body = all.get("mirror-request-body").is_none_or(|v| v.trim() != "off");
    Ok(Mirror { to: MirrorTo::Url { target: template(value)?, host, transport }, body, share: None })
}

/// The host of an `http://` or `https://` URL whose text may end in nginx variables (the
/// host itself must be written out), and how to reach it: cleartext, or TLS without
/// verification (nginx's default towards such URLs) with the host as SNI.
pub(crate) fn url_target(value: &str) -> Result<(http::uri::Authority, Transport), String> {
    let literal = value.split('$').next().unwrap_or_default();
    let (https, rest) = match (literal.strip_prefix("https://"), literal.strip_prefix("http://")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => return Err(format!("{value:?} does not start with http:// or https://")),
    };
    let authority = rest
        .split(['/', '?'])
        .next()
        .and_then(|authority| authority.parse::<http::uri::Authority>().ok())
        .ok_or_else(|| format!("{value:?} does not name a host"))?;
    let transport = if https {
        let server_name = ServerName::try_from(authority.host().trim_start_matches('[').trim_end_matches(']'))
            .map(|name| name.to_owned())
            .map_err(|_| format!("{value:?}: {} is not a TLS server name", authority.host()))?;
        let mut options = UpstreamTlsOptions::unverified(false);
        options.server_name = Some(server_name);
        options.sni = true;
        let tls = UpstreamTls::new(options).map_err(|e| format!("{value:?}: {e}"))?;
        Transport::Tls(Arc::new(tls))
    } else {
        Transport::Http1
    };
    Ok((authority, transport))
}

/// A reference to an object from an annotation: `namespace/name`, or a name in the
/// Ingress's namespace (`None` namespace); `None` when it is not one.
pub(crate) fn object_ref(value: &str) -> Option<(Option<String>, String)> {
    let value = value.trim();
    let (namespace, name) = match value.split_once('/') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, value),
    };
    let valid = |n: &str| crate::ingress::is_dns_label(n) || n.split('.').all(crate::ingress::is_dns_label);
    (valid(name) && namespace.is_none_or(crate::ingress::is_dns_label))
        .then(|| (namespace.map(str::to_owned), name.to_owned()))
}

/// A comma-separated list of statuses in `lowest..=599` (`custom-http-errors`).
pub(crate) fn status_list(value: &str, lowest: u16, highest: u16) -> Result<Vec<StatusCode>, String> {
    let mut codes = Vec::new();
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let code = item
            .parse::<u16>()
            .ok()
            .filter(|c| (lowest..=highest).contains(c))
            .and_then(|c| StatusCode::from_u16(c).ok())
            .ok_or_else(|| format!("{item:?} is not a status from {lowest} to {highest}"))?;
        codes.push(code);
    }
    codes.sort_unstable();
    codes.dedup();
    Ok(codes)
}

/// `affinity-canary-behavior`: `sticky` (false) or `legacy` (true), case-sensitive as in
/// ingress-nginx.
fn legacy_affinity(value: &str) -> Result<bool, String> {
    match value.trim() {
        "sticky" => Ok(false),
        "legacy" => Ok(true),
        _ => Err(format!("{value:?} is not sticky or legacy")),
    }
}

fn canary_key(canary: &mut Canary, name: &str, value: &str) -> Result<(), String> {
    match name {
        "canary-by-header" => {
            canary.header =
                Some(HeaderName::from_bytes(value.as_bytes()).map_err(|_| format!("{value:?} is not a header name"))?)
        }
        "canary-by-header-value" => canary.header_value = Some(value.to_owned()),
        "canary-by-header-pattern" => {
            let regex = regex::RegexBuilder::new(value)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|_| format!("{value:?} is not a usable regex"))?;
            canary.header_pattern = Some(regex);
        }
        "canary-by-cookie" => canary.cookie = Some(value.to_owned()),
        "canary-weight" => canary.weight = values::number(value, 0, 1_000_000)?,
        "canary-weight-total" => canary.weight_total = values::number(value, 1, 1_000_000)?,
        _ => return Err(format!("{name} is not a canary setting")),
    }
    Ok(())
}

pub(crate) fn retry_on(value: &str) -> Result<RetryOn, String> {
    let mut on = RetryOn::default();
    for token in value.split_whitespace() {
        match token {
            "error" => on.error = true,
            "timeout" => on.timeout = true,
            "invalid_header" => on.error = true,
            "non_idempotent" => on.non_idempotent = true,
            "off" => {}
            status => {
                let code = status
                    .strip_prefix("http_")
                    .and_then(|c| c.parse::<u16>().ok())
                    .filter(|c| matches!(c, 500 | 502 | 503 | 504 | 403 | 404 | 429))
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .ok_or_else(|| format!("{token:?} is not a proxy-next-upstream condition"))?;
                on.statuses.push(code);
            }
        }
    }
    if value.split_whitespace().any(|t| t == "off") && value.split_whitespace().count() > 1 {
        return Err("\"off\" cannot be combined with other conditions".into());
    }
    Ok(on)
}

fn header_value(value: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value).map_err(|_| format!("{value:?} is not a valid header value"))
}

fn template(value: &str) -> Result<Template, String> {
    Template::parse(value, false).map_err(|e| e.0)
}

fn positive(duration: Duration) -> Result<Duration, String> {
    if duration.is_zero() {
        return Err("a timeout of 0 is not allowed".into());
    }
    Ok(duration)
}

#[cfg(test)]
mod tests;
