//! The htpasswd reader and verification (`sluice-htpasswd`), as basic authentication runs
//! them on an `auth-file` or `auth-map` Secret and an `Authorization: Basic` header. The
//! input's last line is a password (or a header value); the lines before it, as lossy UTF-8,
//! are the auth-file, and the same lines split at their first `:` are an auth-map.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_htpasswd::{decode_basic, Htpasswd};

fuzz_target!(|data: &[u8]| {
    let (file, password) = match data.iter().rposition(|&b| b == b'\n') {
        Some(end) => (&data[..end], &data[end + 1..]),
        None => (data, &[][..]),
    };
    let text = String::from_utf8_lossy(file);
    let entries: Vec<&str> = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .filter(|line| !line.trim_start().is_empty() && !line.trim_start().starts_with('#'))
        .collect();

    // Every entry line is either a user who can log in or a problem.
    let (htpasswd, problems) = Htpasswd::from_file(&text);
    assert_eq!(htpasswd.len() + problems.len(), entries.len());
    assert!(problems.iter().all(|problem| problem.line.is_some_and(|line| line >= 1)));

    let users: Vec<&str> = entries.iter().filter_map(|line| line.split_once(':')).map(|(user, _)| user).collect();
    if let Some(first) = users.first() {
        if htpasswd.verify(first, password) {
            assert!(!htpasswd.is_costly(first, password), "a success is remembered");
            assert!(htpasswd.verify(first, password));
        }
    }
    // Longer than every user of the file, so none of them.
    let absent = "x".repeat(users.iter().map(|user| user.len()).max().unwrap_or(0) + 1);
    assert!(!htpasswd.is_costly(&absent, password));
    assert!(!htpasswd.verify(&absent, password));

    let (map, problems) = Htpasswd::from_map(entries.iter().filter_map(|line| line.split_once(':')));
    assert_eq!(map.len() + problems.len(), users.len());
    assert!(!map.verify(&absent, password));
    // A cheap check only: one costly hash per input keeps the fuzzer fast.
    if let Some((user, password)) = decode_basic(password) {
        assert!(!user.contains(':'));
        if !htpasswd.is_costly(&user, &password) {
            htpasswd.verify(&user, &password);
        }
    }
});
