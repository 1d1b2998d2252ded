//! Which Ingresses are ours: by `spec.ingressClassName`, the legacy annotation, or the
//! default IngressClass.

use sluice_store::k8s_openapi::api::networking::v1::Ingress;
use sluice_store::{ObjectKey, Store};

use crate::Options;

/// The `spec.controller` value of IngressClasses that Sluice implements.
pub const CONTROLLER_NAME: &str = "sluice.dev/ingress-controller";
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// How an Ingress names its class; kept with the Ingress so that deciding whether it is
/// ours again (after an IngressClass changed) does not need the Ingress itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClassChoice {
    /// `spec.ingressClassName`.
    Named(String),
    /// The legacy `kubernetes.io/ingress.class` annotation.
    Legacy(String),
    /// Neither: the default class decides.
    Unset,
}

impl ClassChoice {
    /// How `ingress` names its class.
    pub(crate) fn of(ingress: &Ingress) -> Self {
        if let Some(name) = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.as_deref()) {
            return Self::Named(name.to_owned());
        }
        let annotations = ingress.metadata.annotations.as_ref();
        match annotations.and_then(|a| a.get(LEGACY_CLASS_ANNOTATION)) {
            Some(legacy) => Self::Legacy(legacy.clone()),
            None => Self::Unset,
        }
    }
}

/// Decides which Ingresses are ours, given the IngressClasses of one build.
pub(crate) struct ClassFilter<'a> {
    store: &'a Store,
    options: &'a Options,
    /// Whether Ingresses that name no class are ours (looked up once per build).
    unset_is_ours: bool,
}

impl<'a> ClassFilter<'a> {
    pub(crate) fn new(store: &'a Store, options: &'a Options) -> Self {
        let unset_is_ours = options.watch_without_class || has_default_class(store, &options.controller_class);
        Self { store, options, unset_is_ours }
    }

    /// True when an Ingress of this class belongs to this controller.
    pub(crate) fn accepts(&self, choice: &ClassChoice) -> bool {
        match choice {
            ClassChoice::Named(name) => {
                *name == self.options.ingress_class || class_is_ours(self.store, name, &self.options.controller_class)
            }
            ClassChoice::Legacy(legacy) => *legacy == self.options.ingress_class,
            ClassChoice::Unset => self.unset_is_ours,
        }
    }
}

fn class_is_ours(store: &Store, name: &str, controller: &str) -> bool {
    store
        .ingress_classes
        .get(&ObjectKey::new("", name))
        .and_then(|class| class.spec.as_ref())
        .is_some_and(|spec| spec.controller.as_deref() == Some(controller))
}

fn has_default_class(store: &Store, controller: &str) -> bool {
    store.ingress_classes.values().any(|class| {
        let ours = class.spec.as_ref().is_some_and(|s| s.controller.as_deref() == Some(controller));
        let default = class
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
            .is_some_and(|v| v == "true");
        ours && default
    })
}
