//! MD5-crypt: Apache's `$apr1$` (what `htpasswd -m`, its old default, writes) and crypt(3)'s
//! `$1$` (which nginx accepts through libc). Written here on md-5 because no maintained crate
//! does `$apr1$`; the two differ only in the magic string mixed into the first digest.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

use crate::hash::{crypt_value, is_crypt_base64, CRYPT_ALPHABET};

/// The longest salt MD5-crypt reads (Apache and crypt(3) ignore the rest).
const MAX_SALT: usize = 8;

/// A parsed `$apr1$salt$digest` or `$1$salt$digest`.
pub(crate) struct Md5Crypt {
    /// `$apr1$` or `$1$`, mixed into the first digest.
    magic: &'static str,
    salt: String,
    /// The 22 characters after the salt, compared as text as Apache and nginx do.
    encoded: [u8; 22],
}

impl Md5Crypt {
    /// Parses what follows the magic (`salt$digest`); `id` is `apr1` or `1`.
    pub(crate) fn parse(id: &str, rest: &str) -> Result<Md5Crypt, String> {
        let magic = if id == "apr1" { "$apr1$" } else { "$1$" };
        let (salt, digest) =
            rest.split_once('$').ok_or_else(|| format!("malformed {magic} hash: no '$' after the salt"))?;
        if salt.is_empty() || salt.len() > MAX_SALT || !salt.bytes().all(|b| crypt_value(b).is_some()) {
            return Err(format!("malformed {magic} hash: the salt is not 1 to 8 characters of [./0-9A-Za-z]"));
        }
        // 16 bytes in 22 characters: the last one carries 2 bits.
        match <[u8; 22]>::try_from(digest.as_bytes()) {
            Ok(encoded) if is_crypt_base64(digest, 22, 2) => Ok(Md5Crypt { magic, salt: salt.to_owned(), encoded }),
            _ => Err(format!("malformed {magic} hash: the digest is not 22 characters of crypt base64")),
        }
    }

    /// Whether `password` hashes to this digest, compared in constant time.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let computed = encode(&md5_crypt(password, self.magic.as_bytes(), self.salt.as_bytes()));
        computed.ct_eq(&self.encoded).into()
    }
}

/// The MD5-crypt digest (Poul-Henning Kamp's algorithm, as in Apache's `apr_md5.c`).
fn md5_crypt(password: &[u8], magic: &[u8], salt: &[u8]) -> [u8; 16] {
    let alternate = Md5::new().chain_update(password).chain_update(salt).chain_update(password).finalize();
    let mut context = Md5::new().chain_update(password).chain_update(magic).chain_update(salt);
    for chunk in password.chunks(16) {
        context.update(&alternate[..chunk.len()]);
    }
    // For each bit of the length, low bit first: a zero byte for a one, the password's first
    // byte for a zero.
    let mut length = password.len();
    while length != 0 {
        if length & 1 == 1 {
            context.update([0]);
        } else {
            context.update(password.get(..1).unwrap_or_default());
        }
        length >>= 1;
    }
    let mut digest: [u8; 16] = context.finalize().into();
    for round in 0..1000 {
        let mut context = Md5::new();
        if round % 2 == 1 {
            context.update(password);
        } else {
            context.update(digest);
        }
        if round % 3 != 0 {
            context.update(salt);
        }
        if round % 7 != 0 {
            context.update(password);
        }
        if round % 2 == 1 {
            context.update(digest);
        } else {
            context.update(password);
        }
        digest = context.finalize().into();
    }
    digest
}

