//! Kubernetes label selectors (`matchLabels` and `matchExpressions`), parsed once and checked
//! on labels: Gateway listeners' namespace selectors, MetalLB's pool, namespace, Service and
//! node selectors.

use std::collections::BTreeMap;

use sluice_store::gateway_api::experimental::gateways::GatewayListenersAllowedRoutesNamespacesSelector;
use sluice_store::k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The label the API server puts on every Namespace, naming it.
const NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A label selector (`matchLabels` and `matchExpressions`).
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
        let expressions = selector.match_expressions.iter().flatten();
        Self::from_parts(
            selector.match_labels.as_ref(),
            expressions.map(|e| (e.key.as_str(), e.operator.as_str(), e.values.as_deref().unwrap_or_default())),
        )
    }

    /// A core `metav1.LabelSelector` (MetalLB's selectors).
    pub(crate) fn of(selector: &LabelSelector) -> Result<Self, String> {
        let expressions = selector.match_expressions.iter().flatten();
        Self::from_parts(
            selector.match_labels.as_ref(),
            expressions.map(|e| (e.key.as_str(), e.operator.as_str(), e.values.as_deref().unwrap_or_default())),
        )
    }

    fn from_parts<'a>(
        labels: Option<&BTreeMap<String, String>>,
        expressions: impl Iterator<Item = (&'a str, &'a str, &'a [String])>,
    ) -> Result<Self, String> {
        let mut parsed = Vec::new();
        for (key, operator, values) in expressions {
            let operator = match operator {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => return Err(format!("{other:?} is not a valid selector operator")),
            };
            parsed.push((key.to_owned(), operator, values.to_vec()));
        }
        Ok(Self { labels: labels.cloned().unwrap_or_default(), expressions: parsed })
    }

    /// Whether an object with `labels` matches (an empty selector matches everything).
    pub(crate) fn matches(&self, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.matches_with(|key| labels.and_then(|l| l.get(key)).map(String::as_str))
    }

    /// Whether namespace `name` with `labels` matches (an empty selector matches
    /// everything). Every namespace carries `kubernetes.io/metadata.name: <name>`, which the
    /// API server sets: in manifests mode the Namespace object may not say it, or not exist.
    pub(crate) fn matches_namespace(&self, name: &str, labels: Option<&BTreeMap<String, String>>) -> bool {
        self.matches_with(|key| match key {
            NAME_LABEL => Some(name),
            _ => labels.and_then(|l| l.get(key)).map(String::as_str),
        })
    }

    fn matches_with<'l>(&self, get: impl Fn(&str) -> Option<&'l str>) -> bool {
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
