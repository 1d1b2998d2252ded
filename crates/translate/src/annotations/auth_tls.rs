//! ingress-nginx's client-certificate annotations (`auth-tls-*`): the CA Secret, the mode,
//! the depth, the error page, the CN pattern and whether the certificate goes upstream.
//! The Secret is read when the routes and the SNI table are built; a value that cannot be
//! read rejects the Ingress.

use std::collections::BTreeMap;

use http::HeaderValue;
use sluice_config::{VerifyClient, REGEX_SIZE_LIMIT};

use super::{values, Problem};

/// Client certificates as an Ingress asks for them.
#[derive(Debug, Clone)]
pub(crate) struct AuthTlsSettings {
    /// `auth-tls-secret`: (namespace when given, name); its `ca.crt` holds the CAs.
    pub secret: (Option<String>, String),
    pub mode: VerifyClient,
    pub depth: u8,
    pub error_page: Option<HeaderValue>,
    pub pass_certificate: bool,
    pub match_cn: Option<regex::Regex>,
}

/// Applies one `auth-tls-*` annotation; `None` when `name` is not one.
pub(crate) fn setting(
    auth: &mut Option<AuthTlsSettings>,
    name: &str,
    value: &str,
    all: &BTreeMap<&str, &str>,
) -> Option<Result<(), Problem>> {
    if !name.starts_with("auth-tls-") {
        return None;
    }
    let refuse = |reason: String| {
        Problem::Refused(format!("{reason}; the Ingress is not served without its client certificates"))
    };
    let result = match name {
        "auth-tls-secret" => settings(value, all).map(|s| *auth = s).map_err(refuse),
        "auth-tls-verify-client"
        | "auth-tls-verify-depth"
        | "auth-tls-error-page"
        | "auth-tls-pass-certificate-to-upstream"
        | "auth-tls-match-cn" => match all.contains_key("auth-tls-secret") {
            true => Ok(()),
            false => Err(Problem::Ignored("has no effect without auth-tls-secret".into())),
        },
        _ => Err(Problem::Refused(format!("{name} is not supported; the Ingress is not served without it"))),
    };
    Some(result)
}

fn settings(secret: &str, all: &BTreeMap<&str, &str>) -> Result<Option<AuthTlsSettings>, String> {
    let written = secret;
    let secret = super::object_ref(written)
        .ok_or_else(|| format!("auth-tls-secret {written:?} is not a Secret reference (namespace/name)"))?;
    let mode = match all.get("auth-tls-verify-client").map(|v| v.trim()) {
        None | Some("on") => VerifyClient::On,
        Some("optional") => VerifyClient::Optional,
        Some("optional_no_ca") => VerifyClient::OptionalNoCa,
        // As ingress-nginx: `off` asks for no certificate at all.
        Some("off") => return Ok(None),
        Some(other) => {
            return Err(format!("auth-tls-verify-client {other:?} is not on, off, optional or optional_no_ca"))
        }
    };
    let depth = match all.get("auth-tls-verify-depth") {
        Some(d) => values::number(d, 1, 10).map_err(|e| format!("auth-tls-verify-depth: {e}"))? as u8,
        None => 1,
    };
    let error_page = match all.get("auth-tls-error-page").map(|p| p.trim()).filter(|p| !p.is_empty()) {
        Some(page) if page.starts_with("http://") || page.starts_with("https://") || page.starts_with('/') => {
            Some(HeaderValue::from_str(page).map_err(|_| format!("auth-tls-error-page {page:?} is not a URL"))?)
        }
        Some(page) => return Err(format!("auth-tls-error-page {page:?} is not a URL")),
        None => None,
    };
    let pass_certificate = match all.get("auth-tls-pass-certificate-to-upstream") {
        Some(v) => values::boolean(v).map_err(|e| format!("auth-tls-pass-certificate-to-upstream: {e}"))?,
        None => false,
    };
    let match_cn = match all.get("auth-tls-match-cn").map(|p| p.trim()).filter(|p| !p.is_empty()) {
        Some(pattern) => Some(
            regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|_| format!("auth-tls-match-cn {pattern:?} is not a usable regex"))?,
        ),
        None => None,
    };
    Ok(Some(AuthTlsSettings { secret, mode, depth, error_page, pass_certificate, match_cn }))
}
