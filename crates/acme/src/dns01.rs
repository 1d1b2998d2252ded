//! DNS-01 (RFC 8555 §8.4) through RFC 2136 dynamic updates signed with TSIG (RFC 8945): the
//! `_acme-challenge` TXT records are added to and removed from the zone on an authoritative
//! server the operator names (BIND, Knot, PowerDNS…), so Sluice can get wildcard certificates
//! and certificates for names the CA cannot reach over HTTP or TLS.
//!
//! Only what a DNS server sends is parsed here (by hickory); nothing it sends can panic this
//! code, and every exchange is bounded by [`EXCHANGE_TIMEOUT`].

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use hickory_net::client::{Client, ClientHandle};
use hickory_net::proto::op::{DnsResponse, ResponseCode};
use hickory_net::proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_net::proto::rr::rdata::TXT;
use hickory_net::proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::udp::UdpClientStream;
use hickory_net::{DnsError, NetError};

/// How long one DNS exchange (a query or an update, with its retries) may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// The TTL of the published TXT records: short, so that resolvers do not keep a stale value
/// across a retried order.
const TXT_TTL: u32 = 60;

/// The TSIG fudge (allowed clock difference between Sluice and the server), BIND's default.
const TSIG_FUDGE: u16 = 300;

/// How many times the published record is looked for before the update is declared not
/// visible, and how long to wait between the looks.
const VISIBILITY_CHECKS: u32 = 10;
const VISIBILITY_INTERVAL: Duration = Duration::from_millis(200);

/// A TSIG key (RFC 8945): the shared secret that authorizes Sluice's updates to the zone, as
/// the operator gives it with `--acme-dns-tsig NAME:ALGORITHM:BASE64-SECRET` (the three values
/// of a BIND `key` statement, e.g. from `tsig-keygen`).
#[derive(Clone)]
pub struct TsigKey {
    name: Name,
    algorithm: TsigAlgorithm,
    secret: Vec<u8>,
}

impl fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret: keys end up in logs through configuration dumps.
        f.debug_struct("TsigKey")
            .field("name", &self.name.to_ascii())
            .field("algorithm", &self.algorithm.to_name().to_ascii())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl TsigKey {
    /// Reads `NAME:ALGORITHM:BASE64-SECRET` (the `--acme-dns-tsig` flag's form), so a bad key
    /// is refused at start-up rather than at the first renewal. ALGORITHM is `hmac-sha256`,
    /// `hmac-sha384` or `hmac-sha512` (any case; hickory implements no others), the secret is
    /// standard base64 and not empty.
    pub fn parse(text: &str) -> Result<TsigKey, String> {
        const FORM: &str = "expected NAME:ALGORITHM:BASE64-SECRET";
        let mut parts = text.splitn(3, ':');
        let (Some(name), Some(algorithm), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("TSIG key: {FORM}"));
        };
        let (name, algorithm, secret) = (name.trim(), algorithm.trim(), secret.trim());
        if name.is_empty() || algorithm.is_empty() {
            return Err(format!("TSIG key: {FORM}"));
        }
        let mut key_name = Name::from_ascii(name).map_err(|e| format!("TSIG key name {name:?}: {e}"))?;
        key_name.set_fqdn(true);
        let algorithm = match algorithm.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => TsigAlgorithm::HmacSha256,
            "hmac-sha384" => TsigAlgorithm::HmacSha384,
            "hmac-sha512" => TsigAlgorithm::HmacSha512,
            _ => {
                return Err(format!(
                    "TSIG key algorithm {algorithm:?} is not supported (supported: hmac-sha256, hmac-sha384, \
                     hmac-sha512)"
                ))
            }
        };
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret)
            .map_err(|e| format!("TSIG key secret is not valid base64: {e}"))?;
        if secret.is_empty() {
            return Err("TSIG key secret is empty".into());
        }
        Ok(TsigKey { name: key_name, algorithm, secret })
    }

    fn signer(&self) -> Result<TSigner, String> {
        TSigner::new(self.secret.clone(), self.algorithm.clone(), self.name.clone(), TSIG_FUDGE)
            .map_err(|e| format!("TSIG key {}: {e}", self.name))
    }
}

/// An authoritative DNS server that accepts RFC 2136 updates, for publishing DNS-01 answers
/// from a [`ChallengeResponder`](crate::ChallengeResponder): each call finds the zone, sends
/// one (TSIG-signed, when a key is given) update over UDP and checks the outcome.
#[derive(Clone, Debug)]
pub struct Rfc2136 {
    server: SocketAddr,
    key: Option<TsigKey>,
}

