//! Enforcing a route's [`Access`]: address lists (and, combined by `satisfy`, the
//! authentication it names) decide before anything of the request is forwarded or
//! mirrored.

use std::net::IpAddr;

use http::StatusCode;
use sluice_config::{Access, AddressVerdict, Filter, Route};

/// Why a request was refused, the `reason` label of `sluice_http_requests_denied_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denial {
    /// The address lists refuse the client.
    Address,
}

impl Denial {
    /// The status answered.
    pub(crate) fn status(self) -> StatusCode {
        match self {
            Denial::Address => StatusCode::FORBIDDEN,
        }
    }

    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Denial::Address => "address",
        }
    }
}

/// The route's access rules, when it has any.
pub(crate) fn of(route: &Route) -> Option<&Access> {
    route.filters.iter().find_map(|filter| match filter {
        Filter::Access(access) => Some(&**access),
        _ => None,
    })
}

/// Checks `client` (the real client address) against `access`.
pub(crate) fn check(access: &Access, client: IpAddr) -> Result<(), Denial> {
    match access.addresses(client) {
        AddressVerdict::Refused => Err(Denial::Address),
        AddressVerdict::Allowed | AddressVerdict::Unlisted => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{AddressSet, Satisfy};

    #[test]
    fn address_lists_decide() {
        let access = Access { allow: Some(AddressSet::parse("127.0.0.2").unwrap()), deny: None, satisfy: Satisfy::All };
        assert_eq!(check(&access, "127.0.0.2".parse().unwrap()), Ok(()));
        assert_eq!(check(&access, "127.0.0.3".parse().unwrap()), Err(Denial::Address));
        assert_eq!(Denial::Address.status(), StatusCode::FORBIDDEN);
    }
}
