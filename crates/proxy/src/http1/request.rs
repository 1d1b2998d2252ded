//! Which requests the proxy-native path forwards itself, and the head it sends for them.
//!
//! A request stays on this path when forwarding it needs nothing but the route's backend:
//! an origin-form HTTP/1.1 request with one valid `Host`, no body or a `Content-Length`
//! one, no upgrade or `Expect`, on a route without conditions or filters (HSTS aside)
//! that forwards to an HTTP/1.1 backend in clear with round-robin or EWMA balancing, no
//! error pages and no retries on statuses, on a connection whose forwarding headers are
//! not believed. Everything else goes to the general path, which does it all.
//!
//! With tracing on (`--otlp-endpoint`) this path is not taken at all: `serve_http1` in
//! `listener.rs` hands every connection to the general path, where each request gets its
//! span and the backend its `traceparent` (`otel.rs`). Tracing costs the native path's speed.

use std::ops::Range;
use std::sync::Arc;

use http::HeaderValue;
use sluice_config::{Action, Backend, Balance, Filter, Forward, Route, Snapshot, Transport};

use crate::headers::{append_forwarding, connection_tokens, is_replaced_forwarding, Downstream};
use crate::listener::Scheme;
use crate::path::routing_path;
use crate::validate::{self, BodyFraming, HeadVerdict};

/// Longest request target hyper's URI parser accepts (longer ones get its 414).
const MAX_TARGET: usize = u16::MAX as usize - 1;
/// Room for the request line's fixed parts and the forwarding headers Sluice adds.
const ADDED_HEAD_ROOM: usize = 256;
/// Most header names a `Connection` header may list for the request to stay here.
const MAX_LISTED: usize = 8;

/// A request this path forwards: where it goes and what the answer must respect.
#[derive(Debug)]
pub(super) struct Plan<'s> {
    /// The route that matched (its label and HSTS).
    pub route: &'s Route,
    /// Its forwarding settings (policy, balance).
    pub forward: &'s Forward,
    /// The backend the route's weights chose.
    pub backend: &'s Arc<Backend>,
    /// Bytes of request body to stream (`Content-Length`; 0 for none).
    pub body: u64,
    /// A `HEAD` request: its answer has no body, whatever the answer's head says.
    pub head_method: bool,
    /// The client asked to close the connection after this answer.
    pub close: bool,
    /// The request may be sent again after a failure (not POST or PATCH, unless the
    /// route's retry policy says so).
    pub idempotent: bool,
    /// The client came over https (HSTS applies).
    pub https: bool,
    /// Where the access log's fields are in the head written for the backend.
    pub fields: HeadFields,
}

/// Where the access log's request fields sit in the head written for the backend, found
/// while writing it: the log line borrows them from there, with no second parse.
#[derive(Debug, Default)]
pub(super) struct HeadFields {
    pub method: Range<usize>,
    pub target: Range<usize>,
    pub host: Range<usize>,
    pub user_agent: Range<usize>,
    pub referer: Range<usize>,
    pub request_id: Range<usize>,
}

/// The request headers an access log line shows.
pub(super) enum LoggedHeader {
    Host,
    Referer,
    UserAgent,
    RequestId,
}

impl LoggedHeader {
    /// Which one a header named `name` is, if any (by length first: most names are none).
    pub(super) fn of(name: &str) -> Option<Self> {
        match name.len() {
            4 if name.eq_ignore_ascii_case("host") => Some(Self::Host),
            7 if name.eq_ignore_ascii_case("referer") => Some(Self::Referer),
            10 if name.eq_ignore_ascii_case("user-agent") => Some(Self::UserAgent),
            12 if name.eq_ignore_ascii_case("x-request-id") => Some(Self::RequestId),
            _ => None,
        }
    }
}

impl HeadFields {
    /// The field a header named `name` fills, if the log shows it.
    fn slot(&mut self, name: &str) -> Option<&mut Range<usize>> {
        let slot = match LoggedHeader::of(name)? {
            LoggedHeader::Host => &mut self.host,
            LoggedHeader::Referer => &mut self.referer,
            LoggedHeader::UserAgent => &mut self.user_agent,
            LoggedHeader::RequestId => &mut self.request_id,
        };
        // The first of repeated headers, as the general path's log shows.
        (slot.start == slot.end).then_some(slot)
    }
}

