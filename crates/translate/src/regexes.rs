//! Compiled regexes shared by pattern text.
//!
//! Regex paths are compiled three ways: `(?i)^path` for routing ([`PathRegex`]), `(?i)path`
//! unanchored for `rewrite-target`, and once more in their host's multi-pattern [`PathSet`].
//! Charts stamp out the same paths over and over (two thousand Ingresses with the same two
//! patterns are common), and compiling a regex costs far more than everything else
//! translation does with a path. So each distinct text is compiled once and the result
//! shared: a compiled regex is an `Arc` inside, a clone costs a reference count.
//!
//! The caches belong to a [`crate::Translator`] (never global), so an edit recompiles
//! nothing it has seen lately, and they are bounded: two generations of at most
//! [`GENERATION`] entries each, the older dropped whole when the newer fills up, so a
//! pattern still in use moves to the newer generation on its next lookup.

use std::cell::RefCell;

use foldhash::HashMap;
use sluice_config::{InvalidPath, PathRegex, PathSet, REGEX_SIZE_LIMIT};

/// Entries per generation of each cache.
const GENERATION: usize = 4096;

/// The regex caches of one translator. Translation is single-threaded: each cache is a
/// `RefCell`, borrowed only for one lookup (never while compiling something else).
#[derive(Default)]
pub(crate) struct Regexes {
    paths: RefCell<Bounded<Result<PathRegex, InvalidPath>>>,
    rewrites: RefCell<Bounded<Result<regex::Regex, String>>>,
    sets: RefCell<Bounded<Option<PathSet>>>,
}

impl std::fmt::Debug for Regexes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Regexes").finish_non_exhaustive()
    }
}

impl Regexes {
    /// `(?i)^path`, compiled once per text (failures too: the same reason each time).
    pub(crate) fn path(&self, path: &str) -> Result<PathRegex, InvalidPath> {
        self.paths.borrow_mut().get_or_insert_with(path, || PathRegex::new(path))
    }

    /// ingress-nginx's `rewrite "(?i)PATH" …`: the path as an unanchored, case-insensitive
    /// regex whose groups feed the rewrite target.
    pub(crate) fn rewrite(&self, path: &str) -> Result<regex::Regex, String> {
        self.rewrites.borrow_mut().get_or_insert_with(path, || {
            regex::RegexBuilder::new(path)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|_| format!("{path:?}: not a usable regex for rewrite-target"))
        })
    }

    /// The multi-pattern regex of a host whose paths are `patterns`, in the order they are
    /// tried: hosts with the same paths share one.
    pub(crate) fn set(&self, patterns: &[&str]) -> Option<PathSet> {
        // Length-prefixed, so that no two lists make the same key.
        let mut key = String::with_capacity(patterns.iter().map(|p| p.len() + 8).sum());
        for pattern in patterns {
            key.push_str(&pattern.len().to_string());
            key.push(':');
            key.push_str(pattern);
        }
        self.sets.borrow_mut().get_or_insert_with(&key, || PathSet::compile(patterns))
    }
}

/// A map from text to a value that is cheap to clone, holding at most two generations.
struct Bounded<V> {
    recent: HashMap<Box<str>, V>,
    older: HashMap<Box<str>, V>,
}

impl<V> Default for Bounded<V> {
    fn default() -> Self {
        Self { recent: HashMap::default(), older: HashMap::default() }
    }
}

impl<V: Clone> Bounded<V> {
    /// The value for `key`, made by `make` when neither generation has it.
    fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> V {
        if let Some(value) = self.recent.get(key) {
            return value.clone();
        }
        let value = match self.older.remove(key) {
            Some(value) => value,
            None => make(),
        };
        if self.recent.len() >= GENERATION {
            self.older = std::mem::take(&mut self.recent);
        }
        self.recent.insert(key.into(), value.clone());
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_text_is_compiled_once_and_shared() {
        let regexes = Regexes::default();
        let a = regexes.path("/api(/|$)(.*)").unwrap();
        let b = regexes.path("/api(/|$)(.*)").unwrap();
        assert!(std::ptr::eq(a.regex().as_str(), b.regex().as_str()), "one compilation, shared");
        assert!(regexes.path("/a(").is_err());
        assert_eq!(regexes.path("/a(").unwrap_err().reason, PathRegex::new("/a(").unwrap_err().reason);
        let r = regexes.rewrite("/API/(.*)").unwrap();
        assert_eq!(&r.captures("/api/x").unwrap()[1], "x", "case-insensitive");
        assert!(regexes.rewrite("/(?<n>x)\\1").is_err());
        let set = regexes.set(&["^/a", "^/"]).unwrap();
        assert_eq!(set.first_match("/ab"), Some(0));
        assert_eq!(regexes.set(&["^/", "^/a"]).unwrap().first_match("/ab"), Some(0), "order is part of the key");
    }

    #[test]
    fn the_cache_is_bounded_and_keeps_what_is_in_use() {
        let mut cache: Bounded<usize> = Bounded::default();
        let mut made = 0;
        for i in 0..3 * GENERATION {
            cache.get_or_insert_with(&i.to_string(), || i);
            // One pattern used all along is never compiled again.
            cache.get_or_insert_with("kept", || {
                made += 1;
                0
            });
        }
        assert_eq!(made, 1);
        assert!(cache.recent.len() + cache.older.len() <= 2 * GENERATION);
    }
}
