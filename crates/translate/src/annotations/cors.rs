//! ingress-nginx's CORS annotations (`enable-cors`, `cors-*`) into the route model's
//! [`Cors`], with its defaults and its rule that an invalid value is ignored (the default
//! applies) — except `cors-allow-origin`, which then shares with no origin rather than with
//! every origin.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::header::HeaderValue;
use sluice_config::{Cors, CorsOrigins, OriginPattern};

use super::{values, Problem};

const DEFAULT_METHODS: &str = "GET, PUT, POST, DELETE, PATCH, OPTIONS";
const DEFAULT_HEADERS: &str =
    "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization";
const DEFAULT_MAX_AGE: u32 = 1_728_000;

/// Checks one `cors-*` annotation; `None` when `name` is not one. The values are read again
/// by [`compile`] once every key has been seen.
pub(crate) fn setting(name: &str, value: &str, all: &BTreeMap<&str, &str>) -> Option<Result<(), Problem>> {
    if !name.starts_with("cors-") {
        return None;
    }
    let enabled = all.get("enable-cors").is_some_and(|v| values::boolean(v) == Ok(true));
    let checked = match name {
        "cors-allow-origin" => origins(value).map(drop),
        "cors-allow-methods" => methods(value).map(drop),
        "cors-allow-headers" => header_list(value, false).map(drop),
        "cors-expose-headers" => header_list(value, true).map(drop),
        "cors-allow-credentials" => values::boolean(value).map(drop),
        "cors-max-age" => max_age(value).map(drop),
        _ => return Some(Err(Problem::Ignored(format!("{name} is not a CORS setting")))),
    };
    Some(match (checked, enabled) {
        (Err(reason), _) if name == "cors-allow-origin" => {
            Err(Problem::Ignored(format!("{reason}; no origin is shared with until it is fixed")))
        }
        (Err(reason), _) => Err(Problem::Ignored(format!("{reason}; the default applies"))),
        (Ok(()), false) => Err(Problem::Ignored("has no effect without enable-cors: \"true\"".into())),
        (Ok(()), true) => Ok(()),
    })
}

/// The CORS settings of an Ingress with `enable-cors: "true"` (`None` otherwise), invalid
/// values replaced as ingress-nginx does.
pub(crate) fn compile(all: &BTreeMap<&str, &str>) -> Option<Arc<Cors>> {
    if all.get("enable-cors").is_none_or(|v| values::boolean(v) != Ok(true)) {
        return None;
    }
    let origins = match all.get("cors-allow-origin") {
        None => CorsOrigins::Any,
        Some(value) => origins(value).unwrap_or(CorsOrigins::List(Box::new([]))),
    };
    let text = |key: &str, check: fn(&str) -> Result<HeaderValue, String>, default: &'static str| {
        all.get(key).and_then(|v| check(v).ok()).unwrap_or(HeaderValue::from_static(default))
    };
    let expose = all.get("cors-expose-headers").and_then(|v| header_list(v, true).ok());
    Some(Arc::new(Cors {
        origins,
        allow_methods: text("cors-allow-methods", methods, DEFAULT_METHODS),
        allow_headers: text("cors-allow-headers", |v| header_list(v, false), DEFAULT_HEADERS),
        expose_headers: expose.filter(|v| !v.is_empty()),
        allow_credentials: all.get("cors-allow-credentials").is_none_or(|v| values::boolean(v) != Ok(false)),
        max_age: HeaderValue::from(all.get("cors-max-age").and_then(|v| max_age(v).ok()).unwrap_or(DEFAULT_MAX_AGE)),
        echo_methods: false,
        echo_headers: false,
        answer_all_preflights: false,
    }))
}

/// `*`, or a comma-separated list of origins (`https://*.example.com:8443`, `null`).
fn origins(value: &str) -> Result<CorsOrigins, String> {
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|item| !item.is_empty()).collect();
    if items.contains(&"*") {
        return Ok(CorsOrigins::Any);
    }
    let patterns = items
        .iter()
        .map(|item| {
            OriginPattern::parse(item).ok_or_else(|| format!("{item:?} is not an origin (scheme://host[:port])"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CorsOrigins::List(patterns.into()))
}

/// Method names separated by commas (ingress-nginx's `^([A-Za-z]+,?\s?)+$`).
fn methods(value: &str) -> Result<HeaderValue, String> {
    tokens(value, |token| token.bytes().all(|b| b.is_ascii_alphabetic()), "a list of methods")
}

/// Header names separated by commas; `*` too where `wildcard`.
fn header_list(value: &str, wildcard: bool) -> Result<HeaderValue, String> {
    let name = |token: &str| {
        (wildcard && token == "*") || token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    tokens(value, name, "a list of header names")
}

fn tokens(value: &str, valid: impl Fn(&str) -> bool, what: &str) -> Result<HeaderValue, String> {
    let mut count = 0;
    for token in value.split(',').map(str::trim) {
        if token.is_empty() || !valid(token) {
            return Err(format!("{value:?} is not {what}"));
        }
        count += 1;
    }
    if count == 0 {
        return Err(format!("{value:?} is not {what}"));
    }
    HeaderValue::from_str(value.trim()).map_err(|_| format!("{value:?} is not {what}"))
}

fn max_age(value: &str) -> Result<u32, String> {
    values::number(value, 0, u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn defaults_are_ingress_nginx_s() {
        let cors = compile(&map(&[("enable-cors", "true")])).unwrap();
        assert!(matches!(cors.origins, CorsOrigins::Any));
        assert_eq!(cors.allow_methods, DEFAULT_METHODS);
        assert_eq!(cors.allow_headers, DEFAULT_HEADERS);
        assert!(cors.allow_credentials && cors.expose_headers.is_none());
        assert_eq!(cors.max_age, "1728000");
        assert!(compile(&map(&[("enable-cors", "false"), ("cors-max-age", "5")])).is_none());
    }

    #[test]
    fn invalid_values_fall_back_and_bad_origins_share_with_none() {
        let all = map(&[
            ("enable-cors", "true"),
            ("cors-allow-origin", "https://a.test, a.test"),
            ("cors-allow-methods", "GET;rm"),
            ("cors-expose-headers", "X-A, *"),
            ("cors-allow-credentials", "false"),
        ]);
        let cors = compile(&all).unwrap();
        assert!(matches!(&cors.origins, CorsOrigins::List(list) if list.is_empty()));
        assert_eq!(cors.allow_methods, DEFAULT_METHODS);
        assert_eq!(cors.expose_headers.as_ref().unwrap(), "X-A, *");
        assert!(!cors.allow_credentials);
        assert!(matches!(setting("cors-allow-origin", "a.test", &all), Some(Err(Problem::Ignored(_)))));
        assert!(matches!(setting("cors-allow-methods", "GET, POST", &all), Some(Ok(()))));
        let off = map(&[("cors-max-age", "5")]);
        assert!(
            matches!(setting("cors-max-age", "5", &off), Some(Err(Problem::Ignored(r))) if r.contains("enable-cors"))
        );
    }
}
