//! The lines: JSON, and ingress-nginx's `log-format-upstream` / `log-format-stream`, each
//! formatted straight into the writer's buffer, field by field in a fixed order.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use crate::clock::{push_nginx, Rfc3339};
use crate::text::{push_ip, push_json_string, push_nginx_escaped, push_seconds, push_socket, push_u64};
use crate::{Entry, StreamEntry};

/// Appends `value`, or `null`, after `key` (the key with its quotes, separators and colon).
fn optional<T>(out: &mut Vec<u8>, key: &[u8], value: Option<T>, push: impl FnOnce(&mut Vec<u8>, T)) {
    out.extend_from_slice(key);
    match value {
        Some(value) => push(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

fn quoted_ip(out: &mut Vec<u8>, ip: IpAddr) {
    out.push(b'"');
    push_ip(out, ip);
    out.push(b'"');
}

fn quoted_socket(out: &mut Vec<u8>, addr: SocketAddr) {
    out.push(b'"');
    push_socket(out, addr);
    out.push(b'"');
}

fn micros(out: &mut Vec<u8>, duration: Duration) {
    push_seconds(out, duration, 6, true);
}

fn json_str(out: &mut Vec<u8>, text: &str) {
    push_json_string(out, text.as_bytes());
}

/// Appends the JSON line of `entry`: every field, in a fixed order, strings escaped as JSON
/// requires. Keys are written with their punctuation as one literal each.
pub(crate) fn json(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let client = entry.client;
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(Rfc3339::of(entry.time.unwrap_or_else(SystemTime::now)).as_str().as_bytes());
    out.push(b'"');
    optional(out, b",\"client\":", client.map(|c| c.ip()), quoted_ip);
    optional(out, b",\"client_port\":", client.map(|c| c.port()), |out, port| push_u64(out, port.into()));
    out.extend_from_slice(b",\"method\":");
    push_json_string(out, entry.method);
    out.extend_from_slice(b",\"host\":");
    push_json_string(out, entry.host);
    out.extend_from_slice(b",\"path\":");
    push_json_string(out, entry.target);
    out.extend_from_slice(b",\"protocol\":");
    json_str(out, entry.protocol);
    out.extend_from_slice(b",\"status\":");
    push_u64(out, entry.status.into());
    out.extend_from_slice(b",\"bytes_in\":");
    push_u64(out, entry.bytes_in);
    out.extend_from_slice(b",\"bytes_out\":");
    push_u64(out, entry.bytes_out);
    out.extend_from_slice(b",\"duration\":");
    micros(out, entry.duration);
    optional(out, b",\"upstream\":", entry.upstream, quoted_socket);
    optional(out, b",\"upstream_status\":", entry.upstream_status, |out, status| push_u64(out, status.into()));
    optional(out, b",\"upstream_time\":", entry.upstream_time, micros);
    out.extend_from_slice(b",\"request_id\":");
    push_json_string(out, entry.request_id);
    optional(out, b",\"route\":", entry.route, json_str);
    optional(out, b",\"service\":", entry.service, json_str);
    out.extend_from_slice(b",\"user_agent\":");
    push_json_string(out, entry.user_agent);
    out.extend_from_slice(b",\"referer\":");
    push_json_string(out, entry.referer);
    out.extend_from_slice(b"}\n");
}

/// Appends the JSON line of an L4 connection or flow.
pub(crate) fn json_stream(out: &mut Vec<u8>, entry: &StreamEntry) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(Rfc3339::of(entry.time).as_str().as_bytes());
    out.extend_from_slice(b"\",\"protocol\":");
    json_str(out, entry.protocol);
    out.extend_from_slice(b",\"client\":");
    quoted_ip(out, entry.client.ip());
    out.extend_from_slice(b",\"client_port\":");
    push_u64(out, entry.client.port().into());
    out.extend_from_slice(b",\"listener\":");
    quoted_socket(out, entry.listener);
    out.extend_from_slice(b",\"service\":");
    json_str(out, &entry.service);
    optional(out, b",\"upstream\":", entry.upstream, quoted_socket);
    for (key, value) in [
        (&b",\"status\":"[..], u64::from(entry.status())),
        (b",\"bytes_in\":", entry.bytes_in),
        (b",\"bytes_out\":", entry.bytes_out),
    ] {
        out.extend_from_slice(key);
        push_u64(out, value);
    }
    out.extend_from_slice(b",\"duration\":");
    micros(out, entry.duration);
    out.extend_from_slice(b"}\n");
}

/// Appends ingress-nginx's `log-format-upstream`:
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name]
/// [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length
/// $upstream_response_time $upstream_status $req_id`.
pub(crate) fn nginx(out: &mut Vec<u8>, entry: &Entry<'_>) {
    match entry.client {
        Some(client) => push_ip(out, client.ip()),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" - - [");
    push_nginx(out, entry.time.unwrap_or_else(SystemTime::now));
    out.extend_from_slice(b"] \"");
    push_nginx_escaped(out, entry.method);
    out.push(b' ');
    push_nginx_escaped(out, entry.target);
    out.push(b' ');
    out.extend_from_slice(entry.protocol.as_bytes());
    out.extend_from_slice(b"\" ");
    push_u64(out, entry.status.into());
    out.push(b' ');
    push_u64(out, entry.bytes_out);
    out.extend_from_slice(b" \"");
    push_nginx_escaped(out, or_dash(entry.referer));
    out.extend_from_slice(b"\" \"");
    push_nginx_escaped(out, or_dash(entry.user_agent));
    out.extend_from_slice(b"\" ");
    push_u64(out, entry.bytes_in);
    out.push(b' ');
    push_seconds(out, entry.duration, 3, false);
    out.extend_from_slice(b" [");
    if let Some(service) = entry.service {
        // ingress-nginx names upstreams `namespace-service-port`.
        out.extend(service.bytes().map(|c| if c == b'/' || c == b':' { b'-' } else { c }));
    }
    out.extend_from_slice(b"] [] ");
    match entry.upstream {
        Some(upstream) => {
            push_socket(out, upstream);
            out.push(b' ');
            push_u64(out, entry.bytes_out);
            out.push(b' ');
            match entry.upstream_time {
                Some(time) => push_seconds(out, time, 3, false),
                None => out.push(b'-'),
            }
            out.push(b' ');
            match entry.upstream_status {
                Some(status) => push_u64(out, status.into()),
                None => out.push(b'-'),
            }
        }
        None => out.extend_from_slice(b"- - - -"),
    }
    out.push(b' ');
    push_nginx_escaped(out, or_dash(entry.request_id));
    out.push(b'\n');
}

/// Appends ingress-nginx's `log-format-stream`: `[$remote_addr] [$time_local] $protocol
/// $status $bytes_sent $bytes_received $session_time`.
pub(crate) fn nginx_stream(out: &mut Vec<u8>, entry: &StreamEntry) {
    out.push(b'[');
    push_ip(out, entry.client.ip());
    out.extend_from_slice(b"] [");
    push_nginx(out, entry.time);
    out.extend_from_slice(b"] ");
    out.extend_from_slice(entry.protocol.as_bytes());
    for number in [u64::from(entry.status()), entry.bytes_out, entry.bytes_in] {
        out.push(b' ');
        push_u64(out, number);
    }
    out.push(b' ');
    push_seconds(out, entry.duration, 3, false);
    out.push(b'\n');
}

fn or_dash(text: &[u8]) -> &[u8] {
    if text.is_empty() {
        b"-"
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn entry() -> Entry<'static> {
        Entry {
            time: Some(UNIX_EPOCH + Duration::from_secs(1_796_378_400)),
            client: Some("192.0.2.7:51000".parse().unwrap()),
            method: b"GET",
            host: b"shop.test",
            target: b"/cart?id=1",
            protocol: "HTTP/1.1",
            status: 200,
            bytes_in: 87,
            bytes_out: 1234,
            duration: Duration::from_millis(12),
            upstream: Some("10.0.0.5:8080".parse().unwrap()),
            upstream_status: Some(200),
            upstream_time: Some(Duration::from_millis(11)),
            request_id: b"abc123",
            route: Some("default/shop"),
            service: Some("default/web:8080"),
            user_agent: b"curl/8.0",
            referer: b"",
        }
    }

    fn line(format: fn(&mut Vec<u8>, &Entry<'_>), entry: &Entry<'_>) -> String {
        let mut out = Vec::new();
        format(&mut out, entry);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn nginx_lines_follow_log_format_upstream() {
        assert_eq!(
            line(nginx, &entry()),
            "192.0.2.7 - - [04/Dec/2026:10:00:00 +0000] \"GET /cart?id=1 HTTP/1.1\" 200 1234 \"-\" \"curl/8.0\" 87 0.012 [default-web-8080] [] 10.0.0.5:8080 1234 0.011 200 abc123\n"
        );
        let own = Entry { upstream: None, service: None, status: 404, ..entry() };
        assert!(line(nginx, &own).contains("[] [] - - - - abc123\n"));
        let unanswered = Entry { upstream_status: None, upstream_time: None, status: 502, ..entry() };
        assert!(line(nginx, &unanswered).contains("10.0.0.5:8080 1234 - - abc123\n"));
    }

    #[test]
    fn nothing_a_client_sends_can_break_a_line() {
        let hostile =
            Entry { target: b"/\"x\n\\", user_agent: "a\"b\r\nc\u{e9}".as_bytes(), referer: b"r\xff", ..entry() };
        let text = line(nginx, &hostile);
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.contains("/\\x22x\\x0A\\x5C") && text.contains("a\\x22b\\x0D\\x0Ac\\xC3\\xA9"), "{text}");
        let json_text = line(json, &hostile);
        assert_eq!(json_text.matches('\n').count(), 1);
        let parsed: serde_json::Value = serde_json::from_str(json_text.trim_end()).unwrap();
        assert_eq!(parsed["user_agent"], "a\"b\r\nc\u{e9}");
        assert_eq!(parsed["referer"], "r\u{fffd}");
        assert!(text.contains("\"r\\xFF\""), "{text}");
    }

    #[test]
    fn json_lines_carry_every_field() {
        let parsed: serde_json::Value = serde_json::from_str(line(json, &entry()).trim_end()).unwrap();
        assert_eq!(parsed["time"], "2026-12-04T10:00:00.000Z");
        assert_eq!(parsed["client"], "192.0.2.7");
        assert_eq!(parsed["client_port"], 51000);
        assert_eq!(parsed["status"], 200);
        assert_eq!(parsed["upstream"], "10.0.0.5:8080");
        assert_eq!(parsed["upstream_time"], 0.011);
        assert_eq!(parsed["duration"], 0.012);
        assert_eq!(parsed["route"], "default/shop");
        assert_eq!(parsed["service"], "default/web:8080");
        assert_eq!(parsed["bytes_out"], 1234);
        assert_eq!(parsed["referer"], "");
        // Sluice's own answer to a client it knows nothing of: nulls, still one valid line.
        let own = Entry {
            client: None,
            upstream: None,
            upstream_status: None,
            upstream_time: None,
            route: None,
            service: None,
            ..entry()
        };
        let parsed: serde_json::Value = serde_json::from_str(line(json, &own).trim_end()).unwrap();
        for field in ["client", "client_port", "upstream", "upstream_status", "upstream_time", "route", "service"] {
            assert!(parsed[field].is_null(), "{field}: {parsed}");
        }
        assert_eq!(parsed.as_object().map(|o| o.len()), Some(19));
    }

    #[test]
    fn stream_lines_follow_log_format_stream() {
        let entry = StreamEntry {
            time: UNIX_EPOCH + Duration::from_secs(1_796_378_400),
            protocol: "TCP",
            client: "192.0.2.7:51000".parse().unwrap(),
            listener: "198.18.0.10:5432".parse().unwrap(),
            service: "default/db".into(),
            upstream: Some("10.0.0.5:5432".parse().unwrap()),
            bytes_in: 10,
            bytes_out: 20,
            duration: Duration::from_millis(1500),
        };
        let mut out = Vec::new();
        nginx_stream(&mut out, &entry);
        assert_eq!(out, b"[192.0.2.7] [04/Dec/2026:10:00:00 +0000] TCP 200 20 10 1.500\n");
        out.clear();
        json_stream(&mut out, &StreamEntry { upstream: None, ..entry });
        let line: serde_json::Value = serde_json::from_slice(out.trim_ascii_end()).unwrap();
        assert_eq!((line["status"].as_u64(), line["service"].as_str()), (Some(502), Some("default/db")));
        assert_eq!((line["listener"].as_str(), line["client_port"].as_u64()), (Some("198.18.0.10:5432"), Some(51000)));
    }
}
