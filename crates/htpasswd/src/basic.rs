//! The `Authorization: Basic` header (RFC 7617), which every caller of [`crate::Htpasswd::verify`]
//! decodes first.

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// Standard base64 with or without `=` padding: nginx's decoder takes both, and so do browsers'
/// peers.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes an `Authorization` header value `Basic <base64 of user:password>` into the user and
/// the password, so that every caller reads credentials the same way nginx does: the scheme in
/// any case, spaces before the credentials, the user ending at the first `:` (the password may
/// hold more). `None` for another scheme, bad base64, no `:`, or a user that is not UTF-8
/// (htpasswd users are text; a lossy conversion could make two users equal).
pub fn decode_basic(header_value: &[u8]) -> Option<(String, Vec<u8>)> {
    let (scheme, rest) = header_value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = LENIENT.decode(rest.trim_ascii()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    Some((String::from_utf8(user.to_vec()).ok()?, password.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(header: &str) -> Option<(String, Vec<u8>)> {
        decode_basic(header.as_bytes())
    }

    #[test]
    fn decodes_user_and_password() {
        // "alice:open sesame" and "bob:a:b:" (the password keeps its colons).
        let alice = Some(("alice".to_string(), b"open sesame".to_vec()));
        assert_eq!(decoded("Basic YWxpY2U6b3BlbiBzZXNhbWU="), alice);
        assert_eq!(decoded("basic YWxpY2U6b3BlbiBzZXNhbWU="), alice);
        assert_eq!(decoded("BASIC   YWxpY2U6b3BlbiBzZXNhbWU"), alice);
        assert_eq!(decoded("Basic Ym9iOmE6Yjo="), Some(("bob".into(), b"a:b:".to_vec())));
        // ":" alone: an empty user (never in a file) and an empty password.
        assert_eq!(decoded("Basic Og=="), Some((String::new(), Vec::new())));
        // A password that is not UTF-8 is kept as bytes ("u:\xff").
        assert_eq!(decoded("Basic dTr/"), Some(("u".into(), vec![0xff])));
    }

    #[test]
    fn refuses_what_is_not_basic_credentials() {
        for header in [
            "",
            "Basic",
            "Basic ",
            "Bearer YWxpY2U6b3BlbiBzZXNhbWU=",
            "BasicYWxpY2U6b3BlbiBzZXNhbWU=",
            "Basic YWxpY2U=",         // "alice": no colon
            "Basic YWxp!2U6b3Blbg==", // not base64
            "Basic /zpwdw==",         // "\xff:pw": the user is not UTF-8
            "Bäsic YWxpY2U6b3BlbiBzZXNhbWU=",
        ] {
            assert_eq!(decoded(header), None, "{header:?}");
        }
    }
}
