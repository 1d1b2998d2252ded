//! The parsing rules of `from_file` and `from_map` and the cache, on hashes written by
//! Apache's `htpasswd` 2.4 and OpenSSL 3.0 (pasted; `tests/real_tools.rs` runs the tools).

use super::*;

/// `htpasswd -nb{B -C 4,5,2,s,m} USER secret` and `openssl passwd -1 -salt saltsalt secret`.
const BCRYPT: &str = "$2y$04$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9XG";
const SHA512: &str =
    "$6$fnnmz188jcbYhxCe$AjZZEn4JEASU0RqDN.tHVBuyB0VLuAe9WADnW2W5i7ZSOTw0TgLl4DtfYmBStGwlLloBGrwkRDHy2t.SXZE1R1";
const SHA256: &str = "$5$X/bn9X91V.ElL9lU$61ftXK5x2toWizP2wmSdgJxK18hpD6EM8d8pbnftne8";
const SHA1: &str = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=";
const APR1: &str = "$apr1$USPCnfaw$i50SNAAReUhQJ1pZFijF3.";
const MD5: &str = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//";

const ALL: [(&str, &str); 6] =
    [("bcrypt", BCRYPT), ("sha512", SHA512), ("sha256", SHA256), ("sha1", SHA1), ("apr1", APR1), ("md5", MD5)];

fn file(text: &str) -> Htpasswd {
    let (htpasswd, problems) = Htpasswd::from_file(text);
    assert_eq!(problems, [], "{text}");
    htpasswd
}

#[test]
fn every_format_verifies() {
    let text: String = ALL.iter().map(|(user, hash)| format!("{user}:{hash}\n")).collect();
    let htpasswd = file(&text);
    assert_eq!(htpasswd.len(), ALL.len());
    for (user, hash) in ALL {
        let costly = hash.starts_with("$2") || hash.starts_with("$5") || hash.starts_with("$6");
        assert_eq!(htpasswd.is_costly(user, b"secret"), costly, "{user}");
        assert!(!htpasswd.verify(user, b"Secret"), "{user}");
        assert!(htpasswd.verify(user, b"secret"), "{user}");
        assert!(!htpasswd.is_costly(user, b"secret"), "{user}: remembered");
        assert!(htpasswd.verify(user, b"secret"), "{user}: from the cache");
        assert_eq!(htpasswd.is_costly(user, b"Secret"), costly, "{user}: a failure is not remembered");
        assert!(!htpasswd.verify(user, b"secret\0"), "{user}");
        assert!(!htpasswd.verify(user, b""), "{user}");
    }
    assert!(!htpasswd.verify("nobody", b"secret"));
    assert!(!htpasswd.is_costly("nobody", b"secret"));
    assert!(!htpasswd.verify("", b"secret"));
}

#[test]
fn the_cache_is_per_user() {
    // Same password, one user with a cheap hash: bob's success must not let alice in.
    let htpasswd = file(&format!("alice:{SHA256}\nbob:{SHA1}\n"));
    assert!(htpasswd.verify("bob", b"secret"));
    assert!(htpasswd.is_costly("alice", b"secret"));
    let other = file(&format!("alice:{APR1}\n"));
    assert!(other.verify("alice", b"secret"));
    assert!(htpasswd.is_costly("alice", b"secret"), "each Htpasswd has its own cache");
}

#[test]
fn passwords_over_255_bytes_never_match() {
    // htpasswd refuses to hash them ("password too long"); SHA-crypt's cost grows with the
    // square of the length.
    let htpasswd = file(&format!("alice:{SHA512}\n"));
    let long = [b'a'; 256];
    assert!(!htpasswd.is_costly("alice", &long));
    assert!(!htpasswd.verify("alice", &long));
}

#[test]
fn skips_comments_blank_lines_and_carriage_returns() {
    let htpasswd =
        file(&format!("# users\r\n\r\n   \n  # indented comment\nalice:{APR1}\r\nbob: {SHA1} \n\ncarol:{BCRYPT}"));
    assert_eq!(htpasswd.len(), 3);
    assert!(htpasswd.verify("alice", b"secret"));
    assert!(htpasswd.verify("bob", b"secret"));
    assert!(htpasswd.verify("carol", b"secret"));
    assert!(Htpasswd::from_file("").0.is_empty());
}