/// The digest in crypt(3)'s base64, bytes taken in MD5-crypt's shuffled order, low bits first.
fn encode(digest: &[u8; 16]) -> [u8; 22] {
    const GROUPS: [[usize; 3]; 5] = [[0, 6, 12], [1, 7, 13], [2, 8, 14], [3, 9, 15], [4, 10, 5]];
    let mut out = [0u8; 22];
    let mut chars = out.iter_mut();
    let mut push = |mut value: u32, count: usize| {
        for slot in chars.by_ref().take(count) {
            *slot = CRYPT_ALPHABET[(value & 0x3f) as usize];
            value >>= 6;
        }
    };
    for [a, b, c] in GROUPS {
        push(u32::from(digest[a]) << 16 | u32::from(digest[b]) << 8 | u32::from(digest[c]), 4);
    }
    push(u32::from(digest[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl passwd -apr1 -salt SALT PASSWORD` and `openssl passwd -1 -salt SALT PASSWORD`
    /// (OpenSSL 3.0.19), for each (salt, password).
    const VECTORS: &[(&str, &str, &str, &str)] = &[
        ("abcdefgh", "password", "FBwExRW4dCc8aL.OvjpIE1", "G//4keteveJp0qb8z2DxG/"),
        ("abcdefgh", "", "L.PT565ESX4Tp2bqNs7Ie.", "M55TzYaaccxVGbptZWaxX/"),
        ("abcdefgh", "pässword", "rRdIxwY5XRHT4TMtBPZn.0", "6qENbeetgn0exf.OCTQaP0"),
        ("12345678", "password", "9pHAGSBYtlmFtid2xxNog0", "o2n/JiO/h5VviOInWJ4OQ/"),
        ("12345678", "", "sHuPAw7VA9xjRbJz7zKV7/", "xek.CpjQUVgdf/P2N9KQf/"),
        ("a", "password", "uaXsIQMLByuJ96Y9RmVGM.", "ST5kqD4oZxgiNWF1.mkWu1"),
        ("a", "", "lsAcX0kKaMIVmrCtUuk5b0", "8CfZSfErbeskipdhZHtvu."),
        (".Zz/9", "pässword", "MOZxP2R0H/rohj8KPj8771", "3O1bVHc88ZVnzuULQ/ieG1"),
    ];

    /// The same, with a password of 100 `x` (longer than one MD5 block and than the digest).
    const LONG: &[(&str, &str, &str)] = &[
        ("abcdefgh", "9/cwT0JwksL/fA2yBHBE6/", "ax3Kvr/hbxTbyc0QiTLcg/"),
        ("12345678", "yiFoyfrrVNwrIepED8sjv0", "/5NxtAT.Xg3Y9ShvNINWT1"),
        ("a", "3RjUhk3aA.XJ246uSMcU.1", "Jq0LZB9Szh6U0DwrihrYu."),
        (".Zz/9", ".9mCHbCd.Tw/glTItwjve0", "9aygwfkCH2Ah3P5PYPeFH1"),
    ];

    fn check(salt: &str, password: &[u8], apr1: &str, md5: &str) {
        let got = encode(&md5_crypt(password, b"$apr1$", salt.as_bytes()));
        assert_eq!(std::str::from_utf8(&got), Ok(apr1), "$apr1$ salt {salt}");
        let got = encode(&md5_crypt(password, b"$1$", salt.as_bytes()));
        assert_eq!(std::str::from_utf8(&got), Ok(md5), "$1$ salt {salt}");
        for (id, digest) in [("apr1", apr1), ("1", md5)] {
            let parsed = Md5Crypt::parse(id, &format!("{salt}${digest}")).expect("a valid hash");
            assert!(parsed.verify(password));
            assert!(!parsed.verify(b"wrong"));
        }
    }

    #[test]
    fn matches_openssl() {
        for (salt, password, apr1, md5) in VECTORS {
            check(salt, password.as_bytes(), apr1, md5);
        }
        for (salt, apr1, md5) in LONG {
            check(salt, &[b'x'; 100], apr1, md5);
        }
    }

    #[test]
    fn refuses_malformed_hashes() {
        for rest in [
            "abcdefgh",                            // no digest
            "$FBwExRW4dCc8aL.OvjpIE1",             // empty salt
            "abcdefghi$FBwExRW4dCc8aL.OvjpIE1",    // salt over 8
            "ab:d$FBwExRW4dCc8aL.OvjpIE1",         // salt outside the alphabet
            "abcdefgh$FBwExRW4dCc8aL.OvjpIE",      // digest too short
            "abcdefgh$FBwExRW4dCc8aL.OvjpIE1x",    // digest too long
            "abcdefgh$FBwExRW4dCc8aL.OvjpIE2",     // last character with bits no digest has
            "abcdefgh$FBwExRW4dCc8aL.Ovjp\u{e9}1", // not ASCII
        ] {
            assert!(Md5Crypt::parse("apr1", rest).is_err(), "{rest}");
        }
    }
}