impl Plan<'_> {
    /// The route's `Strict-Transport-Security` value over https, if it sets one.
    pub(super) fn hsts(&self) -> Option<&HeaderValue> {
        if !self.https {
            return None;
        }
        self.route.filters.iter().find_map(|filter| match filter {
            Filter::Hsts(value) => Some(value),
            _ => None,
        })
    }
}

/// What to do with a complete request head.
#[derive(Debug)]
pub(super) enum Decision<'s> {
    /// Forward it on this path; the head for the backend is written.
    Forward(Plan<'s>),
    /// No route for its host and path: Sluice's own 404.
    NotFound,
    /// The general path serves it (and the rest of the connection).
    Elsewhere,
}

/// What the request's header lines say, in one pass.
#[derive(Default)]
struct Scan<'b> {
    host: Option<&'b [u8]>,
    hosts: usize,
    close: bool,
    unusual: bool,
    forwarded_for: bool,
    request_id: bool,
    listed: [&'b str; MAX_LISTED],
    listed_count: usize,
}

impl<'b> Scan<'b> {
    fn of(headers: &[httparse::Header<'b>]) -> Self {
        let mut scan = Scan::default();
        for header in headers {
            let name = header.name;
            if name.eq_ignore_ascii_case("host") {
                scan.host = Some(header.value);
                scan.hosts += 1;
            } else if name.eq_ignore_ascii_case("connection") {
                scan.connection(header.value);
            } else if name.eq_ignore_ascii_case("upgrade") || name.eq_ignore_ascii_case("expect") {
                scan.unusual = true;
            } else if name.eq_ignore_ascii_case("content-type") {
                scan.unusual |= header.value.starts_with(b"application/grpc");
            } else if name.eq_ignore_ascii_case("x-forwarded-for") {
                scan.forwarded_for = true;
            } else if name.eq_ignore_ascii_case("x-request-id") {
                scan.request_id = true;
            }
        }
        scan
    }

    fn connection(&mut self, value: &'b [u8]) {
        // A list that is not text is left to the general path.
        if std::str::from_utf8(value).is_err() {
            self.unusual = true;
            return;
        }
        for token in connection_tokens(value) {
            if token.eq_ignore_ascii_case("close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case("upgrade") || self.listed_count == MAX_LISTED {
                self.unusual = true;
            } else if !token.eq_ignore_ascii_case("keep-alive") {
                self.listed[self.listed_count] = token;
                self.listed_count += 1;
            }
        }
    }

    /// Whether a header line of the client's is not passed on.
    fn drops(&self, name: &str, value: &[u8]) -> bool {
        const HOP_BY_HOP: [&str; 4] = ["connection", "keep-alive", "proxy-connection", "http2-settings"];
        HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
            || (name.eq_ignore_ascii_case("te") && value != b"trailers")
            || is_replaced_forwarding(name)
            || (self.forwarded_for && name.eq_ignore_ascii_case("x-original-forwarded-for"))
            || self.listed[..self.listed_count].iter().any(|listed| name.eq_ignore_ascii_case(listed))
    }
}

/// Decides what happens to the request whose head is `request`; when it is forwarded
/// here, writes the head for the backend into `out`.
pub(super) fn decide<'s>(
    request: &httparse::Request<'_, '_>,
    verdict: HeadVerdict,
    snapshot: &'s Snapshot,
    downstream: &Downstream,
    out: &mut Vec<u8>,
) -> Decision<'s> {
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version) else {
        return Decision::Elsewhere;
    };
    let body = match verdict.body {
        _ if verdict.tunnel => return Decision::Elsewhere,
        BodyFraming::Empty => 0,
        BodyFraming::Length(length) => length,
        BodyFraming::Chunked => return Decision::Elsewhere,
    };
    if method == "CONNECT" || method == "TRACE" || !plain_target(target) || snapshot.client_trust.real_ip.is_some() {
        return Decision::Elsewhere;
    }
    let scan = Scan::of(request.headers);
    let host = match scan.host {
        Some(host) if scan.hosts == 1 && !scan.unusual && validate::is_host(host) => host,
        _ => return Decision::Elsewhere,
    };
    // `is_host` admits ASCII only.
    let Ok(host_text) = std::str::from_utf8(host) else {
        return Decision::Elsewhere;
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if snapshot.acme.challenges.http01(path).is_some() {
        // Answered before routing, on the general path.
        return Decision::Elsewhere;
    }
    let Some(group) = snapshot.routes.route(Some(host_text), &routing_path(path)) else {
        return Decision::NotFound;
    };
    let Some((route, forward)) = group.routes.first().and_then(plain_forward) else {
        return Decision::Elsewhere;
    };
    let policy = &forward.policy;
    if policy.max_body.is_some_and(|limit| body > limit) {
        return Decision::Elsewhere;
    }
    let Some(backend) = forward.pick().and_then(|index| snapshot.backend(forward.backends[index].id)) else {
        return Decision::Elsewhere;
    };
    if !matches!(backend.transport, Transport::Http1) {
        return Decision::Elsewhere;
    }
    let fields = write_head(out, request, &scan, downstream, host);
    let idempotent = !(method == "POST" || method == "PATCH") || policy.retry.on.non_idempotent;
    let head_method = method == "HEAD";
    let https = downstream.scheme == Scheme::Https;
    Decision::Forward(Plan { route, forward, backend, body, head_method, close: scan.close, idempotent, https, fields })
}

