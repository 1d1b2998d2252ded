//! The hash formats of an htpasswd entry: what Apache's `htpasswd` and `openssl passwd` write
//! and nginx's `auth_basic_user_file` accepts. Each is parsed and checked once, when the Secret
//! is read, so that a bad entry is reported then rather than failing every login quietly.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};
use sha_crypt::{PasswordVerifier, ShaCrypt};
use subtle::ConstantTimeEq;

use crate::apr1::Md5Crypt;

/// The highest bcrypt cost accepted. The Secret may come from anyone allowed to create
/// Ingresses, and each step doubles the CPU per login: cost 12 is already ~128 times
/// htpasswd's default of 5, cost 31 would take minutes per request.
const MAX_BCRYPT_COST: u32 = 12;

/// The most `rounds=` accepted for SHA-crypt (ten times the default of 5,000), for the same
/// reason: crypt(3) allows 999,999,999.
const MAX_SHA_CRYPT_ROUNDS: u32 = 50_000;

/// crypt(3)'s base64 alphabet (MD5-, SHA- and DES-crypt; bcrypt orders it differently).
pub(crate) const CRYPT_ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The reason for a scheme this crate does not know.
const UNKNOWN: &str = "unknown hash scheme (supported: bcrypt $2y$/$2a$/$2b$, $apr1$, $1$, $5$, $6$, {SHA})";

/// A stored password hash, checked and ready to verify.
pub(crate) enum Hash {
    /// `$2y$`, `$2a$` or `$2b$`, as stored (the bcrypt crate parses it again per check).
    Bcrypt(String),
    /// `$5$` or `$6$`, as stored (sha-crypt parses it again per check).
    ShaCrypt(String),
    /// `$apr1$` or `$1$`.
    Md5Crypt(Md5Crypt),
    /// `{SHA}`: unsalted SHA-1.
    Sha1([u8; 20]),
}

impl Hash {
    /// Parses the hash part of an entry, or says why it is refused. The reason never quotes
    /// the text: what was written may be a plain-text password.
    pub(crate) fn parse(text: &str) -> Result<Hash, String> {
        let text = text.trim_ascii();
        if text.is_empty() {
            return Err("no hash after the user".into());
        }
        if let Some(encoded) = text.strip_prefix("{SHA}") {
            return STANDARD
                .decode(encoded)
                .ok()
                .and_then(|digest| <[u8; 20]>::try_from(digest).ok())
                .map(Hash::Sha1)
                .ok_or_else(|| "malformed {SHA} hash: not the base64 of 20 bytes".into());
        }
        if text.starts_with("{SSHA}") {
            return Err("salted SHA-1 ({SSHA}) is not supported: create the entry with `htpasswd -B`".into());
        }
        if text.starts_with("{PLAIN}") {
            return Err("plain-text passwords ({PLAIN}) are refused: create the entry with `htpasswd -B`".into());
        }
        if let Some(rest) = text.strip_prefix('$') {
            let (id, after) = rest.split_once('$').unwrap_or((rest, ""));
            return match id {
                "2y" | "2a" | "2b" => bcrypt(text),
                "2x" => Err("bcrypt $2x$ (crypt_blowfish's bug-compatible variant) is not supported".into()),
                "apr1" | "1" => Md5Crypt::parse(id, after).map(Hash::Md5Crypt),
                "5" => sha_crypt(text, after, 43, 4),
                "6" => sha_crypt(text, after, 86, 2),
                _ => Err(UNKNOWN.into()),
            };
        }
        if text.starts_with('{') {
            return Err(UNKNOWN.into());
        }
        if is_crypt_base64(text, 13, 6) {
            return Err("DES crypt is refused: it reads only the first 8 characters of a password; create the entry with `htpasswd -B`".into());
        }
        Err("not a password hash (plain-text passwords are refused): create the entry with `htpasswd -B`".into())
    }

    /// Whether checking a password costs milliseconds of CPU rather than microseconds.
    pub(crate) fn is_costly(&self) -> bool {
        matches!(self, Hash::Bcrypt(_) | Hash::ShaCrypt(_))
    }

