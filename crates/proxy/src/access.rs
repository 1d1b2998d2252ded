//! Enforcing a route's protection before anything of a request is forwarded or mirrored:
//! its [`RateLimit`] first (nginx's preaccess phase), then its [`Access`] rules (address
//! lists, and, combined by `satisfy`, the authentication they name).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use sluice_config::{Access, AddressVerdict, Authentication, BasicAuth, Filter, RateLimit, Route, Satisfy};

use http::Response;

use crate::metrics::Metrics;
use crate::rate_limit::{Limiters, Slot};
use crate::responses::{error, ProxyBody};

/// Why a request was refused, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denial {
    /// The `reason` label of `sluice_http_requests_denied_total`.
    pub reason: Reason,
    /// The answer.
    pub status: StatusCode,
    /// The `WWW-Authenticate` of a 401.
    pub challenge: Option<HeaderValue>,
}

impl Denial {
    fn new(reason: Reason, status: StatusCode) -> Self {
        Self { reason, status, challenge: None }
    }
}

/// What refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The address lists.
    Address,
    /// A request rate (`limit-rps`, `limit-rpm`).
    RateLimit,
    /// The concurrency limit (`limit-connections`).
    ConnectionLimit,
    /// Authentication: missing or wrong credentials, or no usable users.
    Auth,
}

impl Reason {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Address => "address",
            Reason::RateLimit => "rate_limit",
            Reason::ConnectionLimit => "connection_limit",
            Reason::Auth => "auth",
        }
    }
}

/// Checks the request of `client` (the real client address) against the route's limits
/// and access rules: `Ok` with the concurrency slot it holds while in progress, if limited.
pub(crate) async fn admit(
    limiters: &Limiters,
    metrics: &Metrics,
    route: &Route,
    client: IpAddr,
    headers: &HeaderMap,
) -> Result<Option<Slot>, Denial> {
    let mut slot = None;
    for filter in &*route.filters {
        match filter {
            Filter::RateLimit(limits) => slot = limit(limiters, metrics, limits, client).await?,
            Filter::Access(access) => check(access, client, headers).await?,
            _ => {}
        }
    }
    Ok(slot)
}

async fn limit(
    limiters: &Limiters,
    metrics: &Metrics,
    limits: &RateLimit,
    client: IpAddr,
) -> Result<Option<Slot>, Denial> {
    let client = sluice_config::canonical(client);
    if limits.exempt.as_ref().is_some_and(|exempt| exempt.contains(client)) {
        return Ok(None);
    }
    for rate in [&limits.per_second, &limits.per_minute].into_iter().flatten() {
        if !limiters.admit_rate(rate, client, || metrics.redis_unavailable()).await {
            return Err(Denial::new(Reason::RateLimit, limits.rate_status));
        }
    }
    match &limits.connections {
        Some(limit) => limiters
            .acquire(limit, client)
            .map(Some)
            .ok_or_else(|| Denial::new(Reason::ConnectionLimit, limits.connection_status)),
        None => Ok(None),
    }
}

/// Address lists and authentication, combined as nginx's `satisfy`: with `all` both must
/// pass; with `any` an allowed address skips authentication, and a client outside the lists
/// may still authenticate (and is asked to, 401).
async fn check(access: &Access, client: IpAddr, headers: &HeaderMap) -> Result<(), Denial> {
    let addresses = access.addresses(client);
    let refused = || Denial::new(Reason::Address, StatusCode::FORBIDDEN);
    match (&access.auth, access.satisfy, addresses) {
        (None, _, AddressVerdict::Refused) => Err(refused()),
        (None, _, _) => Ok(()),
        (Some(_), Satisfy::All, AddressVerdict::Refused) => Err(refused()),
        (Some(_), Satisfy::Any, AddressVerdict::Allowed) => Ok(()),
        (Some(auth), _, _) => authenticate(auth, headers).await,
    }
}

async fn authenticate(auth: &Authentication, headers: &HeaderMap) -> Result<(), Denial> {
    match auth {
        Authentication::Basic(basic) => basic_auth(basic, headers).await,
    }
}

/// RFC 7617: the credentials of `Authorization: Basic` checked against the Secret's users;
/// a costly hash (bcrypt, SHA-crypt) not yet remembered is checked on a blocking thread.
async fn basic_auth(basic: &BasicAuth, headers: &HeaderMap) -> Result<(), Denial> {
    let Some(users) = &basic.users else {
        return Err(Denial::new(Reason::Auth, StatusCode::SERVICE_UNAVAILABLE));
    };
    let unauthorized =
        || Denial { reason: Reason::Auth, status: StatusCode::UNAUTHORIZED, challenge: Some(basic.challenge.clone()) };
    let credentials = headers.get(header::AUTHORIZATION).and_then(|v| sluice_htpasswd::decode_basic(v.as_bytes()));
    let Some((user, password)) = credentials else {
        return Err(unauthorized());
    };
    let valid = if users.is_costly(&user, &password) {
        let users = users.clone();
        tokio::task::spawn_blocking(move || users.verify(&user, &password)).await.unwrap_or(false)
    } else {
        users.verify(&user, &password)
    };
    if valid {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

/// The answer to a refused request (`None` never happens: 403 to be safe).
pub(crate) fn answer(denial: Option<Denial>) -> Response<ProxyBody> {
    let Some(denial) = denial else {
        return error(StatusCode::FORBIDDEN);
    };
    let mut response = error(denial.status);
    if let Some(challenge) = denial.challenge {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}

/// Whether the route has limits or access rules to check.
pub(crate) fn guards(route: &Route) -> bool {
    route.filters.iter().any(|f| matches!(f, Filter::RateLimit(_) | Filter::Access(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_config::{AddressSet, Satisfy};

    fn access(auth: bool, satisfy: Satisfy) -> Access {
        let users = sluice_htpasswd::Htpasswd::from_file("u:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=").0;
        let basic = BasicAuth { challenge: HeaderValue::from_static("Basic realm=\"r\""), users: Some(users.into()) };
        Access {
            allow: Some(AddressSet::parse("127.0.0.2").unwrap()),
            deny: None,
            auth: auth.then(|| Authentication::Basic(basic.into())),
            satisfy,
        }
    }

    async fn status(access: &Access, client: &str, authorization: Option<&'static str>) -> u16 {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        match check(access, client.parse().unwrap(), &headers).await {
            Ok(()) => 200,
            Err(denial) => denial.status.as_u16(),
        }
    }

    #[tokio::test]
    async fn satisfy_combines_lists_and_credentials() {
        // u:test ({SHA} of "test"), base64 "u:test" = dTp0ZXN0.
        let good = Some("Basic dTp0ZXN0");
        let bad = Some("Basic dTp3cm9uZw==");
        let lists_only = access(false, Satisfy::All);
        assert_eq!(status(&lists_only, "127.0.0.2", None).await, 200);
        assert_eq!(status(&lists_only, "127.0.0.3", good).await, 403);
        let all = access(true, Satisfy::All);
        assert_eq!(status(&all, "127.0.0.2", None).await, 401);
        assert_eq!(status(&all, "127.0.0.2", good).await, 200);
        assert_eq!(status(&all, "127.0.0.3", good).await, 403);
        let any = access(true, Satisfy::Any);
        assert_eq!(status(&any, "127.0.0.2", None).await, 200);
        assert_eq!(status(&any, "127.0.0.3", None).await, 401);
        assert_eq!(status(&any, "127.0.0.3", bad).await, 401);
        assert_eq!(status(&any, "127.0.0.3", good).await, 200);
    }
}
