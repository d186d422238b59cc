//! Bytes -> a compound (`cosy_fuzzing::generate::compound`: mostly valid compounds, some
//! mutated, some raw binary) -> verified under a strict policy -> run on every executor in a
//! scratch directory and compared with the direct executor (`cosy_fuzzing::run::Harness`).
#![no_main]

use std::sync::OnceLock;

use arbitrary::Unstructured;
use cosy_fuzzing::run::Harness;
use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<Harness> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let harness = HARNESS.get_or_init(|| match Harness::new() {
        Ok(h) => h,
        Err(e) => panic!("cannot set up the scratch directory: {e}"),
    });
    let mut u = Unstructured::new(data);
    let Some(generated) = cosy_fuzzing::generate::compound(&mut u) else {
        return;
    };
    if let Err(e) = harness.check(generated.compound) {
        panic!("{:?} compound: {e}", generated.origin);
    }
});