    /// Whether `password` matches. Digests are compared in constant time (bcrypt and sha-crypt
    /// do so themselves); an error from either crate (which parsing should have ruled out) is a
    /// mismatch.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        match self {
            // Reads only the first 72 bytes, as Apache's bcrypt does.
            Hash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Hash::ShaCrypt(hash) => ShaCrypt::default().verify_password(password, hash.as_str()).is_ok(),
            Hash::Md5Crypt(hash) => hash.verify(password),
            Hash::Sha1(digest) => Sha1::digest(password).as_slice().ct_eq(digest).into(),
        }
    }
}

/// A bcrypt hash: 60 characters, cost from 4 to [`MAX_BCRYPT_COST`].
fn bcrypt(text: &str) -> Result<Hash, String> {
    let malformed = || "malformed bcrypt hash: expected $2y$, two cost digits, '$' and 53 characters".to_string();
    // The crate reads the cost with `u32::from_str`, which would also take "+5".
    if !text.get(4..6).is_some_and(|cost| cost.bytes().all(|b| b.is_ascii_digit())) {
        return Err(malformed());
    }
    let parts: bcrypt::HashParts = text.parse().map_err(|_| malformed())?;
    let cost = parts.get_cost();
    if cost < 4 {
        Err(format!("bcrypt cost {cost} is below the minimum of 4"))
    } else if cost > MAX_BCRYPT_COST {
        Err(format!(
            "bcrypt cost {cost} is above {MAX_BCRYPT_COST}: every login would burn too much CPU; create the entry with `htpasswd -B -C 5`"
        ))
    } else {
        Ok(Hash::Bcrypt(text.to_owned()))
    }
}

/// A SHA-crypt hash: `$5$` or `$6$`, optional `rounds=N$`, a salt of up to 16 characters, and
/// `digest_len` characters whose last carries `last_bits` bits.
fn sha_crypt(text: &str, after_id: &str, digest_len: usize, last_bits: u32) -> Result<Hash, String> {
    let malformed = || "malformed SHA-crypt hash: expected $5$ or $6$, optional rounds=N$, salt$digest".to_string();
    let rest = match after_id.strip_prefix("rounds=") {
        Some(rounds_and_rest) => {
            let (rounds, rest) = rounds_and_rest.split_once('$').ok_or_else(malformed)?;
            if rounds.is_empty() || !rounds.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            // Only digits: an error here means a number past u32.
            let rounds: u32 = rounds.parse().unwrap_or(u32::MAX);
            if rounds < 1000 {
                return Err(format!("SHA-crypt rounds={rounds} is below crypt(3)'s minimum of 1000"));
            }
            if rounds > MAX_SHA_CRYPT_ROUNDS {
                return Err(format!(
                    "SHA-crypt rounds={rounds} is above {MAX_SHA_CRYPT_ROUNDS}: every login would burn too much CPU"
                ));
            }
            rest
        }
        None => after_id,
    };
    let (salt, digest) = rest.split_once('$').ok_or_else(malformed)?;
    if salt.is_empty() || salt.len() > 16 || !salt.bytes().all(|b| crypt_value(b).is_some()) {
        return Err("malformed SHA-crypt hash: the salt is not 1 to 16 characters of [./0-9A-Za-z]".into());
    }
    if !is_crypt_base64(digest, digest_len, last_bits) {
        return Err(format!("malformed SHA-crypt hash: the digest is not {digest_len} characters of crypt base64"));
    }
    Ok(Hash::ShaCrypt(text.to_owned()))
}

/// The 6-bit value of a character of [`CRYPT_ALPHABET`].
pub(crate) fn crypt_value(c: u8) -> Option<u8> {
    match c {
        b'.' | b'/' | b'0'..=b'9' => Some(c - b'.'),
        b'A'..=b'Z' => Some(c - b'A' + 12),
        b'a'..=b'z' => Some(c - b'a' + 38),
        _ => None,
    }
}

/// Whether `text` is `len` characters of crypt(3)'s base64 whose last character carries only
/// `last_bits` bits, the others zero: no digest encodes otherwise, so such a hash could never
/// match.
pub(crate) fn is_crypt_base64(text: &str, len: usize, last_bits: u32) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == len
        && bytes.iter().all(|&b| crypt_value(b).is_some())
        && bytes.last().and_then(|&b| crypt_value(b)).is_some_and(|v| v >> last_bits == 0)
}
