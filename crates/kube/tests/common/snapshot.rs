//! Snapshots translated from a store by the real translation, as `sluice run` builds them.

use std::sync::Arc;

use sluice_config::{SharedSnapshot, Snapshot};
use sluice_store::Store;
use sluice_translate::{Allocations, Options};

/// Translation options: class `sluice`, LoadBalancer addresses from 192.0.2.0/30.
pub fn options() -> Options {
    let certified = rcgen::generate_simple_self_signed(vec!["fallback.invalid".to_owned()]).unwrap();
    let (cert, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    Options {
        lb_pools: vec!["192.0.2.0/30".parse().unwrap()],
        ..Options::new(sluice_translate::certified_key_from_pem(cert.as_bytes(), key.as_bytes()).unwrap())
    }
}

/// The snapshot of `store`.
pub fn translate(store: &Store, options: &Options, generation: u64) -> Snapshot {
    sluice_translate::translate(store, options, &Allocations::new(), generation)
}

/// Translates `store` again and swaps the result in, as a reload does.
pub fn rebuild(shared: &Arc<SharedSnapshot>, store: &Store, options: &Options) -> u64 {
    let generation = shared.load().generation + 1;
    shared.store(Arc::new(translate(store, options, generation)));
    generation
}