/// The route and its forwarding when nothing but forwarding is asked of it.
fn plain_forward(route: &Route) -> Option<(&Route, &Forward)> {
    let Action::Forward(forward) = &route.action else {
        return None;
    };
    let policy = &forward.policy;
    let plain = route.conditions.is_empty()
        && route.filters.iter().all(|filter| matches!(filter, Filter::Hsts(_)))
        && forward.errors.is_none()
        && forward.backend_edits.is_none()
        && matches!(forward.balance, Balance::RoundRobin | Balance::Ewma)
        && !policy.http10
        && policy.request_timeout.is_none()
        && policy.retry.on.statuses.is_empty();
    plain.then_some((route, forward))
}

/// The head for the backend: the request line, the client's header lines as sent (names,
/// case and order) but hop-by-hop ones and those the forwarding headers replace, then the
/// forwarding headers. Returns where the logged fields are in it.
fn write_head(
    out: &mut Vec<u8>,
    request: &httparse::Request<'_, '_>,
    scan: &Scan<'_>,
    downstream: &Downstream,
    host: &[u8],
) -> HeadFields {
    out.clear();
    // One allocation for the whole head (an idle connection gave its buffer back).
    let lines: usize = request.headers.iter().map(|h| h.name.len() + h.value.len() + 4).sum();
    out.reserve(request.path.map_or(0, str::len) + lines + ADDED_HEAD_ROOM);
    let mut fields = HeadFields::default();
    let method = request.method.unwrap_or("GET");
    out.extend_from_slice(method.as_bytes());
    fields.method = 0..out.len();
    out.push(b' ');
    let start = out.len();
    out.extend_from_slice(request.path.unwrap_or("/").as_bytes());
    fields.target = start..out.len();
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut forwarded_for_done = false;
    for header in request.headers.iter() {
        if scan.drops(header.name, header.value) {
            continue;
        }
        let name = if header.name.eq_ignore_ascii_case("x-forwarded-for") {
            if forwarded_for_done {
                continue;
            }
            forwarded_for_done = true;
            "X-Original-Forwarded-For"
        } else {
            header.name
        };
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        let start = out.len();
        out.extend_from_slice(header.value);
        if let Some(slot) = fields.slot(header.name) {
            *slot = start..out.len();
        }
        out.extend_from_slice(b"\r\n");
    }
    if let Some(id) = append_forwarding(out, downstream, host, !scan.request_id) {
        fields.request_id = id;
    }
    out.extend_from_slice(b"\r\n");
    fields
}

