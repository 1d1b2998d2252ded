//! Stable address allocation: previous addresses are kept, requested ones honoured when
//! free, the rest take the lowest free address of the first pool that serves the Service
//! (MetalLB's order: a pool asked for by name; else the pools whose `serviceAllocation`
//! admits it, by priority; then every auto-assigning pool); a full pool leaves it pending.

use std::collections::BTreeMap;
use std::net::IpAddr;

use sluice_config::{Diagnostic, ObjectRef};

use super::pools::{self, Applicant, Pool};
use super::service::{Families, Family, LbPort, LbService};
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
    pools: &[Pool],
    previous: &Allocations,
    diagnostics: &mut Vec<Diagnostic>,
) -> Allocations {
    let mut order: Vec<&LbService<'_>> = candidates.iter().collect();
    order.sort_by_key(|c| (!previous.contains_key(&c.object), c.requested.is_empty(), c.created, &c.object));
    let mut holders = Holders::default();
    let mut allocations = Allocations::new();
    for candidate in order {
        match choose(candidate, pools, previous, &holders) {
            Ok(ips) => {
                for ip in &ips {
                    holders.take(*ip, candidate);
                }
                allocations.insert(candidate.object.clone(), ips);
            }
            Err((field, reason)) => diagnostics.push(Diagnostic::object(candidate.object.clone(), field, reason)),
        }
    }
    allocations
}

/// The addresses for one candidate, or the field and reason it waits.
fn choose(
    candidate: &LbService<'_>,
    pools: &[Pool],
    previous: &Allocations,
    holders: &Holders<'_>,
) -> Result<Vec<IpAddr>, (&'static str, String)> {
    let applicant = Applicant {
        namespace: &candidate.object.namespace,
        namespace_labels: candidate.namespace_labels,
        labels: candidate.labels,
    };
    let kind = &candidate.object.kind;
    let usable = |ip: IpAddr| -> Result<(), String> {
        let pool = pools.iter().find(|p| p.contains(ip)).ok_or_else(|| format!("{ip} is not in any address pool"))?;
        if let Some((name, _)) = &candidate.pool {
            if pool.name != *name {
                return Err(format!("{ip} is in pool {}, not in {name}", pool.id));
            }
        }
        if !pool.admits(&applicant) {
            return Err(format!("{ip} is in pool {}, whose serviceAllocation does not admit this {kind}", pool.id));
        }
        holders.refusal(ip, candidate).map_or(Ok(()), Err)
    };
    if !candidate.requested.is_empty() {
        if let Some(reason) = candidate.requested.iter().find_map(|ip| usable(*ip).err()) {
            return Err((candidate.requested_field, format!("{reason}; the {kind} waits for it")));
        }
        return Ok(candidate.requested.clone());
    }
    if let Some(kept) = previous.get(&candidate.object) {
        if fits(candidate.families, kept) && kept.iter().all(|ip| usable(*ip).is_ok()) {
            return Ok(kept.clone());
        }
    }
    let tried: Vec<&Pool> = match &candidate.pool {
        Some((name, field)) => {
            let named: Vec<&Pool> = pools.iter().filter(|p| p.name == *name).collect();
            if named.is_empty() {
                return Err((field, format!("there is no address pool named {name:?}; the {kind} waits for it")));
            }
            if let Some(pool) = named.iter().find(|p| !p.admits(&applicant)) {
                return Err((field, format!("pool {}'s serviceAllocation does not admit this {kind}", pool.id)));
            }
            named
        }
        None => pools::candidates(pools, &applicant),
    };
    tried.iter().find_map(|pool| take_from(pool, candidate, holders)).ok_or_else(|| {
        let field =
            candidate.pool.as_ref().map_or(if *kind == "Service" { "spec.type" } else { "spec.addresses" }, |p| p.1);
        let what = match candidate.families {
            Families::Dual { required: true } => "addresses of both families",
            _ => "address",
        };
        (field, format!("no free {what} in the address pools that serve it; the {kind} waits until one is freed"))
    })
}

/// Whether `ips` are what `families` asks for.
fn fits(families: Families, ips: &[IpAddr]) -> bool {
    let v4 = ips.iter().filter(|ip| ip.is_ipv4()).count();
    let v6 = ips.len() - v4;
    match families {
        Families::Any => ips.len() == 1,
        Families::Single(Family::V4) => (v4, v6) == (1, 0),
        Families::Single(Family::V6) => (v4, v6) == (0, 1),
        Families::Dual { required: true } => (v4, v6) == (1, 1),
        Families::Dual { required: false } => v4 <= 1 && v6 <= 1 && !ips.is_empty(),
    }
}

/// Addresses from `pool` for the candidate's families, or `None` when it cannot serve them.
fn take_from(pool: &Pool, candidate: &LbService<'_>, holders: &Holders<'_>) -> Option<Vec<IpAddr>> {
    let free = |family: Option<Family>| first_free(pool, holders, candidate, family);
    match candidate.families {
        Families::Any => free(None).map(|ip| vec![ip]),
        Families::Single(family) => free(Some(family)).map(|ip| vec![ip]),
        Families::Dual { required } => match (free(Some(Family::V4)), free(Some(Family::V6))) {
            (Some(v4), Some(v6)) => Some(vec![v4, v6]),
            (Some(one), None) | (None, Some(one)) if !required => Some(vec![one]),
            _ => None,
        },
    }
}

/// An address of the pool with the same share key and no port clash, else its lowest free
/// address (of `family`, when given).
fn first_free(pool: &Pool, holders: &Holders<'_>, candidate: &LbService<'_>, family: Option<Family>) -> Option<IpAddr> {
    let wanted = |ip: &IpAddr| family.is_none_or(|f| Family::of(*ip) == f);
    if candidate.share_key.is_some() {
        let shared = holders
            .by_ip
            .keys()
            .find(|ip| wanted(ip) && pool.contains(**ip) && holders.refusal(**ip, candidate).is_none());
        if let Some(ip) = shared {
            return Some(*ip);
        }
    }
    pool.addresses().filter(wanted).find(|ip| !holders.by_ip.contains_key(ip))
}
