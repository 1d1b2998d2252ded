//! Ingress path rules, validated and normalised at the translate boundary.

use std::fmt;

/// How a rule's path matches request paths, per `networking.k8s.io/v1` `pathType`, or as
/// a regex (ingress-nginx `use-regex`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum PathMatch {
    /// `Exact`: the request path equals this, case-sensitively.
    Exact(Box<str>),
    /// `Prefix` (and `ImplementationSpecific`): matches element-wise on `/`-separated segments.
    /// Stored without trailing slashes, so `/` is the empty string and matches every path.
    Prefix(Box<str>),
    /// A case-insensitive regex anchored at the start of the path, as nginx's
    /// `location ~* "^PATH"`.
    Regex(PathRegex),
}

/// A compiled path regex: `(?i)^` + the path as written. Compared, ordered and hashed by
/// the path as written.
#[derive(Debug, Clone)]
pub struct PathRegex {
    path: Box<str>,
    regex: regex::Regex,
}

/// The most memory one user-written path regex may compile to.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

impl PathRegex {
    /// Compiles `path` (as written in the rule) into `(?i)^path`, within [`REGEX_SIZE_LIMIT`].
    pub fn new(path: &str) -> Result<Self, InvalidPath> {
        let regex = regex::RegexBuilder::new(&format!("^{path}"))
            .case_insensitive(true)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| InvalidPath {
                field: "path",
                reason: format!("{path:?}: not a usable regex: {}", first_line(&e)),
            })?;
        Ok(Self { path: path.into(), regex })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The compiled regex (`(?i)^path`).
    pub fn regex(&self) -> &regex::Regex {
        &self.regex
    }
}

/// The most memory the multi-pattern regex of one host's paths may compile to.
const PATH_SET_SIZE_LIMIT: usize = 64 << 20;

/// Every regex path of one host in one automaton (`regex_automata`'s meta regex), searched
/// anchored and leftmost-first: the match reports the first pattern, in the order given,
/// that matches, as nginx tries its regex locations in order. Compiled at translation;
/// cloning shares the compiled automaton (each clone keeps its own search caches), so hosts
/// with the same paths in the same order can share one compilation.
#[derive(Debug, Clone)]
pub struct PathSet {
    regex: regex_automata::meta::Regex,
}

impl PathSet {
    /// Compiles `patterns` (each already `^`-anchored, such as [`PathRegex::regex`]'s text)
    /// case-insensitively; `None` when the set would be too large (each regex is then tried
    /// in turn) or a pattern does not compile.
    pub fn compile(patterns: &[&str]) -> Option<Self> {
        let regex = regex_automata::meta::Regex::builder()
            .syntax(regex_automata::util::syntax::Config::new().case_insensitive(true))
            .configure(
                regex_automata::meta::Config::new()
                    .nfa_size_limit(Some(PATH_SET_SIZE_LIMIT))
                    .hybrid_cache_capacity(PATH_SET_SIZE_LIMIT),
            )
            .build_many(patterns)
            .ok()?;
        Some(Self { regex })
    }

    /// The index of the first pattern matching at the start of `path`. No allocation.
    pub fn first_match(&self, path: &str) -> Option<usize> {
        let input = regex_automata::Input::new(path).anchored(regex_automata::Anchored::Yes);
        Some(self.regex.search(&input)?.pattern().as_usize())
    }
}

fn first_line(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines().rev().find(|l| l.starts_with("error:")).unwrap_or(text.lines().next().unwrap_or("")).to_owned()
}

impl PartialEq for PathRegex {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}
impl Eq for PathRegex {}
impl PartialOrd for PathRegex {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for PathRegex {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.path.cmp(&other.path)
    }
}
impl std::hash::Hash for PathRegex {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.path.hash(state);
    }
}
impl serde::Serialize for PathRegex {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.path)
    }
}

/// Why a path rule is invalid; worded like the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPath {
    /// Which field is wrong: `path` or `pathType`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

const INVALID_SEQUENCES: [&str; 5] = ["//", "/./", "/../", "%2f", "%2F"];
const INVALID_SUFFIXES: [&str; 2] = ["/..", "/."];

