//! The self-signed certificate presented for unknown SNI when no default Secret is set.

use std::sync::Arc;

use rustls::sign::CertifiedKey;

/// The name in the generated default certificate; `.invalid` can never be a real host.
const DEFAULT_CERT_NAME: &str = "sluice-default-certificate.invalid";

/// Generates a fresh self-signed certificate (once per process).
pub fn generate() -> Result<Arc<CertifiedKey>, String> {
    let (cert_pem, key_pem) = self_signed(&[DEFAULT_CERT_NAME.to_owned()])?;
    sluice_translate::certified_key_from_pem(cert_pem.as_bytes(), key_pem.as_bytes())
}

/// A self-signed certificate for `names` as (certificate PEM, private key PEM).
pub fn self_signed(names: &[String]) -> Result<(String, String), String> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))?;
    Ok((certified.cert.pem(), certified.signing_key.serialize_pem()))
}
