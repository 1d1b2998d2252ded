//! W3C Trace Context `traceparent` (<https://www.w3.org/TR/trace-context/>): parsed from
//! what a client sent (untrusted: anything that is not exactly valid is `None`, never a
//! panic) and written for the backend. Pure: no I/O, no OpenTelemetry types.

use http::header::{HeaderMap, HeaderValue};

/// The request header carrying the trace context.
pub(crate) static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The vendor-specific companion of `traceparent`, passed on only with a valid one.
pub(crate) static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// Length of a version-00 `traceparent`: `00-` + 32 + `-` + 16 + `-` + 2.
const LENGTH: usize = 55;

/// What a valid `traceparent` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TraceParent {
    /// The trace's id, never all zeros.
    pub trace_id: [u8; 16],
    /// The caller's span (the parent of ours), never all zeros.
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// Whether the caller recorded its span (flag bit 0).
    pub(crate) fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The one `traceparent` of `headers`: `None` when there is none, more than one, or it is
    /// not valid.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let mut values = headers.get_all(&TRACEPARENT).iter();
        let value = values.next()?;
        if values.next().is_some() {
            return None;
        }
        Self::parse(value.as_bytes())
    }

    /// Parses a `traceparent` value. Version 00 must be exactly 55 characters; a later
    /// version (not `ff`) may be longer, then a `-` follows the flags, as the
    /// specification asks of parsers of unknown versions. Hex digits must be lowercase.
    pub(crate) fn parse(value: &[u8]) -> Option<Self> {
        let value = value.trim_ascii();
        if value.len() < LENGTH {
            return None;
        }
        let version = hex_byte(value.get(0..2)?)?;
        match version {
            0xff => return None,
            0 if value.len() != LENGTH => return None,
            _ if value.len() > LENGTH && value.get(LENGTH) != Some(&b'-') => return None,
            _ => {}
        }
        if value.get(2) != Some(&b'-') || value.get(35) != Some(&b'-') || value.get(52) != Some(&b'-') {
            return None;
        }
        let mut trace_id = [0u8; 16];
        for (i, byte) in trace_id.iter_mut().enumerate() {
            *byte = hex_byte(value.get(3 + 2 * i..5 + 2 * i)?)?;
        }
        let mut parent_id = [0u8; 8];
        for (i, byte) in parent_id.iter_mut().enumerate() {
            *byte = hex_byte(value.get(36 + 2 * i..38 + 2 * i)?)?;
        }
        let flags = hex_byte(value.get(53..55)?)?;
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent { trace_id, parent_id, flags })
    }
}

/// The `traceparent` value (version 00) naming `span_id` in `trace_id` as the parent.
pub(crate) fn format(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> HeaderValue {
    let mut text = [0u8; LENGTH];
    text[..3].copy_from_slice(b"00-");
    write_hex(&mut text[3..35], &trace_id);
    text[35] = b'-';
    write_hex(&mut text[36..52], &span_id);
    text[52] = b'-';
    text[53..].copy_from_slice(if sampled { b"01" } else { b"00" });
    // Only hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Two lowercase hex digits.
fn hex_byte(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    match pair {
        [high, low] => Some(digit(*high)? << 4 | digit(*low)?),
        _ => None,
    }
}

fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_value_round_trips() {
        let parsed = TraceParent::parse(VALID.as_bytes()).unwrap();
        assert_eq!(parsed.trace_id[0], 0x4b);
        assert_eq!(parsed.parent_id[7], 0xb7);
        assert!(parsed.sampled());
        assert_eq!(format(parsed.trace_id, parsed.parent_id, true), VALID);
        let unsampled = TraceParent::parse(VALID.replace("-01", "-00").as_bytes()).unwrap();
        assert!(!unsampled.sampled());
        assert_eq!(format(parsed.trace_id, parsed.parent_id, false), &VALID.replace("-01", "-00")[..]);
        // Surrounding whitespace is not part of the value.
        assert!(TraceParent::parse(format!(" {VALID}\t").as_bytes()).is_some());
    }

    #[test]
    fn later_versions_are_read_by_their_version_00_prefix() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(TraceParent::parse(later.as_bytes()).is_some());
        assert!(TraceParent::parse(format!("{later}-more").as_bytes()).is_some());
        assert!(TraceParent::parse(format!("{later}more").as_bytes()).is_none());
    }

    #[test]
    fn invalid_values_are_none() {
        let zero_trace = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
        let zero_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01";
        for bad in [
            "",
            "00",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            zero_trace,
            zero_parent,
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn no_input_panics() {
        // Every length around the valid one, with every byte value at every position.
        for length in 0..=60 {
            let base: Vec<u8> = VALID.bytes().chain(std::iter::repeat(b'-')).take(length).collect();
            for position in 0..length {
                for byte in 0..=u8::MAX {
                    let mut input = base.clone();
                    input[position] = byte;
                    let _ = TraceParent::parse(&input);
                }
            }
        }
        // Multi-byte UTF-8 where hex is expected.
        let _ = TraceParent::parse("00-é4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01".as_bytes());
    }

    #[test]
    fn two_headers_are_none() {
        let mut headers = HeaderMap::new();
        headers.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(TraceParent::from_headers(&headers).is_some());
        headers.append(&TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(TraceParent::from_headers(&headers).is_none());
    }
}