impl PathMatch {
    /// Parses `path` and `pathType` as the API server validates them.
    pub fn parse(path: Option<&str>, path_type: Option<&str>) -> Result<Self, InvalidPath> {
        let path = path.unwrap_or("");
        let invalid = |field, reason: String| Err(InvalidPath { field, reason });
        match path_type {
            None | Some("") => invalid("pathType", "Required value: pathType must be specified".into()),
            Some("ImplementationSpecific") if path.is_empty() => Ok(Self::Prefix("".into())),
            Some("ImplementationSpecific") if !path.starts_with('/') => {
                invalid("path", format!("{path:?}: must be an absolute path"))
            }
            Some("ImplementationSpecific") => Ok(Self::prefix(path)),
            Some(kind @ ("Exact" | "Prefix")) => {
                if !path.starts_with('/') {
                    return invalid("path", format!("{path:?}: must be an absolute path"));
                }
                if let Some(seq) = INVALID_SEQUENCES.iter().find(|s| path.contains(*s)) {
                    return invalid("path", format!("{path:?}: must not contain '{seq}'"));
                }
                if let Some(suffix) = INVALID_SUFFIXES.iter().find(|s| path.ends_with(*s)) {
                    return invalid("path", format!("{path:?}: cannot end with '{suffix}'"));
                }
                Ok(if kind == "Exact" { Self::Exact(path.into()) } else { Self::prefix(path) })
            }
            Some(other) => invalid(
                "pathType",
                format!(
                    "Unsupported value: {other:?}: supported values: \"Exact\", \
                     \"ImplementationSpecific\", \"Prefix\""
                ),
            ),
        }
    }

    fn prefix(path: &str) -> Self {
        Self::Prefix(path.trim_end_matches('/').into())
    }

    /// The path's length in bytes as written (without trailing slashes for prefixes), which
    /// orders matches: longer wins.
    pub fn len(&self) -> usize {
        match self {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p.len(),
            PathMatch::Regex(r) => r.path.len(),
        }
    }

    /// True for the catch-all prefix `/`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl fmt::Display for PathMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathMatch::Exact(p) => write!(f, "={p}"),
            PathMatch::Prefix(p) => write!(f, "{p}/*"),
            PathMatch::Regex(r) => write!(f, "~*^{}", r.path),
        }
    }
}

/// The candidate prefix keys for a request path, longest first: the whole path, then the
/// path cut before each `/`, ending with the empty key (the `/` rule). No allocation.
pub(crate) fn prefix_candidates(path: &str) -> impl Iterator<Item = &str> {
    let mut end = Some(path.len());
    std::iter::from_fn(move || {
        let current = end?;
        let candidate = &path[..current];
        end = if current == 0 { None } else { Some(candidate.rfind('/').unwrap_or(0)) };
        Some(candidate)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_like_the_api_server() {
        assert_eq!(PathMatch::parse(Some("/foo/"), Some("Prefix")), Ok(PathMatch::Prefix("/foo".into())));
        assert_eq!(PathMatch::parse(Some("/"), Some("Prefix")), Ok(PathMatch::Prefix("".into())));
        assert_eq!(PathMatch::parse(Some("/foo/"), Some("Exact")), Ok(PathMatch::Exact("/foo/".into())));
        assert_eq!(PathMatch::parse(None, Some("ImplementationSpecific")), Ok(PathMatch::Prefix("".into())));
        assert_eq!(PathMatch::parse(Some("foo"), Some("Prefix")).unwrap_err().field, "path");
        assert_eq!(PathMatch::parse(Some("/a//b"), Some("Exact")).unwrap_err().field, "path");
        assert_eq!(PathMatch::parse(Some("/a/.."), Some("Exact")).unwrap_err().field, "path");
        assert_eq!(PathMatch::parse(Some("/a"), None).unwrap_err().field, "pathType");
        assert_eq!(PathMatch::parse(Some("/a"), Some("Regex")).unwrap_err().field, "pathType");
    }

    #[test]
    fn regexes_are_anchored_case_insensitive_and_bounded() {
        let r = PathRegex::new("/api(/|$)(.*)").unwrap();
        assert!(r.regex().is_match("/API/users"));
        assert!(!r.regex().is_match("/v1/api"));
        assert!(PathRegex::new("/a(").is_err());
        assert!(PathRegex::new("/(a|b|c|d|e){1000}{1000}").is_err(), "over the size limit");
        assert!(PathRegex::new("/(?<n>x)\\1").is_err(), "no backreferences");
    }

    #[test]
    fn candidates_are_segment_prefixes_longest_first() {
        let all: Vec<_> = prefix_candidates("/aaa/bbb/").collect();
        assert_eq!(all, ["/aaa/bbb/", "/aaa/bbb", "/aaa", ""]);
        let all: Vec<_> = prefix_candidates("/").collect();
        assert_eq!(all, ["/", ""]);
        let all: Vec<_> = prefix_candidates("").collect();
        assert_eq!(all, [""]);
    }
}
