//! TLS towards `HTTPS`/`GRPCS` backends, resolved at translation: a backend's `proxy-ssl-*`
//! settings and the Secret they name become one [`UpstreamTls`] (a rustls client
//! configuration), built once per setting and Secret version and shared by every backend
//! and snapshot that uses it. A Secret that is missing, broken, in another namespace (unless
//! the controller ConfigMap sets `allow-cross-namespace-resources`), or lacks what the
//! settings need makes its backends answer 503: never plain HTTP, never TLS without the
//! requested verification.

use std::sync::Arc;

use foldhash::{HashMap, HashSet};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sluice_config::{ObjectRef, ServerVerification, UpstreamTls, UpstreamTlsOptions};
use sluice_store::{ObjectKey, Store};

use crate::backends::BackendKey;
use crate::certificates::{certified_key_from_pem, secret_field};

/// Why a backend cannot be reached over TLS as asked: reported on the annotation.
#[derive(Debug, Clone)]
pub(crate) struct TlsProblem {
    /// `metadata.annotations[<prefix>/proxy-ssl-secret]` (or `backend-protocol`).
    pub field: Arc<str>,
    /// What is wrong and what the routes do meanwhile.
    pub reason: Arc<str>,
}

/// Everything an [`UpstreamTls`] is built from, besides the Secret's content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Setting {
    secret: Option<ObjectKey>,
    verify: bool,
    sni: bool,
    /// Only when verified or sent.
    name: Option<Box<str>>,
    http2: bool,
}

/// The [`UpstreamTls`] of each setting in use, kept until a Secret it was built from changes.
pub(crate) struct UpstreamTlsCache {
    /// `--annotations-prefix`, to name annotations in problems.
    prefix: String,
    built: HashMap<Setting, Result<Arc<UpstreamTls>, TlsProblem>>,
    /// Secrets some backend named (found or not): a change to one resolves those backends again.
    referenced: HashSet<ObjectKey>,
}

impl UpstreamTlsCache {
    /// An empty cache naming annotations under `prefix`.
    pub(crate) fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned(), built: HashMap::default(), referenced: HashSet::default() }
    }

    /// The TLS for the backend `key` (an `HTTPS` or, with `http2`, `GRPCS` Service port);
    /// `cross_namespace` (the ConfigMap's `allow-cross-namespace-resources`) lets its
    /// `proxy-ssl-secret` be in another namespace than the Ingress.
    pub(crate) fn get(
        &mut self,
        store: &Store,
        key: &BackendKey,
        http2: bool,
        cross_namespace: bool,
    ) -> Result<Arc<UpstreamTls>, TlsProblem> {
        let setting = match &key.options.proxy_ssl {
            None => Setting { secret: None, verify: false, sni: false, name: None, http2 },
            Some(ssl) => {
                let secret = ssl.secret.as_ref().map_err(|reason| {
                    self.problem("proxy-ssl-secret", format!("{reason}; the routes answer 503 (as ingress-nginx)"))
                })?;
                if secret.namespace != key.service.namespace && !cross_namespace {
                    return Err(self.problem(
                        "proxy-ssl-secret",
                        format!(
                            "Secret {}/{} is in another namespace than the Ingress, which ingress-nginx allows only \
                             with allow-cross-namespace-resources; the routes answer 503",
                            secret.namespace, secret.name
                        ),
                    ));
                }
                self.referenced.insert(secret.clone());
                // ingress-nginx verifies (and sends) `$proxy_host`, the upstream name,
                // unless proxy-ssl-name says otherwise.
                let upstream = || format!("{}-{}-{}", key.service.namespace, key.service.name, key.port).into();
                let name = (ssl.verify || ssl.sni).then(|| ssl.name.clone().unwrap_or_else(upstream));
                Setting { secret: Some(secret.clone()), verify: ssl.verify, sni: ssl.sni, name, http2 }
            }
        };
        if let Some(built) = self.built.get(&setting) {
            return built.clone();
        }
        let built = self.build(store, &setting).map(Arc::new);
        self.built.insert(setting, built.clone());
        built
    }

    /// Drops what was built from the Secrets `changed`; true when a backend names one of
    /// them (its backends must be resolved again).
    pub(crate) fn forget(&mut self, changed: &[Arc<ObjectKey>]) -> bool {
        let named: HashSet<&ObjectKey> =
            changed.iter().map(|k| &**k).filter(|k| self.referenced.contains(*k)).collect();
        if named.is_empty() {
            return false;
        }
        self.built.retain(|setting, _| setting.secret.as_ref().is_none_or(|secret| !named.contains(secret)));
        true
    }

    fn build(&self, store: &Store, setting: &Setting) -> Result<UpstreamTls, TlsProblem> {
        let mut options = UpstreamTlsOptions::unverified(setting.http2);
        if let Some(key) = &setting.secret {
            let secret_ref = ObjectRef::new("Secret", &key.namespace, &key.name);
            let fail = |reason: String| {
                self.problem(
                    "proxy-ssl-secret",
                    format!("{secret_ref}: {reason}; the routes answer 503 until it is fixed"),
                )
            };
            let secret = store.secrets.get(key).ok_or_else(|| fail("not found".into()))?;
            if setting.verify {
                let ca = secret_field(secret, "ca.crt")
                    .ok_or_else(|| fail("has no ca.crt, and proxy-ssl-verify is on".into()))?;
                options.verification = ServerVerification::Roots(Arc::new(roots(&ca).map_err(fail)?));
            }
            if let Some(cert) = secret_field(secret, "tls.crt") {
                let key = secret_field(secret, "tls.key").ok_or_else(|| fail("has tls.crt but no tls.key".into()))?;
                options.client_certificate = Some(certified_key_from_pem(&cert, &key).map_err(fail)?);
            }
            if let Some(name) = &setting.name {
                let name = ServerName::try_from(name.to_string())
                    .map_err(|_| fail(format!("{name:?} is not a name TLS can verify")))?;
                options.server_name = Some(name);
            }
            options.sni = setting.sni;
        }
        UpstreamTls::new(options).map_err(|e| self.problem("backend-protocol", format!("TLS client: {e}")))
    }

    fn problem(&self, annotation: &str, reason: String) -> TlsProblem {
        TlsProblem {
            field: format!("metadata.annotations[{}/{annotation}]", self.prefix).into(),
            reason: reason.into(),
        }
    }
}

/// The trust anchors in a PEM `ca.crt`.
pub(crate) fn roots(pem: &[u8]) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("ca.crt is not PEM certificates: {e}"))?;
        roots.add(cert).map_err(|e| format!("ca.crt holds an unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("ca.crt holds no certificate".into());
    }
    Ok(roots)
}
