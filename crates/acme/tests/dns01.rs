//! DNS-01 against real servers: BIND 9 ([`sluice_testnet::named`]) serving `sluice.test`
//! with RFC 2136 updates allowed for a TSIG key, and Debian's `pebble` resolving through it.
//! Everything on 127.0.0.1, in temp dirs removed (and processes killed) on drop.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sluice_acme::{
    AcmeClient, AcmeConfig, ChallengeKind, ChallengeResponder, ChallengeResponse, PublishedChallenge, Rfc2136, TsigKey,
};
use sluice_testnet::named::{free_dns_port, Named};
use sluice_testnet::pebble::{free_port, Pebble, PebbleOptions};

/// The key named accepts updates with (base64 of "sluice-dns01-test-key-0123456789").
const SECRET: &str = "c2x1aWNlLWRuczAxLXRlc3Qta2V5LTAxMjM0NTY3ODk=";
const KEY_NAME: &str = "sluice-key";

fn key() -> TsigKey {
    TsigKey::parse(&format!("{KEY_NAME}:hmac-sha256:{SECRET}")).unwrap()
}

/// A running `named` serving `sluice.test`, accepting updates signed with [`key`].
fn start_named() -> Named {
    Named::start("sluice.test", KEY_NAME, SECRET)
}

/// Publishes DNS-01 answers through RFC 2136, counting what is published and keeping the
/// withdraw errors.
struct DnsResponder {
    dns: Rfc2136,
    published: Mutex<Vec<(String, String)>>,
    withdraw_errors: Mutex<Vec<String>>,
}

impl ChallengeResponder for DnsResponder {
    async fn publish(&self, challenge: &PublishedChallenge) -> Result<(), String> {
        let ChallengeResponse::Dns01 { record_name, value } = &challenge.response else {
            return Err(format!("unexpected {:?}", challenge.response));
        };
        self.dns.publish(record_name, value).await?;
        self.published.lock().unwrap().push((record_name.clone(), value.clone()));
        Ok(())
    }

    async fn withdraw(&self, challenge: &PublishedChallenge) {
        if let ChallengeResponse::Dns01 { record_name, value } = &challenge.response {
            if let Err(e) = self.dns.withdraw(record_name, value).await {
                self.withdraw_errors.lock().unwrap().push(e);
            }
        }
    }
}

#[tokio::test]
async fn dns_01_wildcard_order_issues_through_rfc_2136_and_cleans_up() {
    let named = start_named();
    let pebble = Pebble::start(&PebbleOptions {
        http_port: free_port(),
        tls_port: free_port(),
        dns_server: Some(named.addr()),
        nonce_reject: Some(0),
        ..PebbleOptions::default()
    });
    let mut config = AcmeConfig::new(pebble.directory_url());
    config.extra_roots_pem = Some(pebble.tls_root_pem.clone().into_bytes());
    config.order_timeout = Duration::from_secs(60);
    let client = AcmeClient::new(config);
    let responder = DnsResponder {
        dns: Rfc2136::new(named.addr(), Some(key())),
        published: Mutex::default(),
        withdraw_errors: Mutex::default(),
    };

    let identifiers = ["*.sluice.test".to_owned(), "sluice.test".to_owned()];
    let issued = client.order(&identifiers, ChallengeKind::Dns01, &responder).await.unwrap();
    pebble.verify_chain(&issued.chain_pem, "anything.sluice.test", "other.example");
    pebble.verify_chain(&issued.chain_pem, "sluice.test", "other.example");

    // Both authorizations answered at the same name, with different values.
    let published = responder.published.lock().unwrap().clone();
    assert_eq!(published.len(), 2, "{published:?}");
    assert!(published.iter().all(|(name, _)| name == "_acme-challenge.sluice.test."), "{published:?}");
    assert_ne!(published[0].1, published[1].1);
    assert!(responder.withdraw_errors.lock().unwrap().is_empty(), "{:?}", responder.withdraw_errors);
    assert_eq!(named.txt("_acme-challenge.sluice.test."), Vec::<String>::new());
}

#[tokio::test]
async fn publish_appends_and_withdraw_removes_only_its_value() {
    let named = start_named();
    let dns = Rfc2136::new(named.addr(), Some(key()));
    let name = "_acme-challenge.a.sluice.test.";
    dns.publish(name, "first-value").await.unwrap();
    dns.publish(name, "second-value").await.unwrap();
    let mut values = named.txt(name);
    values.sort();
    assert_eq!(values, ["first-value", "second-value"]);

    dns.withdraw(name, "first-value").await.unwrap();
    assert_eq!(named.txt(name), ["second-value"]);
    // Withdrawing what is not there is not an error.
    dns.withdraw(name, "first-value").await.unwrap();
    dns.withdraw(name, "second-value").await.unwrap();
    assert_eq!(named.txt(name), Vec::<String>::new());

    // A record at the zone's apex (the walk up stops at the first name).
    dns.publish("sluice.test", "apex-value").await.unwrap();
    assert_eq!(named.txt("sluice.test."), ["apex-value"]);
    dns.withdraw("sluice.test", "apex-value").await.unwrap();
}

#[tokio::test]
async fn a_wrong_tsig_secret_is_reported_as_a_rejected_key() {
    let named = start_named();
    let wrong = TsigKey::parse(&format!("{KEY_NAME}:hmac-sha256:d3JvbmctdGVzdC1rZXk=")).unwrap();
    let error = Rfc2136::new(named.addr(), Some(wrong)).publish("_acme-challenge.sluice.test.", "v").await.unwrap_err();
    assert!(error.contains("TSIG key rejected"), "{error}");
    assert!(!error.contains("file an issue"), "hickory's misleading text: {error}");
    assert!(error.contains(&named.addr().to_string()), "{error}");

    let unknown = TsigKey::parse(&format!("other-key:hmac-sha256:{SECRET}")).unwrap();
    let error =
        Rfc2136::new(named.addr(), Some(unknown)).publish("_acme-challenge.sluice.test.", "v").await.unwrap_err();
    assert!(error.contains("TSIG key rejected"), "{error}");
    assert_eq!(named.txt("_acme-challenge.sluice.test."), Vec::<String>::new());
}

#[tokio::test]
async fn an_unsigned_update_is_refused() {
    let named = start_named();
    let error = Rfc2136::new(named.addr(), None).publish("_acme-challenge.sluice.test.", "v").await.unwrap_err();
    assert!(error.contains("REFUSED"), "{error}");
    assert!(error.contains("_acme-challenge.sluice.test"), "{error}");
    assert_eq!(named.txt("_acme-challenge.sluice.test."), Vec::<String>::new());
}

#[tokio::test]
async fn a_name_outside_the_servers_zones_is_a_clear_error() {
    let named = start_named();
    let error =
        Rfc2136::new(named.addr(), Some(key())).publish("_acme-challenge.other.example.", "v").await.unwrap_err();
    assert!(error.contains("no zone"), "{error}");
    assert!(error.contains("_acme-challenge.other.example"), "{error}");
    assert!(error.contains(&named.addr().to_string()), "{error}");
}

#[tokio::test]
async fn a_server_that_is_not_there_fails_within_the_exchange_timeout() {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_dns_port()));
    let started = Instant::now();
    let error = Rfc2136::new(addr, Some(key())).publish("_acme-challenge.sluice.test.", "v").await.unwrap_err();
    assert!(error.contains(&addr.to_string()), "{error}");
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
}
