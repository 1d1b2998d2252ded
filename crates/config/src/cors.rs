//! Cross-Origin Resource Sharing as ingress-nginx's `enable-cors` and Gateway API's CORS
//! filter do it: Sluice answers preflights itself and sets the CORS headers on every
//! response to an allowed origin.
//! Every header value is built at translation; serving compares the `Origin` and copies.

use http::header::{self, HeaderName, HeaderValue};

/// The CORS settings of a route.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Which origins get CORS headers.
    pub origins: CorsOrigins,
    /// `Access-Control-Allow-Methods`.
    pub allow_methods: HeaderValue,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: HeaderValue,
    /// `Access-Control-Expose-Headers`, when any.
    pub expose_headers: Option<HeaderValue>,
    /// Whether `Access-Control-Allow-Credentials: true` is sent.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age`, seconds.
    pub max_age: HeaderValue,
    /// Any method is allowed (`*`): a preflight gets its `Access-Control-Request-Method`
    /// back.
    pub echo_methods: bool,
    /// Any header is allowed (`*`): a preflight gets its `Access-Control-Request-Headers`
    /// back.
    pub echo_headers: bool,
    /// Preflights from origins not allowed are answered too, without CORS headers (Gateway
    /// API); otherwise they go to the backend (ingress-nginx).
    pub answer_all_preflights: bool,
}

/// The origins a route shares with.
#[derive(Debug, Clone)]
pub enum CorsOrigins {
    /// `*`: every request gets `Access-Control-Allow-Origin: *`, `Origin` or not.
    Any,
    /// Every origin, named back to it (credentials cannot be shared with `*`).
    AnyNamed,
    /// Only these (an empty list shares with nobody).
    List(Box<[OriginPattern]>),
}

/// One allowed origin: `scheme://host[:port]`, where the host may start with `*.` for any
/// one label (ingress-nginx's wildcard), or `null`. Compared case-insensitively, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    /// Lower-cased text before the wildcard label (or the whole origin).
    head: Box<str>,
    /// With a wildcard: the lower-cased text after it (`.example.com:8443`).
    tail: Option<Box<str>>,
    /// The wildcard stands for one label or more (Gateway API), not exactly one.
    deep: bool,
}

impl OriginPattern {
    /// Parses one origin of `cors-allow-origin`; `None` when it is not `scheme://host[:port]`
    /// (with an optional `*.` before the host) or `null`.
    pub fn parse(origin: &str) -> Option<Self> {
        let origin = origin.trim().to_ascii_lowercase();
        if origin == "null" {
            return Some(Self { head: origin.into(), tail: None, deep: false });
        }
        let (scheme, rest) = origin.split_once("://")?;
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        let (wildcard, host_port) = match rest.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, rest),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        };
        let host_ok = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
        if !host_ok || !port_ok {
            return None;
        }
        Some(match wildcard {
            true => {
                Self { head: format!("{scheme}://").into(), tail: Some(format!(".{host_port}").into()), deep: false }
            }
            false => Self { head: origin.into(), tail: None, deep: false },
        })
    }

    /// Parses an origin of Gateway API's `allowOrigins`: as [`OriginPattern::parse`], but a
    /// `*.` wildcard stands for one label or more.
    pub fn parse_deep(origin: &str) -> Option<Self> {
        Self::parse(origin).map(|pattern| Self { deep: pattern.tail.is_some(), ..pattern })
    }

    /// Whether the request's `Origin` is this one.
    pub fn matches(&self, origin: &str) -> bool {
        let Some(rest) = strip_prefix_ignore_case(origin, &self.head) else {
            return false;
        };
        match &self.tail {
            None => rest.is_empty(),
            Some(tail) => {
                let split = rest.len().checked_sub(tail.len()).and_then(|at| Some((rest.get(..at)?, rest.get(at..)?)));
                let Some((label, end)) = split else {
                    return false;
                };
                let label_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || (self.deep && b == b'.');
                end.eq_ignore_ascii_case(tail)
                    && !label.is_empty()
                    && !label.starts_with('.')
                    && !label.ends_with('.')
                    && label.bytes().all(label_byte)
            }
        }
    }
}

impl std::fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.tail {
            None => f.write_str(&self.head),
            Some(tail) => write!(f, "{}*{tail}", self.head),
        }
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &text[prefix.len()..])
}

