//! TLS termination: the certificate for each ClientHello comes from the current snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sluice_config::{ClientCertPolicy, SharedSnapshot, Snapshot, ACME_TLS_ALPN_PROTOCOL};

/// Picks the certificate by SNI from whatever snapshot is current, so certificate changes
/// apply to the next handshake without rebuilding the TLS configuration.
#[derive(Debug)]
struct SniResolver(Arc<SharedSnapshot>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.0.load();
        if let Some(challenge) = acme_challenge(&snapshot, &hello) {
            return Some(challenge);
        }
        Some(snapshot.certificates.resolve(hello.server_name()).clone())
    }
}

/// The RFC 8737 certificate for a TLS-ALPN-01 validation handshake (ALPN `acme-tls/1`, SNI
/// a host with an order in flight), which takes precedence over any served certificate.
fn acme_challenge(snapshot: &Snapshot, hello: &ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
    if snapshot.acme.challenges.is_empty() {
        return None;
    }
    let mut protocols = hello.alpn()?;
    if !protocols.any(|p| p == ACME_TLS_ALPN_PROTOCOL) {
        return None;
    }
    snapshot.acme.challenges.tls_alpn01(hello.server_name()).cloned()
}

/// Certificates by SNI of the HTTPS listeners of the Gateway frontend at one address.
#[derive(Debug)]
struct FrontendResolver(Arc<SharedSnapshot>, std::net::SocketAddr);

impl ResolvesServerCert for FrontendResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let snapshot = self.0.load();
        if let Some(challenge) = acme_challenge(&snapshot, &hello) {
            return Some(challenge);
        }
        let table = snapshot.gateways.get(&self.1)?.certificates()?;
        Some(table.resolve(hello.server_name()).clone())
    }
}

/// The configuration of a Gateway's HTTPS (or terminating TLS) frontend at `address`: as
/// [`server_config`], with the certificates of the listeners there; without `http`, no ALPN
/// is offered (the bytes inside are not HTTP).
pub(crate) fn frontend_config(
    snapshot: Arc<SharedSnapshot>,
    address: std::net::SocketAddr,
    resumption: bool,
    http: bool,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let config = base()?.with_no_client_auth().with_cert_resolver(Arc::new(FrontendResolver(snapshot, address)));
    let mut config = finish(config, resumption)?;
    if !http {
        if let Some(config) = Arc::get_mut(&mut config) {
            config.alpn_protocols.clear();
        }
    }
    Ok(config)
}

fn base() -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, rustls::Error> {
    ServerConfig::builder_with_provider(sluice_config::crypto::provider()).with_safe_default_protocol_versions()
}

/// ALPN `h2` then `http/1.1` (and `acme-tls/1`, which only a CA validating TLS-ALPN-01
/// offers, and which is closed after the handshake); session resumption as asked.
fn finish(mut config: ServerConfig, resumption: bool) -> Result<Arc<ServerConfig>, rustls::Error> {
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN_PROTOCOL.to_vec()];
    if resumption {
        config.ticketer = sluice_config::crypto::ticketer()?;
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

/// The HTTPS listener's configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`,
/// certificates by SNI from `snapshot`; with `resumption`, session tickets and a session
/// cache let returning clients skip the full handshake.
pub fn server_config(snapshot: Arc<SharedSnapshot>, resumption: bool) -> Result<Arc<ServerConfig>, rustls::Error> {
    build(snapshot, resumption, None)
}

fn build(
    snapshot: Arc<SharedSnapshot>,
    resumption: bool,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let builder = match verifier {
        Some(verifier) => base()?.with_client_cert_verifier(verifier),
        None => base()?.with_no_client_auth(),
    };
    finish(builder.with_cert_resolver(Arc::new(SniResolver(snapshot))), resumption)
}

/// Most configurations kept for client-certificate policies; beyond, they are built again.
const MAX_POLICY_CONFIGS: usize = 1024;

/// The TLS configurations of hosts that ask for a client certificate, one per policy
/// (rustls chooses the verifier per configuration, so the handshake picks one by SNI),
/// built on first use. Each has its own ticket keys: a session resumed from another host's
/// handshake cannot skip this one's certificate check.
#[derive(Debug)]
pub(crate) struct PolicyConfigs {
    snapshot: Arc<SharedSnapshot>,
    resumption: bool,
    built: Mutex<HashMap<u64, Arc<ServerConfig>>>,
}

impl PolicyConfigs {
    pub(crate) fn new(snapshot: Arc<SharedSnapshot>, resumption: bool) -> Self {
        Self { snapshot, resumption, built: Mutex::default() }
    }

    /// The configuration asking for a certificate as `policy` says.
    pub(crate) fn get(&self, policy: &ClientCertPolicy) -> Result<Arc<ServerConfig>, rustls::Error> {
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = built.get(&policy.id) {
            return Ok(config.clone());
        }
        if built.len() >= MAX_POLICY_CONFIGS {
            built.clear();
        }
        let config = build(self.snapshot.clone(), self.resumption, Some(policy.verifier.clone()))?;
        built.insert(policy.id, config.clone());
        Ok(config)
    }
}
