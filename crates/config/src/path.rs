//! Ingress path rules, validated and normalised at the translate boundary.

use std::fmt;

/// How a rule's path matches request paths, per `networking.k8s.io/v1` `pathType`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum PathMatch {
    /// `Exact`: the request path equals this, case-sensitively.
    Exact(Box<str>),
    /// `Prefix` (and `ImplementationSpecific`): matches element-wise on `/`-separated segments.
    /// Stored without trailing slashes, so `/` is the empty string and matches every path.
    Prefix(Box<str>),
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
    fn candidates_are_segment_prefixes_longest_first() {
        let all: Vec<_> = prefix_candidates("/aaa/bbb/").collect();
        assert_eq!(all, ["/aaa/bbb/", "/aaa/bbb", "/aaa", ""]);
        let all: Vec<_> = prefix_candidates("/").collect();
        assert_eq!(all, ["/", ""]);
        let all: Vec<_> = prefix_candidates("").collect();
        assert_eq!(all, [""]);
    }
}
