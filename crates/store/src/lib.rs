//! The store of typed Kubernetes objects.
//!
//! Sources (the manifest directory, later the Kubernetes API) put objects here; translation
//! reads them. The store holds only the kinds Sluice acts on, keyed by namespace and name,
//! in sorted maps so that every walk over it is deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use k8s_openapi;

/// Namespace and name of a namespaced object (namespace empty for cluster-scoped kinds).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The namespace; `default` when the manifest leaves it out.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `meta`, with the Kubernetes default namespace when none is given.
    pub fn of(meta: &ObjectMeta) -> Self {
        Self {
            namespace: meta.namespace.clone().unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// A key from its parts.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

/// The namespace of objects that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The Secret type whose certificates the HTTPS listener serves.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Whether Sluice keeps a Secret: `kubernetes.io/tls` ones (served certificates); Secrets
/// of any type holding `ca.crt` or `tls.crt` (`proxy-ssl-secret`: trust anchors and client
/// certificates towards backends); and basic-auth Secrets: an htpasswd file under `auth`
/// (`auth-file`), or only password hashes, one key per user (`auth-map`). Every other
/// Secret (plain passwords, tokens) is never stored, by both sources.
pub fn keeps_secret(secret: &Secret) -> bool {
    let has = |key: &str| {
        secret.data.as_ref().is_some_and(|d| d.contains_key(key))
            || secret.string_data.as_ref().is_some_and(|d| d.contains_key(key))
    };
    secret.type_.as_deref() == Some(TLS_SECRET_TYPE)
        || has("ca.crt")
        || has("tls.crt")
        || has("auth")
        || holds_only_hashes(secret)
}

/// True when every value of a non-empty Secret starts like a password hash htpasswd writes.
fn holds_only_hashes(secret: &Secret) -> bool {
    const HASHES: [&[u8]; 7] = [b"$2y$", b"$2a$", b"$2b$", b"$apr1$", b"$1$", b"$5$", b"$6$"];
    let is_hash = |value: &[u8]| {
        let value = value.trim_ascii_start();
        HASHES.iter().any(|prefix| value.starts_with(prefix)) || value.starts_with(b"{SHA}")
    };
    let data = secret.data.iter().flatten().map(|(_, v)| v.0.as_slice());
    let strings = secret.string_data.iter().flatten().map(|(_, v)| v.as_bytes());
    let mut values = data.chain(strings).peekable();
    values.peek().is_some() && values.all(is_hash)
}

/// One object of a kind Sluice acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// networking.k8s.io/v1 Ingress.
    Ingress(Box<Ingress>),
    /// networking.k8s.io/v1 IngressClass (cluster-scoped).
    IngressClass(Box<IngressClass>),
    /// v1 Service.
    Service(Box<Service>),
    /// discovery.k8s.io/v1 EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// v1 Endpoints, used only for Services without EndpointSlices.
    Endpoints(Box<Endpoints>),
    /// v1 Secret; only those [`keeps_secret`] accepts are kept.
    Secret(Box<Secret>),
    /// v1 ConfigMap: the controller's global settings (`--configmap`) and the response
    /// headers `custom-headers` names.
    ConfigMap(Box<ConfigMap>),
}

impl Object {
    /// The object's kind as written in manifests.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Ingress(_) => "Ingress",
            Object::IngressClass(_) => "IngressClass",
            Object::Service(_) => "Service",
            Object::EndpointSlice(_) => "EndpointSlice",
            Object::Endpoints(_) => "Endpoints",
            Object::Secret(_) => "Secret",
            Object::ConfigMap(_) => "ConfigMap",
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Ingress(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::EndpointSlice(o) => &o.metadata,
            Object::Endpoints(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
        }
    }

    /// The store key: cluster-scoped kinds have an empty namespace.
    pub fn key(&self) -> ObjectKey {
        match self {
            Object::IngressClass(o) => ObjectKey::new("", o.metadata.name.as_deref().unwrap_or_default()),
            other => ObjectKey::of(other.meta()),
        }
    }
}

/// All objects Sluice knows, by kind, then namespace/name.
///
/// Objects are shared (`Arc`): a clone of the store is cheap, and an object that was not
/// replaced is the same allocation as before, which is how translation tells in one pointer
/// comparison that there is nothing to redo for it.

#[derive(Debug, Clone, Default)]
pub struct Store {
    /// Ingresses of every class (translation picks ours).
    pub ingresses: BTreeMap<ObjectKey, Arc<Ingress>>,
    /// IngressClasses, keyed with an empty namespace.
    pub ingress_classes: BTreeMap<ObjectKey, Arc<IngressClass>>,
    /// Services.
    pub services: BTreeMap<ObjectKey, Arc<Service>>,
    /// EndpointSlices (find a Service's by the `kubernetes.io/service-name` label).
    pub endpoint_slices: BTreeMap<ObjectKey, Arc<EndpointSlice>>,
    /// Legacy Endpoints, named like their Service.
    pub endpoints: BTreeMap<ObjectKey, Arc<Endpoints>>,
    /// Secrets holding certificates or trust anchors ([`keeps_secret`]).
    pub secrets: BTreeMap<ObjectKey, Arc<Secret>>,
    /// ConfigMaps.
    pub config_maps: BTreeMap<ObjectKey, Arc<ConfigMap>>,
}

impl Store {
    /// Adds or replaces an object. Returns false when an object of the same kind and key was
    /// already present (the caller decides whether that is a duplicate to report).
    pub fn insert(&mut self, object: Object) -> bool {
        let key = object.key();
        let previous = match object {
            Object::Ingress(o) => self.ingresses.insert(key, Arc::new(*o)).is_some(),
            Object::IngressClass(o) => self.ingress_classes.insert(key, Arc::new(*o)).is_some(),
            Object::Service(o) => self.services.insert(key, Arc::new(*o)).is_some(),
            Object::EndpointSlice(o) => self.endpoint_slices.insert(key, Arc::new(*o)).is_some(),
            Object::Endpoints(o) => self.endpoints.insert(key, Arc::new(*o)).is_some(),
            Object::Secret(o) => self.secrets.insert(key, Arc::new(*o)).is_some(),
            Object::ConfigMap(o) => self.config_maps.insert(key, Arc::new(*o)).is_some(),
        };
        !previous
    }

    /// True when the store holds exactly this object (same kind, key and content).
    pub fn holds(&self, object: &Object) -> bool {
        let key = object.key();
        match object {
            Object::Ingress(o) => self.ingresses.get(&key).map(|held| &**held) == Some(&**o),
            Object::IngressClass(o) => self.ingress_classes.get(&key).map(|held| &**held) == Some(&**o),
            Object::Service(o) => self.services.get(&key).map(|held| &**held) == Some(&**o),
            Object::EndpointSlice(o) => self.endpoint_slices.get(&key).map(|held| &**held) == Some(&**o),
            Object::Endpoints(o) => self.endpoints.get(&key).map(|held| &**held) == Some(&**o),
            Object::Secret(o) => self.secrets.get(&key).map(|held| &**held) == Some(&**o),
            Object::ConfigMap(o) => self.config_maps.get(&key).map(|held| &**held) == Some(&**o),
        }
    }

    /// Removes the object of this kind and key; true if there was one.
    pub fn remove(&mut self, kind: &str, key: &ObjectKey) -> bool {
        match kind {
            "Ingress" => self.ingresses.remove(key).is_some(),
            "IngressClass" => self.ingress_classes.remove(key).is_some(),
            "Service" => self.services.remove(key).is_some(),
            "EndpointSlice" => self.endpoint_slices.remove(key).is_some(),
            "Endpoints" => self.endpoints.remove(key).is_some(),
            "Secret" => self.secrets.remove(key).is_some(),
            "ConfigMap" => self.config_maps.remove(key).is_some(),
            _ => false,
        }
    }

    /// Counts of objects by kind, for metrics.
    pub fn counts(&self) -> [(&'static str, usize); 7] {
        [
            ("Ingress", self.ingresses.len()),
            ("IngressClass", self.ingress_classes.len()),
            ("Service", self.services.len()),
            ("EndpointSlice", self.endpoint_slices.len()),
            ("Endpoints", self.endpoints.len()),
            ("Secret", self.secrets.len()),
            ("ConfigMap", self.config_maps.len()),
        ]
    }

    /// Whether an object of this kind and key is present.
    pub fn contains(&self, kind: &str, key: &ObjectKey) -> bool {
        match kind {
            "Ingress" => self.ingresses.contains_key(key),
            "IngressClass" => self.ingress_classes.contains_key(key),
            "Service" => self.services.contains_key(key),
            "EndpointSlice" => self.endpoint_slices.contains_key(key),
            "Endpoints" => self.endpoints.contains_key(key),
            "Secret" => self.secrets.contains_key(key),
            "ConfigMap" => self.config_maps.contains_key(key),
            _ => false,
        }
    }

    /// Number of objects of every kind.
    pub fn len(&self) -> usize {
        self.ingresses.len()
            + self.ingress_classes.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.endpoints.len()
            + self.secrets.len()
            + self.config_maps.len()
    }

    /// True when the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
