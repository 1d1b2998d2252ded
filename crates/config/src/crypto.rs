//! The one place that chooses the TLS crypto provider (aws-lc-rs), so a later move of
//! providers (rustls 0.24 splits them into crates) touches one file.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// The crypto provider every rustls configuration in Sluice uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Installs [`provider`] as the process default. Call first thing in `main`: crates that build
/// their own rustls configuration (kube, test clients) pick it up from there.
pub fn install_default_provider() {
    // Err means a provider is already installed (e.g. twice in one test process): fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Session-ticket encryption for TLS resumption, rotated by rustls.
pub fn ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, rustls::Error> {
    rustls::crypto::aws_lc_rs::Ticketer::new()
}