#[test]
fn reports_bad_lines_and_keeps_good_ones() {
    let text = format!(
        "alice:{APR1}\nno colon here\n:{SHA1}\nbob:secret\ncarol:{{SSHA}}abcd\ndave:\n\
         erin:{SHA1}\nalice:{SHA1}\nfrank:$2y$13$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9XG\n\
         frank:{SHA1}\ngrace:uqCUvZC5TRCqk\n"
    );
    let (htpasswd, problems) = Htpasswd::from_file(&text);
    let found: Vec<(Option<usize>, Option<&str>)> = problems.iter().map(|p| (p.line, p.user.as_deref())).collect();
    assert_eq!(
        found,
        [
            (Some(2), None),
            (Some(3), None),
            (Some(4), Some("bob")),
            (Some(5), Some("carol")),
            (Some(6), Some("dave")),
            (Some(8), Some("alice")),
            (Some(9), Some("frank")),
            (Some(10), Some("frank")),
            (Some(11), Some("grace")),
        ]
    );
    let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(reasons[0], "line 2: no ':' between user and hash");
    assert!(reasons[2].starts_with("line 4 (user \"bob\"): not a password hash"), "{}", reasons[2]);
    assert!(!reasons[2].contains("secret"), "a plain-text password is never quoted");
    assert!(reasons[4].contains("no hash"), "{}", reasons[4]);
    assert!(reasons[5].contains("already on line 1"), "{}", reasons[5]);
    assert!(reasons[6].contains("cost 13 is above 12"), "{}", reasons[6]);
    assert!(reasons[7].contains("already on line 9"), "a refused first line still decides");
    assert!(reasons[8].contains("DES crypt"), "{}", reasons[8]);

    assert_eq!(htpasswd.len(), 2);
    assert!(htpasswd.verify("alice", b"secret"));
    assert!(htpasswd.verify("erin", b"secret"));
    for user in ["bob", "carol", "dave", "frank", "grace", "no colon here", ""] {
        assert!(!htpasswd.verify(user, b"secret"), "{user}");
    }
    assert_eq!(format!("{htpasswd:?}"), "Htpasswd { users: 2, .. }");
}

#[test]
fn reads_a_map_and_names_keys() {
    let (htpasswd, problems) = Htpasswd::from_map([
        ("alice", BCRYPT),
        ("bob", "{PLAIN}secret\n"),
        ("carol", &format!("{SHA256}\n")), // a trailing newline, as `echo` leaves it
        ("", SHA1),
        ("a:b", SHA1),
        ("alice", SHA1),
    ]);
    let reasons: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].starts_with("key \"bob\": plain-text passwords"), "{}", reasons[0]);
    assert_eq!(reasons[1], "key \"\": the user name is empty");
    assert_eq!(reasons[2], "key \"a:b\": a user name cannot contain ':'");
    assert_eq!(reasons[3], "key \"alice\": the user is already listed; the first entry decides");
    assert_eq!(htpasswd.len(), 2);
    assert!(htpasswd.verify("alice", b"secret"));
    assert!(htpasswd.verify("carol", b"secret"));
    assert!(!htpasswd.verify("bob", b"secret"));
}

