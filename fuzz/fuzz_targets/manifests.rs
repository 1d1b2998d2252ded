//! Manifest decoding: a file's bytes through `sluice_manifests::decode_documents`, as YAML
//! (multi-document, `kind: List`) and as JSON, the way `--manifests` and `sluice check` read
//! every file. Any result is fine; a panic, a hang or unbounded memory is not.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Files are read as UTF-8 text; anything else is refused before decoding.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for is_json in [false, true] {
        if let Ok((objects, diagnostics)) = sluice_manifests::decode_documents(text, is_json) {
            for object in &objects {
                let _ = (object.kind(), object.key());
            }
            for diagnostic in &diagnostics {
                let _ = diagnostic.to_string();
            }
        }
    }
});