impl Cors {
    /// The `Access-Control-Allow-Origin` for a request with this `Origin`, when the route
    /// shares with it: the origin itself, or `*` for [`CorsOrigins::Any`].
    pub fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match &self.origins {
            CorsOrigins::Any => Some(HeaderValue::from_static("*")),
            CorsOrigins::AnyNamed => origin.cloned(),
            CorsOrigins::List(patterns) => {
                let origin = origin?;
                let text = origin.to_str().ok()?;
                patterns.iter().any(|p| p.matches(text)).then(|| origin.clone())
            }
        }
    }

    /// The CORS headers for an allowed origin, `allow_origin` as [`Cors::allow_origin`]
    /// returned it; they replace any the backend sent. `preflight` holds the preflight's
    /// request headers (what it asks for is named back where anything is allowed).
    pub fn headers(
        &self,
        allow_origin: HeaderValue,
        preflight: Option<&http::HeaderMap>,
    ) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let credentials = self.allow_credentials.then(|| HeaderValue::from_static("true"));
        let asked = |echo: bool, name: HeaderName| preflight.filter(|_| echo).and_then(|h| h.get(name)).cloned();
        let methods = asked(self.echo_methods, header::ACCESS_CONTROL_REQUEST_METHOD);
        let headers = asked(self.echo_headers, header::ACCESS_CONTROL_REQUEST_HEADERS);
        [
            Some((header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)),
            credentials.map(|v| (header::ACCESS_CONTROL_ALLOW_CREDENTIALS, v)),
            Some((header::ACCESS_CONTROL_ALLOW_METHODS, methods.unwrap_or_else(|| self.allow_methods.clone()))),
            Some((header::ACCESS_CONTROL_ALLOW_HEADERS, headers.unwrap_or_else(|| self.allow_headers.clone()))),
            self.expose_headers.clone().map(|v| (header::ACCESS_CONTROL_EXPOSE_HEADERS, v)),
            Some((header::ACCESS_CONTROL_MAX_AGE, self.max_age.clone())),
        ]
        .into_iter()
        .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_whole_and_wildcards_one_label() {
        let exact = OriginPattern::parse("https://App.example.com:8443").unwrap();
        assert!(exact.matches("https://app.example.com:8443"));
        assert!(!exact.matches("https://app.example.com"));
        assert!(!exact.matches("xhttps://app.example.com:8443"));
        let wild = OriginPattern::parse("https://*.example.com").unwrap();
        assert!(wild.matches("https://a-1.example.com"));
        assert!(wild.matches("HTTPS://A.EXAMPLE.COM"));
        assert!(!wild.matches("https://a.b.example.com"));
        assert!(!wild.matches("https://.example.com"));
        assert!(!wild.matches("https://example.com"));
        assert!(!wild.matches("http://a.example.com"));
        assert!(!wild.matches("https://é.example.co"), "never splits a character");
        assert!(OriginPattern::parse("null").unwrap().matches("null"));
        let deep = OriginPattern::parse_deep("https://*.example.com").unwrap();
        assert!(deep.matches("https://a.b.example.com") && deep.matches("https://a.example.com"));
        assert!(!deep.matches("https://.a.example.com") && !deep.matches("https://example.com"));
        for bad in ["example.com", "https://", "https://a b", "https://a:x", "https://a/b", "*"] {
            assert!(OriginPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn allowed_origins_get_their_own_origin_back() {
        let cors = Cors {
            origins: CorsOrigins::List(Box::new([OriginPattern::parse("https://a.test").unwrap()])),
            allow_methods: HeaderValue::from_static("GET"),
            allow_headers: HeaderValue::from_static("X-A"),
            expose_headers: None,
            allow_credentials: true,
            max_age: HeaderValue::from_static("5"),
            echo_methods: false,
            echo_headers: true,
            answer_all_preflights: false,
        };
        let origin = HeaderValue::from_static("https://a.test");
        assert_eq!(cors.allow_origin(Some(&origin)), Some(origin.clone()));
        assert_eq!(cors.allow_origin(Some(&HeaderValue::from_static("https://b.test"))), None);
        assert_eq!(cors.allow_origin(None), None);
        let names: Vec<_> = cors.headers(origin.clone(), None).map(|(name, _)| name).collect();
        assert_eq!(names.len(), 5);
        let mut asked = http::HeaderMap::new();
        asked.insert(header::ACCESS_CONTROL_REQUEST_HEADERS, HeaderValue::from_static("x-b"));
        asked.insert(header::ACCESS_CONTROL_REQUEST_METHOD, HeaderValue::from_static("PUT"));
        let sent: Vec<_> = cors.headers(origin, Some(&asked)).collect();
        assert!(sent.contains(&(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("x-b"))));
        assert!(sent.contains(&(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET"))));
    }
}