impl Rfc2136 {
    /// Updates go to `server` (the zone's primary), signed with `key`; `None` only for a
    /// server that allows unsigned updates (by address). No I/O here.
    pub fn new(server: SocketAddr, key: Option<TsigKey>) -> Rfc2136 {
        Rfc2136 { server, key }
    }

    /// Adds `TXT "value"` (TTL 60) at `record_name` (e.g. `_acme-challenge.example.com.`) to
    /// whichever zone on the server holds it, next to any TXT records already there (a
    /// wildcard and its base name need two values at once), and returns once the server
    /// answers with it, so the CA can be told to validate.
    pub async fn publish(&self, record_name: &str, value: &str) -> Result<(), String> {
        let job = self.job(record_name, value)?;
        isolated(async move { job.publish().await }).await
    }

    /// Removes exactly the TXT record `value` at `record_name` (other values stay), once the
    /// CA no longer needs it. Removing a record that is not there is not an error.
    pub async fn withdraw(&self, record_name: &str, value: &str) -> Result<(), String> {
        let job = self.job(record_name, value)?;
        isolated(async move { job.withdraw().await }).await
    }

    fn job(&self, record_name: &str, value: &str) -> Result<Job, String> {
        let trimmed = record_name.trim();
        if trimmed.is_empty() || trimmed == "." {
            return Err("DNS-01: empty record name".into());
        }
        let mut name = Name::from_ascii(trimmed).map_err(|e| format!("DNS-01 record name {record_name:?}: {e}"))?;
        name.set_fqdn(true);
        if value.is_empty() || value.len() > 255 {
            return Err(format!("DNS-01 TXT value for {name} must be 1 to 255 bytes, not {}", value.len()));
        }
        let signer = self.key.as_ref().map(TsigKey::signer).transpose()?;
        Ok(Job { server: self.server, signer, name, value: value.to_owned() })
    }
}

/// Runs `work` in its own task, so that a panic inside the DNS library on a malformed answer
/// becomes an error and not the caller's panic; aborted if the caller stops waiting.
async fn isolated<F>(work: F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut task = AbortOnDrop(tokio::spawn(work));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) => Err(format!("DNS update task failed: {e}")),
    }
}

/// A task handle that aborts the task when dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One publish or withdraw: what is needed inside its task.
struct Job {
    server: SocketAddr,
    signer: Option<TSigner>,
    name: Name,
    value: String,
}

/// Something a `Job` sends: for the wording of errors.
#[derive(Clone, Copy)]
enum Exchange {
    SoaQuery,
    TxtQuery,
    Update,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exchange::SoaQuery => "SOA query",
            Exchange::TxtQuery => "TXT query",
            Exchange::Update => "update",
        })
    }
}

impl Job {
    async fn publish(self) -> Result<(), String> {
        let (mut client, _background) = self.client();
        let zone = self.find_zone(&mut client).await?;
        let record = self.record(TXT_TTL);
        let response = self.exchange(Exchange::Update, &self.name, client.append(record, zone.clone(), false)).await?;
        self.expect_no_error(Exchange::Update, &zone, &response)?;
        for attempt in 1..=VISIBILITY_CHECKS {
            let response = self
                .exchange(
                    Exchange::TxtQuery,
                    &self.name,
                    client.query(self.name.clone(), DNSClass::IN, RecordType::TXT),
                )
                .await?;
            if response.metadata.response_code == ResponseCode::NoError && self.holds_value(&response) {
                tracing::debug!(name = %self.name, %zone, server = %self.server, "DNS-01 TXT record published");
                return Ok(());
            }
            if attempt < VISIBILITY_CHECKS {
                tokio::time::sleep(VISIBILITY_INTERVAL).await;
            }
        }
        Err(format!(
            "DNS server {} accepted the update of {} (zone {zone}) but does not answer with the TXT record",
            self.server, self.name
        ))
    }

    async fn withdraw(self) -> Result<(), String> {
        let (mut client, _background) = self.client();
        let zone = self.find_zone(&mut client).await?;
        let record = self.record(0);
        let response =
            self.exchange(Exchange::Update, &self.name, client.delete_by_rdata(record, zone.clone())).await?;
        self.expect_no_error(Exchange::Update, &zone, &response)?;
        tracing::debug!(name = %self.name, %zone, server = %self.server, "DNS-01 TXT record withdrawn");
        Ok(())
    }

    fn record(&self, ttl: u32) -> Record {
        Record::from_rdata(self.name.clone(), ttl, RData::TXT(TXT::new(vec![self.value.clone()])))
    }

