//! The path used to choose a route: dot segments resolved and `//` merged, so that
//! `/public/../admin` is routed like `/admin` — the path the backend will act on. The
//! request is still forwarded byte for byte.

use std::borrow::Cow;

/// `path` normalised for routing; borrowed (no allocation) when already normal.
pub(crate) fn routing_path(path: &str) -> Cow<'_, str> {
    if !path.contains("//") && !path.contains("/.") {
        return Cow::Borrowed(path);
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut normal = String::with_capacity(path.len());
    for segment in &segments {
        normal.push('/');
        normal.push_str(segment);
    }
    if trailing || normal.is_empty() {
        normal.push('/');
    }
    Cow::Owned(normal)
}

#[cfg(test)]
mod tests {
    use super::routing_path;

    #[test]
    fn resolves_dot_segments_and_merges_slashes() {
        for (raw, normal) in [
            ("/a/b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/public/../admin", "/admin"),
            ("/../../etc", "/etc"),
            ("//a///b/", "/a/b/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/.hidden/x", "/.hidden/x"),
        ] {
            assert_eq!(routing_path(raw), normal, "{raw}");
        }
        assert!(matches!(routing_path("/plain/path"), std::borrow::Cow::Borrowed(_)));
    }
}
