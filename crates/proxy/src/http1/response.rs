//! A backend's response head on the proxy-native path: checked, how its body is framed,
//! whether the backend connection can carry another request, and the head the client
//! gets — the backend's header lines as sent (names, case and order) but hop-by-hop ones,
//! with Sluice's `server` and, where they apply, `date`, HSTS and `connection: close`.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, StatusCode};

use crate::h1_guard::framing::{HeadSlots, MAX_HEADERS};
use crate::headers::connection_tokens;
use crate::responses::{error_text, ERROR_CONTENT_TYPE};
use crate::validate;

/// Most bytes a backend's response head may take (nginx's `proxy_buffer_size` is 4–8 KiB;
/// hyper's client reads up to ~400 KiB): beyond, 502.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Room for the lines Sluice adds to a response head (`server`, `date`, HSTS, `connection`).
const ADDED_HEAD_ROOM: usize = 256;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BodyLength {
    /// No body (HEAD, 204, 304).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked: relayed as it comes, followed to its last chunk.
    Chunked,
    /// Until the backend closes the connection.
    UntilClose,
}

/// A complete, usable response head; its rewritten form is in the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResponseHead {
    /// Bytes of the backend's head.
    pub length: usize,
    pub status: StatusCode,
    pub body: BodyLength,
    /// The backend connection can carry another request once the body is read.
    pub reusable: bool,
    /// The client connection closes after this answer (`connection: close` was written).
    pub closes_client: bool,
}

/// What the front of a backend's bytes holds.
#[derive(Debug)]
pub(super) enum Parsed {
    /// A final response head.
    Complete(ResponseHead),
    /// An interim (1xx) response of this many bytes, not passed on.
    Interim(usize),
    /// More bytes are needed.
    Partial,
    /// Not a response this path can pass on: 502.
    Invalid,
}

/// What the client side asks of the head written for it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ForClient<'a> {
    /// The request was `HEAD`.
    pub head_method: bool,
    /// The client connection closes after this answer whatever the backend says.
    pub close: bool,
    /// `Strict-Transport-Security` to set (the route's, over https).
    pub hsts: Option<&'a HeaderValue>,
}

/// Parses the response head at the front of `bytes`; when complete and usable, writes the
/// client's head into `out`.
pub(super) fn parse(bytes: &[u8], client: ForClient<'_>, out: &mut Vec<u8>) -> Parsed {
    let mut slots: HeadSlots<'_> = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let length =
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut response, bytes, &mut slots) {
            Ok(httparse::Status::Complete(length)) if length <= MAX_RESPONSE_HEAD => length,
            Ok(httparse::Status::Partial) if bytes.len() <= MAX_RESPONSE_HEAD => return Parsed::Partial,
            _ => return Parsed::Invalid,
        };
    let Some(status) = response.code.and_then(|code| StatusCode::from_u16(code).ok()) else {
        return Parsed::Invalid;
    };
    if status.is_informational() {
        // No upgrade was asked for, so a 101 is a broken backend.
        return if status == StatusCode::SWITCHING_PROTOCOLS { Parsed::Invalid } else { Parsed::Interim(length) };
    }
    let Some(framing) = Framing::of(response.headers) else {
        return Parsed::Invalid;
    };
    let body = if client.head_method || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        BodyLength::None
    } else if let Some(chunked) = framing.chunked {
        if framing.length.is_some() {
            // Both: a smuggling vector (RFC 9112 §6.3); nginx refuses it too.
            return Parsed::Invalid;
        }
        if chunked {
            BodyLength::Chunked
        } else {
            BodyLength::UntilClose
        }
    } else {
        framing.length.map_or(BodyLength::UntilClose, BodyLength::Length)
    };
    let reusable = response.version == Some(1) && !framing.close && body != BodyLength::UntilClose;
    let closes_client = client.close || body == BodyLength::UntilClose;
    out.clear();
    // One allocation for the whole head, with room for the lines Sluice adds.
    out.reserve(length + ADDED_HEAD_ROOM);
    write_head(out, &response, status, &framing, client, closes_client);
    Parsed::Complete(ResponseHead { length, status, body, reusable, closes_client })
}

/// What a response's header lines say about its framing and connection.
struct Framing<'b> {
    length: Option<u64>,
    /// `Some` when `Transfer-Encoding` is present: whether its last coding is chunked.
    chunked: Option<bool>,
    close: bool,
    date: bool,
    listed: Vec<&'b str>,
}

