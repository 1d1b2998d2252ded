//! ingress-nginx's rate-limit annotations: `limit-rps`, `limit-rpm` (with
//! `limit-burst-multiplier`), `limit-connections`, `limit-allowlist` (old name
//! `limit-whitelist`). A value that cannot be read rejects the Ingress (ingress-nginx would
//! silently drop the limit); `0` means no limit, as there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use sluice_config::{AddressSet, Concurrency, Rate, RateLimit};

use super::{values, Problem};

/// ingress-nginx's default `limit-burst-multiplier`.
const DEFAULT_BURST_MULTIPLIER: u32 = 5;

/// The limits an Ingress asks for, before the zone names and answer codes are known.
#[derive(Debug, Clone, Default)]
pub(crate) struct LimitSettings {
    pub rps: u32,
    pub rpm: u32,
    pub connections: u32,
    pub burst_multiplier: Option<u32>,
    pub exempt: Option<AddressSet>,
}

impl LimitSettings {
    /// The route model's limits for the Ingress `label` (`namespace/name`), answering with
    /// the ConfigMap's codes; `None` when nothing is limited.
    pub(crate) fn compile(
        &self,
        label: &str,
        rate_status: StatusCode,
        connection_status: StatusCode,
    ) -> Option<Arc<RateLimit>> {
        let multiplier = self.burst_multiplier.unwrap_or(DEFAULT_BURST_MULTIPLIER);
        let rate = |limit: u32, unit: &str, period: Duration| {
            let burst = limit.saturating_mul(multiplier);
            (limit > 0).then(|| Rate {
                zone: format!("{label} {unit} {limit} burst {burst}").into(),
                limit,
                burst,
                period,
            })
        };
        let per_second = rate(self.rps, "rps", Duration::from_secs(1));
        let per_minute = rate(self.rpm, "rpm", Duration::from_secs(60));
        let connections = (self.connections > 0).then(|| Concurrency {
            zone: format!("{label} connections {}", self.connections).into(),
            limit: self.connections,
        });
        if per_second.is_none() && per_minute.is_none() && connections.is_none() {
            return None;
        }
        Some(Arc::new(RateLimit {
            per_second,
            per_minute,
            connections,
            exempt: self.exempt.clone(),
            rate_status,
            connection_status,
        }))
    }
}

/// Applies one `limit-*` annotation; `None` when `name` is not one.
pub(crate) fn setting(
    l: &mut LimitSettings,
    name: &str,
    value: &str,
    all: &BTreeMap<&str, &str>,
) -> Option<Result<(), Problem>> {
    let number = || values::number(value, 0, 1_000_000).map_err(refused);
    let result = match name {
        "limit-rps" => number().map(|n| l.rps = n),
        "limit-rpm" => number().map(|n| l.rpm = n),
        "limit-connections" => number().map(|n| l.connections = n),
        "limit-burst-multiplier" => {
            values::number(value, 1, 1_000).map_err(refused).map(|n| l.burst_multiplier = Some(n))
        }
        "limit-allowlist" => exempt(value).map(|set| l.exempt = set),
        "limit-whitelist" if all.contains_key("limit-allowlist") => Err(Problem::Ignored(
            "limit-allowlist is set too and takes precedence (limit-whitelist is its old name)".into(),
        )),
        "limit-whitelist" => exempt(value).map(|set| l.exempt = set),
        "limit-rate" | "limit-rate-after" => {
            Err(Problem::Ignored("response bandwidth limits are not supported; served at full speed".into()))
        }
        _ => return None,
    };
    Some(result)
}

fn exempt(value: &str) -> Result<Option<AddressSet>, Problem> {
    let set = AddressSet::parse(value).map_err(refused)?;
    Ok((!set.is_empty()).then_some(set))
}

fn refused(reason: String) -> Problem {
    Problem::Refused(format!("{reason}; the Ingress is not served without its limit"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_follow_the_multiplier_and_zones_name_the_setting() {
        let settings = LimitSettings { rps: 5, rpm: 0, connections: 2, burst_multiplier: None, exempt: None };
        let limit =
            settings.compile("default/api", StatusCode::TOO_MANY_REQUESTS, StatusCode::SERVICE_UNAVAILABLE).unwrap();
        let rps = limit.per_second.as_ref().unwrap();
        assert_eq!((rps.limit, rps.burst), (5, 25));
        assert_eq!(&*rps.zone, "default/api rps 5 burst 25");
        assert!(limit.per_minute.is_none());
        assert_eq!(limit.connections.as_ref().unwrap().limit, 2);
        assert!(LimitSettings::default().compile("x/y", StatusCode::OK, StatusCode::OK).is_none());
    }
}
