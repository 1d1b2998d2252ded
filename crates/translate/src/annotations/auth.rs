//! ingress-nginx's basic-auth annotations: `auth-type: basic`, `auth-secret`,
//! `auth-secret-type`, `auth-realm`. The Secret is read when routes are compiled
//! ([`crate::compile`]); here only the annotations. `auth-type: digest`, and any other type,
//! reject the Ingress: it is never served without the authentication it asks for. The
//! external-auth and client-certificate families are not enforced yet and still reject it.

use std::collections::BTreeMap;

use super::Problem;

/// Basic authentication as an Ingress asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthSettings {
    /// `auth-secret`: (namespace when given, name).
    pub secret: (Option<String>, String),
    /// `auth-secret-type: auth-map` (one key per user) rather than `auth-file`.
    pub map: bool,
    /// `auth-realm` (default empty, as ingress-nginx).
    pub realm: String,
}

/// Applies one basic-auth annotation; `None` when `name` is not one.
pub(crate) fn setting(
    auth: &mut Option<AuthSettings>,
    name: &str,
    value: &str,
    all: &BTreeMap<&str, &str>,
) -> Option<Result<(), Problem>> {
    let result = match name {
        "auth-type" => match value.trim() {
            "basic" => basic(all).map(|settings| *auth = Some(settings)),
            "digest" => Err(Problem::Refused(
                "digest authentication is not supported; the Ingress is not served without it (use basic over https)"
                    .into(),
            )),
            _ => Err(Problem::Refused(format!(
                "{value:?} is not basic or digest; the Ingress is not served unprotected"
            ))),
        },
        "auth-secret" | "auth-secret-type" | "auth-realm" => match all.get("auth-type") {
            // Checked with auth-type (which comes first in key order).
            Some(_) => Ok(()),
            None => Err(Problem::Ignored("has no effect without auth-type, as in ingress-nginx".into())),
        },
        _ => return None,
    };
    Some(result)
}

/// The settings of `auth-type: basic`.
fn basic(all: &BTreeMap<&str, &str>) -> Result<AuthSettings, Problem> {
    let refuse = |reason: String| Problem::Refused(format!("{reason}; the Ingress is not served unprotected"));
    let written = all.get("auth-secret").map(|s| s.trim()).unwrap_or_default();
    if written.is_empty() {
        return Err(refuse("auth-type basic needs auth-secret".into()));
    }
    let secret = super::object_ref(written)
        .ok_or_else(|| refuse(format!("auth-secret {written:?} is not a Secret reference (namespace/name)")))?;
    let map = match all.get("auth-secret-type").map(|t| t.trim()) {
        None | Some("auth-file") => false,
        Some("auth-map") => true,
        Some(other) => return Err(refuse(format!("auth-secret-type {other:?} is not auth-file or auth-map"))),
    };
    let realm = all.get("auth-realm").map(|r| r.to_string()).unwrap_or_default();
    if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
        return Err(refuse(format!("auth-realm {realm:?} cannot be quoted in WWW-Authenticate")));
    }
    Ok(AuthSettings { secret, map, realm })
}
