//! Which failing requests break a soft link: measured for every opcode
//! [`links::MEASURABLE`] lists, against what is known of the kernel's io_uring (a failing
//! fsync, ftruncate, statx, mkdirat, unlinkat, renameat, linkat, symlinkat, fgetxattr or
//! fsetxattr completes with its error without cancelling the next request of the chain; a
//! failing open, close, read, write or splice cancels it). Skips (and says so) when io_uring
//! is unavailable, unless `COSY_REQUIRE_URING=1`, which makes that a failure.

use cosy_uring::io_uring::opcode;
use cosy_uring::{Probe, links, opcode_name};

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

/// What the kernel's io_uring sources do with a failing request of each opcode.
fn known_to_break(code: u8) -> Option<bool> {
    let keeps = [
        opcode::Fsync::CODE,
        opcode::Ftruncate::CODE,
        opcode::Statx::CODE,
        opcode::MkDirAt::CODE,
        opcode::UnlinkAt::CODE,
        opcode::RenameAt::CODE,
        opcode::LinkAt::CODE,
        opcode::SymlinkAt::CODE,
        opcode::FGetXattr::CODE,
        opcode::FSetXattr::CODE,
    ];
    let breaks = [
        opcode::OpenAt::CODE,
        opcode::OpenAt2::CODE,
        opcode::Close::CODE,
        opcode::Read::CODE,
        opcode::Write::CODE,
        opcode::Splice::CODE,
    ];
    if keeps.contains(&code) {
        Some(false)
    } else if breaks.contains(&code) {
        Some(true)
    } else {
        None
    }
}

#[test]
fn failing_requests_break_soft_links_as_measured() {
    if !uring_or_skip() {
        return;
    }
    let probe = Probe::detect();
    for &code in links::MEASURABLE {
        let name = opcode_name(code);
        if !probe.supports(code) {
            eprintln!("skipping {name}: the kernel lacks it");
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let measured = links::failure_breaks_link(code, dir.path())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name} is supported and measurable"));
        eprintln!("{name}: a failure breaks a soft link: {measured}");
        assert_eq!(Some(measured), known_to_break(code), "{name}");
    }
}

#[test]
fn an_opcode_that_cannot_be_made_to_fail_is_not_measured() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        links::failure_breaks_link(opcode::Nop::CODE, dir.path()).unwrap(),
        None
    );
}
