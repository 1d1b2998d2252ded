//! `ssl-passthrough`: which hosts' TLS connections the HTTPS listener relays untouched, and
//! to which backend — ingress-nginx's rules: any Ingress with a rule for the host turns it
//! on; the backend is the host's `/` path (none: ignored with a warning); names match
//! exactly, so wildcard hosts never pass through. The plan decides each host again when it
//! routes it, so a change costs the hosts it touches.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_config::{BackendId, Diagnostic, HostMatch, ObjectRef, PassthroughTable};

use crate::backends::BackendKey;
use crate::ingress::ValidIngress;

/// The decision for one host that some Ingress asks to pass through.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPassthrough {
    /// The Ingresses asking (with a rule for the host), oldest first.
    requesters: Vec<Arc<ObjectRef>>,
    /// The backend of the host's `/` path and the Ingress routing it, or why there is none.
    outcome: Result<(BackendId, Arc<ObjectRef>), String>,
}

/// The passthrough decision of every host some served Ingress asks for.
#[derive(Debug, Default)]
pub(crate) struct PassthroughHosts {
    hosts: BTreeMap<HostMatch, HostPassthrough>,
    /// A decision changed since [`PassthroughHosts::take_changed`] last said so.
    changed: bool,
}

impl PassthroughHosts {
    /// Decides `host` again from the Ingresses competing for it (in precedence order);
    /// `id` gives the id of an acquired backend.
    pub(crate) fn route_host(
        &mut self,
        host: &HostMatch,
        contenders: &[&Arc<ValidIngress>],
        id: impl Fn(&BackendKey) -> BackendId,
    ) {
        let rules_for_host =
            |ingress: &&&Arc<ValidIngress>| !ingress.is_canary() && ingress.rules.iter().any(|rule| rule.host == *host);
        let requesters: Vec<Arc<ObjectRef>> = contenders
            .iter()
            .filter(rules_for_host)
            .filter(|ingress| ingress.annotations.ssl_passthrough)
            .map(|ingress| ingress.owner.clone())
            .collect();
        if requesters.is_empty() {
            self.changed |= self.hosts.remove(host).is_some();
            return;
        }
        let outcome = match host {
            HostMatch::Exact(_) => contenders
                .iter()
                .filter(rules_for_host)
                .find_map(|ingress| {
                    let mut paths = ingress.rules.iter().filter(|rule| rule.host == *host).flat_map(|rule| &rule.paths);
                    let root = paths.find(|path| matches!(&*path.written, "/" | ""))?;
                    Some((id(&root.backend.key), ingress.owner.clone()))
                })
                .ok_or_else(|| {
                    format!("host {host} has no `/` path to pass TLS through to; served without passthrough")
                }),
            _ => Err(format!("ssl-passthrough matches SNI names exactly; host {host} is served without it")),
        };
        let decided = HostPassthrough { requesters, outcome };
        if self.hosts.get(host) != Some(&decided) {
            self.hosts.insert(host.clone(), decided);
            self.changed = true;
        }
    }

    /// True once after any host's decision changed.
    pub(crate) fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The table the HTTPS listener uses, and warnings for the Ingresses whose request is
    /// not honoured. Without `enabled` (`--enable-ssl-passthrough`) the table is empty and
    /// every request is ignored with a warning, as ingress-nginx does.
    pub(crate) fn table(&self, enabled: bool, prefix: &str) -> (PassthroughTable, Vec<Diagnostic>) {
        let field = format!("metadata.annotations[{prefix}/ssl-passthrough]");
        let mut warnings = Vec::new();
        let mut entries = Vec::new();
        for (host, decided) in &self.hosts {
            let problem = match (&decided.outcome, host) {
                (_, _) if !enabled => "ignored: Sluice runs without --enable-ssl-passthrough",
                (Ok((backend, owner)), HostMatch::Exact(name)) => {
                    entries.push((name.clone(), *backend, owner.clone()));
                    continue;
                }
                (Ok(_), _) => continue,
                (Err(reason), _) => reason.as_str(),
            };
            for requester in &decided.requesters {
                warnings.push(Diagnostic::warning((**requester).clone(), field.clone(), problem));
            }
        }
        (PassthroughTable::new(entries), warnings)
    }
}
