//! ingress-nginx's access annotations: address lists (`allowlist-source-range` and its old
//! name `whitelist-source-range`, `denylist-source-range`), `satisfy`, and the WAF switches
//! Sluice has no engine for. A list that cannot be read rejects the Ingress: it is never
//! served to addresses it was meant to keep out.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_config::{Access, AddressSet, Authentication, Satisfy};

use super::{values, Problem};
use crate::compile::Defaults;

/// The access settings of one Ingress.
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessSettings {
    /// `allowlist-source-range` (or `whitelist-source-range`).
    pub allow: Option<AddressSet>,
    /// `denylist-source-range`.
    pub deny: Option<AddressSet>,
    /// `satisfy`.
    pub satisfy: Satisfy,
}

impl AccessSettings {
    /// The route model's protection with `auth` and the ConfigMap's lists (an Ingress's own
    /// list replaces the ConfigMap's; `block-cidrs` always applies), `None` when there is
    /// none.
    pub(crate) fn compile(&self, auth: Vec<Authentication>, defaults: &Defaults) -> Option<Arc<Access>> {
        let allow = self.allow.clone().or_else(|| defaults.allow_sources.clone());
        let deny = self.deny.clone().or_else(|| defaults.deny_sources.clone());
        let deny = match (deny, &defaults.block_sources) {
            (Some(deny), Some(block)) => Some(deny.union(block)),
            (deny, block) => deny.or_else(|| block.clone()),
        };
        if allow.is_none() && deny.is_none() && auth.is_empty() {
            return None;
        }
        Some(Arc::new(Access { allow, deny, auth: auth.into(), satisfy: self.satisfy }))
    }
}

/// Applies one access annotation; `None` when `name` is not one.
pub(crate) fn setting(
    a: &mut AccessSettings,
    name: &str,
    value: &str,
    all: &BTreeMap<&str, &str>,
    allow_unenforced_waf: bool,
) -> Option<Result<(), Problem>> {
    let result = match name {
        "allowlist-source-range" => list(value).map(|set| a.allow = set),
        "whitelist-source-range" if all.contains_key("allowlist-source-range") => Err(Problem::Ignored(
            "allowlist-source-range is set too and takes precedence (whitelist- is its old name)".into(),
        )),
        "whitelist-source-range" => list(value).map(|set| a.allow = set),
        "denylist-source-range" => list(value).map(|set| a.deny = set),
        "satisfy" => match value.trim() {
            "any" => Ok(Satisfy::Any),
            "all" => Ok(Satisfy::All),
            _ => Err(Problem::Ignored(format!("{value:?} is not any or all; all applies"))),
        }
        .map(|satisfy| a.satisfy = satisfy),
        "enable-modsecurity" | "enable-owasp-core-rules" => match values::boolean(value) {
            Ok(false) => Ok(()),
            _ => waf(allow_unenforced_waf),
        },
        "modsecurity-snippet" | "modsecurity-transaction-id" => waf(allow_unenforced_waf),
        _ => return None,
    };
    Some(result)
}

/// A list of CIDRs: an unreadable one rejects the Ingress; an empty one is no list.
fn list(value: &str) -> Result<Option<AddressSet>, Problem> {
    let set = AddressSet::parse(value)
        .map_err(|reason| Problem::Refused(format!("{reason}; the Ingress is not served without its address list")))?;
    Ok((!set.is_empty()).then_some(set))
}

fn waf(allowed: bool) -> Result<(), Problem> {
    const NONE: &str = "Sluice has no web application firewall (ModSecurity/OWASP CRS) built in";
    match allowed {
        true => Err(Problem::Ignored(format!("{NONE}; served without it (--allow-unenforced-waf)"))),
        false => Err(Problem::Refused(format!(
            "{NONE}; the Ingress is not served unprotected (--allow-unenforced-waf serves it with a warning)"
        ))),
    }
}
