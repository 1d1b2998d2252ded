//! sluice-acme against a real CA: Debian's `pebble` (installed by `scripts/deps`), resolving
//! every name to 127.0.0.1 through a `pebble-challtestsrv` DNS server, validating against the
//! HTTP-01 and TLS-ALPN-01 responders these tests run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sluice_acme::{
    AcmeClient, AcmeConfig, AcmeError, ChallengeKind, ChallengeResponder, ChallengeResponse, ExternalAccountBinding,
    PublishedChallenge, ACME_TLS_ALPN_PROTOCOL,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

use sluice_testnet::pebble::{free_port, Pebble, PebbleOptions};

fn start_pebble(http_port: u16, tls_port: u16, nonce_reject: Option<u32>, eab: Option<(&str, &str)>) -> Pebble {
    Pebble::start(&PebbleOptions {
        http_port,
        tls_port,
        nonce_reject,
        eab: eab.map(|(kid, key)| (kid.to_owned(), key.to_owned())),
        ..PebbleOptions::default()
    })
}

/// The client's configuration for `pebble`.
fn config(pebble: &Pebble) -> AcmeConfig {
    let mut config = AcmeConfig::new(pebble.directory_url());
    config.contact_email = Some("admin@sluice.test".into());
    config.extra_roots_pem = Some(pebble.tls_root_pem.clone().into_bytes());
    config.order_timeout = Duration::from_secs(30);
    config
}

/// The responder: what is published, by HTTP-01 token and by TLS-ALPN-01 identifier, plus a
/// count of what is still published (withdrawn means zero).
#[derive(Default, Debug)]
struct Published {
    http: Mutex<HashMap<String, String>>,
    alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    publishes: Mutex<u32>,
}

#[derive(Clone, Default, Debug)]
struct Responder(Arc<Published>);

impl ChallengeResponder for Responder {
    async fn publish(&self, challenge: &PublishedChallenge) -> Result<(), String> {
        match &challenge.response {
            ChallengeResponse::Http01 { token, key_authorization } => {
                self.0.http.lock().unwrap().insert(token.clone(), key_authorization.clone());
            }
            ChallengeResponse::TlsAlpn01 { certificate_der, private_key_der } => {
                let key = provider()
                    .key_provider
                    .load_private_key(PrivateKeyDer::try_from(private_key_der.clone()).unwrap())
                    .map_err(|e| e.to_string())?;
                let certified = CertifiedKey::new(vec![CertificateDer::from(certificate_der.clone())], key);
                self.0.alpn.lock().unwrap().insert(challenge.identifier.clone(), Arc::new(certified));
            }
            other => return Err(format!("unexpected {other:?}")),
        }
        *self.0.publishes.lock().unwrap() += 1;
        Ok(())
    }

    async fn withdraw(&self, challenge: &PublishedChallenge) {
        match &challenge.response {
            ChallengeResponse::Http01 { token, .. } => {
                self.0.http.lock().unwrap().remove(token);
            }
            _ => {
                self.0.alpn.lock().unwrap().remove(&challenge.identifier);
            }
        }
    }
}

impl Responder {
    fn assert_all_withdrawn(&self) {
        assert!(*self.0.publishes.lock().unwrap() > 0, "nothing was published");
        assert!(self.0.http.lock().unwrap().is_empty());
        assert!(self.0.alpn.lock().unwrap().is_empty());
    }
}

/// A plain HTTP server answering `/.well-known/acme-challenge/<token>` from the responder.
fn serve_http01(listener: TcpListener, responder: Responder) {
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let responder = responder.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split(' ').nth(1).unwrap_or("");
                let body = path
                    .strip_prefix("/.well-known/acme-challenge/")
                    .and_then(|token| responder.0.http.lock().unwrap().get(token).cloned());
                let answer = match body {
                    Some(body) => {
                        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
                    }
                    None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
                };
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
}

/// Chooses the published challenge certificate by SNI, only for ALPN `acme-tls/1`.
#[derive(Debug)]
struct AlpnResolver(Responder);

impl ResolvesServerCert for AlpnResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN_PROTOCOL));
        if !acme {
            return None;
        }
        let name = hello.server_name()?;
        self.0 .0.alpn.lock().unwrap().get(name).cloned()
    }
}

/// A rustls server answering TLS-ALPN-01 handshakes from the responder.
fn serve_tls_alpn01(listener: TcpListener, responder: Responder) {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(AlpnResolver(responder)));
    config.alpn_protocols = vec![ACME_TLS_ALPN_PROTOCOL.to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
}

