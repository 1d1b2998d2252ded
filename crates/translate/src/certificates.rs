//! Turning `kubernetes.io/tls` Secrets into certificates rustls can serve.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sluice_config::{Diagnostic, ObjectRef};
use sluice_store::k8s_openapi::api::core::v1::Secret;
use sluice_store::{ObjectKey, Store};

use crate::ingress::TlsEntry;

/// Parses a PEM certificate chain and private key into a servable certificate, checking that
/// the key belongs to the leaf certificate.
pub fn certified_key_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.crt is not a PEM certificate chain: {e}"))?;
    if chain.is_empty() {
        return Err("tls.crt holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| format!("tls.key is not a PEM private key: {e}"))?;
    let provider = sluice_config::crypto::provider();
    CertifiedKey::from_der(chain, key, &provider)
        .map(Arc::new)
        .map_err(|e| format!("tls.crt and tls.key do not form a usable certificate: {e}"))
}

/// The certificate in a `kubernetes.io/tls` Secret (`stringData` wins over `data`).
pub(crate) fn from_secret(secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
    let field = |name: &str| -> Result<Vec<u8>, String> {
        if let Some(text) = secret.string_data.as_ref().and_then(|d| d.get(name)) {
            return Ok(text.as_bytes().to_vec());
        }
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(name))
            .map(|bytes| bytes.0.clone())
            .ok_or_else(|| format!("has no {name}"))
    };
    certified_key_from_pem(&field("tls.crt")?, &field("tls.key")?)
}

/// Loads each Secret once per snapshot and reports unusable ones against the Ingress that
/// refers to them.
pub(crate) struct Loader<'s> {
    store: &'s Store,
    cache: HashMap<ObjectKey, Result<Arc<CertifiedKey>, String>>,
}

impl<'s> Loader<'s> {
    pub(crate) fn new(store: &'s Store) -> Self {
        Self { store, cache: HashMap::new() }
    }

    /// The certificate for `entry` of `ingress`, or `None` (with a diagnostic) when the Secret
    /// is missing or broken: only that TLS entry is dropped.
    pub(crate) fn load(
        &mut self,
        ingress: &ObjectRef,
        entry: &TlsEntry,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Option<Arc<CertifiedKey>> {
        let key = ObjectKey::new(&ingress.namespace, &entry.secret);
        let store = self.store;
        let result = self
            .cache
            .entry(key.clone())
            .or_insert_with(|| store.secrets.get(&key).ok_or_else(|| "not found".to_owned()).and_then(from_secret));
        match result {
            Ok(certified) => Some(certified.clone()),
            Err(reason) => {
                let secret = ObjectRef::new("Secret", &key.namespace, &key.name);
                diagnostics.push(Diagnostic::object(
                    ingress.clone(),
                    entry.field.clone(),
                    format!("{secret}: {reason}; this TLS entry is dropped and its hosts get the default certificate"),
                ));
                None
            }
        }
    }
}
