//! References across objects: ReferenceGrants, namespace label selectors, and the ids given
//! to the backends Gateway routes forward to.

use std::collections::BTreeMap;
use std::sync::Arc;

use foldhash::HashMap;
use sluice_config::BackendId;
use sluice_store::gateway_api::experimental::gateways::GatewayListenersAllowedRoutesNamespacesSelector;
use sluice_store::{ObjectKey, Store};

use super::GROUP;
use crate::backends::BackendKey;

/// Whether a ReferenceGrant in the target's namespace lets objects of kind `from.0` in
/// namespace `from.1` refer to `to` = (group, kind, namespace, name).
pub(crate) fn granted(store: &Store, from: (&str, &str), to: (&str, &str, &str, &str)) -> bool {
    let (from_kind, from_namespace) = from;
    let (to_group, to_kind, to_namespace, to_name) = to;
    let start = ObjectKey::new(to_namespace, "");
    store.reference_grants.range(start..).take_while(|(key, _)| key.namespace == to_namespace).any(|(_, grant)| {
        let from_ok =
            grant.spec.from.iter().any(|f| f.group == GROUP && f.kind == from_kind && f.namespace == from_namespace);
        let to_ok =
            grant.spec.to.iter().any(|t| {
                t.group == to_group && t.kind == to_kind && t.name.as_deref().is_none_or(|name| name == to_name)
            });
        from_ok && to_ok
    })
}

/// The label the API server puts on every Namespace, naming it.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A label selector (`matchLabels` and `matchExpressions`), checked on namespace labels.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    labels: BTreeMap<String, String>,
    expressions: Vec<(String, Operator, Vec<String>)>,
}

/// A `matchExpressions` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Selector {
    /// A listener's `allowedRoutes.namespaces.selector`.
    pub(crate) fn of_listener(selector: &GatewayListenersAllowedRoutesNamespacesSelector) -> Result<Self, String> {
        let mut expressions = Vec::new();
        for expression in selector.match_expressions.iter().flatten() {
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid selector operator")),
            };
            expressions.push((expression.key.clone(), operator, expression.values.clone().unwrap_or_default()));
        }
        Ok(Self { labels: selector.match_labels.clone().unwrap_or_default(), expressions })
    }

    /// Whether namespace `name` with `labels` matches (an empty selector matches
    /// everything). Every namespace carries `kubernetes.io/metadata.name: <name>`, which the
    /// API server sets: in manifests mode the Namespace object may not say it, or not exist.
    pub(crate) fn matches_namespace(&self, name: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        let get = |key: &str| match key {
            NAME_LABEL => Some(name),
            _ => labels.and_then(|l| l.get(key)).map(String::as_str),
        };
        let listed = |values: &[String], v: &str| values.iter().any(|value| value == v);
        self.labels.iter().all(|(k, v)| get(k) == Some(v.as_str()))
            && self.expressions.iter().all(|(key, operator, values)| match operator {
                Operator::In => get(key).is_some_and(|v| listed(values, v)),
                Operator::NotIn => get(key).is_none_or(|v| !listed(values, v)),
                Operator::Exists => get(key).is_some(),
                Operator::DoesNotExist => get(key).is_none(),
            })
    }
}

/// Ids for the backends of Gateway routes, after the Ingresses' ones.
pub(crate) struct BackendIds {
    first: u32,
    keys: Vec<Arc<BackendKey>>,
    ids: HashMap<Arc<BackendKey>, BackendId>,
}

impl BackendIds {
    /// Ids starting at `first`.
    pub(crate) fn new(first: u32) -> Self {
        Self { first, keys: Vec::new(), ids: HashMap::default() }
    }

    /// The id of `key`, given on first use.
    pub(crate) fn id(&mut self, key: BackendKey) -> BackendId {
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let key = Arc::new(key);
        let index = u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        let id = BackendId(self.first.saturating_add(index));
        self.keys.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// The keys, in id order.
    pub(crate) fn into_keys(self) -> Vec<Arc<BackendKey>> {
        self.keys
    }
}
