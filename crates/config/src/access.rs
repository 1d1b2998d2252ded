//! Who may use a route: address lists and authentication, combined as nginx's `satisfy`.
//!
//! Compiled at translation from ingress-nginx's `allowlist-source-range`,
//! `denylist-source-range`, `satisfy` and `auth-*`; the data plane only asks
//! [`Access::addresses`] and runs the [`Authentication`] it names. A route either carries an
//! `Access` or has no such protection: there is no half-built state to serve open by mistake.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;
use sluice_htpasswd::Htpasswd;

use crate::client::canonical;
use crate::IpNet;

/// The protection of a route.
#[derive(Debug, Clone)]
pub struct Access {
    /// Addresses that may be served (`allowlist-source-range`); `None`: any address.
    pub allow: Option<AddressSet>,
    /// Addresses that are never served (`denylist-source-range`); checked first.
    pub deny: Option<AddressSet>,
    /// How clients prove who they are (none: nobody must): basic auth, an auth service, or
    /// both, as nginx runs `auth_basic` and `auth_request` side by side.
    pub auth: Box<[Authentication]>,
    /// How address lists and authentication combine.
    pub satisfy: Satisfy,
}

/// How a client proves who it is.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// `auth-type: basic`: a user and password of an htpasswd Secret.
    Basic(Arc<BasicAuth>),
    /// `auth-url`: an auth service says yes or no for each request.
    External(Arc<crate::ExternalAuth>),
    /// The authentication asked for cannot be set up (a missing ConfigMap of headers):
    /// every request is refused (503) until it can.
    Unavailable,
}

/// Basic authentication (RFC 7617) against the users of one Secret.
#[derive(Debug, Clone)]
pub struct BasicAuth {
    /// The `WWW-Authenticate` value of a 401: `Basic realm="…"`.
    pub challenge: HeaderValue,
    /// The users, or `None` when the Secret is missing or unusable: then every request is
    /// refused (503), never let through.
    pub users: Option<Arc<Htpasswd>>,
}

/// nginx's `satisfy`: whether a request needs every check (address lists, each
/// authentication) to pass, or one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Satisfy {
    /// Address lists and authentication must all pass (nginx's default).
    #[default]
    All,
    /// Passing the address lists or the authentication is enough.
    Any,
}

/// What the address lists say of a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressVerdict {
    /// The route has no address list.
    Unlisted,
    /// Allowed by the lists.
    Allowed,
    /// Refused by the lists.
    Refused,
}

impl Access {
    /// What the address lists say of `client` (the real client address: after PROXY
    /// protocol and trusted forwarding headers).
    pub fn addresses(&self, client: IpAddr) -> AddressVerdict {
        let client = canonical(client);
        if self.deny.as_ref().is_some_and(|deny| deny.contains(client)) {
            return AddressVerdict::Refused;
        }
        match &self.allow {
            Some(allow) if allow.contains(client) => AddressVerdict::Allowed,
            Some(_) => AddressVerdict::Refused,
            None if self.deny.is_some() => AddressVerdict::Allowed,
            None => AddressVerdict::Unlisted,
        }
    }
}

/// IPv4 and IPv6 ranges; IPv4-mapped IPv6 clients are matched as IPv4.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSet(Box<[IpNet]>);

impl AddressSet {
    /// The set of `ranges` (host bits are ignored, as nginx's `allow`/`deny` do).
    pub fn new(ranges: impl IntoIterator<Item = IpNet>) -> Self {
        Self(ranges.into_iter().map(|net| net.trunc()).collect())
    }