    /// A client over UDP (signing updates when there is a key) and its background task,
    /// aborted when the returned guard is dropped.
    fn client(&self) -> (Client<TokioRuntimeProvider>, AbortOnDrop<()>) {
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::default())
            .with_timeout(Some(EXCHANGE_TIMEOUT))
            .with_signer(self.signer.clone())
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        let background = tokio::spawn(async move {
            let _ = background.await;
        });
        (client, AbortOnDrop(background))
    }

    /// The zone holding the record: SOA queries from the record's name upwards until the
    /// server names the zone, in the answer (the name is the apex) or in the authority section
    /// (the name is inside the zone).
    async fn find_zone(&self, client: &mut Client<TokioRuntimeProvider>) -> Result<Name, String> {
        let mut candidate = self.name.clone();
        let mut answers = Vec::new();
        while !candidate.is_root() {
            let response = self
                .exchange(
                    Exchange::SoaQuery,
                    &candidate,
                    client.query(candidate.clone(), DNSClass::IN, RecordType::SOA),
                )
                .await?;
            let code = response.metadata.response_code;
            if matches!(code, ResponseCode::NoError | ResponseCode::NXDomain) {
                let apex = response
                    .answers
                    .iter()
                    .find(|r| r.record_type() == RecordType::SOA && r.name == candidate)
                    .map(|r| r.name.clone());
                let enclosing = || {
                    response
                        .authorities
                        .iter()
                        .find(|r| r.record_type() == RecordType::SOA && r.name.zone_of(&self.name))
                        .map(|r| r.name.clone())
                };
                if let Some(zone) = apex.or_else(enclosing) {
                    return Ok(zone);
                }
            }
            let code = rcode(code);
            if !answers.contains(&code) {
                answers.push(code);
            }
            candidate = candidate.base_name();
        }
        Err(format!(
            "DNS server {} has no zone holding {} (its SOA queries for the name and its parents answered {})",
            self.server,
            self.name,
            answers.join(", ")
        ))
    }

    /// Sends one request and waits (bounded) for its answer, naming the server, the name and
    /// the failure.
    async fn exchange(
        &self,
        what: Exchange,
        name: &Name,
        request: impl Future<Output = Result<DnsResponse, NetError>>,
    ) -> Result<DnsResponse, String> {
        let server = self.server;
        let signed = self.signer.is_some() && matches!(what, Exchange::Update);
        match tokio::time::timeout(EXCHANGE_TIMEOUT + Duration::from_secs(1), request).await {
            Err(_) | Ok(Err(NetError::Timeout)) => {
                Err(format!("DNS server {server} did not answer the {what} for {name} within {EXCHANGE_TIMEOUT:?}"))
            }
            Ok(Err(NetError::Dns(DnsError::ResponseCode(code)))) => Err(self.rcode_error(what, name, None, code)),
            Ok(Err(error)) => {
                let detail = chain(&error);
                // A server that rejects the signature answers with an unsigned TSIG record
                // (BADSIG/BADKEY, an empty MAC), which hickory reports as a request to support
                // "truncated HMACs": that text would only mislead the operator.
                if signed && detail.contains("truncated HMAC") {
                    Err(format!(
                        "TSIG key rejected by DNS server {server} for the {what} of {name} (BADSIG or BADKEY: \
                         wrong secret, key name or algorithm)"
                    ))
                } else if signed && (detail.contains("TSIG") || detail.contains("tsig")) {
                    Err(format!("TSIG key rejected by DNS server {server} for the {what} of {name} ({detail})"))
                } else {
                    Err(format!("DNS server {server}, {what} for {name}: {detail}"))
                }
            }
            Ok(Ok(response)) => Ok(response),
        }
    }

    fn expect_no_error(&self, what: Exchange, zone: &Name, response: &DnsResponse) -> Result<(), String> {
        match response.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            code => Err(self.rcode_error(what, &self.name, Some(zone), code)),
        }
    }

    fn rcode_error(&self, what: Exchange, name: &Name, zone: Option<&Name>, code: ResponseCode) -> String {
        let server = self.server;
        let code = rcode(code);
        let zone = zone.map(|zone| format!(" in zone {zone}")).unwrap_or_default();
        match (what, code.as_str()) {
            (Exchange::Update, "NOTAUTH" | "BADSIG" | "BADKEY") if self.signer.is_some() => {
                format!("TSIG key rejected by DNS server {server} for the update of {name}{zone} ({code})")
            }
            (Exchange::Update, "REFUSED") if self.signer.is_none() => format!(
                "DNS server {server} answered REFUSED to the unsigned update of {name}{zone}: the zone needs a \
                 TSIG key (--acme-dns-tsig) or must allow updates from this address"
            ),
            _ => format!("DNS server {server} answered {code} to the {what} for {name}{zone}"),
        }
    }

    fn holds_value(&self, response: &DnsResponse) -> bool {
        response.answers.iter().any(|record| {
            record.name == self.name
                && matches!(&record.data, RData::TXT(txt) if txt.txt_data.concat() == self.value.as_bytes())
        })
    }
}

