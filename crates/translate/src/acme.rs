//! Automatic HTTPS at translation: which certificates Sluice must obtain (Ingresses with
//! `kubernetes.io/tls-acme: "true"`, the annotation cert-manager's ingress-shim and kube-lego
//! read), what their Secrets hold now, and the challenges in flight (the challenge Secret the
//! issuer writes), into the snapshot's [`Acme`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::sign::CertifiedKey;
use sluice_config::{Acme, AcmeChallenges, CertificateFacts, Diagnostic, HostMatch, ManagedCertificate, ObjectRef};
use sluice_store::k8s_openapi::api::networking::v1::Ingress;
use sluice_store::{ObjectKey, Store};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::certificates::Secrets;
use crate::ingress::ValidIngress;

/// The opt-in annotation on an Ingress.
pub const TLS_ACME_ANNOTATION: &str = "kubernetes.io/tls-acme";

/// Data keys of the challenge Secret: `http-01.<token>` holds the key authorization,
/// `tls-alpn-01.<host>` the RFC 8737 certificate and its key (PEM, one after the other).
pub const HTTP01_KEY_PREFIX: &str = "http-01.";
/// See [`HTTP01_KEY_PREFIX`].
pub const TLS_ALPN01_KEY_PREFIX: &str = "tls-alpn-01.";

/// One `spec.tls` entry of an Ingress that asks for a certificate.
#[derive(Debug)]
pub(crate) struct AcmeRequest {
    /// The entry's `secretName`.
    pub secret: String,
    /// Its hosts as the CA will see them (`*.example.com` for wildcards).
    pub names: Vec<String>,
    /// `spec.tls[i]`.
    pub field: String,
}

/// The certificates an Ingress asks for, and what it asks wrongly (as warnings: the Ingress
/// is served regardless, its TLS entries as they are).
pub(crate) fn requests(ingress: &Ingress, object: &ObjectRef, warnings: &mut Vec<Diagnostic>) -> Vec<AcmeRequest> {
    let annotation = ingress.metadata.annotations.as_ref().and_then(|a| a.get(TLS_ACME_ANNOTATION));
    let field = format!("metadata.annotations[{TLS_ACME_ANNOTATION}]");
    match annotation.map(|v| v.trim()) {
        None | Some("false") => return Vec::new(),
        Some("true") => {}
        Some(other) => {
            warnings.push(Diagnostic::warning(
                object.clone(),
                field,
                format!("must be \"true\" or \"false\", not {other:?}; no certificate is ordered"),
            ));
            return Vec::new();
        }
    }
    let entries = ingress.spec.as_ref().and_then(|s| s.tls.as_deref()).unwrap_or_default();
    if entries.is_empty() {
        warnings.push(Diagnostic::warning(
            object.clone(),
            "spec.tls",
            "kubernetes.io/tls-acme: no TLS entry to order a certificate for",
        ));
    }
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let field = format!("spec.tls[{i}]");
        let Some(secret) = entry.secret_name.as_deref().filter(|s| !s.is_empty()) else {
            warnings.push(Diagnostic::warning(
                object.clone(),
                format!("{field}.secretName"),
                "kubernetes.io/tls-acme needs a secretName to store the certificate in; this entry gets none",
            ));
            continue;
        };
        let names: Vec<String> = entry
            .hosts
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|host| match HostMatch::parse(Some(host)).ok()? {
                HostMatch::Exact(h) => Some(h.as_str().to_owned()),
                HostMatch::Wildcard(h) => Some(format!("*.{}", h.as_str())),
                HostMatch::Any => None,
            })
            .collect();
        if names.is_empty() {
            warnings.push(Diagnostic::warning(
                object.clone(),
                format!("{field}.hosts"),
                "kubernetes.io/tls-acme needs the hosts to order a certificate for; this entry gets none",
            ));
            continue;
        }
        out.push(AcmeRequest { secret: secret.to_owned(), names, field });
    }
    out
}

/// What the snapshot's [`Acme`] is built from, kept between builds.
#[derive(Default)]
pub(crate) struct AcmeCache {
    /// The facts of each managed Secret's certificate, by the parsed certificate they were
    /// read from.
    facts: BTreeMap<ObjectKey, (Arc<CertifiedKey>, Option<CertificateFacts>)>,
}