/// A CA with both responders listening.
struct Setup {
    pebble: Pebble,
    responder: Responder,
}

async fn setup(nonce_reject: Option<u32>) -> Setup {
    setup_with(nonce_reject, None).await
}

async fn setup_with(nonce_reject: Option<u32>, eab: Option<(&str, &str)>) -> Setup {
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pebble = start_pebble(http.local_addr().unwrap().port(), tls.local_addr().unwrap().port(), nonce_reject, eab);
    let responder = Responder::default();
    serve_http01(http, responder.clone());
    serve_tls_alpn01(tls, responder.clone());
    Setup { pebble, responder }
}

/// The chain is for `name`, chains to pebble's issuing root, and the key is the leaf's.
async fn verify(pebble: &Pebble, issued: &sluice_acme::IssuedCertificate, name: &str) {
    let chain = pebble.verify_chain(&issued.chain_pem, name, "other.sluice.test");

    let key = PrivateKeyDer::from_pem_slice(issued.private_key_pem.as_bytes()).unwrap();
    let key = provider().key_provider.load_private_key(key).unwrap();
    CertifiedKey::new(chain.clone(), key).keys_match().expect("the private key is the leaf's");

    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(leaf.validity().not_after.timestamp() as u64);
    assert_eq!(issued.not_after, not_after);
    assert!(issued.not_after > SystemTime::now());
}

#[tokio::test]
async fn http_01_order_issues_a_chain_to_pebbles_root() {
    let setup = setup(Some(0)).await;
    let client = AcmeClient::new(config(&setup.pebble));
    let name = "a.sluice.test";
    let issued = client.order(&[name.into()], ChallengeKind::Http01, &setup.responder).await.unwrap();
    verify(&setup.pebble, &issued, name).await;
    setup.responder.assert_all_withdrawn();
}

#[tokio::test]
async fn tls_alpn_01_order_issues_a_chain_to_pebbles_root() {
    let setup = setup(Some(0)).await;
    let client = AcmeClient::new(config(&setup.pebble));
    let name = "b.sluice.test";
    let issued = client.order(&[name.into()], ChallengeKind::TlsAlpn01, &setup.responder).await.unwrap();
    verify(&setup.pebble, &issued, name).await;
    setup.responder.assert_all_withdrawn();
}

#[tokio::test]
async fn orders_complete_with_pebbles_default_nonce_rejection() {
    let setup = setup(None).await;
    let client = AcmeClient::new(config(&setup.pebble));
    for (i, kind) in [ChallengeKind::Http01, ChallengeKind::TlsAlpn01, ChallengeKind::Http01].into_iter().enumerate() {
        let name = format!("nonce{i}.sluice.test");
        let issued = client.order(std::slice::from_ref(&name), kind, &setup.responder).await.unwrap();
        verify(&setup.pebble, &issued, &name).await;
    }
    setup.responder.assert_all_withdrawn();
}

#[tokio::test]
async fn external_account_binding_is_sent_when_the_ca_requires_it() {
    // Pebble reads the MAC key as unpadded base64url, as CAs hand them out.
    let key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let setup = setup_with(Some(0), Some(("kid-1", key))).await;

    let without = AcmeClient::new(config(&setup.pebble));
    let error = without.order(&["eab.sluice.test".into()], ChallengeKind::Http01, &setup.responder).await.unwrap_err();
    assert!(matches!(&error, AcmeError::Account(d) if d.contains("externalAccountRequired")), "{error}");

    let mut wrong = config(&setup.pebble);
    wrong.external_account =
        Some(ExternalAccountBinding { kid: "kid-1".into(), hmac_key_base64url: "d3Jvbmcta2V5".into() });
    let error = AcmeClient::new(wrong)
        .order(&["eab.sluice.test".into()], ChallengeKind::Http01, &setup.responder)
        .await
        .unwrap_err();
    assert!(matches!(&error, AcmeError::Account(_)), "{error}");

    let mut config = config(&setup.pebble);
    config.external_account = Some(ExternalAccountBinding { kid: "kid-1".into(), hmac_key_base64url: key.into() });
    let with = AcmeClient::new(config);
    let issued = with.order(&["eab.sluice.test".into()], ChallengeKind::Http01, &setup.responder).await.unwrap();
    verify(&setup.pebble, &issued, "eab.sluice.test").await;
    setup.responder.assert_all_withdrawn();
}

