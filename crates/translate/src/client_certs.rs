//! Client certificates for `auth-tls-secret` Ingresses: the handshake policy of each host
//! (one per CA Secret version, mode and depth, parsed once and shared by the SNI table and
//! the routes), the SNI table, and each route's check. A missing or unusable CA Secret
//! leaves the routes closed (503), never open.

use std::cell::RefCell;
use std::sync::Arc;

use sluice_config::{
    client_cert_verifier, Access, Authentication, ClientAuthTable, ClientCertCheck, ClientCertPolicy, Diagnostic,
    Filter, ObjectRef, Satisfy, VerifyClient,
};
use sluice_store::k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;

use sluice_store::ObjectKey;

use crate::annotations::AuthTlsSettings;
use crate::certificates::secret_field;
use crate::compile::Defaults;
use crate::ingress::ValidIngress;

type Built = Result<Arc<ClientCertPolicy>, String>;

/// One policy built: the CA Secret version, mode and depth it was built for.
#[derive(Debug)]
struct Entry {
    secret: Arc<Secret>,
    mode: VerifyClient,
    depth: u8,
    policy: Built,
}

/// Policies by CA Secret version (kept alive here, so a version is never mistaken for
/// another), mode and depth.
#[derive(Debug, Default)]
pub(crate) struct PolicyCache {
    built: RefCell<Vec<Entry>>,
}

impl PolicyCache {
    /// Forgets Secret versions the store no longer holds.
    pub(crate) fn prune(&self) {
        self.built.borrow_mut().retain(|entry| Arc::strong_count(&entry.secret) > 1);
    }

    fn policy(&self, secret: &Arc<Secret>, mode: VerifyClient, depth: u8) -> Built {
        let mut built = self.built.borrow_mut();
        let hit = built.iter().find(|e| Arc::ptr_eq(&e.secret, secret) && e.mode == mode && e.depth == depth);
        if let Some(entry) = hit {
            return entry.policy.clone();
        }
        let policy = build(secret, mode, depth);
        built.push(Entry { secret: secret.clone(), mode, depth, policy: policy.clone() });
        policy
    }
}

fn build(secret: &Secret, mode: VerifyClient, depth: u8) -> Built {
    let roots = match mode {
        VerifyClient::OptionalNoCa => rustls::RootCertStore::empty(),
        VerifyClient::On | VerifyClient::Optional => {
            let ca = secret_field(secret, "ca.crt").ok_or("has no ca.crt")?;
            crate::upstream_tls::roots(&ca)?
        }
    };
    let verifier = client_cert_verifier(roots, mode)?;
    Ok(Arc::new(ClientCertPolicy::new(verifier, mode, depth)))
}

/// The policy of `ingress`'s `auth-tls-secret`, or why there is none.
fn policy_of(
    ingress: &ValidIngress,
    settings: &AuthTlsSettings,
    secrets: &BTreeMap<ObjectKey, Arc<Secret>>,
    defaults: &Defaults,
    cache: &PolicyCache,
) -> Built {
    let key = ingress.auth_tls_secret().ok_or("no auth-tls-secret")?;
    if key.namespace != ingress.owner.namespace && !defaults.allow_cross_namespace_resources {
        return Err(format!(
            "Secret {}/{} is in another namespace (allow-cross-namespace-resources is off)",
            key.namespace, key.name
        ));
    }
    let secret = secrets.get(&key).ok_or_else(|| format!("Secret {}/{} does not exist", key.namespace, key.name))?;
    cache
        .policy(secret, settings.mode, settings.depth)
        .map_err(|e| format!("Secret {}/{}: {e}", key.namespace, key.name))
}

/// The route filter of an `auth-tls-secret` Ingress: the check, or — when its CA cannot be
/// used — access that is always refused (503).
pub(crate) fn filter(
    ingress: &ValidIngress,
    settings: &AuthTlsSettings,
    secrets: &BTreeMap<ObjectKey, Arc<Secret>>,
    defaults: &Defaults,
    cache: &PolicyCache,
    problems: &mut Vec<Diagnostic>,
) -> Filter {
    match policy_of(ingress, settings, secrets, defaults, cache) {
        Ok(policy) => Filter::ClientCertificate(Arc::new(ClientCertCheck {
            policy,
            match_cn: settings.match_cn.clone(),
            error_page: settings.error_page.clone(),
            pass_certificate: settings.pass_certificate,
        })),
        Err(reason) => {
            let reason = format!("{reason}; its paths answer 503 until this is fixed");
            let field = "metadata.annotations[auth-tls-secret]";
            problems.push(Diagnostic::object((*ingress.owner).clone(), field, reason));
            let closed = Access {
                allow: None,
                deny: None,
                auth: Box::new([Authentication::Unavailable]),
                satisfy: Satisfy::All,
            };
            Filter::Access(Arc::new(closed))
        }
    }
}

/// Which hosts ask for a client certificate in the handshake: each host of a served
/// `auth-tls-secret` Ingress with a usable CA, the first Ingress to name a host winning.
pub(crate) fn table<'a>(
    served: impl Iterator<Item = &'a Arc<ValidIngress>>,
    secrets: &BTreeMap<ObjectKey, Arc<Secret>>,
    defaults: &Defaults,
    cache: &PolicyCache,
    problems: &mut Vec<Diagnostic>,
) -> ClientAuthTable {
    let mut table = ClientAuthTable::default();
    for ingress in served {
        let Some(settings) = &ingress.annotations.auth_tls else { continue };
        let Ok(policy) = policy_of(ingress, settings, secrets, defaults, cache) else { continue };
        for rule in &ingress.rules {
            let host = rule.host.to_string();
            if host == "*" {
                let owner: ObjectRef = (*ingress.owner).clone();
                let reason = "a rule without host cannot ask for client certificates by SNI; its paths answer 421";
                problems.push(Diagnostic::warning(owner, "metadata.annotations[auth-tls-secret]", reason));
                continue;
            }
            if !table.insert(&host, policy.clone()) {
                let owner: ObjectRef = (*ingress.owner).clone();
                let reason = format!(
                    "host {host} already asks for client certificates from another Ingress; that one's CA applies"
                );
                problems.push(Diagnostic::warning(owner, "metadata.annotations[auth-tls-secret]", reason));
            }
        }
    }
    table
}
