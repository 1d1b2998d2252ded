//! The lines: JSON, and ingress-nginx's `log-format-upstream` / `log-format-stream`, each
//! formatted straight into the writer's buffer.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use crate::clock::{push_nginx, Rfc3339};
use crate::{Entry, StreamEntry};

/// Seconds with microseconds, as the JSON lines give durations.
fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1e6).round() / 1e6
}

/// Bytes a client sent, as a JSON string: as they are when UTF-8, else with U+FFFD in place
/// of what is not.
struct Text<'a>(&'a [u8]);

impl serde::Serialize for Text<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => serializer.serialize_str(text),
            Err(_) => serializer.serialize_str(&String::from_utf8_lossy(self.0)),
        }
    }
}

/// One JSON line's fields, borrowed from the entry: serialized in one pass, no map built.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    time: &'a str,
    client: Option<std::net::IpAddr>,
    client_port: Option<u16>,
    method: Text<'a>,
    host: Text<'a>,
    path: Text<'a>,
    protocol: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration: f64,
    upstream: Option<SocketAddr>,
    upstream_status: Option<u16>,
    upstream_time: Option<f64>,
    request_id: Text<'a>,
    route: Option<&'a str>,
    service: Option<&'a str>,
    user_agent: Text<'a>,
    referer: Text<'a>,
}

/// Appends the JSON line of `entry`: every field, strings escaped by serde_json.
pub(crate) fn json(out: &mut Vec<u8>, entry: &Entry<'_>) {
    let time = Rfc3339::of(entry.time.unwrap_or_else(SystemTime::now));
    let line = JsonLine {
        time: time.as_str(),
        client: entry.client.map(|c| c.ip()),
        client_port: entry.client.map(|c| c.port()),
        method: Text(entry.method),
        host: Text(entry.host),
        path: Text(entry.target),
        protocol: entry.protocol,
        status: entry.status,
        bytes_in: entry.bytes_in,
        bytes_out: entry.bytes_out,
        duration: seconds(entry.duration),
        upstream: entry.upstream,
        upstream_status: entry.upstream_status,
        upstream_time: entry.upstream_time.map(seconds),
        request_id: Text(entry.request_id),
        route: entry.route,
        service: entry.service,
        user_agent: Text(entry.user_agent),
        referer: Text(entry.referer),
    };
    end_json(out, &line);
}

/// One L4 JSON line's fields.
#[derive(serde::Serialize)]
struct JsonStreamLine<'a> {
    time: &'a str,
    protocol: &'a str,
    client: std::net::IpAddr,
    client_port: u16,
    listener: SocketAddr,
    service: &'a str,
    upstream: Option<SocketAddr>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration: f64,
}

/// Appends the JSON line of an L4 connection or flow.
pub(crate) fn json_stream(out: &mut Vec<u8>, entry: &StreamEntry) {
    let time = Rfc3339::of(entry.time);
    let line = JsonStreamLine {
        time: time.as_str(),
        protocol: entry.protocol,
        client: entry.client.ip(),
        client_port: entry.client.port(),
        listener: entry.listener,
        service: &entry.service,
        upstream: entry.upstream,
        status: entry.status(),
        bytes_in: entry.bytes_in,
        bytes_out: entry.bytes_out,
        duration: seconds(entry.duration),
    };
    end_json(out, &line);
}

fn end_json(out: &mut Vec<u8>, line: &impl serde::Serialize) {
    let start = out.len();
    // Borrowed strings and numbers into a Vec: cannot fail, but never leave half a line.
    if serde_json::to_writer(&mut *out, line).is_err() {
        out.truncate(start);
        return;
    }
    out.push(b'\n');
}

/// Appends ingress-nginx's `log-format-upstream`:
/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name]
/// [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length
/// $upstream_response_time $upstream_status $req_id`.
pub(crate) fn nginx(out: &mut Vec<u8>, entry: &Entry<'_>) {
    // Writes into a Vec cannot fail.
    match entry.client {
        Some(client) => {
            let _ = write!(out, "{}", client.ip());
        }
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" - - [");
    push_nginx(out, entry.time.unwrap_or_else(SystemTime::now));
    out.extend_from_slice(b"] \"");
    escape_into(out, entry.method);
    out.push(b' ');
    escape_into(out, entry.target);
    out.push(b' ');
    out.extend_from_slice(entry.protocol.as_bytes());
    let _ = write!(out, "\" {} {} \"", entry.status, entry.bytes_out);
    escape_into(out, or_dash(entry.referer));
    out.extend_from_slice(b"\" \"");
    escape_into(out, or_dash(entry.user_agent));
    let _ = write!(out, "\" {} {:.3} [", entry.bytes_in, entry.duration.as_secs_f64());
    if let Some(service) = entry.service {
        // ingress-nginx names upstreams `namespace-service-port`.
        out.extend(service.bytes().map(|c| if c == b'/' || c == b':' { b'-' } else { c }));
    }
    out.extend_from_slice(b"] [] ");
    match entry.upstream {
        Some(upstream) => {
            let _ = write!(out, "{upstream} {} ", entry.bytes_out);
            match entry.upstream_time {
                Some(time) => {
                    let _ = write!(out, "{:.3} ", time.as_secs_f64());
                }
                None => out.extend_from_slice(b"- "),
            }
            match entry.upstream_status {
                Some(status) => {
                    let _ = write!(out, "{status}");
                }
                None => out.push(b'-'),
            }
        }
        None => out.extend_from_slice(b"- - - -"),
    }
    out.push(b' ');
    escape_into(out, or_dash(entry.request_id));
    out.push(b'\n');
}

/// Appends ingress-nginx's `log-format-stream`: `[$remote_addr] [$time_local] $protocol
/// $status $bytes_sent $bytes_received $session_time`.
pub(crate) fn nginx_stream(out: &mut Vec<u8>, entry: &StreamEntry) {
    let _ = write!(out, "[{}] [", entry.client.ip());
    push_nginx(out, entry.time);
    let _ = writeln!(
        out,
        "] {} {} {} {} {:.3}",
        entry.protocol,
        entry.status(),
        entry.bytes_out,
        entry.bytes_in,
        entry.duration.as_secs_f64()
    );
}

fn or_dash(text: &[u8]) -> &[u8] {
    if text.is_empty() {
        b"-"
    } else {
        text
    }
}

/// Appends `text` as nginx escapes logged variables: `"`, `\` and bytes outside printable
/// ASCII as `\xHH`, so a client cannot forge fields or lines.
fn escape_into(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text {
        match byte {
            b'"' | b'\\' | 0..=0x1f | 0x7f..=0xff => {
                out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xf)]]);
            }
            _ => out.push(byte),
        }
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
