//! The balancing annotations: `load-balance`, `upstream-hash-by` (with its subsets),
//! `affinity`, `affinity-mode` and the `session-cookie-*` settings, with ingress-nginx's
//! meaning. Which one wins (affinity, then hash, then load-balance) is decided when the
//! route is compiled.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use sluice_config::{Affinity, AffinityMode, HashBy, Template};

use super::values;

/// ingress-nginx's `upstream-hash-by-subset-size` when absent or `0`.
const DEFAULT_SUBSET_SIZE: NonZeroU32 = NonZeroU32::new(3).expect("3 is not zero");

/// How the Ingress's routes pick endpoints; `None` fields keep the global default.
#[derive(Debug, Clone, Default)]
pub(crate) struct BalanceSettings {
    /// `load-balance`.
    pub algorithm: Option<LoadBalance>,
    /// `upstream-hash-by`, with `upstream-hash-by-subset` and its size.
    pub hash_by: Option<HashBy>,
    /// `affinity: cookie` with its settings; the cookie path is left empty for the
    /// Ingress path to fill.
    pub affinity: Option<Affinity>,
}

/// `load-balance` (annotation and ConfigMap key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum LoadBalance {
    #[default]
    RoundRobin,
    Ewma,
}

impl LoadBalance {
    /// `round_robin` or `ewma`.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "round_robin" => Ok(LoadBalance::RoundRobin),
            "ewma" => Ok(LoadBalance::Ewma),
            "chash" | "chashsubset" | "sticky_balanced" | "sticky_persistent" => {
                Err(format!("{value:?} is set by upstream-hash-by or affinity, not load-balance; round_robin is used"))
            }
            _ => Err(format!("{value:?} is not round_robin or ewma")),
        }
    }
}

/// Applies one balancing annotation (`all` holds the Ingress's other annotations, by name
/// without prefix); `None` when `name` is not one.
pub(crate) fn setting(
    b: &mut BalanceSettings,
    name: &str,
    value: &str,
    all: &BTreeMap<&str, &str>,
) -> Option<Result<(), String>> {
    let result = match name {
        "load-balance" => LoadBalance::parse(value).map(|algorithm| b.algorithm = Some(algorithm)),
        "upstream-hash-by" => hash_by(value, all).map(|hash| b.hash_by = Some(hash)),
        "upstream-hash-by-subset" => values::boolean(value).and_then(|_| {
            let ok = all.contains_key("upstream-hash-by");
            ok.then_some(()).ok_or_else(|| "has no effect without upstream-hash-by".to_owned())
        }),
        "upstream-hash-by-subset-size" => subset_size(value).and_then(|_| {
            let on = all.get("upstream-hash-by-subset").is_some_and(|v| values::boolean(v) == Ok(true));
            on.then_some(()).ok_or_else(|| "has no effect without upstream-hash-by-subset: \"true\"".to_owned())
        }),
        "affinity" => affinity(value).map(|affinity| b.affinity = Some(affinity)),
        "affinity-mode" => with_affinity(b).and_then(|affinity| {
            affinity.mode = match value.trim() {
                "balanced" => AffinityMode::Balanced,
                "persistent" => AffinityMode::Persistent,
                _ => return Err(format!("{value:?} is not balanced or persistent")),
            };
            Ok(())
        }),
        name if name.starts_with("session-cookie-") => {
            with_affinity(b).and_then(|affinity| session_cookie(affinity, name, value))
        }
        _ => return None,
    };
    Some(result)
}

fn with_affinity(b: &mut BalanceSettings) -> Result<&mut Affinity, String> {
    b.affinity.as_mut().ok_or_else(|| "has no effect without affinity: cookie".to_owned())
}

/// `upstream-hash-by`: nginx variables and text (`$request_uri`, `${host}-x`), hashed onto
/// single endpoints, or onto subsets with `upstream-hash-by-subset` (an invalid subset
/// setting keeps its default; its own key reports why).
fn hash_by(value: &str, all: &BTreeMap<&str, &str>) -> Result<HashBy, String> {
    let key = value.replace(' ', "");
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_${}".contains(&b)) {
        return Err(format!("{value:?} may hold only letters, digits, - _ $ {{ }}"));
    }
    let key = Template::parse(&key, false).map_err(|e| e.0)?;
    let subset = all.get("upstream-hash-by-subset").is_some_and(|v| values::boolean(v) == Ok(true));
    let size = all.get("upstream-hash-by-subset-size").and_then(|v| subset_size(v).ok()).unwrap_or(DEFAULT_SUBSET_SIZE);
    Ok(HashBy { key, subset: subset.then_some(size) })
}

/// A subset size: a whole number, `0` meaning the default (3).
fn subset_size(value: &str) -> Result<NonZeroU32, String> {
    let size = values::number(value, 0, u32::MAX)?;
    Ok(NonZeroU32::new(size).unwrap_or(DEFAULT_SUBSET_SIZE))
}

/// `affinity: cookie` with ingress-nginx's defaults (cookie `INGRESSCOOKIE`, balanced).
fn affinity(value: &str) -> Result<Affinity, String> {
    if !value.trim().eq_ignore_ascii_case("cookie") {
        return Err(format!("{value:?}: only \"cookie\" affinity exists"));
    }
    Ok(Affinity {
        name: "INGRESSCOOKIE".into(),
        mode: AffinityMode::Balanced,
        path: String::new(),
        domain: None,
        expires: None,
        max_age: None,
        same_site: None,
        conditional_same_site_none: false,
        secure: false,
        change_on_failure: false,
    })
}

fn session_cookie(affinity: &mut Affinity, name: &str, value: &str) -> Result<(), String> {
    let cookie_text = |value: &str| -> Result<String, String> {
        let ok = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b';' && b != b',');
        ok.then(|| value.to_owned()).ok_or_else(|| format!("{value:?} cannot be written into a cookie"))
    };
    match name {
        "session-cookie-name" => {
            let token = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !token {
                return Err(format!("{value:?} is not a cookie name"));
            }
            affinity.name = value.to_owned();
        }
        "session-cookie-path" => affinity.path = cookie_text(value)?,
        "session-cookie-domain" => affinity.domain = Some(cookie_text(value)?),
        "session-cookie-expires" => affinity.expires = Some(values::duration(value)?),
        "session-cookie-max-age" => affinity.max_age = Some(u64::from(values::number(value, 0, u32::MAX)?)),
        "session-cookie-samesite" => {
            if !["none", "lax", "strict"].contains(&value.to_ascii_lowercase().as_str()) {
                return Err(format!("{value:?} is not None, Lax or Strict"));
            }
            affinity.same_site = Some(value.to_owned());
        }
        "session-cookie-secure" => affinity.secure = values::boolean(value)?,
        "session-cookie-change-on-failure" => affinity.change_on_failure = values::boolean(value)?,
        "session-cookie-conditional-samesite-none" => affinity.conditional_same_site_none = values::boolean(value)?,
        "session-cookie-hash" => return Err("obsolete in ingress-nginx; no effect".into()),
        _ => return Err(format!("{name} is not a session-cookie setting")),
    }
    Ok(())
}
