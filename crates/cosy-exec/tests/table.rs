//! The operation table's facts about io_uring, checked against the running kernel.

use cosy_exec::uring_ops;
use cosy_model::Sys;
use cosy_uring::{Probe, links};

/// Whether io_uring can be used here; when it cannot, says so and skips, unless
/// `COSY_REQUIRE_URING=1` (then it is a failure).
fn uring_or_skip() -> bool {
    let probe = Probe::detect();
    if probe.available() {
        return true;
    }
    let reason = probe.reason().unwrap_or("?").to_string();
    assert!(
        std::env::var_os("COSY_REQUIRE_URING").is_none_or(|v| v != "1"),
        "io_uring unavailable ({reason}) and COSY_REQUIRE_URING=1"
    );
    eprintln!("skipping: io_uring unavailable ({reason})");
    false
}

#[test]
fn breaks_link_is_what_the_kernel_does() {
    if !uring_or_skip() {
        return;
    }
    let mut measured = 0;
    for &call in Sys::ALL {
        let spec = call.spec();
        let Some(op) = spec.uring else { continue };
        let dir = tempfile::tempdir().unwrap();
        match links::failure_breaks_link(uring_ops::opcode(op), dir.path()) {
            Ok(Some(breaks)) => {
                assert_eq!(
                    spec.breaks_link, breaks,
                    "{call:?}: the table says a failing {op:?} breaks a soft link: {}, the \
                     kernel: {breaks}",
                    spec.breaks_link
                );
                measured += 1;
            }
            Ok(None) => eprintln!("skipping {call:?}: {op:?} cannot be measured here"),
            Err(e) => panic!("{call:?}: {e}"),
        }
    }
    assert!(measured > 0, "nothing measured");
}
