//! Any bytes into the binary decoder; what decodes must encode and decode to the same compound
//! (`cosy_fuzzing::formats::binary_round_trip`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = cosy_fuzzing::formats::binary_round_trip(data) {
        panic!("{e}");
    }
});
