//! Which Ingresses are ours: by `spec.ingressClassName`, the legacy annotation, or the
//! default IngressClass.

use sluice_store::k8s_openapi::api::networking::v1::Ingress;
use sluice_store::{ObjectKey, Store};

use crate::Options;

/// The `spec.controller` value of IngressClasses that Sluice implements.
pub const CONTROLLER_NAME: &str = "sluice.dev/ingress-controller";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// True when `ingress` belongs to this controller.
pub(crate) fn is_ours(ingress: &Ingress, store: &Store, options: &Options) -> bool {
    let class_name = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref());
    if let Some(name) = class_name {
        return name == options.ingress_class || class_is_ours(store, name);
    }
    let annotations = ingress.metadata.annotations.as_ref();
    if let Some(legacy) = annotations.and_then(|a| a.get(LEGACY_CLASS_ANNOTATION)) {
        return *legacy == options.ingress_class;
    }
    options.watch_without_class || has_default_class(store)
}

fn class_is_ours(store: &Store, name: &str) -> bool {
    store
        .ingress_classes
        .get(&ObjectKey::new("", name))
        .and_then(|class| class.spec.as_ref())
        .is_some_and(|spec| spec.controller.as_deref() == Some(CONTROLLER_NAME))
}

fn has_default_class(store: &Store) -> bool {
    store.ingress_classes.values().any(|class| {
        let ours = class.spec.as_ref().is_some_and(|s| s.controller.as_deref() == Some(CONTROLLER_NAME));
        let default = class
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .is_some_and(|v| v == "true");
        ours && default
    })
}
