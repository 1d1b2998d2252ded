//! htpasswd parsing and verification for ingress-nginx's basic authentication
//! (`auth-type: basic`, `auth-secret-type: auth-file | auth-map`).
//!
//! Why a crate of its own: the Secret holding the hashes is written by whoever may create
//! Ingresses, so reading it is parsing untrusted input, and no maintained crate does it
//! safely (htpasswd-verify panics on a malformed line and compares with `==`; none does
//! Apache's `$apr1$`). It is a crate of its own so that it stays a plain library (no I/O, no
//! async) that the translator, the proxy and a fuzz target can all call. A bad entry is
//! reported and skipped, never a panic; digests are compared in constant time; and the work
//! factor a Secret may ask for is capped (bcrypt cost 12, SHA-crypt 50,000 rounds), or one
//! Secret could make every login burn seconds of CPU.
//!
//! Formats: bcrypt (`$2y$`, `$2a$`, `$2b$`), MD5-crypt (`$apr1$`, `$1$`), SHA-crypt (`$5$`,
//! `$6$`) and `{SHA}`: what Apache's `htpasswd` and `openssl passwd` write and nginx's
//! `auth_basic_user_file` accepts. Plain text, `{PLAIN}`, `{SSHA}` and DES crypt are refused.
//!
//! Successful checks are remembered (a bounded cache of keyed digests, per [`Htpasswd`]), so
//! that a browser sending the same credentials with every request pays for bcrypt once;
//! [`Htpasswd::is_costly`] tells an async caller when a check would still hash, to move it to
//! a blocking thread.

mod apr1;
mod basic;
mod cache;
mod hash;

use std::collections::HashMap;
use std::fmt;

pub use basic::decode_basic;
use cache::Cache;
use hash::Hash;

/// The longest password checked: Apache's `htpasswd` refuses to hash longer ones, so none
/// can match, and SHA-crypt's work grows with the square of the length.
const MAX_PASSWORD_LEN: usize = 255;

/// The users of one basic-auth Secret and their password hashes, ready to verify
/// credentials against. Built once per Secret version; verification takes `&self` and may run
/// on many threads.
pub struct Htpasswd {
    users: HashMap<String, Hash>,
    cache: Cache,
}

/// One refused entry of a Secret: where it is and why, so that the controller can name it in
/// a diagnostic and still serve the Secret's other users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// The 1-based line of an `auth-file`; `None` for an `auth-map` entry, named by `user`.
    pub line: Option<usize>,
    /// The user (the `auth-map` key), when the entry got that far.
    pub user: Option<String>,
    /// Why the entry is refused. Never quotes the hash, which may be a plain-text password.
    pub reason: String,
}

impl fmt::Display for LineProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.user) {
            (Some(line), Some(user)) => write!(f, "line {line} (user {user:?}): {}", self.reason),
            (Some(line), None) => write!(f, "line {line}: {}", self.reason),
            (None, Some(user)) => write!(f, "key {user:?}: {}", self.reason),
            (None, None) => f.write_str(&self.reason),
        }
    }
}

impl fmt::Debug for Htpasswd {
    /// Counts users and shows no hash, so that a Debug print never leaks one into a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd").field("users", &self.users.len()).finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Reads an `auth-file` Secret's text (its `auth` key): `user:hash` lines, as written by
    /// `htpasswd`. Blank lines and `#` comments are skipped; a bad line is reported and skipped.
    /// A user's first line decides, as nginx reads the file top-down: later lines for the same
    /// user are reported, and a user whose first line is refused cannot log in.
    pub fn from_file(text: &str) -> (Htpasswd, Vec<LineProblem>) {
        let mut builder = Builder::default();
        for (index, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let number = index + 1;
            match line.split_once(':') {
                Some((user, hash)) => builder.add(Some(number), user, hash),
                None => builder.refuse(Some(number), None, "no ':' between user and hash".into()),
            }
        }
        builder.finish()
    }

    /// Reads an `auth-map` Secret: one key per user, the value its hash ("the key is the
    /// username and the value is the hashed password", ingress-nginx). Problems name the key.
    pub fn from_map<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> (Htpasswd, Vec<LineProblem>) {
        let mut builder = Builder::default();
        for (user, hash) in entries {
            builder.add(None, user, hash);
        }
        builder.finish()
    }

    /// Whether `password` is `user`'s, as decoded from `Authorization: Basic` (see
    /// [`decode_basic`]). `false` for an unknown user, a wrong password or one longer than
    /// 255 bytes; never panics. Synchronous: when [`Htpasswd::is_costly`] says so, an async
    /// caller runs it with `tokio::task::spawn_blocking`. An unknown user is answered at once,
    /// so timing tells whether a user with a costly hash exists; failures are not remembered,
    /// so guessing is bounded by the caller's rate limits, not here.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        if password.len() > MAX_PASSWORD_LEN {
            return false;
        }
        let key = self.cache.key(user, password);
        if self.cache.contains(&key) {
            return true;
        }
        let matches = hash.verify(password);
        if matches {
            self.cache.insert(key);
        }
        matches
    }

    /// Whether [`Htpasswd::verify`] would run an expensive hash (bcrypt or SHA-crypt,
    /// milliseconds of CPU) for these credentials: the user has such a hash and this password
    /// has not verified recently. An async caller moves such checks off its workers.
    pub fn is_costly(&self, user: &str, password: &[u8]) -> bool {
        self.users.get(user).is_some_and(|hash| {
            hash.is_costly()
                && password.len() <= MAX_PASSWORD_LEN
                && !self.cache.contains(&self.cache.key(user, password))
        })
    }

    /// How many users can log in (refused entries do not count).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether no user can log in: every entry was refused, or there was none. The caller
    /// decides what that means for the Ingress (ingress-nginx would deny every request).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// What `from_file` and `from_map` share: duplicates, user-name rules, problems.
#[derive(Default)]
struct Builder {
    users: HashMap<String, Hash>,
    /// Every user named so far, with the line of its first entry (`None` in a map).
    seen: HashMap<String, Option<usize>>,
    problems: Vec<LineProblem>,
}

impl Builder {
    fn add(&mut self, line: Option<usize>, user: &str, hash: &str) {
        if user.is_empty() {
            // A map's key is named even when empty; a file's line number says it all.
            let key = if line.is_none() { Some(String::new()) } else { None };
            return self.refuse(line, key, "the user name is empty".into());
        }
        if user.contains(':') {
            let reason = "a user name cannot contain ':'".to_string();
            return self.refuse(line, Some(user.to_owned()), reason);
        }
        if let Some(first) = self.seen.get(user) {
            let reason = match first {
                Some(first) => format!("the user is already on line {first}, which decides"),
                None => "the user is already listed; the first entry decides".into(),
            };
            return self.refuse(line, Some(user.to_owned()), reason);
        }
        self.seen.insert(user.to_owned(), line);
        match Hash::parse(hash) {
            Ok(hash) => {
                self.users.insert(user.to_owned(), hash);
            }
            Err(reason) => self.refuse(line, Some(user.to_owned()), reason),
        }
    }

    fn refuse(&mut self, line: Option<usize>, user: Option<String>, reason: String) {
        self.problems.push(LineProblem { line, user, reason });
    }

    fn finish(self) -> (Htpasswd, Vec<LineProblem>) {
        (Htpasswd { users: self.users, cache: Cache::new() }, self.problems)
    }
}

#[cfg(test)]
mod tests;
