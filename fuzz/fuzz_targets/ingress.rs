//! Whole Ingresses (and any other objects) as YAML: the input is decoded as a manifest file,
//! its objects are added to a store that already holds a Service with endpoints, TLS and CA
//! Secrets and the controller ConfigMap, and the store is translated as the controller and
//! `sluice check` do, then the snapshot is read as the data plane would. Translation must
//! never panic, whatever the objects say.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_fuzz::{base_store, translate_and_serve};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((objects, _)) = sluice_manifests::decode_documents(text, false) else {
        return;
    };
    if objects.is_empty() {
        return;
    }
    let mut store = base_store().clone();
    for object in objects {
        store.insert(object);
    }
    translate_and_serve(&store);
});
