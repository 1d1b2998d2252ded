//! TLS termination: the certificate for each ClientHello comes from the current snapshot.

use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use sluice_config::SharedSnapshot;

/// Picks the certificate by SNI from whatever snapshot is current, so certificate changes
/// apply to the next handshake without rebuilding the TLS configuration.
#[derive(Debug)]
struct SniResolver(Arc<SharedSnapshot>);

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load().certificates.resolve(hello.server_name()).clone())
    }
}

/// The HTTPS listener's configuration: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`,
/// certificates by SNI from `snapshot`; with `resumption`, session tickets and a session
/// cache let returning clients skip the full handshake.
pub fn server_config(snapshot: Arc<SharedSnapshot>, resumption: bool) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut config = ServerConfig::builder_with_provider(sluice_config::crypto::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver(snapshot)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if resumption {
        config.ticketer = sluice_config::crypto::ticketer()?;
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}
