//! Values that name parts of the request with nginx variables (`$host`, `$request_uri`,
//! `$http_x_user`, `$1` …), parsed once at translation into typed parts.
//!
//! ingress-nginx users write such values in redirect URLs, rewrite targets, `upstream-vhost`,
//! `upstream-hash-by` and `proxy_set_header`. nginx interpolates them when it renders its
//! configuration; Sluice never renders configuration, so each value becomes a [`Template`]
//! whose variables are looked up in the request at serving time. An unknown variable is an
//! error at translation, never text passed through.

use std::fmt;
use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, COOKIE};

/// A value with literal text, request variables and (in rewrite targets) regex captures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Box<[Part]>,
    text: Box<str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Box<str>),
    Variable(Variable),
    /// `$1` … `$9`: a group of the path regex.
    Capture(usize),
}

/// A request variable with nginx's name and meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Variable {
    /// `$request_uri`: the request target as sent, path and query.
    RequestUri,
    /// `$escaped_request_uri` (ingress-nginx's): `$request_uri` percent-encoded as a URL
    /// component, for an `rd=` parameter.
    EscapedRequestUri,
    /// `$remote_user`: the user of `Authorization: Basic`, when one is sent.
    RemoteUser,
    /// `$uri`: the normalised request path.
    Uri,
    /// `$args`, `$query_string`: the query without `?`.
    Args,
    /// `$is_args`: `?` when there is a query, else empty.
    IsArgs,
    /// `$host`: the requested host name, lower case, without port.
    Host,
    /// `$http_host`, `$best_http_host`: the `Host` header (`:authority`) as sent.
    HttpHost,
    /// `$scheme`: `http` or `https`.
    Scheme,
    /// `$remote_addr`: the client address.
    RemoteAddr,
    /// `$server_port`: the port the request arrived on.
    ServerPort,
    /// `$request_method`.
    Method,
    /// `$http_NAME`: a request header (`_` stands for `-`).
    Header(HeaderName),
    /// `$cookie_NAME`: a request cookie.
    Cookie(Box<str>),
    /// `$arg_NAME`: a query parameter.
    Arg(Box<str>),
}

/// What a [`Template`] may read of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method.
    pub method: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The host name, lower case, without port (empty when none was sent).
    pub host: &'a str,
    /// The `Host` header or `:authority` as sent.
    pub http_host: &'a str,
    /// The normalised path.
    pub path: &'a str,
    /// The query without `?`, if any.
    pub query: Option<&'a str>,
    /// The request target as sent.
    pub request_uri: &'a str,
    /// The client address.
    pub remote_addr: IpAddr,
    /// The listener port.
    pub server_port: u16,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// Why a template could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTemplate(pub String);