#[tokio::test]
async fn a_ca_that_is_down_fails_the_order_quickly_with_an_account_error() {
    let mut config = AcmeConfig::new(format!("https://127.0.0.1:{}/dir", free_port()));
    config.order_timeout = Duration::from_secs(10);
    let client = AcmeClient::new(config);
    let responder = Responder::default();
    let started = Instant::now();
    let error = client.order(&["down.sluice.test".into()], ChallengeKind::Http01, &responder).await.unwrap_err();
    assert!(matches!(error, AcmeError::Account(_)), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(*responder.0.publishes.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_ca_that_never_answers_fails_the_order_with_a_timeout() {
    // Accepts connections and never answers (not even the TLS handshake).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = AcmeConfig::new(format!("https://127.0.0.1:{}/dir", silent.local_addr().unwrap().port()));
    config.order_timeout = Duration::from_secs(1);
    let client = AcmeClient::new(config);
    let started = Instant::now();
    let error =
        client.order(&["slow.sluice.test".into()], ChallengeKind::Http01, &Responder::default()).await.unwrap_err();
    assert_eq!(error, AcmeError::Timeout(Duration::from_secs(1)));
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(silent);
}

#[tokio::test]
async fn a_failed_validation_names_the_identifier_and_the_cas_problem() {
    /// Publishes nothing, so pebble's validation gets a 404.
    struct Silent;
    impl ChallengeResponder for Silent {
        async fn publish(&self, _: &PublishedChallenge) -> Result<(), String> {
            Ok(())
        }
        async fn withdraw(&self, _: &PublishedChallenge) {}
    }
    let setup = setup(Some(0)).await;
    let client = AcmeClient::new(config(&setup.pebble));
    let error = client.order(&["fail.sluice.test".into()], ChallengeKind::Http01, &Silent).await.unwrap_err();
    match &error {
        AcmeError::Authorization { identifier, detail } => {
            assert_eq!(identifier, "fail.sluice.test");
            assert!(detail.contains("urn:ietf:params:acme:error:"), "{detail}");
        }
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn restored_account_credentials_order_again_with_the_same_account() {
    let setup = setup(Some(0)).await;
    let first = AcmeClient::new(config(&setup.pebble));
    let issued = first.order(&["c.sluice.test".into()], ChallengeKind::Http01, &setup.responder).await.unwrap();
    verify(&setup.pebble, &issued, "c.sluice.test").await;
    let stored = first.credentials_json().await.unwrap();
    let id =
        |json: &[u8]| serde_json::from_slice::<serde_json::Value>(json).unwrap()["id"].as_str().unwrap().to_owned();
    assert!(id(&stored).contains(&format!("127.0.0.1:{}", setup.pebble.listen)));

    // Restored, and ordering from a spawned task (the future is Send, as the controller
    // needs).
    let restored = Arc::new(AcmeClient::restore(config(&setup.pebble), &stored));
    let issued = tokio::spawn({
        let restored = restored.clone();
        let responder = setup.responder.clone();
        async move { restored.order(&["d.sluice.test".into()], ChallengeKind::Http01, &responder).await }
    })
    .await
    .unwrap()
    .unwrap();
    verify(&setup.pebble, &issued, "d.sluice.test").await;
    assert_eq!(id(&restored.credentials_json().await.unwrap()), id(&stored));

    let garbage = AcmeClient::restore(config(&setup.pebble), b"{}");
    assert!(matches!(
        garbage.order(&["e.sluice.test".into()], ChallengeKind::Http01, &setup.responder).await,
        Err(AcmeError::Config(_))
    ));
    setup.responder.assert_all_withdrawn();
}

#[tokio::test]
async fn renewal_information_is_none_when_the_ca_offers_none() {
    // Debian's pebble 2.4 has no renewalInfo endpoint: the issuer then renews at two-thirds
    // of the lifetime, so this must be Ok(None), never an error that blocks renewal.
    let setup = setup(Some(0)).await;
    let client = AcmeClient::new(config(&setup.pebble));
    let issued = client.order(&["ari.sluice.test".into()], ChallengeKind::Http01, &setup.responder).await.unwrap();
    let leaf = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes()).next().unwrap().unwrap();
    assert_eq!(client.renewal_window(&leaf).await, Ok(None));
    assert!(matches!(client.renewal_window(b"not a certificate").await, Err(AcmeError::Certificate(_))));
}
