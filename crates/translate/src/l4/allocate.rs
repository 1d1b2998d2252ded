//! Stable address allocation: previous addresses are kept, requested ones honoured when
//! free, the rest take the lowest free address; a full pool leaves Services pending.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sluice_config::{Diagnostic, ObjectRef};

use super::pool::AddressPool;
use super::service::{LbPort, LbService};
use super::Allocations;

/// A Service holding an address: who, its share key, its ports.
type Holder<'a> = (&'a ObjectRef, Option<&'a str>, &'a [LbPort]);

/// Who holds each address.
#[derive(Default)]
struct Holders<'a> {
    by_ip: BTreeMap<IpAddr, Vec<Holder<'a>>>,
}

impl<'a> Holders<'a> {
    /// Why `candidate` cannot have `ip`, or `None` when it can.
    fn refusal(&self, ip: IpAddr, candidate: &LbService<'_>) -> Option<String> {
        let holders = self.by_ip.get(&ip)?;
        for (object, key, ports) in holders {
            let shared = key.is_some() && *key == candidate.share_key.as_deref();
            if !shared {
                return Some(format!("{ip} is in use by {object}"));
            }
            if candidate.clashes_with(ports) {
                return Some(format!("{ip} is shared with {object}, whose ports clash"));
            }
        }
        None
    }

    fn take(&mut self, ip: IpAddr, candidate: &'a LbService<'_>) {
        let holder = (&candidate.object, candidate.share_key.as_deref(), candidate.ports.as_slice());
        self.by_ip.entry(ip).or_default().push(holder);
    }
}

/// Allocates addresses for `candidates`. Services that held addresses before go first, then
/// those requesting specific addresses, each group in age order, so that a newcomer never
/// takes an address from a holder and a dynamic allocation never takes a requested one.
pub(super) fn allocate(
    candidates: &[LbService<'_>],
    pools: &[AddressPool],
    previous: &Allocations,
    diagnostics: &mut Vec<Diagnostic>,
) -> Allocations {
    let mut order: Vec<&LbService<'_>> = candidates.iter().collect();
    order.sort_by_key(|c| (!previous.contains_key(&c.object), c.requested.is_empty(), c.created, &c.object));
    let in_pool = |ip: IpAddr| pools.iter().any(|p| p.contains(ip));
    let mut holders = Holders::default();
    let mut allocations = Allocations::new();
    for candidate in order {
        let pending = |reason: String| Diagnostic::object(candidate.object.clone(), candidate.requested_field, reason);
        let chosen: Result<Vec<IpAddr>, Diagnostic> = if !candidate.requested.is_empty() {
            let refusal = candidate.requested.iter().find_map(|ip| {
                if !in_pool(*ip) {
                    Some(format!("{ip} is not in any --lb-pool"))
                } else {
                    holders.refusal(*ip, candidate)
                }
            });
            match refusal {
                Some(reason) => Err(pending(format!("{reason}; the {} waits for it", candidate.object.kind))),
                None => Ok(candidate.requested.clone()),
            }
        } else {
            let kept = previous.get(&candidate.object).filter(|ips| {
                !ips.is_empty() && ips.iter().all(|ip| in_pool(*ip) && holders.refusal(*ip, candidate).is_none())
            });
            match kept {
                Some(ips) => Ok(ips.clone()),
                None => first_free(pools, &holders, candidate).map(|ip| vec![ip]).ok_or_else(|| {
                    let field = if candidate.object.kind == "Service" { "spec.type" } else { "spec.addresses" };
                    let reason = format!(
                        "no free address in the --lb-pool pools; the {} waits until one is freed",
                        candidate.object.kind
                    );
                    Diagnostic::object(candidate.object.clone(), field, reason)
                }),
            }
        };
        match chosen {
            Ok(ips) => {
                for ip in &ips {
                    holders.take(*ip, candidate);
                }
                allocations.insert(candidate.object.clone(), ips);
            }
            Err(diagnostic) => diagnostics.push(diagnostic),
        }
    }
    allocations
}

/// An address of the same share key without a port clash, else the lowest free address.
fn first_free(pools: &[AddressPool], holders: &Holders<'_>, candidate: &LbService<'_>) -> Option<IpAddr> {
    if candidate.share_key.is_some() {
        let shared = holders.by_ip.keys().find(|ip| holders.refusal(**ip, candidate).is_none());
        if let Some(ip) = shared {
            return Some(*ip);
        }
    }
    pools.iter().flat_map(AddressPool::addresses).find(|ip| !holders.by_ip.contains_key(ip))
}
