//! The pieces both formats write: numbers, addresses, durations and escaped strings, each
//! appended to the line without going through `core::fmt` (a line is written per request;
//! `fmt`'s machinery would cost more than everything else in it).

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Appends `value` in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Appends `ip` as text: dotted quad, or RFC 5952 for IPv6.
pub(crate) fn push_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        // Rare enough that `fmt` may do it (it knows RFC 5952's `::` rules).
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `addr` as `ip:port` (`[ip]:port` for IPv6).
pub(crate) fn push_socket(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            push_ip(out, IpAddr::V4(*v4.ip()));
            out.push(b':');
            push_u64(out, u64::from(v4.port()));
        }
        SocketAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// Appends `duration` in seconds with `decimals` digits (3: milliseconds, 6: microseconds),
/// rounded; `trim` drops trailing zeros (keeping one digit) as a JSON number would be.
pub(crate) fn push_seconds(out: &mut Vec<u8>, duration: Duration, decimals: u32, trim: bool) {
    // In u64 (u128 division is a slow library call): whole seconds and the fraction apart.
    let scale = 10u64.pow(decimals.min(9));
    let per_unit = 1_000_000_000 / scale;
    let rounded = (u64::from(duration.subsec_nanos()) + per_unit / 2) / per_unit;
    let (carry, fraction) = (rounded / scale, rounded % scale);
    push_u64(out, duration.as_secs().saturating_add(carry));
    out.push(b'.');
    let mut text = [b'0'; 9];
    let mut rest = fraction;
    let digits = text.get_mut(..decimals as usize).unwrap_or_default();
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let mut shown = digits.len();
    if trim {
        while shown > 1 && digits.get(shown - 1) == Some(&b'0') {
            shown -= 1;
        }
    }
    out.extend_from_slice(digits.get(..shown).unwrap_or_default());
}

/// Whether `text` is ASCII that needs nothing escaped in a JSON string (no control
/// characters, quotes or backslashes): the usual case, checked without branching per byte.
fn plain_ascii(text: &[u8]) -> bool {
    text.iter().fold(true, |plain, &byte| plain & (0x20..0x80).contains(&byte) & (byte != b'"') & (byte != b'\\'))
}

/// Appends `text` as a JSON string: quoted and escaped, bytes that are not UTF-8 replaced by
/// U+FFFD.
pub(crate) fn push_json_string(out: &mut Vec<u8>, text: &[u8]) {
    out.push(b'"');
    if plain_ascii(text) {
        out.extend_from_slice(text);
    } else {
        // UTF-8 is written as it is (as serde_json does), what is not UTF-8 replaced.
        escape_json(out, String::from_utf8_lossy(text).as_bytes());
    }
    out.push(b'"');
}

fn escape_json(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &byte in text {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
            _ => out.push(byte),
        }
    }
}

/// Appends `text` as nginx escapes logged variables: `"`, `\` and bytes outside printable
/// ASCII as `\xHH`, so a client cannot forge fields or lines.
pub(crate) fn push_nginx_escaped(out: &mut Vec<u8>, text: &[u8]) {
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

    fn text(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn addresses_read_as_std_writes_them() {
        for addr in
            ["192.0.2.7:51000", "0.0.0.0:0", "255.255.255.255:65535", "[2001:db8::1]:443", "[::ffff:1.2.3.4]:80"]
        {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(text(|out| push_socket(out, addr)), addr.to_string());
            assert_eq!(text(|out| push_ip(out, addr.ip())), addr.ip().to_string());
        }
    }

    #[test]
    fn durations_round_to_their_unit() {
        let micros = |d: Duration, trim| text(|out| push_seconds(out, d, 6, trim));
        assert_eq!(micros(Duration::from_nanos(2_748_400), true), "0.002748");
        assert_eq!(micros(Duration::from_nanos(2_748_500), true), "0.002749");
        assert_eq!(micros(Duration::from_millis(12), true), "0.012");
        assert_eq!(micros(Duration::ZERO, true), "0.0");
        assert_eq!(micros(Duration::from_secs(3), true), "3.0");
        assert_eq!(micros(Duration::from_millis(12), false), "0.012000");
        let millis = |d: Duration| text(|out| push_seconds(out, d, 3, false));
        assert_eq!(millis(Duration::from_micros(1_499_600)), "1.500");
        assert_eq!(millis(Duration::from_micros(11)), "0.000");
        assert_eq!(millis(Duration::from_secs(3600)), "3600.000");
        assert_eq!(millis(Duration::from_nanos(1_999_500_000)), "2.000");
        assert_eq!(micros(Duration::from_nanos(999_999_500), true), "1.0");
    }

    #[test]
    fn json_strings_parse_back_to_what_was_sent() {
        for sample in ["plain", "", "quote\" back\\slash", "line\nfeed\r\ttab\u{1}\u{1f}\u{7f}", "caf\u{e9} \u{1f600}"]
        {
            let written = text(|out| push_json_string(out, sample.as_bytes()));
            assert_eq!(serde_json::from_str::<String>(&written).unwrap(), sample, "{written}");
        }
        let written = text(|out| push_json_string(out, b"bad\xff\xfe\"x"));
        assert_eq!(serde_json::from_str::<String>(&written).unwrap(), "bad\u{fffd}\u{fffd}\"x");
    }
}
