//! The tools built on cosy: `grep`, `du`, `ls` and `cp`, each with the output and exit codes
//! of the tool people already use, its file work done by sessions and compounds.
//!
//! `cosy` is also a multi-call binary: run through a link named `grep`, `du`, `ls` or `cp`
//! (busybox style), it is that tool; `cosy du -s .` and a `du` link to `cosy` are the same.

mod common;
mod cp;
mod du;
mod grep;
mod human;
mod ls;
pub mod stat;
pub mod walk;

use std::ffi::OsString;
use std::process::ExitCode;

/// The tools, by the name they answer to.
pub const NAMES: &[&str] = &["grep", "du", "ls", "cp"];

/// The tool `name` is, if it is one: the file name of `argv[0]`, or `cosy`'s first argument.
pub fn which(args: &[OsString]) -> Option<(&'static str, usize)> {
    let base = args
        .first()
        .map(std::path::Path::new)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    let pick = |s: Option<&str>| NAMES.iter().copied().find(|n| Some(*n) == s);
    if let Some(name) = pick(base) {
        return Some((name, 1));
    }
    pick(args.get(1).and_then(|a| a.to_str())).map(|name| (name, 2))
}

/// Runs tool `name` on `args` (the arguments after the tool's name); its exit code.
pub fn run(name: &str, args: Vec<OsString>) -> ExitCode {
    let argv = std::iter::once(OsString::from(name)).chain(args);
    common::progress_start();
    let code = match name {
        "grep" => grep::main(argv),
        "du" => du::main(argv),
        "ls" => ls::main(argv),
        "cp" => cp::main(argv),
        _ => ExitCode::from(2),
    };
    common::progress_end();
    code
}
