//! Header rewriting between client and backend: hop-by-hop headers dropped, forwarding
//! headers set, a request id added.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use sluice_config::ClientTrust;

use crate::listener::Scheme;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static X_ORIGINAL_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-original-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Request-ID`, which the access log reports as sent.
pub(crate) const X_REQUEST_ID_NAME: &str = "x-request-id";
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Facts about the downstream client that end up in forwarding headers, rendered once per
/// connection rather than per request (and again per request only when the controller
/// ConfigMap says to believe forwarding headers).
#[derive(Debug, Clone)]
pub(crate) struct Downstream {
    /// The client's address: the peer's, the PROXY header's source, or a trusted header's.
    pub client: SocketAddr,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The listener's port (or the PROXY header's destination port, or `X-Forwarded-Port`).
    pub port: u16,
    client_ip: HeaderValue,
    port_text: HeaderValue,
    /// `X-Forwarded-For` to send instead of the client address (`compute-full-forwarded-for`).
    forwarded_for: Option<HeaderValue>,
    /// The trusted `X-Forwarded-Host`: sent as `Host` and `X-Forwarded-Host`.
    forwarded_host: Option<HeaderValue>,
    /// What the TLS handshake established about the client (its certificate), when the
    /// connection asked for one.
    pub tls: Option<std::sync::Arc<crate::client_cert::TlsFacts>>,
    /// The Gateway frontend (address and port) the connection arrived on; `None` for the
    /// Ingress listeners.
    pub frontend: Option<SocketAddr>,
    /// The server name the TLS client asked for (Gateway frontends record it).
    pub sni: Option<std::sync::Arc<str>>,
}

impl Downstream {
    /// A connection from `client` to a listener on `port`.
    pub(crate) fn new(client: SocketAddr, scheme: Scheme, port: u16) -> Self {
        let client_ip = HeaderValue::from(IpText::new(client.ip()));
        let port_text = HeaderValue::from(port);
        let (forwarded_for, forwarded_host, tls, frontend, sni) = (None, None, None, None, None);
        Self { client, scheme, port, client_ip, port_text, forwarded_for, forwarded_host, tls, frontend, sni }
    }

    /// What this request's forwarding headers say about the client, where `trust` believes
    /// them; `None` when it believes none (the connection's facts stand).
    pub(crate) fn believing(&self, trust: &ClientTrust, headers: &HeaderMap) -> Option<Downstream> {
        let real_ip = trust.real_ip.as_ref()?;
        let values = headers.get_all(&real_ip.header);
        let client_ip = real_ip.client(self.client.ip(), values.iter().map(HeaderValue::as_bytes));
        let mut believed = Downstream::new(SocketAddr::new(client_ip, self.client.port()), self.scheme, self.port);
        believed.tls = self.tls.clone();
        believed.frontend = self.frontend;
        believed.sni = self.sni.clone();
        if trust.full_forwarded_for {
            let mut list = Vec::new();
            for value in headers.get_all(&X_FORWARDED_FOR) {
                list.extend_from_slice(value.as_bytes());
                list.extend_from_slice(b", ");
            }
            list.extend_from_slice(self.client_ip.as_bytes());
            believed.forwarded_for = HeaderValue::from_bytes(&list).ok();
        }
        if trust.forwarded_headers {
            let first = |name: &HeaderName| {
                let value = headers.get(name)?.to_str().ok()?;
                let first = value.split(',').next()?.trim();
                (!first.is_empty()).then(|| HeaderValue::from_str(first).ok()).flatten()
            };
            match first(&X_FORWARDED_PROTO).as_ref().map(HeaderValue::as_bytes) {
                Some(b"https") => believed.scheme = Scheme::Https,
                Some(b"http") => believed.scheme = Scheme::Http,
                _ => {}
            }
            if let Some(port) = first(&X_FORWARDED_PORT).and_then(|p| p.to_str().ok()?.parse::<u16>().ok()) {
                believed.port = port;
                believed.port_text = HeaderValue::from(port);
            }
            believed.forwarded_host = first(&X_FORWARDED_HOST);
        }
        Some(believed)
    }

    /// The `Host` to send upstream in place of the client's, when one is believed.
    pub(crate) fn forwarded_host(&self) -> Option<&HeaderValue> {
        self.forwarded_host.as_ref()
    }
}

/// The header names a `Connection` value lists (none when it is not text). Both paths and
/// both directions read the list with this.
pub(crate) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(value).unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty())
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), and those the `Connection` header names.
/// With `upgrade`, `Connection: upgrade` and `Upgrade` pass through for the tunnel.
/// `TE: trailers` is kept: gRPC backends need it.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup per kind.
    let any = headers.keys().any(|name| {
        name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || name == header::TE
            || name == header::UPGRADE
            || name == KEEP_ALIVE
            || name == PROXY_CONNECTION
            || name == HTTP2_SETTINGS
    });
    if !any {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| connection_tokens(value.as_bytes()))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .filter(|name| *name != header::HOST && !(upgrade && *name == header::UPGRADE))
        .collect();
    for name in listed {
        headers.remove(name);
    }
    headers.remove(header::CONNECTION);
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    // Only meaningful with an h2c upgrade, which is never forwarded.
    headers.remove(&HTTP2_SETTINGS);
    headers.remove(header::TRANSFER_ENCODING);
    if headers.get(header::TE).is_some_and(|te| te != "trailers") {
        headers.remove(header::TE);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// Sets the forwarding headers a backend behind an ingress expects. Incoming
/// `X-Forwarded-*` values are not trusted: the client could forge them.
pub(crate) fn set_forwarding(headers: &mut HeaderMap, downstream: &Downstream, host: Option<&HeaderValue>) {
    // Room for the six headers below in one step rather than growing as they go in.
    headers.reserve(6);
    // What the client sent is passed on under another name, as ingress-nginx does.
    if let Some(sent) = headers.remove(&X_FORWARDED_FOR) {
        headers.insert(&X_ORIGINAL_FORWARDED_FOR, sent);
    }
    let forwarded_for = downstream.forwarded_for.as_ref().unwrap_or(&downstream.client_ip);
    headers.insert(&X_FORWARDED_FOR, forwarded_for.clone());
    headers.insert(&X_REAL_IP, downstream.client_ip.clone());
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(downstream.scheme.as_str()));
    headers.insert(&X_FORWARDED_PORT, downstream.port_text.clone());
    match host {
        Some(host) => headers.insert(&X_FORWARDED_HOST, host.clone()),
        None => headers.remove(&X_FORWARDED_HOST),
    };
    ensure_request_id(headers);
}

/// Appends the forwarding headers of [`set_forwarding`] to a request head written as
/// bytes (the proxy-native HTTP/1.1 path), under ingress-nginx's spellings: what the client
/// sent under these names is not copied, `X-Forwarded-For` excepted (sent on as
/// `X-Original-Forwarded-For`). Only for connections whose forwarding headers are not
/// believed. With `request_id`, a new `X-Request-ID` too.
pub(crate) fn append_forwarding(
    out: &mut Vec<u8>,
    downstream: &Downstream,
    host: &[u8],
    request_id: bool,
) -> Option<std::ops::Range<usize>> {
    let mut line = |name: &[u8], value: &[u8]| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    };
    line(b"X-Forwarded-For", downstream.client_ip.as_bytes());
    line(b"X-Real-IP", downstream.client_ip.as_bytes());
    line(b"X-Forwarded-Proto", downstream.scheme.as_str().as_bytes());
    line(b"X-Forwarded-Port", downstream.port_text.as_bytes());
    line(b"X-Forwarded-Host", host);
    request_id.then(|| {
        out.extend_from_slice(b"X-Request-ID: ");
        let start = out.len();
        out.extend_from_slice(&request_id_digits());
        let id = start..out.len();
        out.extend_from_slice(b"\r\n");
        id
    })
}

/// The request headers [`set_forwarding`] replaces: the client's values under these names
/// are never passed on.
pub(crate) fn is_replaced_forwarding(name: &str) -> bool {
    [&X_REAL_IP, &X_FORWARDED_PROTO, &X_FORWARDED_PORT, &X_FORWARDED_HOST]
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_str()))
}

/// Gives the request an `X-Request-ID` unless it has one (nginx's `$req_id`, kept from the
/// client as ingress-nginx does).
pub(crate) fn ensure_request_id(headers: &mut HeaderMap) {
    if !headers.contains_key(&X_REQUEST_ID) {
        headers.insert(&X_REQUEST_ID, request_id());
    }
}

/// 32 random hex digits, like nginx's `$request_id`.
fn request_id_digits() -> [u8; 32] {
    let mut text = [0u8; 32];
    let mut n = fastrand::u128(..);
    for byte in text.iter_mut() {
        *byte = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
    }
    text
}

/// [`request_id_digits`] as a header value.
fn request_id() -> HeaderValue {
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&request_id_digits()).unwrap_or(HeaderValue::from_static("0"))
}

/// An IP address rendered into a header value without a heap string.
struct IpText {
    buf: [u8; 46],
    len: usize,
}

impl IpText {
    fn new(ip: std::net::IpAddr) -> Self {
        use std::io::Write;
        let mut buf = [0u8; 46];
        let mut cursor = std::io::Cursor::new(&mut buf[..]);
        // 46 bytes hold the longest IPv6 text form; a failed write leaves a short prefix.
        let _ = write!(cursor, "{ip}");
        let len = cursor.position() as usize;
        Self { buf, len }
    }
}

impl From<IpText> for HeaderValue {
    fn from(ip: IpText) -> Self {
        HeaderValue::from_bytes(&ip.buf[..ip.len]).unwrap_or(HeaderValue::from_static("unknown"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_and_connection_listed_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Drop, host"));
        h.insert("x-drop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::HOST, HeaderValue::from_static("a"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["host", "x-keep"]);
    }

    #[test]
    fn keeps_upgrade_for_tunnels_and_te_trailers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::TE], "trailers");
    }

    #[test]
    fn forwarding_headers_replace_forged_ones() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-request-id", HeaderValue::from_static("mine"));
        let down = Downstream::new("[::1]:5000".parse().unwrap(), Scheme::Https, 443);
        set_forwarding(&mut h, &down, Some(&HeaderValue::from_static("a.com")));
        assert_eq!(h["x-forwarded-for"], "::1");
        assert_eq!(h["x-original-forwarded-for"], "6.6.6.6");
        assert_eq!(h["x-real-ip"], "::1");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-port"], "443");
        assert_eq!(h["x-forwarded-host"], "a.com");
        assert_eq!(h["x-request-id"], "mine");
        let mut h = HeaderMap::new();
        set_forwarding(&mut h, &down, None);
        assert_eq!(h["x-request-id"].len(), 32);
    }

    #[test]
    fn trusted_forwarding_headers_are_believed() {
        use sluice_config::{ClientTrust, RealIp};
        let trust = ClientTrust {
            real_ip: Some(RealIp {
                header: HeaderName::from_static("x-forwarded-for"),
                trusted: vec!["127.0.0.0/8".parse().unwrap()],
            }),
            forwarded_headers: true,
            full_forwarded_for: true,
            ..ClientTrust::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 127.0.0.2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-forwarded-port", HeaderValue::from_static("8443"));
        h.insert("x-forwarded-host", HeaderValue::from_static("front.example, other"));
        let down = Downstream::new("127.0.0.1:5000".parse().unwrap(), Scheme::Http, 80);
        let believed = down.believing(&trust, &h).unwrap();
        assert_eq!(believed.client.ip().to_string(), "203.0.113.9");
        assert_eq!((believed.scheme, believed.port), (Scheme::Https, 8443));
        assert_eq!(believed.forwarded_host().unwrap(), "front.example");
        set_forwarding(&mut h, &believed, believed.forwarded_host());
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.2, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(down.believing(&ClientTrust::default(), &h).is_none());
        let untrusted = Downstream::new("192.0.2.7:5000".parse().unwrap(), Scheme::Http, 80);
        assert_eq!(untrusted.believing(&trust, &h).unwrap().client.ip().to_string(), "192.0.2.7");
    }
}
