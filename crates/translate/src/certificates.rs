//! Turning `kubernetes.io/tls` Secrets into certificates rustls can serve.
//!
//! The store also keeps Secrets of other types that hold `ca.crt` or `tls.crt` (for
//! `proxy-ssl-secret`); only `kubernetes.io/tls` ones are ever served by the HTTPS listener.

use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sluice_config::{CertificateTable, CertificateTableBuilder, Diagnostic, ObjectRef};
use sluice_store::k8s_openapi::api::core::v1::Secret;
use sluice_store::{ObjectKey, Store, TLS_SECRET_TYPE};

use crate::cache::DerivedCache;
use crate::ingress::ValidIngress;
use crate::{Changed, Options};

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

/// The value of key `name` of a Secret (`stringData` wins over `data`).
pub(crate) fn secret_field(secret: &Secret, name: &str) -> Option<Vec<u8>> {
    if let Some(text) = secret.string_data.as_ref().and_then(|d| d.get(name)) {
        return Some(text.as_bytes().to_vec());
    }
    secret.data.as_ref().and_then(|d| d.get(name)).map(|bytes| bytes.0.clone())
}

/// The certificate in a `kubernetes.io/tls` Secret; Secrets of other types are not served.
pub(crate) fn from_secret(secret: &Secret) -> Result<Arc<CertifiedKey>, String> {
    if secret.type_.as_deref() != Some(TLS_SECRET_TYPE) {
        return Err(format!("is not of type {TLS_SECRET_TYPE}"));
    }
    let field = |name: &str| secret_field(secret, name).ok_or_else(|| format!("has no {name}"));
    certified_key_from_pem(&field("tls.crt")?, &field("tls.key")?)
}

/// The certificates of the TLS Secrets, parsed once per version of each Secret.
#[derive(Default)]
pub(crate) struct Secrets {
    parsed: DerivedCache<Secret, Result<Arc<CertifiedKey>, String>>,
}

impl Secrets {
    /// Catches up with `store`; returns the Secrets added, changed or removed.
    pub(crate) fn sync(&mut self, store: &Store, changed: Changed<'_>) -> Vec<Arc<ObjectKey>> {
        let changes = self.parsed.sync_changed(changed, "Secret", &store.secrets, |_, secret| from_secret(secret));
        changes.into_iter().map(|change| change.key).collect()
    }

    /// The certificate of the Secret `key`, or why there is none.
    pub(crate) fn get(&self, key: &ObjectKey) -> Result<&Arc<CertifiedKey>, &str> {
        match self.parsed.get(key) {
            Some(Ok(certified)) => Ok(certified),
            Some(Err(reason)) => Err(reason),
            None => Err("not found"),
        }
    }

    /// The certificate for unknown SNI: `--default-tls-secret` when set and usable, else the
    /// generated fallback.
    pub(crate) fn default_certificate(
        &self,
        options: &Options,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Arc<CertifiedKey> {
        let Some(key) = &options.default_tls_secret else {
            return options.fallback_certificate.clone();
        };
        match self.get(key) {
            Ok(certified) => certified.clone(),
            Err(reason) => {
                diagnostics.push(Diagnostic::object(
                    ObjectRef::new("Secret", &key.namespace, &key.name),
                    "",
                    format!("--default-tls-secret: {reason}; serving a self-signed default certificate"),
                ));
                options.fallback_certificate.clone()
            }
        }
    }

    /// The SNI table of `ingresses` (in precedence order): a missing or broken Secret drops
    /// only its TLS entry, a host claimed by an older Ingress keeps that one's certificate.
    pub(crate) fn table<'a>(
        &self,
        ingresses: impl Iterator<Item = &'a Arc<ValidIngress>>,
        options: &Options,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> CertificateTable {
        let mut table = CertificateTableBuilder::new(self.default_certificate(options, diagnostics));
        for ingress in ingresses {
            for entry in &ingress.tls {
                let key = ObjectKey::new(&ingress.owner.namespace, &entry.secret);
                let certified = match self.get(&key) {
                    Ok(certified) => certified,
                    Err(_) if ingress.acme.iter().any(|request| request.secret == entry.secret) => {
                        let secret = ObjectRef::new("Secret", &key.namespace, &key.name);
                        diagnostics.push(Diagnostic::warning(
                            (*ingress.owner).clone(),
                            entry.field.clone(),
                            format!(
                                "{secret}: no certificate issued yet (kubernetes.io/tls-acme); its hosts get the default certificate until it is"
                            ),
                        ));
                        continue;
                    }
                    Err(reason) => {
                        let secret = ObjectRef::new("Secret", &key.namespace, &key.name);
                        diagnostics.push(Diagnostic::object(
                            (*ingress.owner).clone(),
                            entry.field.clone(),
                            format!(
                                "{secret}: {reason}; this TLS entry is dropped and its hosts get the default certificate"
                            ),
                        ));
                        continue;
                    }
                };
                for host in &entry.hosts {
                    if let Err(conflict) = table.insert(host, &ingress.owner, certified) {
                        diagnostics.push(Diagnostic::object(
                            (*ingress.owner).clone(),
                            entry.field.clone(),
                            format!(
                                "TLS host {host} is already served by {}; this entry is ignored for it",
                                conflict.winner
                            ),
                        ));
                    }
                }
            }
        }
        table.build()
    }
}