impl<'b> Framing<'b> {
    /// `None` when the head cannot be framed with confidence (bad or conflicting lengths).
    fn of(headers: &[httparse::Header<'b>]) -> Option<Self> {
        let mut framing = Framing { length: None, chunked: None, close: false, date: false, listed: Vec::new() };
        for header in headers {
            let name = header.name;
            if name.eq_ignore_ascii_case("content-length") {
                let length = validate::content_length(header.value)?;
                if framing.length.is_some_and(|before| before != length) {
                    return None;
                }
                framing.length = Some(length);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                let last = header.value.rsplit(|b| *b == b',').next().unwrap_or_default().trim_ascii();
                framing.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case("connection") {
                // A list that is not text cannot be honoured: the answer is refused.
                std::str::from_utf8(header.value).ok()?;
                for token in connection_tokens(header.value) {
                    if token.eq_ignore_ascii_case("close") {
                        framing.close = true;
                    } else if !token.eq_ignore_ascii_case("keep-alive") {
                        framing.listed.push(token);
                    }
                }
            } else if name.eq_ignore_ascii_case("date") {
                framing.date = true;
            }
        }
        Some(framing)
    }

    /// Whether a header line of the backend's is not passed on. `Transfer-Encoding` is:
    /// the body is relayed as it was coded.
    fn drops(&self, name: &str, status: StatusCode, hsts: bool) -> bool {
        const HOP_BY_HOP: [&str; 6] =
            ["connection", "keep-alive", "proxy-connection", "upgrade", "http2-settings", "server"];
        HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || (name.eq_ignore_ascii_case("te"))
            || (status == StatusCode::NO_CONTENT
                && (name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")))
            || (hsts && name.eq_ignore_ascii_case("strict-transport-security"))
            || self.listed.iter().any(|listed| name.eq_ignore_ascii_case(listed))
    }
}

fn write_head(
    out: &mut Vec<u8>,
    response: &httparse::Response<'_, '_>,
    status: StatusCode,
    framing: &Framing<'_>,
    client: ForClient<'_>,
    close: bool,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    let reason = response.reason.filter(|r| !r.is_empty()).or(status.canonical_reason()).unwrap_or_default();
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for header in response.headers.iter() {
        if framing.drops(header.name, status, client.hsts.is_some()) {
            continue;
        }
        line(out, header.name.as_bytes(), header.value);
    }
    line(out, b"server", b"sluice");
    if !framing.date {
        with_date(|date| line(out, b"date", date));
    }
    if let Some(hsts) = client.hsts {
        line(out, b"strict-transport-security", hsts.as_bytes());
    }
    if close {
        line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// Sluice's own error answer `status`, as [`crate::responses::error`] gives it, written as
/// bytes.
pub(super) fn write_error(out: &mut Vec<u8>, status: StatusCode, hsts: Option<&HeaderValue>, close: bool) {
    let body = error_text(status);
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    line(out, b"content-type", ERROR_CONTENT_TYPE.as_bytes());
    line(out, b"server", b"sluice");
    with_date(|date| line(out, b"date", date));
    line(out, b"content-length", body.len().to_string().as_bytes());
    if let Some(hsts) = hsts {
        line(out, b"strict-transport-security", hsts.as_bytes());
    }
    if close {
        line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// The body length of [`write_error`]'s answer (the access log's `bytes_out`).
pub(super) fn error_body_len(status: StatusCode) -> u64 {
    error_text(status).len() as u64
}

fn line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The `Date` value of the current second, rendered once per second per thread.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Calls `f` with the current `Date` header value (IMF-fixdate).
fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(rendered_at, text)| {
        if *rendered_at != second || text.is_empty() {
            *text = httpdate::fmt_http_date(now);
            *rendered_at = second;
        }
        f(text.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: ForClient<'static> = ForClient { head_method: false, close: false, hsts: None };

    fn complete(raw: &[u8], client: ForClient<'_>) -> (ResponseHead, String) {
        let mut out = Vec::new();
        match parse(raw, client, &mut out) {
            Parsed::Complete(head) => (head, String::from_utf8(out).unwrap()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keeps_names_and_order_and_replaces_server() {
        let raw = b"HTTP/1.1 200 Fine\r\nX-Resp-CaSe: a\r\nServer: backend\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\ncontent-type: text/plain\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nContent-Length: 2\r\n\r\nok";
        let (head, text) = complete(raw, PLAIN);
        assert_eq!(head.length, raw.len() - 2);
        assert_eq!((head.body, head.reusable, head.closes_client), (BodyLength::Length(2), true, false));
        assert_eq!(
            text,
            "HTTP/1.1 200 Fine\r\nX-Resp-CaSe: a\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\ncontent-type: text/plain\r\nContent-Length: 2\r\nserver: sluice\r\n\r\n"
        );
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (head, text) = complete(chunked, PLAIN);
        assert_eq!(head.body, BodyLength::Chunked);
        assert!(text.contains("Transfer-Encoding: chunked\r\n") && text.contains("\r\ndate: "));
        let (head, text) = complete(b"HTTP/1.1 200 OK\r\n\r\n", PLAIN);
        assert_eq!((head.body, head.reusable, head.closes_client), (BodyLength::UntilClose, false, true));
        assert!(text.ends_with("connection: close\r\n\r\n"));
        let head_request = ForClient { head_method: true, ..PLAIN };
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", head_request).0.body, BodyLength::None);
        let (head, text) = complete(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", PLAIN);
        assert_eq!(head.body, BodyLength::None);
        assert!(!text.contains("Content-Length"));
        assert!(!complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", PLAIN).0.reusable);
        assert!(
            !complete(
                b"HTTP/1.1 200 OK
Connection: close
Content-Length: 0

",
                PLAIN
            )
            .0
            .reusable
        );
    }

    #[test]
    fn refuses_what_cannot_be_framed() {
        let mut out = Vec::new();
        for raw in [
            &b"HELLO\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
        ] {
            assert!(matches!(parse(raw, PLAIN, &mut out), Parsed::Invalid), "{}", String::from_utf8_lossy(raw));
        }
        assert!(matches!(parse(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1", PLAIN, &mut out), Parsed::Interim(25)));
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nA: b", PLAIN, &mut out), Parsed::Partial));
    }

    #[test]
    fn errors_match_the_general_path() {
        let mut out = Vec::new();
        write_error(&mut out, StatusCode::BAD_GATEWAY, None, true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\nserver: sluice\r\ndate: "
        ));
        assert!(text.ends_with("connection: close\r\n\r\n502 Bad Gateway: the backend could not be reached\n"));
    }
}
