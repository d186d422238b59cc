//! Any bytes (as UTF-8 text, or converted lossily) into the text parser; what parses must
//! print and parse again to the same compound (`cosy_fuzzing::formats::text_round_trip`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = cosy_fuzzing::formats::text_round_trip(data) {
        panic!("{e}");
    }
});
