//! ingress-nginx's external-auth annotations (`auth-url` and its family): parsed here into
//! [`ExternalAuthSettings`]; the `auth-proxy-set-headers` ConfigMap is read when routes are
//! compiled. Anything that cannot be read rejects the Ingress — it is never served without
//! the check it asks for — and `auth-snippet` is refused (it would be nginx configuration).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{Method, StatusCode};
use sluice_config::{AuthCaching, ExternalAuth, Template, Transport};

use super::{values, Problem};

/// `auth-cache-duration`'s default when only `auth-cache-key` is set (ingress-nginx's).
const DEFAULT_CACHE: &str = "200 202 401 5m";

/// The external authentication an Ingress asks for: the route model's value without what
/// compiling adds (the `auth-proxy-set-headers` ConfigMap's headers, the route's timeouts).
#[derive(Debug, Clone)]
pub(crate) struct ExternalAuthSettings {
    pub auth: ExternalAuth,
    /// `auth-proxy-set-headers`: (namespace when given, name) of a ConfigMap.
    pub set_headers: Option<(Option<String>, String)>,
}

/// Checks one external-auth annotation; `None` when `name` is not one. `auth-url` reads
/// the whole family (key order puts it after most of them).
pub(crate) fn setting(
    auth: &mut Option<Arc<ExternalAuthSettings>>,
    name: &str,
    value: &str,
    all: &BTreeMap<&str, &str>,
) -> Option<Result<(), Problem>> {
    let refuse =
        |reason: String| Problem::Refused(format!("{reason}; the Ingress is not served without its auth check"));
    let result = match name {
        "auth-url" => settings(value, all).map(|s| *auth = Some(Arc::new(s))).map_err(refuse),
        "auth-snippet" => Err(Problem::Refused("auth-snippet is nginx configuration and is never rendered".into())),
        "auth-keepalive" | "auth-keepalive-requests" | "auth-keepalive-share-vars" | "auth-keepalive-timeout" => {
            Err(Problem::Ignored("connections to the auth service are pooled by Sluice itself".into()))
        }
        "auth-method"
        | "auth-signin"
        | "auth-signin-redirect-param"
        | "auth-response-headers"
        | "auth-request-redirect"
        | "auth-proxy-set-headers"
        | "auth-cache-key"
        | "auth-cache-duration"
        | "auth-always-set-cookie" => match all.contains_key("auth-url") {
            // Read (and refused when wrong) with auth-url.
            true => Ok(()),
            false => Err(Problem::Ignored("has no effect without auth-url".into())),
        },
        _ => return None,
    };
    Some(result)
}

/// The ConfigMap's `global-auth-*` keys read as the annotations of the same names without
/// `global-` (`global-auth-snippet` is refused); `None` without `global-auth-url`.
pub(crate) fn global(data: &BTreeMap<String, String>) -> Option<Result<Arc<ExternalAuthSettings>, String>> {
    let all: BTreeMap<&str, &str> =
        data.iter().filter_map(|(k, v)| Some((k.strip_prefix("global-")?, v.as_str()))).collect();
    let url = all.get("auth-url").map(|u| u.trim()).filter(|u| !u.is_empty())?;
    if all.contains_key("auth-snippet") {
        return Some(Err("global-auth-snippet is nginx configuration and is never rendered".into()));
    }
    Some(settings(url, &all).map(Arc::new))
}

