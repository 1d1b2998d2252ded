//! Enforcing a route's protection before anything of a request is forwarded or mirrored:
//! its [`RateLimit`] first (nginx's preaccess phase), then its [`Access`] rules (address
//! lists, and, combined by `satisfy`, the authentication they name).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use sluice_config::{
    Access, AddressVerdict, Authentication, BasicAuth, ExternalAuth, Filter, RateLimit, Route, Satisfy,
};

use crate::external_auth;
use crate::filters::Arrival;
use crate::headers::Downstream;
use crate::metrics::Metrics;
use crate::rate_limit::{Limiters, Slot};
use crate::responses::{empty, error, ProxyBody};
use crate::DataPlane;

/// Why a request was refused, and with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denial {
    /// The `reason` label of `sluice_http_requests_denied_total`.
    pub reason: Reason,
    /// The answer.
    pub status: StatusCode,
    /// Headers of the answer: `WWW-Authenticate` of a 401, `Location` of a sign-in
    /// redirect, the auth service's `Set-Cookie`.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Denial {
    /// A refusal with no headers.
    pub(crate) fn new(reason: Reason, status: StatusCode) -> Self {
        Self { reason, status, headers: Vec::new() }
    }
}

/// The request being checked.
pub(crate) struct Checked<'a> {
    /// Where the auth sub-request and the counters come from.
    pub plane: &'a DataPlane,
    /// The client (its real address, its TLS facts).
    pub downstream: &'a Downstream,
    /// The request head.
    pub parts: &'a Parts,
    /// The request as it arrived, for external auth's templates.
    pub arrival: Option<&'a Arrival<'a>>,
}

/// A request let in: the concurrency slot it holds while in progress, and what an auth
/// service said to add.
#[derive(Debug, Default)]
pub(crate) struct Admitted {
    /// Held until the response body ends, when the route limits concurrency.
    pub slot: Option<Slot>,
    /// `auth-response-headers` to set on the forwarded request (`None`: remove the
    /// client's own, so that it cannot pretend to be someone).
    pub request_headers: Vec<(HeaderName, Option<HeaderValue>)>,
    /// The auth service's `Set-Cookie`s, for the response.
    pub cookies: Vec<HeaderValue>,
    /// `auth-always-set-cookie`: the cookies go on error answers too.
    pub always_set_cookies: bool,
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
    /// The client certificate: missing, unverified, for another host, or the wrong subject.
    ClientCertificate,
    /// `block-user-agents` / `block-referers`.
    Blocked,
}

impl Reason {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reason::Address => "address",
            Reason::RateLimit => "rate_limit",
            Reason::ConnectionLimit => "connection_limit",
            Reason::Auth => "auth",
            Reason::ClientCertificate => "client_certificate",
            Reason::Blocked => "blocked",
        }
    }
}

/// Checks a request against the route's limits and access rules.
pub(crate) async fn admit(route: &Route, request: &Checked<'_>) -> Result<Admitted, Denial> {
    let mut admitted = Admitted::default();
    for filter in &*route.filters {
        match filter {
            Filter::Block(list) if list.blocks(&request.parts.headers) => {
                return Err(Denial::new(Reason::Blocked, StatusCode::FORBIDDEN));
            }
            Filter::ClientCertificate(check) => {
                admitted.request_headers.extend(crate::client_cert::check(check, request.downstream)?);
            }
            Filter::RateLimit(limits) => {
                let plane = request.plane;
                let client = request.downstream.client.ip();
                admitted.slot = limit(&plane.limiters, &plane.metrics, limits, client).await?;
            }
            Filter::Access(access) => check(access, request, &mut admitted).await?,
            _ => {}
        }
    }
    Ok(admitted)
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

/// Address lists and authentication, combined as nginx's `satisfy`: with `all` every check
/// must pass; with `any` one is enough — an allowed address skips authentication, and a
/// client outside the lists may still authenticate (and is asked to, 401).
async fn check(access: &Access, request: &Checked<'_>, admitted: &mut Admitted) -> Result<(), Denial> {
    match decide(access, request.downstream.client.ip()) {
        Decision::Pass => Ok(()),
        Decision::Refuse => Err(Denial::new(Reason::Address, StatusCode::FORBIDDEN)),
        Decision::Authenticate(all) => {
            let mut last = None;
            for auth in all {
                match authenticate(auth, request, admitted).await {
                    Ok(()) if access.satisfy == Satisfy::Any => return Ok(()),
                    Ok(()) => {}
                    Err(denial) if access.satisfy == Satisfy::All => return Err(denial),
                    Err(denial) => last = Some(denial),
                }
            }
            last.map_or(Ok(()), Err)
        }
    }
}

/// What the address lists and `satisfy` leave to do.
#[derive(Debug)]
enum Decision<'a> {
    Pass,
    Refuse,
    Authenticate(&'a [Authentication]),
}

fn decide(access: &Access, client: IpAddr) -> Decision<'_> {
    let auth = &*access.auth;
    match (auth.is_empty(), access.satisfy, access.addresses(client)) {
        (true, _, AddressVerdict::Refused) | (false, Satisfy::All, AddressVerdict::Refused) => Decision::Refuse,
        (true, _, _) | (false, Satisfy::Any, AddressVerdict::Allowed) => Decision::Pass,
        (false, _, _) => Decision::Authenticate(auth),
    }
}

