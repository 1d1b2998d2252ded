//! The address pools: `--lb-pool` ranges (one pool, `--lb-pool`, that every Service may
//! use) and MetalLB's IPAddressPools with their `autoAssign`, `avoidBuggyIPs` and
//! `serviceAllocation`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sluice_config::{Diagnostic, ObjectRef};
use sluice_store::{IPAddressPool, Store};

use super::pool::AddressPool;
use crate::selector::Selector;

/// The name the `--lb-pool` ranges go by in status and diagnostics.
pub(crate) const FLAG_POOL: &str = "--lb-pool";

/// One pool: its ranges and who may take addresses from it.
#[derive(Debug)]
pub(crate) struct Pool {
    /// `namespace/name` of the IPAddressPool, or `--lb-pool`.
    pub id: String,
    /// `metadata.name`: what annotations and advertisements call it.
    pub name: String,
    /// The pool's labels (for advertisements' `ipAddressPoolSelectors`).
    pub labels: BTreeMap<String, String>,
    ranges: Vec<AddressPool>,
    /// Services get addresses from it without asking for it.
    pub auto_assign: bool,
    avoid_buggy_ips: bool,
    /// `serviceAllocation`, when set.
    pub allocation: Option<Allocation>,
}

/// `serviceAllocation`: the Services a pool is meant for, and its priority.
#[derive(Debug)]
pub(crate) struct Allocation {
    /// Lower first; 0 (unset) after every pool with one.
    pub priority: i32,
    namespaces: Vec<String>,
    namespace_selectors: Vec<Selector>,
    service_selectors: Vec<Selector>,
}

/// What a pool needs to know of a Service (or Gateway) to tell whether it may use it.
pub(crate) struct Applicant<'a> {
    pub namespace: &'a str,
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
    pub labels: Option<&'a BTreeMap<String, String>>,
}

impl Pool {
    /// True when `ip` is in one of the pool's ranges.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// The addresses handed out, in order (without `.0` and `.255` with `avoidBuggyIPs`).
    pub(crate) fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let buggy = |ip: &IpAddr| matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255));
        self.ranges.iter().flat_map(AddressPool::addresses).filter(move |ip| !(self.avoid_buggy_ips && buggy(ip)))
    }

    /// Whether `applicant` may take addresses from the pool (MetalLB's compatibility check:
    /// the namespace list and selectors, then the Service selectors).
    pub(crate) fn admits(&self, applicant: &Applicant<'_>) -> bool {
        let Some(allocation) = &self.allocation else {
            return true;
        };
        let by_name = allocation.namespaces.iter().any(|n| n == applicant.namespace);
        let by_labels = allocation
            .namespace_selectors
            .iter()
            .any(|s| s.matches_namespace(applicant.namespace, applicant.namespace_labels));
        let namespaces_set = !allocation.namespaces.is_empty() || !allocation.namespace_selectors.is_empty();
        if namespaces_set && !by_name && !by_labels {
            return false;
        }
        allocation.service_selectors.is_empty()
            || allocation.service_selectors.iter().any(|s| s.matches(applicant.labels))
    }
}

/// Every pool: `--lb-pool` first, then the IPAddressPools in name order. A pool with an
/// unreadable field, or overlapping one read before, is a diagnostic and left out.
pub(crate) fn read(store: &Store, flags: &[AddressPool], diagnostics: &mut Vec<Diagnostic>) -> Vec<Pool> {
    let mut pools = Vec::new();
    if !flags.is_empty() {
        pools.push(Pool {
            id: FLAG_POOL.into(),
            name: FLAG_POOL.into(),
            labels: BTreeMap::new(),
            ranges: flags.to_vec(),
            auto_assign: true,
            avoid_buggy_ips: false,
            allocation: None,
        });
    }
    for (key, object) in &store.ip_address_pools {
        let reference = ObjectRef::new("IPAddressPool", &key.namespace, &key.name);
        match read_one(key.namespace.as_str(), &key.name, object) {
            Ok(pool) => {
                let overlap = pools.iter().find(|p| pool.ranges.iter().any(|r| p.ranges.iter().any(|q| r.overlaps(q))));
                match overlap {
                    Some(other) => diagnostics.push(Diagnostic::object(
                        reference,
                        "spec.addresses",
                        format!("overlaps pool {}; this pool is not used", other.id),
                    )),
                    None => pools.push(pool),
                }
            }
            Err((field, reason)) => diagnostics.push(Diagnostic::object(reference, &field, reason)),
        }
    }
    pools
}

fn read_one(namespace: &str, name: &str, object: &IPAddressPool) -> Result<Pool, (String, String)> {
    let spec = &object.spec;
    if spec.addresses.is_empty() {
        return Err(("spec.addresses".into(), "no addresses".into()));
    }
    let mut ranges = Vec::new();
    for (i, text) in spec.addresses.iter().enumerate() {
        let range = text.parse::<AddressPool>().map_err(|e| (format!("spec.addresses[{i}]"), e))?;
        ranges.push(range);
    }
    let allocation = match &spec.service_allocation {
        None => None,
        Some(a) => {
            let parse = |selectors: &[_], field: &str| -> Result<Vec<Selector>, (String, String)> {
                selectors
                    .iter()
                    .enumerate()
                    .map(|(i, s)| Selector::of(s).map_err(|e| (format!("spec.serviceAllocation.{field}[{i}]"), e)))
                    .collect()
            };
            Some(Allocation {
                priority: a.priority,
                namespaces: a.namespaces.clone(),
                namespace_selectors: parse(&a.namespace_selectors, "namespaceSelectors")?,
                service_selectors: parse(&a.service_selectors, "serviceSelectors")?,
            })
        }
    };
    Ok(Pool {
        id: format!("{namespace}/{name}"),
        name: name.to_owned(),
        labels: object.metadata.labels.clone().unwrap_or_default(),
        ranges,
        auto_assign: spec.auto_assign.unwrap_or(true),
        avoid_buggy_ips: spec.avoid_buggy_ips,
        allocation,
    })
}

/// The pools to try for `applicant` when it asks for none, in MetalLB's order: the pools
/// meant for it (`serviceAllocation` admitting it) by priority, then every auto-assigning
/// pool without `serviceAllocation`.
pub(crate) fn candidates<'p>(pools: &'p [Pool], applicant: &Applicant<'_>) -> Vec<&'p Pool> {
    let mut pinned: Vec<&Pool> =
        pools.iter().filter(|p| p.auto_assign && p.allocation.is_some() && p.admits(applicant)).collect();
    pinned.sort_by_key(|p| {
        let priority = p.allocation.as_ref().map_or(0, |a| a.priority);
        (priority <= 0, priority)
    });
    pinned.extend(pools.iter().filter(|p| p.auto_assign && p.allocation.is_none()));
    pinned
}