    /// Parses a comma-separated list of CIDRs or single addresses, ingress-nginx's format;
    /// `Err` names the first item that is neither.
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in list.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let net = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(|ip| IpNet::from(canonical(ip))))
                .map_err(|_| format!("{item:?} is not an address or CIDR"))?;
            ranges.push(net);
        }
        Ok(Self::new(ranges))
    }

    /// The ranges of both sets.
    pub fn union(&self, other: &AddressSet) -> AddressSet {
        AddressSet(self.0.iter().chain(other.0.iter()).copied().collect())
    }

    /// Whether `address` is in one of the ranges.
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    /// True when the list names no range (nothing is allowed by it).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for AddressSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, net) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{net}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(allow: Option<&str>, deny: Option<&str>) -> Access {
        Access {
            allow: allow.map(|a| AddressSet::parse(a).unwrap()),
            deny: deny.map(|d| AddressSet::parse(d).unwrap()),
            auth: Box::new([]),
            satisfy: Satisfy::All,
        }
    }

    #[test]
    fn deny_wins_then_allow_decides() {
        let a = access(Some("10.0.0.0/8, 2001:db8::/32, 192.0.2.7"), Some("10.1.0.0/16"));
        let verdict = |ip: &str| a.addresses(ip.parse().unwrap());
        assert_eq!(verdict("10.2.3.4"), AddressVerdict::Allowed);
        assert_eq!(verdict("::ffff:10.2.3.4"), AddressVerdict::Allowed);
        assert_eq!(verdict("10.1.3.4"), AddressVerdict::Refused);
        assert_eq!(verdict("192.0.2.7"), AddressVerdict::Allowed);
        assert_eq!(verdict("192.0.2.8"), AddressVerdict::Refused);
        assert_eq!(verdict("2001:db8::1"), AddressVerdict::Allowed);
        let deny_only = access(None, Some("127.0.0.2"));
        assert_eq!(deny_only.addresses("127.0.0.2".parse().unwrap()), AddressVerdict::Refused);
        assert_eq!(deny_only.addresses("127.0.0.3".parse().unwrap()), AddressVerdict::Allowed);
        assert_eq!(access(None, None).addresses("127.0.0.3".parse().unwrap()), AddressVerdict::Unlisted);
    }

    #[test]
    fn blocklists_follow_nginx_map_values() {
        let agents = Blocklist::pattern(&["BadBot", "~*crawler", "~^curl/"]).unwrap();
        let list = Blocklist { user_agents: agents, referers: None };
        let blocked = |ua: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(http::header::USER_AGENT, HeaderValue::from_str(ua).unwrap());
            list.blocks(&headers)
        };
        assert!(blocked("badbot") && blocked("Some CRAWLER 1.0") && blocked("curl/8.0"));
        assert!(!blocked("BadBot/2") && !blocked("Curl/8.0") && !blocked("Mozilla/5.0"));
        assert!(Blocklist::pattern(&["~("]).is_err());
    }

    #[test]
    fn lists_parse_strictly() {
        assert!(AddressSet::parse("10.0.0.0/33").is_err());
        assert!(AddressSet::parse("10.0.0.0/8, example.com").is_err());
        assert!(AddressSet::parse("10.0.0.1/8").unwrap().contains("10.9.9.9".parse().unwrap()));
        assert!(AddressSet::parse(" , ").unwrap().is_empty());
    }
}

/// The ConfigMap's `block-user-agents` and `block-referers`: requests whose header matches
/// are refused (403) on every route, as ingress-nginx's server-level `map` + `return 403`.
#[derive(Debug, Clone)]
pub struct Blocklist {
    /// `User-Agent` values refused.
    pub user_agents: Option<regex::Regex>,
    /// `Referer` values refused.
    pub referers: Option<regex::Regex>,
}

impl Blocklist {
    /// Compiles nginx `map` source values: a plain string matches the whole value, case
    /// aside; `~regex` and `~*regex` (case aside) match anywhere in it.
    pub fn pattern(items: &[&str]) -> Result<Option<regex::Regex>, String> {
        let mut parts = Vec::new();
        for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
            let part = if let Some(regex) = item.strip_prefix("~*") {
                format!("(?i:{regex})")
            } else if let Some(regex) = item.strip_prefix('~') {
                format!("(?:{regex})")
            } else {
                format!("(?i:^{}$)", regex::escape(item))
            };
            regex::Regex::new(&part).map_err(|_| format!("{item:?} is not a usable regex"))?;
            parts.push(part);
        }
        if parts.is_empty() {
            return Ok(None);
        }
        regex::RegexBuilder::new(&parts.join("|"))
            .size_limit(crate::REGEX_SIZE_LIMIT)
            .build()
            .map(Some)
            .map_err(|_| "the list is too large a regex".to_owned())
    }

    /// Whether the request with these headers is refused.
    pub fn blocks(&self, headers: &http::HeaderMap) -> bool {
        let matches = |pattern: &Option<regex::Regex>, name: http::header::HeaderName| {
            pattern.as_ref().is_some_and(|p| {
                headers.get_all(name).iter().any(|v| p.is_match(&String::from_utf8_lossy(v.as_bytes())))
            })
        };
        matches(&self.user_agents, http::header::USER_AGENT) || matches(&self.referers, http::header::REFERER)
    }
}