async fn authenticate(auth: &Authentication, request: &Checked<'_>, admitted: &mut Admitted) -> Result<(), Denial> {
    match auth {
        Authentication::Basic(basic) => basic_auth(basic, &request.parts.headers).await,
        Authentication::External(external) => external_check(external, request, admitted).await,
        Authentication::Unavailable => Err(Denial::new(Reason::Auth, StatusCode::SERVICE_UNAVAILABLE)),
    }
}

/// `auth-url`: the auth service's answer decides (see [`external_auth`]).
async fn external_check(auth: &ExternalAuth, request: &Checked<'_>, admitted: &mut Admitted) -> Result<(), Denial> {
    let Some(arrival) = request.arrival else {
        // Routes with external auth always read the request; never let one through without.
        return Err(Denial::new(Reason::Auth, StatusCode::INTERNAL_SERVER_ERROR));
    };
    let verdict = external_auth::ask(request.plane, auth, arrival, request.parts).await;
    let cookies = verdict.cookies.into_iter().map(|cookie| (header::SET_COOKIE, cookie));
    match verdict.status {
        status if status.is_success() => {
            admitted.request_headers.extend(verdict.request_headers);
            admitted.cookies = cookies.map(|(_, cookie)| cookie).collect();
            admitted.always_set_cookies = auth.always_set_cookie;
            Ok(())
        }
        StatusCode::UNAUTHORIZED => {
            let mut denial = Denial::new(Reason::Auth, StatusCode::UNAUTHORIZED);
            if auth.always_set_cookie {
                denial.headers.extend(cookies);
            }
            match external_auth::signin_location(auth, arrival, request.parts) {
                Some(location) => {
                    denial.status = StatusCode::FOUND;
                    if let Ok(location) = HeaderValue::from_str(&location) {
                        denial.headers.push((header::LOCATION, location));
                    }
                }
                None => denial.headers.extend(verdict.challenge.map(|c| (header::WWW_AUTHENTICATE, c))),
            }
            Err(denial)
        }
        StatusCode::FORBIDDEN => {
            let mut denial = Denial::new(Reason::Auth, StatusCode::FORBIDDEN);
            if auth.always_set_cookie {
                denial.headers.extend(cookies);
            }
            Err(denial)
        }
        _ => Err(Denial::new(Reason::Auth, StatusCode::INTERNAL_SERVER_ERROR)),
    }
}

/// RFC 7617: the credentials of `Authorization: Basic` checked against the Secret's users;
/// a costly hash (bcrypt, SHA-crypt) not yet remembered is checked on a blocking thread.
async fn basic_auth(basic: &BasicAuth, headers: &HeaderMap) -> Result<(), Denial> {
    let Some(users) = &basic.users else {
        return Err(Denial::new(Reason::Auth, StatusCode::SERVICE_UNAVAILABLE));
    };
    let unauthorized = || Denial {
        reason: Reason::Auth,
        status: StatusCode::UNAUTHORIZED,
        headers: vec![(header::WWW_AUTHENTICATE, basic.challenge.clone())],
    };
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
    let mut response = match denial.status {
        StatusCode::FOUND => empty(StatusCode::FOUND),
        status => error(status),
    };
    for (name, value) in denial.headers {
        response.headers_mut().append(name, value);
    }
    response
}

/// Whether the route has limits or access rules to check.
pub(crate) fn guards(route: &Route) -> bool {
    route.filters.iter().any(|f| {
        matches!(f, Filter::RateLimit(_) | Filter::Access(_) | Filter::ClientCertificate(_) | Filter::Block(_))
    })
}

/// Whether the route's access rules need the request as it arrived (external auth does).
pub(crate) fn reads_request(access: &Access) -> bool {
    access.auth.iter().any(|auth| matches!(auth, Authentication::External(_)))
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
            auth: if auth { Box::new([Authentication::Basic(basic.into())]) } else { Box::new([]) },
            satisfy,
        }
    }

    async fn status(access: &Access, client: &str, authorization: Option<&'static str>) -> u16 {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        let verdict = match decide(access, client.parse().unwrap()) {
            Decision::Pass => Ok(()),
            Decision::Refuse => Err(Denial::new(Reason::Address, StatusCode::FORBIDDEN)),
            Decision::Authenticate([Authentication::Basic(basic)]) => basic_auth(basic, &headers).await,
            Decision::Authenticate(_) => unreachable!("only basic auth here"),
        };
        match verdict {
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
