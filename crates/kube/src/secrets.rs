//! The Secrets Sluice writes itself (automatic HTTPS: issued certificates, the ACME account,
//! the challenge answers every replica serves): read, created or replaced whole, leaving
//! the labels and annotations users put on them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::{Api, Client};

/// Attempts at a write that races another writer (409 Conflict) before giving up.
const ATTEMPTS: usize = 3;

/// Reads and writes whole Secrets through the API server.
#[derive(Clone)]
pub struct SecretWriter {
    client: Client,
}

impl std::fmt::Debug for SecretWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretWriter").finish_non_exhaustive()
    }
}

impl SecretWriter {
    /// A writer with `client`'s credentials.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The data of Secret `namespace/name`, `None` when it does not exist.
    pub async fn read(&self, namespace: &str, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = api.get_opt(name).await.map_err(|e| format!("reading Secret {namespace}/{name}: {e}"))?;
        Ok(secret.map(|s| s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()))
    }

    /// Makes Secret `namespace/name` of type `type_` hold exactly `data`: created when
    /// missing, else replaced (its metadata kept). A Secret of another type is left alone
    /// (the type cannot change) and reported.
    pub async fn write(
        &self,
        namespace: &str,
        name: &str,
        type_: &str,
        data: BTreeMap<String, Vec<u8>>,
    ) -> Result<(), String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let what = || format!("Secret {namespace}/{name}");
        let data: BTreeMap<String, ByteString> = data.into_iter().map(|(k, v)| (k, ByteString(v))).collect();
        let mut last = String::new();
        for _ in 0..ATTEMPTS {
            let current = api.get_opt(name).await.map_err(|e| format!("reading {}: {e}", what()))?;
            let result = match current {
                Some(mut secret) => {
                    let current_type = secret.type_.as_deref().unwrap_or("Opaque");
                    if current_type != type_ {
                        return Err(format!(
                            "{} exists with type {current_type}, not {type_}; it is left alone",
                            what()
                        ));
                    }
                    secret.data = Some(data.clone());
                    secret.string_data = None;
                    api.replace(name, &PostParams::default(), &secret).await
                }
                None => {
                    let mut labels = BTreeMap::new();
                    labels.insert("app.kubernetes.io/managed-by".to_owned(), "sluice".to_owned());
                    let secret = Secret {
                        metadata: ObjectMeta {
                            name: Some(name.to_owned()),
                            namespace: Some(namespace.to_owned()),
                            labels: Some(labels),
                            ..ObjectMeta::default()
                        },
                        type_: Some(type_.to_owned()),
                        data: Some(data.clone()),
                        ..Secret::default()
                    };
                    api.create(&PostParams::default(), &secret).await
                }
            };
            match result {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(status)) if status.is_conflict() || status.is_already_exists() => {
                    last = status.message.clone();
                }
                Err(e) => return Err(format!("writing {}: {e}", what())),
            }
        }
        Err(format!("writing {}: {last}", what()))
    }
}