#[test]
fn refuses_unsupported_and_malformed_hashes() {
    for (hash, reason) in [
        ("{SSHA}K6SdMGGK6YGEJhSI+2Ruqd6PYtE4eW4rWDXXrw==", "salted SHA-1"),
        ("{PLAIN}secret", "plain-text"),
        ("{MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", "unknown hash scheme"),
        ("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ", "malformed {SHA}"),
        ("{SHA}5en6G6MezRroT3XKqkdPOmY/Bf==", "malformed {SHA}"),
        ("$2x$04$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9XG", "$2x$"),
        ("$2y$03$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9XG", "below the minimum of 4"),
        ("$2y$+5$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9XG", "malformed bcrypt"),
        ("$2y$04$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9X", "malformed bcrypt"),
        ("$2y$04$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9XH", "malformed bcrypt"),
        ("$2y$31$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9XG", "cost 31 is above 12"),
        ("$6$rounds=999999999$fnnmz188jcbYhxCe$x", "rounds=999999999 is above 50000"),
        ("$6$rounds=99999999999$fnnmz188jcbYhxCe$x", "is above 50000"),
        ("$6$rounds=50001$fnnmz188jcbYhxCe$x", "rounds=50001 is above 50000"),
        ("$5$rounds=999$X/bn9X91V.ElL9lU$x", "below crypt(3)'s minimum"),
        ("$5$rounds=+5000$X/bn9X91V.ElL9lU$x", "malformed SHA-crypt"),
        ("$5$rounds=5000", "malformed SHA-crypt"),
        ("$5$X/bn9X91V.ElL9lU", "malformed SHA-crypt"),
        ("$5$$61ftXK5x2toWizP2wmSdgJxK18hpD6EM8d8pbnftne8", "the salt"),
        ("$5$X/bn9X91V.ElL9lU0$61ftXK5x2toWizP2wmSdgJxK18hpD6EM8d8pbnftne8", "the salt"),
        // Last characters with bits no digest has (sha-crypt would call them EncodingInvalid).
        ("$5$X/bn9X91V.ElL9lU$61ftXK5x2toWizP2wmSdgJxK18hpD6EM8d8pbnftneE", "the digest"),
        ("$6$fnnmz188jcbYhxCe$AjZZEn4JEASU0RqDN.tHVBuyB0VLuAe9WADnW2W5i7ZSOTw0TgLl4DtfYmBStGwlLloBGrwkRDHy2t.SXZE1R2", "the digest"),
        ("$5$X/bn9X91V.ElL9lU$61ftXK5x2toWizP2wmSdgJxK18hpD6EM8d8pbnftne", "the digest"),
        ("$6$fnnmz188jcbYhxCe$61ftXK5x2toWizP2wmSdgJxK18hpD6EM8d8pbnftne8", "the digest"),
        ("$apr1$USPCnfaw", "no '$' after the salt"),
        ("$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", "unknown hash scheme"),
        ("$", "unknown hash scheme"),
        ("uqCUvZC5TRCqk", "DES crypt"),
        ("secret", "not a password hash"),
        ("   ", "no hash"),
    ] {
        let (htpasswd, problems) = Htpasswd::from_file(&format!("u:{hash}"));
        assert!(htpasswd.is_empty(), "{hash}");
        assert_eq!(problems.len(), 1, "{hash}");
        assert!(problems[0].reason.contains(reason), "{hash}: {}", problems[0].reason);
    }
}

#[test]
fn accepts_the_limits_and_the_other_bcrypt_prefixes() {
    // The bcrypt prefixes differ only for passwords over 255 bytes, which never match.
    for prefix in ["$2a$", "$2b$"] {
        let hash = BCRYPT.replacen("$2y$", prefix, 1);
        assert!(file(&format!("u:{hash}")).verify("u", b"secret"), "{prefix}");
    }
    for hash in [
        "$2y$12$K4IgKb7crDw5D7BbgPu0m.XwZEH7WOiMfYv7VHJOJI9RHlWhOA9XG",
        "$6$rounds=50000$fnnmz188jcbYhxCe$AjZZEn4JEASU0RqDN.tHVBuyB0VLuAe9WADnW2W5i7ZSOTw0TgLl4DtfYmBStGwlLloBGrwkRDHy2t.SXZE1R1",
        "$5$rounds=1000$X/bn9X91V.ElL9lU$61ftXK5x2toWizP2wmSdgJxK18hpD6EM8d8pbnftne8",
    ] {
        let htpasswd = file(&format!("u:{hash}"));
        assert_eq!(htpasswd.len(), 1, "{hash}");
    }
    // The default rounds written out are the same hash.
    let explicit = SHA256.replacen("$5$", "$5$rounds=5000$", 1);
    assert!(file(&format!("u:{explicit}")).verify("u", b"secret"));
}

#[test]
fn is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Htpasswd>();
}