impl AcmeCache {
    /// The snapshot's [`Acme`]: the served Ingresses' requests (in precedence order) merged
    /// per Secret, and the challenges of `challenge_secret`.
    pub(crate) fn build<'a>(
        &mut self,
        served: impl Iterator<Item = &'a Arc<ValidIngress>>,
        gateways: Vec<(ObjectRef, ObjectKey, String)>,
        store: &Store,
        secrets: &Secrets,
        (challenge_secret, dns01): (Option<&ObjectKey>, bool),
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Acme {
        let mut wanted: BTreeMap<ObjectKey, ManagedCertificate> = BTreeMap::new();
        let mut want = |key: &ObjectKey, names: &[String], owner: &ObjectRef| {
            let managed = wanted.entry(key.clone()).or_insert_with(|| ManagedCertificate {
                secret: ObjectRef::new("Secret", &key.namespace, &key.name),
                names: Vec::new(),
                requested_by: Vec::new(),
                current: None,
            });
            managed.names.extend(names.iter().cloned());
            if !managed.requested_by.contains(owner) {
                managed.requested_by.push(owner.clone());
            }
        };
        for (gateway, secret, name) in gateways {
            if name.starts_with("*.") && !dns01 {
                let reason = format!("{name}: a wildcard host can only be validated with DNS-01: start Sluice with --acme-dns-rfc2136; no certificate is ordered");
                diagnostics.push(Diagnostic::warning(gateway, "spec.listeners", reason));
                continue;
            }
            want(&secret, std::slice::from_ref(&name), &gateway);
        }
        for ingress in served {
            if challenge_secret.is_none() {
                if let Some(request) = ingress.acme.first() {
                    diagnostics.push(Diagnostic::warning(
                        (*ingress.owner).clone(),
                        format!("metadata.annotations[{TLS_ACME_ANNOTATION}]"),
                        format!(
                            "automatic HTTPS is off (with --manifests, give --acme-email or --acme-directory); no certificate is ordered for {}",
                            request.names.join(", ")
                        ),
                    ));
                }
                continue;
            }
            for request in &ingress.acme {
                if !dns01 && request.names.iter().any(|n| n.starts_with("*.")) {
                    diagnostics.push(Diagnostic::warning(
                        (*ingress.owner).clone(),
                        format!("{}.hosts", request.field),
                        "a wildcard host can only be validated with DNS-01: start Sluice with --acme-dns-rfc2136; no certificate is ordered for this entry",
                    ));
                    continue;
                }
                let key = ObjectKey::new(&ingress.owner.namespace, &request.secret);
                want(&key, &request.names, &ingress.owner);
            }
        }
        self.facts.retain(|key, _| wanted.contains_key(key));
        let mut certificates = Vec::with_capacity(wanted.len());
        for (key, mut managed) in wanted {
            managed.names.sort();
            managed.names.dedup();
            managed.current = match secrets.get(&key) {
                Ok(certified) => match self.facts.get(&key) {
                    Some((seen, facts)) if Arc::ptr_eq(seen, certified) => facts.clone(),
                    _ => {
                        let facts = facts_of(certified);
                        self.facts.insert(key, (certified.clone(), facts.clone()));
                        facts
                    }
                },
                Err(_) => None,
            };
            certificates.push(managed);
        }
        let challenges = challenge_secret.map(|key| challenges(store, key)).unwrap_or_default();
        Acme { challenges, certificates }
    }
}

/// Names and validity of a served certificate's leaf.
fn facts_of(certified: &CertifiedKey) -> Option<CertificateFacts> {
    let leaf = certified.cert.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let time = |t: x509_parser::time::ASN1Time| {
        let seconds = u64::try_from(t.timestamp()).unwrap_or(0);
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    Some(CertificateFacts {
        names,
        not_before: time(parsed.validity().not_before),
        not_after: time(parsed.validity().not_after),
        leaf_der: Arc::from(leaf.as_ref()),
    })
}

/// The challenges in the challenge Secret; an entry that cannot be read is skipped (the
/// issuer wrote it, and its order fails visibly at the CA).
fn challenges(store: &Store, key: &ObjectKey) -> AcmeChallenges {
    let mut challenges = AcmeChallenges::default();
    let Some(secret) = store.secrets.get(key) else {
        return challenges;
    };
    for (name, value) in secret.data.iter().flatten() {
        if let Some(token) = name.strip_prefix(HTTP01_KEY_PREFIX) {
            if let Ok(text) = std::str::from_utf8(&value.0) {
                challenges.insert_http01(token, text.trim());
            }
        } else if let Some(host) = name.strip_prefix(TLS_ALPN01_KEY_PREFIX) {
            if let Some(certified) = challenge_certificate(&value.0) {
                challenges.insert_tls_alpn01(host, certified);
            }
        }
    }
    challenges
}

/// An RFC 8737 challenge certificate and its key (PEM). Not checked the way served
/// certificates are: its critical `acmeIdentifier` extension is one no TLS library knows,
/// which is the point (only the CA's validation reads it).
fn challenge_certificate(pem: &[u8]) -> Option<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().ok()?;
    if chain.is_empty() {
        return None;
    }
    let key = PrivateKeyDer::from_pem_slice(pem).ok()?;
    let signing = sluice_config::crypto::provider().key_provider.load_private_key(key).ok()?;
    Some(Arc::new(CertifiedKey::new(chain, signing)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_store::k8s_openapi::api::core::v1::Secret;
    use sluice_store::k8s_openapi::ByteString;

    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{text}\n-----END {label}-----\n")
    }

    #[test]
    fn the_challenge_secret_becomes_http01_and_tls_alpn01_answers() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["shop.acme.test".to_owned()]).unwrap();
        params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(&[7u8; 32])];
        let cert = params.self_signed(&key).unwrap();
        let alpn = pem("CERTIFICATE", cert.der()) + &pem("PRIVATE KEY", &key.serialize_der());
        let mut store = Store::default();
        let mut secret = Secret::default();
        secret.metadata.name = Some("challenges".into());
        secret.metadata.namespace = Some("sluice-system".into());
        secret.type_ = Some(sluice_store::ACME_CHALLENGES_SECRET_TYPE.into());
        secret.data = Some(
            [
                ("http-01.tok".to_owned(), ByteString(b"tok.thumb".to_vec())),
                ("tls-alpn-01.shop.acme.test".to_owned(), ByteString(alpn.into_bytes())),
                ("tls-alpn-01.broken.test".to_owned(), ByteString(b"not pem".to_vec())),
            ]
            .into(),
        );
        let key = ObjectKey::new("sluice-system", "challenges");
        store.secrets.insert(key.clone(), Arc::new(secret));
        let challenges = challenges(&store, &key);
        assert_eq!(challenges.http01("/.well-known/acme-challenge/tok").map(|a| &**a), Some("tok.thumb"));
        let served = challenges.tls_alpn01(Some("SHOP.acme.test")).expect("the challenge certificate");
        assert_eq!(served.cert[0].as_ref(), cert.der().as_ref());
        assert!(challenges.tls_alpn01(Some("broken.test")).is_none());
        assert_eq!(challenges.len(), (1, 1));
    }
}
