//! Hostnames from Ingress rules and TLS entries, validated once at the translate boundary.

use std::fmt;

/// A lowercase RFC 1123 DNS subdomain (e.g. `foo.bar.com`), the only form the Ingress API
/// accepts for hosts. Constructing one is the validation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Hostname(Box<str>);

/// Why a string is not a valid [`Hostname`] or [`HostMatch`]; the message follows the
/// Kubernetes API server's wording so users recognise it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidHostname(pub String);

impl fmt::Display for InvalidHostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

const MAX_HOST_LEN: usize = 253;
const MAX_LABEL_LEN: usize = 63;

impl Hostname {
    /// Parses a hostname exactly as the API server validates `spec.rules[].host`.
    pub fn parse(raw: &str) -> Result<Self, InvalidHostname> {
        let quoted = || format!("{raw:?}");
        if raw.is_empty() {
            return Err(InvalidHostname("must not be empty".into()));
        }
        if raw.len() > MAX_HOST_LEN {
            return Err(InvalidHostname(format!("{}: must be no more than {MAX_HOST_LEN} characters", quoted())));
        }
        if raw.parse::<std::net::IpAddr>().is_ok() {
            return Err(InvalidHostname(format!("{}: must be a DNS name, not an IP address", quoted())));
        }
        for label in raw.split('.') {
            let bytes = label.as_bytes();
            let valid_chars = bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
            let alnum = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if label.len() > MAX_LABEL_LEN || !valid_chars || !alnum(bytes.first()) || !alnum(bytes.last()) {
                return Err(InvalidHostname(format!(
                    "{}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                     characters, '-' or '.', and must start and end with an alphanumeric character",
                    quoted()
                )));
            }
        }
        Ok(Self(raw.into()))
    }

    /// The hostname as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which request hosts a rule (or a TLS entry) applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum HostMatch {
    /// Exactly this host.
    Exact(Hostname),
    /// `*.suffix`: the suffix preceded by exactly one more DNS label.
    Wildcard(Hostname),
    /// A rule without a host: every host.
    Any,
}

impl HostMatch {
    /// Parses an Ingress host field: `""`/absent is [`HostMatch::Any`], `*.example.com` a
    /// wildcard, anything else must be a valid [`Hostname`].
    pub fn parse(raw: Option<&str>) -> Result<Self, InvalidHostname> {
        match raw {
            None | Some("") => Ok(Self::Any),
            Some(raw) => match raw.strip_prefix("*.") {
                Some(suffix) => Hostname::parse(suffix).map(Self::Wildcard),
                None if raw.contains('*') => Err(InvalidHostname(format!(
                    "{raw:?}: a wildcard DNS-1123 subdomain must start with '*.', followed by a \
                     valid DNS subdomain"
                ))),
                None => Hostname::parse(raw).map(Self::Exact),
            },
        }
    }

    /// True when this (wildcard or any-host) match also matches every request of `other`:
    /// `*.a.test` covers `x.a.test`; `*` covers everything.
    pub fn covers(&self, other: &HostMatch) -> bool {
        match (self, other) {
            (HostMatch::Any, _) => true,
            (HostMatch::Wildcard(suffix), HostMatch::Exact(host)) => {
                host.as_str().split_once('.').is_some_and(|(first, rest)| !first.is_empty() && rest == suffix.as_str())
            }
            _ => self == other,
        }
    }
}

impl fmt::Display for HostMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostMatch::Exact(host) => host.fmt(f),
            HostMatch::Wildcard(suffix) => write!(f, "*.{suffix}"),
            HostMatch::Any => f.write_str("*"),
        }
    }
}

/// Longest request host handled; anything longer cannot match a valid rule.
pub(crate) const HOST_BUF_LEN: usize = MAX_HOST_LEN + 1;

/// Normalises a request's `Host` (or `:authority`, or SNI) for lookup without allocating:
/// drops the port and a trailing dot, lowercases into `buf`. `None` when it cannot match any
/// rule (too long, empty, not UTF-8 after lowercasing is impossible since input is `str`).
pub(crate) fn normalize<'b>(raw: &str, buf: &'b mut [u8; HOST_BUF_LEN]) -> Option<&'b str> {
    let host = strip_port(raw);
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return None;
    }
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

fn strip_port(raw: &str) -> &str {
    if raw.starts_with('[') {
        // IPv6 literal: never matches a DNS rule, keep it whole up to the bracket.
        return raw.split_once(']').map_or(raw, |(h, _)| h);
    }
    match raw.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_like_the_api_server() {
        assert!(Hostname::parse("foo.bar.com").is_ok());
        assert!(Hostname::parse("a-1.b").is_ok());
        for bad in ["Foo.com", "foo..com", "-foo.com", "foo-.com", "foo_bar.com", "1.2.3.4", ""] {
            assert!(Hostname::parse(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(HostMatch::parse(Some("*.foo.com")), Ok(HostMatch::Wildcard(Hostname::parse("foo.com").unwrap())));
        assert!(HostMatch::parse(Some("foo.*.com")).is_err());
        assert!(HostMatch::parse(Some("*foo.com")).is_err());
        assert_eq!(HostMatch::parse(None), Ok(HostMatch::Any));
    }

    #[test]
    fn normalizes_request_hosts() {
        let mut buf = [0; HOST_BUF_LEN];
        assert_eq!(normalize("FOO.Bar.com:8443", &mut buf), Some("foo.bar.com"));
        assert_eq!(normalize("foo.bar.com.", &mut buf), Some("foo.bar.com"));
        assert_eq!(normalize("[::1]:80", &mut buf), Some("[::1"));
        assert_eq!(normalize("", &mut buf), None);
        assert_eq!(normalize(&"a".repeat(300), &mut buf), None);
    }
}
