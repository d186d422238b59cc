//! `cosy du`: GNU du's output and exit codes, the file work done by a session: the walker
//! opens each directory relative to its parent and reads its entries, and every entry of a
//! directory is stated relative to the directory's handle in one batch (see [`count`]).
//!
//! With `-s` (only totals printed) the subdirectories of each argument are counted on one
//! thread per core (at most 4; `COSY_DU_THREADS=N` sets the number, 1 for none).
//! Sessions are on the `direct` backend: statx is always handed to io_uring's worker threads,
//! measured slower here warm and cold; `COSY_DU_BACKEND=ring` runs them on the ring to
//! measure it again.

mod args;
mod count;
mod report;
mod size;

use std::ffi::OsString;
use std::process::ExitCode;

/// Runs `du` with `argv` (its name first); the exit code.
pub fn main(argv: impl IntoIterator<Item = OsString>) -> ExitCode {
    let opts = match args::parse(argv) {
        Ok(o) => o,
        Err(args::Exit::Done) => return ExitCode::SUCCESS,
        Err(args::Exit::Usage) => return ExitCode::FAILURE,
    };
    let mut s = match count::session() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("du: {e}");
            return ExitCode::FAILURE;
        }
    };
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    let mut c = match count::Counter::new(&opts, &seen, &mut s) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("du: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Only totals are printed: the subtrees of an argument can be counted on several
    // threads, their messages printed in du's order after.
    if opts.max_depth == 0 && !opts.all {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = std::env::var("COSY_DU_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(cores.min(4));
        c.set_threads(threads);
    }
    for p in &opts.paths {
        c.argument(&mut s, p);
    }
    if opts.total {
        c.line(c.grand, b"total");
    }
    c.flush();
    if c.diag.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
