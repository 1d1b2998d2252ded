//! The one place where a request is checked before anything of it is forwarded (RFC 9112
//! and RFC 9110), for what hyper and httparse do not already refuse: framing that two
//! parsers could read differently (request smuggling), `Host` values that are not a host,
//! methods an ingress must not proxy. hyper already refuses obsolete line folding, NUL and
//! bare CR in the head, non-token methods, HTTP/0.9 and unknown versions, and bad or
//! conflicting `Content-Length`s.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode, Version};

/// Why a request is refused: its status, and whether the connection must be closed after
/// the answer (whenever the framing of what follows cannot be trusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub close: bool,
}

impl Refusal {
    fn new(status: StatusCode, close: bool) -> Self {
        Self { status, close }
    }
}

/// Checks a request head; `Err` says how to refuse it.
pub(crate) fn check<B>(request: &Request<B>) -> Result<(), Refusal> {
    if request.method() == Method::CONNECT || request.method() == Method::TRACE {
        // An ingress is not a forward proxy, and TRACE reflects credentials.
        return Err(Refusal::new(StatusCode::METHOD_NOT_ALLOWED, false));
    }
    let headers = request.headers();
    if matches!(request.version(), Version::HTTP_10 | Version::HTTP_11) {
        check_framing(headers)?;
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, true));
    }
    let needs_host = request.version() == Version::HTTP_11 && request.uri().authority().is_none();
    match host {
        None if needs_host => return Err(Refusal::new(StatusCode::BAD_REQUEST, true)),
        Some(host) if !is_host(host.as_bytes()) => return Err(Refusal::new(StatusCode::BAD_REQUEST, true)),
        _ => {}
    }
    if let Some(authority) = request.uri().authority() {
        if !is_host(authority.as_str().as_bytes()) {
            return Err(Refusal::new(StatusCode::BAD_REQUEST, true));
        }
    }
    Ok(())
}

/// RFC 9112 §6: a body is framed by `Content-Length` or by `Transfer-Encoding: chunked`,
/// never both (§6.3: a smuggling vector, 400 and close); the only transfer coding accepted
/// is `chunked`, once (anything else: 501, close).
fn check_framing(headers: &HeaderMap) -> Result<(), Refusal> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let Some(coding) = codings.next() else {
        return Ok(());
    };
    if headers.contains_key(header::CONTENT_LENGTH) {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, true));
    }
    if codings.next().is_some() || !is_chunked(coding) {
        return Err(Refusal::new(StatusCode::NOT_IMPLEMENTED, true));
    }
    Ok(())
}

fn is_chunked(value: &HeaderValue) -> bool {
    value.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// RFC 9110 §7.2 / RFC 3986 §3.2.2: a host name (letters, digits, `-`, `.`, `_`, `~`) or a
/// bracketed IPv6 literal, then an optional port of digits up to 65535. No userinfo, no
/// lists, no paths, no spaces or control bytes.
fn is_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|b| *b == b']') {
            Some(end) => {
                let literal = &value[1..end];
                let ok = !literal.is_empty() && literal.iter().all(|b| b.is_ascii_hexdigit() || b":.".contains(b));
                if !ok {
                    return false;
                }
                (&value[..=end], &value[end + 1..])
            }
            None => return false,
        },
        _ => match value.iter().position(|b| *b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &value[value.len()..]),
        },
    };
    let name_ok = host.first() == Some(&b'[')
        || (!host.is_empty() && host.iter().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b)));
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => {
            !digits.is_empty()
                && digits.len() <= 5
                && digits.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(digits).ok().and_then(|d| d.parse::<u32>().ok()).is_some_and(|p| p <= 65535)
        }
        _ => false,
    };
    name_ok && port_ok
}

/// True for an HTTP/1.1 request asking to switch to the WebSocket protocol — the one
/// upgrade Sluice tunnels. `Upgrade: h2c` and any other protocol are never tunnelled (an h2c
/// upgrade through a proxy lets a client talk to the backend past every route and filter).
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get_all(header::UPGRADE)
        .iter()
        .any(|value| value.to_str().unwrap_or_default().split(',').any(|p| p.trim().eq_ignore_ascii_case("websocket")));
    upgrade
        && headers.get_all(header::CONNECTION).iter().any(|value| {
            value.to_str().unwrap_or_default().split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for good in ["a", "a.test", "a.test:80", "[::1]", "[::1]:8443", "xn--bcher-kva.test", "a_b.test"] {
            assert!(is_host(good.as_bytes()), "{good}");
        }
        for bad in ["", "u@a", "a, b", "a/b", "a:99999", "a:", "a:x", "a b", "a\x01", "[::1", "[zz]", "a:80:80", ":80"]
        {
            assert!(!is_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn framing() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.append(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(check_framing(&headers(&[("transfer-encoding", "Chunked")])).is_ok());
        assert!(check_framing(&headers(&[("content-length", "3")])).is_ok());
        let refused = |pairs| check_framing(&headers(pairs)).map_err(|r| r.status);
        assert_eq!(refused(&[("transfer-encoding", "chunked"), ("content-length", "3")]), Err(StatusCode::BAD_REQUEST));
        assert_eq!(refused(&[("transfer-encoding", "chunked, chunked")]), Err(StatusCode::NOT_IMPLEMENTED));
        assert_eq!(refused(&[("transfer-encoding", ", chunked")]), Err(StatusCode::NOT_IMPLEMENTED));
        assert_eq!(refused(&[("transfer-encoding", "gzip, chunked")]), Err(StatusCode::NOT_IMPLEMENTED));
        assert_eq!(
            refused(&[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]),
            Err(StatusCode::NOT_IMPLEMENTED)
        );
    }

    #[test]
    fn only_websocket_upgrades() {
        let mut map = HeaderMap::new();
        map.insert(header::CONNECTION, HeaderValue::from_static("Upgrade, HTTP2-Settings"));
        map.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket_upgrade(&map));
        map.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        assert!(is_websocket_upgrade(&map));
    }
}
