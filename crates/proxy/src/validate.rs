//! The one place where a request is checked before anything of it is forwarded (RFC 9112
//! and RFC 9110), for what hyper and httparse do not already refuse. [`check_head`] reads an
//! HTTP/1.x head as the client sent it (before hyper normalises it away): framing that two
//! parsers could read differently (request smuggling) and fragments in the target.
//! [`check`] reads every request as hyper parsed it: `Host` values that are not a host,
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

/// How the body of an HTTP/1.x request whose head passed [`check_head`] is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// No body.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What a head that passed [`check_head`] announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeadVerdict {
    /// How its body is framed.
    pub body: BodyFraming,
    /// A WebSocket upgrade: if accepted, the connection carries WebSocket frames after it.
    pub tunnel: bool,
}

/// Checks an HTTP/1.x head as the client sent it. RFC 9112 §6: a body is framed by
/// `Content-Length` or by `Transfer-Encoding: chunked`, never both (§6.3: a smuggling
/// vector, 400 and close); the only transfer coding accepted is `chunked`, once (anything
/// else: 501, close); `Content-Length` is digits, the same in every copy. RFC 9112 §3.2: a
/// request target carries no fragment.
pub(crate) fn check_head(head: &httparse::Request<'_, '_>) -> Result<HeadVerdict, Refusal> {
    let bad = Refusal::new(StatusCode::BAD_REQUEST, true);
    if head.path.is_some_and(|path| path.contains('#')) {
        return Err(bad);
    }
    let mut length: Option<u64> = None;
    let mut codings = 0;
    let mut chunked = false;
    for header in head.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            match (content_length(header.value), length) {
                (Some(this), None) => length = Some(this),
                (Some(this), Some(before)) if this == before => {}
                _ => return Err(bad),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            codings += 1;
            chunked = header.value.trim_ascii().eq_ignore_ascii_case(b"chunked");
        }
    }
    let body = match (codings, length) {
        (0, None) => BodyFraming::Empty,
        (0, Some(0)) => BodyFraming::Empty,
        (0, Some(length)) => BodyFraming::Length(length),
        (_, Some(_)) => return Err(bad),
        // HTTP/1.0 has no transfer codings (RFC 9112 §6.1).
        (_, None) if head.version == Some(0) => return Err(bad),
        (1, None) if chunked => BodyFraming::Chunked,
        _ => return Err(Refusal::new(StatusCode::NOT_IMPLEMENTED, true)),
    };
    let values =
        |name: &'static str| head.headers.iter().filter(move |h| h.name.eq_ignore_ascii_case(name)).map(|h| h.value);
    let tunnel = head.version == Some(1) && asks_websocket(values("upgrade"), values("connection"));
    Ok(HeadVerdict { body, tunnel })
}

/// A `Content-Length` value: digits only (surrounding whitespace aside), at most 19 of them
/// (so it fits in a `u64`); `None` for anything else. Requests and backend answers alike.
pub(crate) fn content_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// RFC 9110 §7.2 / RFC 3986 §3.2.2: a host name (letters, digits, `-`, `.`, `_`, `~`) or a
/// bracketed IPv6 literal, then an optional port of digits up to 65535. No userinfo, no
/// lists, no paths, no spaces or control bytes.
pub(crate) fn is_host(value: &[u8]) -> bool {
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
    let values = |name| headers.get_all(name).into_iter().map(HeaderValue::as_bytes);
    asks_websocket(values(header::UPGRADE), values(header::CONNECTION))
}

/// `Upgrade` names `websocket` and `Connection` names `upgrade` (comma-separated tokens, any
/// case).
fn asks_websocket<'a>(
    mut upgrade: impl Iterator<Item = &'a [u8]>,
    mut connection: impl Iterator<Item = &'a [u8]>,
) -> bool {
    let has =
        |value: &[u8], token: &[u8]| value.split(|b| *b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token));
    upgrade.any(|value| has(value, b"websocket")) && connection.any(|value| has(value, b"upgrade"))
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

    fn head(raw: &str) -> Result<HeadVerdict, StatusCode> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut headers);
        assert!(request.parse(raw.as_bytes()).is_ok_and(|s| s.is_complete()), "{raw}");
        check_head(&request).map_err(|refusal| refusal.status)
    }

    #[test]
    fn framing() {
        let post = |headers: &str| head(&format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n"));
        assert_eq!(post("Transfer-Encoding: Chunked\r\n").map(|v| v.body), Ok(BodyFraming::Chunked));
        assert_eq!(post("Content-Length: 3\r\n").map(|v| v.body), Ok(BodyFraming::Length(3)));
        assert_eq!(post("Content-Length: 3\r\ncontent-length: 3\r\n").map(|v| v.body), Ok(BodyFraming::Length(3)));
        assert_eq!(post("").map(|v| v.body), Ok(BodyFraming::Empty));
        let bad = Err(StatusCode::BAD_REQUEST);
        assert_eq!(post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"), bad);
        assert_eq!(post("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"), bad);
        assert_eq!(post("Content-Length: 3\r\nContent-Length: 4\r\n"), bad);
        assert_eq!(post("Content-Length: +3\r\n"), bad);
        assert_eq!(post("Content-Length: 3, 3\r\n"), bad);
        assert_eq!(head("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), bad);
        assert_eq!(head("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), bad);
        let unsupported = Err(StatusCode::NOT_IMPLEMENTED);
        assert_eq!(post("Transfer-Encoding: chunked, chunked\r\n"), unsupported);
        assert_eq!(post("Transfer-Encoding: , chunked\r\n"), unsupported);
        assert_eq!(post("Transfer-Encoding: gzip, chunked\r\n"), unsupported);
        assert_eq!(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), unsupported);
    }

    #[test]
    fn websocket_heads_become_tunnels() {
        let upgrade = "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n";
        assert_eq!(head(&format!("GET / HTTP/1.1\r\n{upgrade}\r\n")).map(|v| v.tunnel), Ok(true));
        assert_eq!(head(&format!("GET / HTTP/1.0\r\n{upgrade}\r\n")).map(|v| v.tunnel), Ok(false));
        let h2c = "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n";
        assert_eq!(head(&format!("GET / HTTP/1.1\r\n{h2c}\r\n")).map(|v| v.tunnel), Ok(false));
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
