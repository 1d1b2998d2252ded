//! Reading an HTTPRoute rule's filters and match values into the route model's parts: header
//! edits, redirects and rewrites (finished once the match's prefix is known), CORS, and
//! the value and duration formats of the spec.

use std::sync::Arc;

use http::header::{HeaderName, HeaderValue};
use http::StatusCode;
use sluice_config::{
    Cors, CorsOrigins, HeaderEdits, Mirror, OriginPattern, PathModifier, RedirectParts, Template, ValueMatch,
    REGEX_SIZE_LIMIT,
};
use sluice_store::gateway_api::experimental::httproutes::HttpRouteRulesFiltersCors;

/// The precedence of a compiled match (see [`CompiledMatch::rank`]).
pub(super) type CompiledMatchRank =
    (u8, std::cmp::Reverse<usize>, bool, std::cmp::Reverse<usize>, std::cmp::Reverse<usize>);

pub(super) enum Problem {
    /// The rule answers 500.
    Invalid(String),
    /// The route is not accepted.
    Unsupported(String),
    /// The filter is left out (reported; its reference shows in `ResolvedRefs`).
    Ignored(String),
}

/// A rule's filters, read.
#[derive(Default)]
pub(super) struct Found {
    pub(super) edits: HeaderEdits,
    pub(super) response: HeaderEdits,
    pub(super) rewrite: Option<Rewrite>,
    pub(super) redirect: Option<(StatusCode, RedirectSpec)>,
    pub(super) mirrors: Vec<Mirror>,
    pub(super) cors: Option<Arc<Cors>>,
}

/// Gateway API's CORS filter: `*` origins (named back when credentials are allowed),
/// wildcard origins over any number of labels, `*` methods and headers named back to
/// preflights, `maxAge` 5 s by default.
pub(super) fn cors_settings(c: &HttpRouteRulesFiltersCors) -> Result<Cors, Problem> {
    let credentials = c.allow_credentials.unwrap_or(false);
    let origins = c.allow_origins.as_deref().unwrap_or_default();
    let origins = if origins.iter().any(|o| o == "*") {
        if credentials {
            CorsOrigins::AnyNamed
        } else {
            CorsOrigins::Any
        }
    } else {
        let patterns = origins
            .iter()
            .map(|o| OriginPattern::parse_deep(o).ok_or_else(|| Problem::Invalid(format!("{o:?} is not an origin"))));
        CorsOrigins::List(patterns.collect::<Result<Vec<_>, _>>()?.into())
    };
    let list = |items: Option<&Vec<String>>, default: &str| -> Result<(HeaderValue, bool), Problem> {
        let items = items.map(Vec::as_slice).unwrap_or_default();
        let any = items.iter().any(|i| i == "*");
        let text = if items.is_empty() { default.to_owned() } else { items.join(", ") };
        let value =
            HeaderValue::from_str(&text).map_err(|_| Problem::Invalid(format!("{text:?} is not a header value")))?;
        Ok((value, any))
    };
    let (allow_methods, echo_methods) = list(c.allow_methods.as_ref(), "GET, HEAD, POST")?;
    let (allow_headers, echo_headers) = list(c.allow_headers.as_ref(), "")?;
    let (expose, _) = list(c.expose_headers.as_ref(), "")?;
    Ok(Cors {
        origins,
        allow_methods,
        allow_headers,
        expose_headers: (!expose.is_empty()).then_some(expose),
        allow_credentials: credentials,
        max_age: HeaderValue::from(c.max_age.unwrap_or(5).max(0)),
        echo_methods,
        echo_headers,
        answer_all_preflights: true,
    })
}

pub(super) fn missing(field: &str) -> Problem {
    Problem::Invalid(format!("{field} is required for this filter type"))
}

pub(super) fn bad_code() -> Problem {
    Problem::Invalid("statusCode must be 301, 302, 303, 307 or 308".into())
}

/// A path rewrite before the match's prefix is known.
#[derive(Debug, Clone)]
pub(super) enum Rewrite {
    Full(String),
    Prefix(String),
}

/// A redirect before the match's prefix is known.
#[derive(Debug, Clone)]
pub(super) struct RedirectSpec {
    pub(super) scheme: Option<&'static str>,
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) path: Option<Rewrite>,
}

/// The path modifier for a match with path prefix `prefix`; `None` when a prefix is to be
/// replaced but the match is not a prefix match.
pub(super) fn modifier(rewrite: &Rewrite, prefix: Option<&str>) -> Option<PathModifier> {
    match rewrite {
        Rewrite::Full(path) => Some(PathModifier::Full(path.as_str().into())),
        Rewrite::Prefix(replacement) => {
            Some(PathModifier::Prefix { matched: prefix?.into(), replacement: replacement.as_str().into() })
        }
    }
}

pub(super) fn redirect_parts(spec: &RedirectSpec, prefix: Option<&str>) -> Option<RedirectParts> {
    let path = match &spec.path {
        None => None,
        Some(rewrite) => Some(modifier(rewrite, prefix)?),
    };
    Some(RedirectParts {
        scheme: spec.scheme.map(Into::into),
        host: spec.host.as_deref().map(Into::into),
        port: spec.port,
        path,
    })
}

pub(super) fn header_edits<'a>(
    edits: &mut HeaderEdits,
    set: impl Iterator<Item = (&'a str, &'a str)>,
    add: impl Iterator<Item = (&'a str, &'a str)>,
    remove: impl Iterator<Item = &'a String>,
) -> Result<(), Problem> {
    let pair = |(name, value): (&str, &str)| {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Problem::Invalid(format!("{name:?} is not a header name")))?;
        HeaderValue::from_str(value).map_err(|_| Problem::Invalid(format!("{value:?} is not a header value")))?;
        Ok::<_, Problem>((name, Template::fixed(value)))
    };
    for entry in set {
        edits.set.push(pair(entry)?);
    }
    for entry in add {
        edits.add.push(pair(entry)?);
    }
    for name in remove {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Problem::Invalid(format!("{name:?} is not a header name")))?;
        edits.remove.push(name);
    }
    Ok(())
}

pub(super) fn value_match(value: &str, regex: bool) -> Result<ValueMatch, String> {
    if regex {
        anchored(value).map(ValueMatch::Regex)
    } else {
        Ok(ValueMatch::Exact(value.into()))
    }
}

/// A user regex matching whole values, compiled within the size limit.
pub(super) fn anchored(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("{pattern:?} is not a usable regular expression: {e}"))
}