fn settings(url: &str, all: &BTreeMap<&str, &str>) -> Result<ExternalAuthSettings, String> {
    let (template, transport) = target(url)?;
    let method = match all.get("auth-method").map(|m| m.trim()) {
        None => Method::GET,
        Some(m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS")) => {
            Method::from_bytes(m.as_bytes()).map_err(|_| format!("auth-method {m:?} is not a method"))?
        }
        Some(other) => {
            return Err(format!("auth-method {other:?} is not GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"))
        }
    };
    let signin = match all.get("auth-signin").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        // The host may be a variable (`https://$host/oauth2/start`): only the scheme is checked.
        Some(s) if s.starts_with("https://") || s.starts_with("http://") => {
            Some(Template::parse(s, false).map_err(|e| format!("auth-signin {s:?}: {}", e.0))?)
        }
        Some(s) => return Err(format!("auth-signin {s:?} is not an http:// or https:// URL")),
        None => None,
    };
    let param = all.get("auth-signin-redirect-param").map_or("rd", |p| p.trim());
    if param.is_empty() || !param.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
        return Err(format!("auth-signin-redirect-param {param:?} is not a parameter name"));
    }
    let response_headers = all
        .get("auth-response-headers")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|h| {
                    HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| format!("auth-response-headers: {h:?} is not a header name"))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let request_redirect = match all.get("auth-request-redirect") {
        Some(r) if !r.trim().is_empty() => {
            Some(Template::parse(r.trim(), false).map_err(|e| format!("auth-request-redirect: {}", e.0))?)
        }
        _ => None,
    };
    let set_headers = all
        .get("auth-proxy-set-headers")
        .map(|r| {
            super::object_ref(r).ok_or_else(|| format!("auth-proxy-set-headers {r:?} is not a ConfigMap reference"))
        })
        .transpose()?;
    let cache = match all.get("auth-cache-key").map(|k| k.trim()).filter(|k| !k.is_empty()) {
        Some(key) => {
            let key = Template::parse(key, false).map_err(|e| format!("auth-cache-key: {}", e.0))?;
            let durations = cache_durations(all.get("auth-cache-duration").copied().unwrap_or(DEFAULT_CACHE))?;
            Some(AuthCaching { key, durations: durations.into() })
        }
        None => None,
    };
    let always_set_cookie = match all.get("auth-always-set-cookie") {
        Some(v) => values::boolean(v).map_err(|e| format!("auth-always-set-cookie: {e}"))?,
        None => false,
    };
    let auth = ExternalAuth {
        url: template,
        transport,
        method,
        signin,
        signin_redirect_param: param.into(),
        response_headers: response_headers.into(),
        request_redirect,
        set_headers: Box::new([]),
        cache,
        always_set_cookie,
        connect_timeout: Duration::ZERO,
        read_timeout: Duration::ZERO,
    };
    Ok(ExternalAuthSettings { auth, set_headers })
}

/// An `http://` or `https://` URL with an optional nginx-variable part, and how to reach it.
fn target(url: &str) -> Result<(Template, Transport), String> {
    let (_, transport) = super::url_target(url)?;
    let template = Template::parse(url, false).map_err(|e| format!("{url:?}: {}", e.0))?;
    Ok((template, transport))
}

/// `auth-cache-duration`: groups of statuses each followed by a time, separated by commas
/// (`200 202 10m, 401 5m`).
fn cache_durations(value: &str) -> Result<Vec<(StatusCode, Duration)>, String> {
    let mut out = Vec::new();
    for group in value.split(',').map(str::trim).filter(|g| !g.is_empty()) {
        let words: Vec<&str> = group.split_whitespace().collect();
        let Some((time, codes)) = words.split_last().filter(|(_, codes)| !codes.is_empty()) else {
            return Err(format!("auth-cache-duration {group:?} is not statuses followed by a time"));
        };
        let duration = values::duration(time).map_err(|e| format!("auth-cache-duration: {e}"))?;
        for code in codes {
            let status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("auth-cache-duration: {code:?} is not a status"))?;
            out.push((status, duration));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_family_is_read_with_auth_url() {
        let all = map(&[
            ("auth-url", "http://auth.test:4180/oauth2/auth"),
            ("auth-signin", "https://$host/oauth2/start?rd=$escaped_request_uri"),
            ("auth-response-headers", "X-Auth-Request-User, X-Auth-Request-Email"),
            ("auth-cache-key", "$remote_user$http_authorization"),
            ("auth-cache-duration", "200 202 10m, 401 30s"),
            ("auth-method", "POST"),
        ]);
        let s = settings(all["auth-url"], &all).unwrap().auth;
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.response_headers.len(), 2);
        let cache = s.cache.unwrap();
        assert_eq!(cache.duration(StatusCode::ACCEPTED), Some(Duration::from_secs(600)));
        assert_eq!(cache.duration(StatusCode::UNAUTHORIZED), Some(Duration::from_secs(30)));
        assert_eq!(cache.duration(StatusCode::FORBIDDEN), None);
        assert!(matches!(s.transport, Transport::Http1));
    }

    #[test]
    fn what_cannot_be_read_refuses_the_ingress() {
        for (key, value) in [
            ("auth-url", "ftp://auth.test/"),
            ("auth-method", "BREW"),
            ("auth-cache-duration", "5m"),
            ("auth-response-headers", "X A"),
            ("auth-signin", "auth.test/start"),
        ] {
            let mut all = map(&[("auth-url", "http://auth.test/"), ("auth-cache-key", "$remote_user")]);
            all.insert(key, value);
            assert!(settings(all["auth-url"], &all).is_err(), "{key}: {value}");
        }
        let mut auth = None;
        let snippet = setting(&mut auth, "auth-snippet", "x", &map(&[]));
        assert!(matches!(snippet, Some(Err(Problem::Refused(_)))));
    }
}
