//! The HTTP/1.1 guard's framing of a client's byte stream (heads parsed and checked, bodies
//! followed by length or chunk by chunk): it never panics, never passes more than it got,
//! and decides the same whichever pieces the bytes arrive in.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proxy::fuzzing::h1_framing;

fuzz_target!(|data: &[u8]| {
    let whole = h1_framing(data, data.len().max(1));
    assert!(whole.0 <= data.len());
    for piece in [1, 7, 64] {
        assert_eq!(h1_framing(data, piece), whole, "in pieces of {piece}");
    }
});
