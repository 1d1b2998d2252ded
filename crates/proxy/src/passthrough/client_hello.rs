//! The SNI of a TLS ClientHello, read from the raw bytes before any TLS library sees them,
//! so that the connection can still be relayed byte for byte or handed to rustls.
//!
//! A small bounded parser over untrusted bytes: every length is checked against what is
//! there, nothing is indexed unchecked, and anything unexpected is [`Hello::Other`]
//! (rustls then rejects it, as it would have without passthrough).

/// Most bytes read while looking for a complete ClientHello (rustls accepts handshake
/// messages up to 64 KiB; real ClientHellos are under 2 KiB).
pub(crate) const MAX_HELLO_BYTES: usize = 1 << 16;

/// TLS record content type of handshake messages.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Extension type of `server_name` (RFC 6066).
const SERVER_NAME: u16 = 0;
/// `host_name` entries of the `server_name` extension.
const HOST_NAME: u8 = 0;
/// Largest record fragment allowed (2^14 plaintext bytes, RFC 8446 §5.1).
const MAX_FRAGMENT: usize = 1 << 14;

/// What the bytes read so far are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Hello {
    /// The start of a ClientHello: more bytes are needed.
    Incomplete,
    /// A complete ClientHello, with its SNI host name when it has one.
    Complete(Option<String>),
    /// Not a (well-formed) ClientHello.
    Other,
}

/// Parses the ClientHello at the start of `bytes`, which may span several records.
pub(crate) fn parse(bytes: &[u8]) -> Hello {
    let mut message: Vec<u8> = Vec::new();
    let mut rest = bytes;
    loop {
        let Some((header, after)) = rest.split_first_chunk::<5>() else {
            return Hello::Incomplete;
        };
        let [content_type, major, _minor, high, low] = *header;
        let length = usize::from(u16::from_be_bytes([high, low]));
        if content_type != HANDSHAKE || major != 3 || length == 0 || length > MAX_FRAGMENT {
            return Hello::Other;
        }
        let Some(fragment) = after.get(..length) else {
            return Hello::Incomplete;
        };
        message.extend_from_slice(fragment);
        rest = &after[length..];
        let Some((&[kind, a, b, c], body)) = message.split_first_chunk::<4>() else {
            continue;
        };
        let length = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
        if kind != CLIENT_HELLO || length > MAX_HELLO_BYTES {
            return Hello::Other;
        }
        if let Some(body) = body.get(..length) {
            return match server_name(body) {
                Some(sni) => Hello::Complete(sni),
                None => Hello::Other,
            };
        }
    }
}

/// The `host_name` of a ClientHello body's `server_name` extension; `None` when malformed.
fn server_name(body: &[u8]) -> Option<Option<String>> {
    let mut hello = Reader(body);
    hello.take(2)?; // legacy_version
    hello.take(32)?; // random
    hello.vec8()?; // legacy_session_id
    hello.vec16()?; // cipher_suites
    hello.vec8()?; // legacy_compression_methods
    if hello.0.is_empty() {
        return Some(None); // no extensions at all
    }
    let mut extensions = Reader(hello.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind != SERVER_NAME {
            continue;
        }
        let mut names = Reader(Reader(data).vec16()?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let name = names.vec16()?;
            if name_type == HOST_NAME {
                return std::str::from_utf8(name).ok().map(|name| Some(name.to_owned()));
            }
        }
        return Some(None);
    }
    Some(None)
}

/// Reads big-endian fields and length-prefixed vectors, `None` past the end.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u16(&mut self) -> Option<u16> {
        let bytes = self.take(2)?;
        Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let length = self.u8()?;
        self.take(usize::from(length))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let length = self.u16()?;
        self.take(usize::from(length))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use sluice_config::{UpstreamTls, UpstreamTlsOptions};

    use super::*;

    /// The first flight of a real rustls client connecting to `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let server_name = ServerName::try_from(name.to_owned()).unwrap();
        let options = UpstreamTlsOptions {
            server_name: Some(server_name.clone()),
            sni: true,
            ..UpstreamTlsOptions::unverified(true)
        };
        let tls = UpstreamTls::new(options).unwrap();
        let mut client = rustls::ClientConnection::new(Arc::clone(tls.config()), server_name).unwrap();
        let mut bytes = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut bytes).unwrap();
        }
        bytes
    }

    #[test]
    fn reads_the_sni_of_real_client_hellos_at_any_split() {
        let hello = client_hello("pass.test");
        assert_eq!(parse(&hello), Hello::Complete(Some("pass.test".into())));
        for cut in 0..hello.len() {
            assert_eq!(parse(&hello[..cut]), Hello::Incomplete, "cut at {cut}");
        }
        // No SNI: rustls never sends an address as a server name.
        assert_eq!(parse(&client_hello("10.0.0.1")), Hello::Complete(None));
        // Bytes after the ClientHello (a client sending early) do not matter.
        let mut more = hello.clone();
        more.extend_from_slice(b"\x17\x03\x03\x00\x01x");
        assert_eq!(parse(&more), Hello::Complete(Some("pass.test".into())));
    }

    #[test]
    fn reassembles_a_client_hello_split_over_records() {
        let hello = client_hello("split.test");
        let message = &hello[5..];
        let mut records = Vec::new();
        for piece in message.chunks(100) {
            records.extend_from_slice(&[HANDSHAKE, 3, 1]);
            records.extend_from_slice(&u16::try_from(piece.len()).unwrap().to_be_bytes());
            records.extend_from_slice(piece);
        }
        assert_eq!(parse(&records), Hello::Complete(Some("split.test".into())));
        assert_eq!(parse(&records[..records.len() - 1]), Hello::Incomplete);
    }

    #[test]
    fn anything_else_is_not_a_hello() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Hello::Other);
        assert_eq!(parse(&[HANDSHAKE, 3, 3, 0, 0]), Hello::Other, "an empty record");
        assert_eq!(parse(&[HANDSHAKE, 3, 3, 0xff, 0xff]), Hello::Other, "an oversized record");
        assert_eq!(parse(&[HANDSHAKE, 3, 3, 0, 4, 2, 0, 0, 0]), Hello::Other, "a ServerHello");
        assert_eq!(parse(&[HANDSHAKE, 3, 3, 0, 4, 1, 0, 0, 1]), Hello::Incomplete);
        assert_eq!(parse(&[HANDSHAKE, 3, 3, 0, 5, 1, 0, 0, 1, 0]), Hello::Other, "a truncated body");
    }

    #[test]
    fn random_and_mangled_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let hello = client_hello("fuzz.test");
        for round in 0..20_000 {
            let bytes: Vec<u8> = if round % 2 == 0 {
                let len = rng.usize(0..600);
                let mut bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
                if round % 4 == 0 && bytes.len() > 5 {
                    // A plausible record header, so the parser goes deeper.
                    bytes[..3].copy_from_slice(&[HANDSHAKE, 3, 3]);
                    bytes[5] = CLIENT_HELLO;
                }
                bytes
            } else {
                let mut bytes = hello.clone();
                for _ in 0..rng.usize(1..8) {
                    let at = rng.usize(..bytes.len());
                    bytes[at] = rng.u8(..);
                }
                bytes.truncate(rng.usize(..=bytes.len()));
                bytes
            };
            let _ = parse(&bytes);
        }
    }
}
