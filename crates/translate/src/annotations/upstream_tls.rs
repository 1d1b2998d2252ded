//! `proxy-ssl-secret`, `proxy-ssl-verify`, `proxy-ssl-name`, `proxy-ssl-server-name`: how
//! TLS towards `HTTPS`/`GRPCS` backends is checked, with ingress-nginx's rules. Everything
//! hangs off `proxy-ssl-secret`; the Secret itself is read at translation
//! (`crate::upstream_tls`), where a missing or broken one makes the routes answer 503.

use std::collections::BTreeMap;

use rustls_pki_types::ServerName;
use sluice_config::UpstreamProtocol;
use sluice_store::ObjectKey;

/// The `proxy-ssl-*` settings of an Ingress; part of its backends' identity, so two
/// Ingresses with different settings never share connections to one Service port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ProxySsl {
    /// `proxy-ssl-secret` as `namespace/name`, or why it is unusable (a bare name, as in
    /// ingress-nginx): then the routes answer 503 rather than reach the backend unchecked.
    pub secret: Result<ObjectKey, String>,
    /// `proxy-ssl-verify: on`: verify the backend's certificate against the Secret's `ca.crt`.
    pub verify: bool,
    /// `proxy-ssl-name`: the name verified and sent as SNI (a DNS name or an address).
    pub name: Option<Box<str>>,
    /// `proxy-ssl-server-name: on`: send SNI.
    pub sni: bool,
}

/// Reads `proxy-ssl-secret` (`value`) with the other settings from `all`; an invalid
/// setting falls back to its default (its own key reports why). `protocol` is the
/// `backend-protocol` already read: the settings only apply to TLS backends.
pub(crate) fn parse(
    value: &str,
    all: &BTreeMap<&str, &str>,
    protocol: Option<UpstreamProtocol>,
) -> Result<ProxySsl, String> {
    if !protocol.is_some_and(UpstreamProtocol::is_tls) {
        return Err("has no effect: backend-protocol is not HTTPS or GRPCS".into());
    }
    let secret = match value.trim().split_once('/') {
        Some((namespace, name)) if is_dns_subdomain(namespace) && is_dns_subdomain(name) => {
            Ok(ObjectKey::new(namespace, name))
        }
        _ => Err(format!("{value:?} is not namespace/name")),
    };
    let setting =
        |key: &str, read: fn(&str) -> Result<bool, String>| all.get(key).and_then(|v| read(v).ok()).unwrap_or(false);
    Ok(ProxySsl {
        secret,
        verify: setting("proxy-ssl-verify", on_off),
        name: all.get("proxy-ssl-name").and_then(|v| server_name(v).ok()),
        sni: setting("proxy-ssl-server-name", on_off),
    })
}

/// Checks one of the settings that mean nothing without `proxy-ssl-secret`
/// (`proxy-ssl-verify`, `proxy-ssl-name`, `proxy-ssl-server-name`), read with it by [`parse`].
pub(crate) fn check_setting(name: &str, value: &str, all: &BTreeMap<&str, &str>) -> Result<(), String> {
    match name {
        "proxy-ssl-name" => server_name(value).map(drop)?,
        _ => on_off(value).map(drop)?,
    }
    if !all.contains_key("proxy-ssl-secret") {
        return Err("has no effect without proxy-ssl-secret".into());
    }
    Ok(())
}

/// nginx's `on` / `off`.
fn on_off(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{value:?} is not on or off")),
    }
}

/// A name TLS can verify a certificate against: a DNS name or an IP address.
fn server_name(value: &str) -> Result<Box<str>, String> {
    let value = value.trim();
    ServerName::try_from(value).map(|_| value.into()).map_err(|_| format!("{value:?} is not a DNS name or address"))
}

/// A lowercase RFC 1123 subdomain, as namespace and Secret names are.
fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn the_secret_carries_the_other_settings() {
        let settings = all(&[
            ("proxy-ssl-secret", "ns/ca"),
            ("proxy-ssl-verify", "on"),
            ("proxy-ssl-name", "backend.internal"),
            ("proxy-ssl-server-name", "ON"),
        ]);
        let ssl = parse("ns/ca", &settings, Some(UpstreamProtocol::Https)).unwrap();
        assert_eq!(ssl.secret, Ok(ObjectKey::new("ns", "ca")));
        assert!(ssl.verify && ssl.sni);
        assert_eq!(ssl.name.as_deref(), Some("backend.internal"));
        for key in ["proxy-ssl-verify", "proxy-ssl-name", "proxy-ssl-server-name"] {
            assert_eq!(check_setting(key, settings[key], &settings), Ok(()));
        }
    }

    #[test]
    fn invalid_settings_fall_back_and_bare_names_deny() {
        let settings =
            all(&[("proxy-ssl-verify", "yes"), ("proxy-ssl-name", "not a name"), ("proxy-ssl-secret", "ca")]);
        let ssl = parse("ca", &settings, Some(UpstreamProtocol::H2)).unwrap();
        assert!(ssl.secret.is_err(), "a bare name: the routes answer 503");
        assert!(!ssl.verify && ssl.name.is_none() && !ssl.sni);
        assert!(check_setting("proxy-ssl-verify", "yes", &settings).is_err());
        assert!(check_setting("proxy-ssl-name", "not a name", &settings).is_err());
        assert!(parse("ns/ca", &settings, Some(UpstreamProtocol::Http1)).is_err(), "only for TLS backends");
        assert!(parse("ns/ca", &settings, None).is_err());
        assert!(parse("ns/Bad_Name", &settings, Some(UpstreamProtocol::Https)).unwrap().secret.is_err());
        let alone = all(&[("proxy-ssl-verify", "on")]);
        assert!(check_setting("proxy-ssl-verify", "on", &alone).unwrap_err().contains("without proxy-ssl-secret"));
    }
}
