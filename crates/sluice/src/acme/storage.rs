//! Where the issuer keeps what it makes: in a cluster, Secrets (written by the leader, read
//! by every replica through the watch); on manifests, files under `--state-dir` that the
//! manifest source reads back like any other Secret, so both modes serve the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sluice_config::ObjectRef;
use sluice_store::k8s_openapi::api::core::v1::Secret;
use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sluice_store::k8s_openapi::ByteString;
use sluice_store::{ObjectKey, ACME_CHALLENGES_SECRET_TYPE, TLS_SECRET_TYPE};

/// The Secret holding the challenge answers in flight.
pub const CHALLENGES_SECRET: &str = "sluice-acme-challenges";
/// The Secret holding the ACME account (key and URL).
pub const ACCOUNT_SECRET: &str = "sluice-acme-account";
/// The namespace of the challenge Secret on manifests (no cluster namespace to follow).
pub const MANIFESTS_NAMESPACE: &str = "sluice-system";

/// Account Secret keys: the credentials instant-acme restores from, and the directory they
/// belong to (another CA needs another account).
const ACCOUNT_CREDENTIALS: &str = "credentials.json";
const ACCOUNT_DIRECTORY: &str = "directory";

/// The issuer's storage.
#[derive(Debug)]
pub enum Storage {
    /// `<state-dir>/acme/`: `account.json`, and `objects/` (a manifests root) holding the
    /// certificate and challenge Secrets.
    Files {
        /// `<state-dir>/acme`.
        dir: PathBuf,
    },
    /// Secrets through the API server; the account and challenge Secrets in `namespace`.
    Kube {
        /// The writer.
        writer: sluice_kube::SecretWriter,
        /// Where the account and challenge Secrets live (the leader-election namespace).
        namespace: String,
    },
}

impl Storage {
    /// The directory of Secrets the manifest source must read, on manifests.
    pub fn objects_dir(state_dir: &Path) -> PathBuf {
        state_dir.join("acme").join("objects")
    }

    /// The challenge Secret every replica reads.
    pub fn challenge_secret(&self) -> ObjectKey {
        match self {
            Storage::Files { .. } => ObjectKey::new(MANIFESTS_NAMESPACE, CHALLENGES_SECRET),
            Storage::Kube { namespace, .. } => ObjectKey::new(namespace, CHALLENGES_SECRET),
        }
    }

    /// The stored account credentials for `directory`, if any.
    pub async fn load_account(&self, directory: &str) -> Result<Option<Vec<u8>>, String> {
        let data = match self {
            Storage::Files { dir } => match std::fs::read(dir.join("account.json")) {
                Ok(bytes) => serde_json::from_slice::<BTreeMap<String, String>>(&bytes)
                    .map_err(|e| format!("{}: {e}", dir.join("account.json").display()))?
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(format!("{}: {e}", dir.join("account.json").display())),
            },
            Storage::Kube { writer, namespace } => match writer.read(namespace, ACCOUNT_SECRET).await? {
                Some(data) => data,
                None => return Ok(None),
            },
        };
        if data.get(ACCOUNT_DIRECTORY).map(Vec::as_slice) != Some(directory.as_bytes()) {
            return Ok(None);
        }
        Ok(data.get(ACCOUNT_CREDENTIALS).cloned())
    }

    /// Keeps the account credentials for `directory`.
    pub async fn save_account(&self, directory: &str, credentials: &[u8]) -> Result<(), String> {
        match self {
            Storage::Files { dir } => {
                let mut data = BTreeMap::new();
                data.insert(ACCOUNT_DIRECTORY, directory.to_owned());
                data.insert(ACCOUNT_CREDENTIALS, String::from_utf8_lossy(credentials).into_owned());
                let json = serde_json::to_vec(&data).map_err(|e| e.to_string())?;
                write_file(&dir.join("account.json"), &json)
            }
            Storage::Kube { writer, namespace } => {
                let mut data = BTreeMap::new();
                data.insert(ACCOUNT_DIRECTORY.to_owned(), directory.as_bytes().to_vec());
                data.insert(ACCOUNT_CREDENTIALS.to_owned(), credentials.to_vec());
                writer.write(namespace, ACCOUNT_SECRET, "Opaque", data).await
            }
        }
    }

    /// Stores an issued certificate in its `kubernetes.io/tls` Secret.
    pub async fn save_certificate(&self, secret: &ObjectRef, chain_pem: &str, key_pem: &str) -> Result<(), String> {
        let mut data = BTreeMap::new();
        data.insert("tls.crt".to_owned(), chain_pem.as_bytes().to_vec());
        data.insert("tls.key".to_owned(), key_pem.as_bytes().to_vec());
        self.put(&secret.namespace, &secret.name, TLS_SECRET_TYPE, data).await
    }

    /// Publishes the challenge answers in flight (all of them: the Secret is replaced whole).
    pub async fn save_challenges(&self, data: BTreeMap<String, Vec<u8>>) -> Result<(), String> {
        let key = self.challenge_secret();
        self.put(&key.namespace, &key.name, ACME_CHALLENGES_SECRET_TYPE, data).await
    }

    async fn put(
        &self,
        namespace: &str,
        name: &str,
        type_: &str,
        data: BTreeMap<String, Vec<u8>>,
    ) -> Result<(), String> {
        match self {
            Storage::Files { dir } => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        ..ObjectMeta::default()
                    },
                    type_: Some(type_.to_owned()),
                    data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
                    ..Secret::default()
                };
                let mut json = serde_json::to_value(&secret).map_err(|e| e.to_string())?;
                json["apiVersion"] = "v1".into();
                json["kind"] = "Secret".into();
                let bytes = serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())?;
                // Namespace and name are DNS labels/subdomains: `_` cannot occur in them.
                let file = Storage::objects_dir_of(dir).join(format!("{namespace}_{name}.json"));
                write_file(&file, &bytes)
            }
            Storage::Kube { writer, .. } => writer.write(namespace, name, type_, data).await,
        }
    }

    fn objects_dir_of(acme_dir: &Path) -> PathBuf {
        acme_dir.join("objects")
    }
}

/// Writes `bytes` to `path` atomically (a temporary file renamed over it), so the manifest
/// source never reads half a file; private to the owner (keys).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let describe = |e: std::io::Error| format!("{}: {e}", path.display());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(describe)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(describe)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(describe)?;
    std::fs::rename(&temporary, path).map_err(describe)
}