impl Template {
    /// Parses `text`. With `captures`, `$1` … `$9` stand for groups of a regex match;
    /// without, they are refused.
    pub fn parse(text: &str, captures: bool) -> Result<Self, InvalidTemplate> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}').ok_or_else(|| InvalidTemplate("unclosed '${'".into()))?;
                (&braced[..end], end + 2)
            } else {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], end)
            };
            if name.is_empty() {
                literal.push('$');
                rest = after;
                continue;
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal).into()));
            }
            parts.push(part(name, captures)?);
            rest = &after[consumed..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.into()));
        }
        Ok(Self { parts: parts.into(), text: text.into() })
    }

    /// A template of fixed text, `$` included (values that must not be expanded, like
    /// ingress-nginx's `custom-headers`).
    pub fn fixed(text: &str) -> Self {
        let parts: Box<[Part]> = if text.is_empty() { Box::new([]) } else { Box::new([Part::Literal(text.into())]) };
        Self { parts, text: text.into() }
    }

    /// The text when the template has no variables at all.
    pub fn literal(&self) -> Option<&str> {
        match &*self.parts {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The value for this request; `captures` are the groups of the path regex, if any.
    pub fn render(&self, facts: &RequestFacts<'_>, captures: Option<&regex::Captures<'_>>, out: &mut String) {
        for part in &*self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Capture(n) => {
                    if let Some(group) = captures.and_then(|c| c.get(*n)) {
                        out.push_str(group.as_str());
                    }
                }
                Part::Variable(variable) => variable.render(facts, out),
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn part(name: &str, captures: bool) -> Result<Part, InvalidTemplate> {
    if let Ok(n) = name.parse::<usize>() {
        return match n {
            1..=9 if captures => Ok(Part::Capture(n)),
            _ if captures => Err(InvalidTemplate(format!("${name}: only $1 to $9 name regex groups"))),
            _ => Err(InvalidTemplate(format!("${name}: regex groups are not available here"))),
        };
    }
    let variable = match name {
        "request_uri" => Variable::RequestUri,
        "escaped_request_uri" => Variable::EscapedRequestUri,
        "remote_user" => Variable::RemoteUser,
        "uri" | "document_uri" => Variable::Uri,
        "args" | "query_string" => Variable::Args,
        "is_args" => Variable::IsArgs,
        "host" | "server_name" => Variable::Host,
        "http_host" | "best_http_host" => Variable::HttpHost,
        "scheme" => Variable::Scheme,
        "remote_addr" | "binary_remote_addr" => Variable::RemoteAddr,
        "server_port" => Variable::ServerPort,
        "request_method" => Variable::Method,
        _ => {
            if let Some(header) = name.strip_prefix("http_") {
                let header = HeaderName::from_bytes(header.replace('_', "-").as_bytes())
                    .map_err(|_| InvalidTemplate(format!("${name}: not a header name")))?;
                Variable::Header(header)
            } else if let Some(cookie) = name.strip_prefix("cookie_").filter(|c| !c.is_empty()) {
                Variable::Cookie(cookie.into())
            } else if let Some(arg) = name.strip_prefix("arg_").filter(|a| !a.is_empty()) {
                Variable::Arg(arg.into())
            } else {
                return Err(InvalidTemplate(format!("${name}: unknown or unsupported variable")));
            }
        }
    };
    Ok(Part::Variable(variable))
}

impl Variable {
    fn render(&self, facts: &RequestFacts<'_>, out: &mut String) {
        use std::fmt::Write;
        match self {
            Variable::RequestUri => out.push_str(facts.request_uri),
            Variable::EscapedRequestUri => {
                for byte in facts.request_uri.bytes() {
                    if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                        out.push(char::from(byte));
                    } else {
                        let _ = write!(out, "%{byte:02X}");
                    }
                }
            }
            Variable::RemoteUser => {
                let authorization = facts.headers.get(http::header::AUTHORIZATION);
                if let Some((user, _)) = authorization.and_then(|v| sluice_htpasswd::decode_basic(v.as_bytes())) {
                    out.push_str(&user);
                }
            }
            Variable::Uri => out.push_str(facts.path),
            Variable::Args => out.push_str(facts.query.unwrap_or_default()),
            Variable::IsArgs => out.push_str(if facts.query.is_some() { "?" } else { "" }),
            Variable::Host => out.push_str(facts.host),
            Variable::HttpHost => out.push_str(facts.http_host),
            Variable::Scheme => out.push_str(facts.scheme),
            Variable::RemoteAddr => {
                let _ = write!(out, "{}", facts.remote_addr);
            }
            Variable::ServerPort => {
                let _ = write!(out, "{}", facts.server_port);
            }
            Variable::Method => out.push_str(facts.method),
            Variable::Header(name) => {
                if let Some(value) = facts.headers.get(name).and_then(|v| v.to_str().ok()) {
                    out.push_str(value);
                }
            }
            Variable::Cookie(name) => out.push_str(cookie(facts.headers, name).unwrap_or_default()),
            Variable::Arg(name) => out.push_str(query_arg(facts.query, name).unwrap_or_default()),
        }
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (for templates, canary and
/// affinity cookies).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// The value of query parameter `name` (as sent, not decoded).
pub(crate) fn query_arg<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').filter_map(|pair| pair.split_once('=')).find(|(key, _)| *key == name).map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(headers: &HeaderMap) -> RequestFacts<'_> {
        RequestFacts {
            method: "GET",
            scheme: "https",
            host: "a.test",
            http_host: "A.test:8443",
            path: "/x/y",
            query: Some("q=1&id=7"),
            request_uri: "/x/./y?q=1&id=7",
            remote_addr: IpAddr::from([10, 0, 0, 1]),
            server_port: 8443,
            headers,
        }
    }

    fn render(text: &str) -> String {
        let mut headers = HeaderMap::new();
        headers.insert("x-user", "bob".parse().unwrap());
        headers.insert(COOKIE, "a=1; sess=xyz".parse().unwrap());
        let mut out = String::new();
        Template::parse(text, false).unwrap().render(&facts(&headers), None, &mut out);
        out
    }

    #[test]
    fn variables_read_the_request() {
        assert_eq!(render("https://new.test$request_uri"), "https://new.test/x/./y?q=1&id=7");
        assert_eq!(render("$scheme://$host$uri$is_args$args"), "https://a.test/x/y?q=1&id=7");
        assert_eq!(
            render("${http_host}|$http_x_user|$cookie_sess|$arg_id|$remote_addr"),
            "A.test:8443|bob|xyz|7|10.0.0.1"
        );
        assert_eq!(render("cost: 5$ only"), "cost: 5$ only");
        assert_eq!(Template::parse("plain", false).unwrap().literal(), Some("plain"));
        assert_eq!(Template::parse("$host", false).unwrap().literal(), None);
    }

    #[test]
    fn unknown_variables_and_stray_captures_are_errors() {
        assert!(Template::parse("$nonsense", false).is_err());
        assert!(Template::parse("/$1", false).is_err());
        assert!(Template::parse("/$10", true).is_err());
        assert!(Template::parse("${host", false).is_err());
        let t = Template::parse("/v2/$2", true).unwrap();
        let re = regex::Regex::new("/api(/|$)(.*)").unwrap();
        let caps = re.captures("/api/users").unwrap();
        let headers = HeaderMap::new();
        let mut out = String::new();
        t.render(&facts(&headers), Some(&caps), &mut out);
        assert_eq!(out, "/v2/users");
    }
}