/// True when `target` is origin-form and hyper's URI parser takes it as it is: visible
/// ASCII without the few characters it refuses (`<`, `>`, and `` ` `` in the path, `"` in
/// the query). Anything else goes to the general path, which answers as it always has.
fn plain_target(target: &str) -> bool {
    let bytes = target.as_bytes();
    if bytes.first() != Some(&b'/') || bytes.len() > MAX_TARGET {
        return false;
    }
    let mut query = false;
    bytes.iter().all(|&byte| {
        query |= byte == b'?';
        let refused = match byte {
            b'<' | b'>' => true,
            b'`' => !query,
            b'"' => query,
            _ => !(0x21..=0x7e).contains(&byte),
        };
        !refused
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_targets_hyper_takes_as_they_are_stay() {
        for plain in ["/", "/a/b?c=d&e", "/{\"json\"}", "/x?`tick`"] {
            assert!(plain_target(plain), "{plain}");
        }
        for other in ["*", "http://a/", "/a b", "/<", "/`", "/?\"", "/caf\u{e9}", ""] {
            assert!(!plain_target(other), "{other}");
        }
    }

    /// The head written for the backend from the client's `raw` head (from 192.0.2.1 over
    /// http), where its logged fields are, and whether the client asked to close.
    fn written(raw: &[u8], host: &[u8]) -> (Vec<u8>, HeadFields, bool) {
        let mut slots = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut slots);
        request.parse(raw).unwrap();
        let scan = Scan::of(request.headers);
        let down = Downstream::new("192.0.2.1:4000".parse().unwrap(), crate::listener::Scheme::Http, 80);
        let mut out = Vec::new();
        let fields = write_head(&mut out, &request, &scan, &down, host);
        (out, fields, scan.close)
    }

    #[test]
    fn head_keeps_names_and_order_and_drops_hop_by_hop() {
        let raw = b"GET /p?q HTTP/1.1\r\nHost: a.test\r\nX-CaSe: 1\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nKeep-Alive: 5\r\nTE: gzip\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\naccept: */*\r\n\r\n";
        let (out, fields, close) = written(raw, b"a.test");
        let field = |range: &Range<usize>| String::from_utf8(out[range.clone()].to_vec()).unwrap();
        assert_eq!(
            (field(&fields.method), field(&fields.target), field(&fields.host)),
            ("GET".into(), "/p?q".into(), "a.test".into())
        );
        assert_eq!((field(&fields.user_agent), field(&fields.referer)), (String::new(), String::new()));
        let id = field(&fields.request_id);
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(&format!("X-Request-ID: {id}\r\n")));
        let (head, forwarding) = text.split_once("X-Forwarded-For: 192.0.2.1\r\n").unwrap();
        assert_eq!(
            head,
            "GET /p?q HTTP/1.1\r\nHost: a.test\r\nX-CaSe: 1\r\nX-Original-Forwarded-For: 6.6.6.6\r\naccept: */*\r\n"
        );
        assert!(forwarding.starts_with("X-Real-IP: 192.0.2.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: 80\r\nX-Forwarded-Host: a.test\r\nX-Request-ID: "));
        assert!(forwarding.ends_with("\r\n\r\n"));
        assert!(!close);
    }

    #[test]
    fn the_logged_fields_are_the_first_of_their_headers_and_a_sent_request_id() {
        let raw = b"POST /x HTTP/1.1\r\nuser-agent: ua1\r\nHost: h.test\r\nReferer: r\r\nUser-Agent: ua2\r\nx-request-id: mine\r\n\r\n";
        let (out, fields, _) = written(raw, b"h.test");
        let field = |range: &Range<usize>| &out[range.clone()];
        assert_eq!(field(&fields.method), b"POST");
        assert_eq!(field(&fields.user_agent), b"ua1");
        assert_eq!(field(&fields.referer), b"r");
        assert_eq!(field(&fields.request_id), b"mine");
        assert_eq!(out.windows(12).filter(|w| w.eq_ignore_ascii_case(b"x-request-id")).count(), 1);
    }

    #[test]
    fn upgrades_expectations_and_extra_hosts_are_unusual() {
        let scan = |raw: &[u8]| {
            let mut slots = [httparse::EMPTY_HEADER; 16];
            let mut request = httparse::Request::new(&mut slots);
            request.parse(raw).unwrap();
            let scan = Scan::of(request.headers);
            (scan.unusual, scan.hosts, scan.close)
        };
        assert!(scan(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").0);
        assert!(scan(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n").0);
        assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").1, 2);
        assert_eq!(scan(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), (false, 1, true));
    }
}
