//! Client certificates (`auth-tls-*`): what a handshake that asked for one established
//! ([`TlsFacts`]), and the route's check of each request against it — a certificate where
//! one is required, verified for this very host (the SNI), within the depth, with a
//! matching subject — and the `ssl-client-*` headers ingress-nginx sends upstream.

use http::header::{self, HeaderName, HeaderValue};
use http::StatusCode;
use rustls::pki_types::CertificateDer;
use sluice_config::{ClientCertCheck, VerifyClient};

use crate::access::{Denial, Reason};
use crate::headers::Downstream;
use crate::listener::Scheme;

static SSL_CLIENT_VERIFY: HeaderName = HeaderName::from_static("ssl-client-verify");
static SSL_CLIENT_SUBJECT_DN: HeaderName = HeaderName::from_static("ssl-client-subject-dn");
static SSL_CLIENT_ISSUER_DN: HeaderName = HeaderName::from_static("ssl-client-issuer-dn");
static SSL_CLIENT_CERT: HeaderName = HeaderName::from_static("ssl-client-cert");

/// What the handshake of a connection that asked for a client certificate established.
#[derive(Debug)]
pub(crate) struct TlsFacts {
    /// The policy the handshake used (chosen by SNI).
    pub policy: u64,
    /// The certificate presented, when one was.
    pub certificate: Option<ClientCertificate>,
}

/// A presented client certificate.
#[derive(Debug)]
pub(crate) struct ClientCertificate {
    /// The end-entity certificate.
    pub der: CertificateDer<'static>,
    /// Certificates presented with it (intermediates).
    pub intermediates: usize,
    /// Verified against the CA by the handshake (not under `optional_no_ca`).
    pub verified: bool,
    /// Subject and issuer as RFC 2253 strings (nginx's `$ssl_client_s_dn`, `$ssl_client_i_dn`).
    pub subject: String,
    /// See `subject`.
    pub issuer: String,
}

impl TlsFacts {
    /// The facts of a finished handshake that used `policy` and verified (or, for
    /// `optional_no_ca`, merely received) the certificates `presented`.
    pub(crate) fn new(policy: &sluice_config::ClientCertPolicy, presented: Option<&[CertificateDer<'_>]>) -> Self {
        let certificate = presented.and_then(|chain| {
            let der = chain.first()?.clone().into_owned();
            let (_, parsed) = x509_parser::parse_x509_certificate(&der).ok()?;
            let subject = rfc2253(parsed.subject());
            let issuer = rfc2253(parsed.issuer());
            let verified = policy.mode != VerifyClient::OptionalNoCa;
            Some(ClientCertificate { der, intermediates: chain.len() - 1, verified, subject, issuer })
        });
        Self { policy: policy.id, certificate }
    }
}

/// A name as RFC 2253 writes it: the most specific part first, `CN=…,O=…`.
fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut parts = Vec::new();
    for rdn in name.iter_rdn() {
        let attributes: Vec<String> = rdn
            .iter()
            .map(|attribute| {
                let oid = attribute.attr_type();
                let key =
                    x509_parser::objects::oid2abbrev(oid, registry).map_or_else(|_| oid.to_id_string(), str::to_owned);
                let value = attribute.as_str().map_or_else(|_| String::new(), escape);
                format!("{key}={value}")
            })
            .collect();
        parts.push(attributes.join("+"));
    }
    parts.reverse();
    parts.join(",")
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = ",+\"\\<>;=".contains(c) || (i == 0 && (c == '#' || c == ' '));
        if special || (c == ' ' && i + 1 == value.chars().count()) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Checks a request against the route's client-certificate requirement; the
/// `ssl-client-*` headers for the backend (`None`: removed, so a client cannot send its own).
pub(crate) fn check(
    check: &ClientCertCheck,
    downstream: &Downstream,
) -> Result<Vec<(HeaderName, Option<HeaderValue>)>, Denial> {
    let mode = check.policy.mode;
    let refuse = |status: StatusCode| {
        let mut denial = Denial::new(Reason::ClientCertificate, status);
        if let Some(page) = &check.error_page {
            if status == StatusCode::BAD_REQUEST {
                denial.status = StatusCode::FOUND;
                denial.headers.push((header::LOCATION, page.clone()));
            }
        }
        denial
    };
    let facts = downstream.tls.as_deref();
    match facts {
        // A connection whose handshake did not ask this host's question: plain HTTP, or a
        // TLS connection for another name (SNI) than the request's host.
        Some(facts) if facts.policy != check.policy.id => return Err(refuse(StatusCode::MISDIRECTED_REQUEST)),
        None if mode == VerifyClient::On && downstream.scheme == Scheme::Https => {
            return Err(refuse(StatusCode::MISDIRECTED_REQUEST))
        }
        None if mode == VerifyClient::On => return Err(refuse(StatusCode::FORBIDDEN)),
        _ => {}
    }
    let certificate = facts.and_then(|f| f.certificate.as_ref());
    let verify = match certificate {
        None if mode == VerifyClient::On => return Err(refuse(StatusCode::BAD_REQUEST)),
        None => "NONE".to_owned(),
        Some(cert)
            if cert.intermediates + 1 > usize::from(check.policy.depth) && mode != VerifyClient::OptionalNoCa =>
        {
            return Err(refuse(StatusCode::BAD_REQUEST));
        }
        Some(cert) if cert.verified => "SUCCESS".to_owned(),
        Some(_) => "FAILED:certificate not verified (optional_no_ca)".to_owned(),
    };
    if let (Some(pattern), Some(cert)) = (&check.match_cn, certificate) {
        if !pattern.is_match(&cert.subject) {
            return Err(Denial::new(Reason::ClientCertificate, StatusCode::FORBIDDEN));
        }
    }
    if check.match_cn.is_some() && certificate.is_none() {
        return Err(Denial::new(Reason::ClientCertificate, StatusCode::FORBIDDEN));
    }
    let value = |text: &str| HeaderValue::from_str(text).ok();
    let mut headers = vec![
        (SSL_CLIENT_VERIFY.clone(), value(&verify)),
        (SSL_CLIENT_SUBJECT_DN.clone(), certificate.and_then(|c| value(&c.subject))),
        (SSL_CLIENT_ISSUER_DN.clone(), certificate.and_then(|c| value(&c.issuer))),
    ];
    let pem = certificate.filter(|_| check.pass_certificate).map(|c| escaped_pem(&c.der));
    headers.push((SSL_CLIENT_CERT.clone(), pem.and_then(|p| value(&p))));
    Ok(headers)
}

/// nginx's `$ssl_client_escaped_cert`: the PEM certificate, URL-encoded.
fn escaped_pem(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    let mut out = String::with_capacity(pem.len() * 2);
    for byte in pem.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
