//! TCPRoutes and UDPRoutes: their backendRefs, by weight, become the backends of the
//! Gateway's TCP or UDP listener they attach to, served by the L4 plane. A listener serves
//! one route: the oldest attached (others are reported).

use std::sync::Arc;

use sluice_config::{Diagnostic, GatewayPath, ObjectRef, UpstreamPolicy};
use sluice_store::{ObjectKey, Store};

use super::filters::Found;
use super::http_route::{CompiledRoute, RefView, Rule, RuleContext};
use super::refs::BackendIds;

/// Compiles a TCPRoute's or UDPRoute's first rule into one match forwarding to its
/// weighted backends; further rules have no way to be chosen, and are reported.
pub(crate) fn compile<'a>(
    kind: &'static str,
    key: &ObjectKey,
    rules: impl Iterator<Item = Vec<RefView<'a>>>,
    store: &Store,
    backends: &mut BackendIds,
    diagnostics: &mut Vec<Diagnostic>,
) -> CompiledRoute {
    let owner = Arc::new(ObjectRef::new(kind, &key.namespace, &key.name));
    let mut compiled = CompiledRoute::default();
    for (r, refs) in rules.enumerate() {
        let mut cx =
            RuleContext { owner: &owner, rule: r, store, diagnostics: &mut *diagnostics, compiled: &mut compiled };
        if r > 0 {
            let reason = "only the first rule of a TCPRoute or UDPRoute is served".to_owned();
            cx.problem(cx.field("backendRefs"), reason);
            continue;
        }
        let action = cx.action(refs.into_iter(), backends, None);
        let found = Found::default();
        let policy = Arc::new(UpstreamPolicy::default());
        let rule = Rule { found: &found, action: action.as_ref(), policy: &policy, invalid: false };
        let rank = (2, std::cmp::Reverse(0), true, std::cmp::Reverse(0), std::cmp::Reverse(0));
        cx.push(0, (GatewayPath::Prefix("".into()), Vec::new(), rank), &rule);
    }
    compiled
}
