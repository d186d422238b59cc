//! Whether io_uring works here: exits 0 and prints the number of opcodes the kernel supports, and
//! the names of those cosy uses, when a ring can be set
//! up (io_uring_setup(2) and IORING_REGISTER_PROBE succeed, `COSY_NO_URING` unset), exits 1
//! and prints why not otherwise. .ci/run asks it whether to require io_uring in the tests.
//!
//! `cargo run -q -p cosy-uring --example probe`

use std::process::ExitCode;

use cosy_uring::{Probe, opcode_name};

fn main() -> ExitCode {
    let probe = Probe::detect();
    if !probe.available() {
        println!(
            "io_uring unavailable: {}",
            probe.reason().unwrap_or("no reason given")
        );
        return ExitCode::FAILURE;
    }
    let codes = probe.supported_opcodes();
    // opcode_name names the opcodes cosy uses and calls the others "op".
    let named: Vec<&str> = codes
        .iter()
        .map(|&c| opcode_name(c))
        .filter(|&n| n != "op")
        .collect();
    println!(
        "io_uring available: {} opcodes, of those cosy uses: {}",
        codes.len(),
        named.join(" ")
    );
    ExitCode::SUCCESS
}