/// An error and its sources, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The RFC mnemonic of a response code (REFUSED, NOTAUTH…), as DNS operators know them.
fn rcode(code: ResponseCode) -> String {
    let name = match u16::from(code) {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        16 => "BADSIG",
        17 => "BADKEY",
        18 => "BADTIME",
        other => return format!("RCODE{other}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "c2x1aWNlLXRlc3Qtc2VjcmV0LTAxMjM0NTY3ODk=";

    #[test]
    fn parses_name_algorithm_and_secret() {
        for algorithm in ["hmac-sha256", "HMAC-SHA384", "Hmac-Sha512"] {
            let key = TsigKey::parse(&format!("sluice-key:{algorithm}:{SECRET}")).unwrap();
            assert_eq!(key.name.to_ascii(), "sluice-key.");
            assert_eq!(key.secret, b"sluice-test-secret-0123456789");
            assert!(key.signer().is_ok());
        }
        let key = TsigKey::parse(&format!("sluice-key:hmac-sha512:{SECRET}")).unwrap();
        assert_eq!(key.algorithm, TsigAlgorithm::HmacSha512);
    }

    #[test]
    fn refuses_other_algorithms_naming_the_supported_ones() {
        for algorithm in ["hmac-md5", "hmac-sha1", "hmac-sha224", "sha256"] {
            let error = TsigKey::parse(&format!("k:{algorithm}:{SECRET}")).unwrap_err();
            assert!(error.contains(algorithm), "{error}");
            assert!(error.contains("hmac-sha256, hmac-sha384, hmac-sha512"), "{error}");
        }
    }

    #[test]
    fn refuses_bad_base64_and_empty_secrets() {
        for secret in ["not base64!", "c2VjcmV0", "c2VjcmV0LWtleQ", "-_-_"] {
            let text = format!("k:hmac-sha256:{secret}");
            if secret == "c2VjcmV0" {
                assert!(TsigKey::parse(&text).is_ok());
                continue;
            }
            let error = TsigKey::parse(&text).unwrap_err();
            assert!(error.contains("base64"), "{secret}: {error}");
        }
        let error = TsigKey::parse("k:hmac-sha256:").unwrap_err();
        assert!(error.contains("empty"), "{error}");
    }

    #[test]
    fn refuses_missing_parts() {
        for text in ["", "k", "k:hmac-sha256", ":hmac-sha256:c2VjcmV0", "k::c2VjcmV0"] {
            let error = TsigKey::parse(text).unwrap_err();
            assert!(error.contains("NAME:ALGORITHM:BASE64-SECRET"), "{text:?}: {error}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = TsigKey::parse(&format!("sluice-key:hmac-sha256:{SECRET}")).unwrap();
        let text = format!("{key:?} {:?}", Rfc2136::new(SocketAddr::from(([127, 0, 0, 1], 53)), Some(key.clone())));
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("sluice-test-secret"), "{text}");
        assert!(!text.contains("115, 108"), "{text}"); // the bytes as a list
        assert!(text.contains("sluice-key") && text.contains("hmac-sha256") && text.contains("redacted"), "{text}");
    }

    #[test]
    fn rcodes_are_named_as_operators_know_them() {
        assert_eq!(rcode(ResponseCode::Refused), "REFUSED");
        assert_eq!(rcode(ResponseCode::NotAuth), "NOTAUTH");
        assert_eq!(rcode(ResponseCode::Unknown(3841)), "RCODE3841");
    }

    #[tokio::test]
    async fn bad_record_names_and_values_are_refused_without_io() {
        let dns = Rfc2136::new(SocketAddr::from(([127, 0, 0, 1], 9)), None);
        assert!(dns.publish("", "v").await.is_err());
        assert!(dns.publish("_acme-challenge.a.test.", "").await.is_err());
        assert!(dns.publish("_acme-challenge.a.test.", &"x".repeat(256)).await.is_err());
    }
}
