//! **cosy**: compound system calls for Linux, the one crate a program depends on.
//!
//! A *compound* is a small program of system calls, the data dependencies between them (the
//! descriptor `openat` returns feeds `read`), bounded loops, conditionals, arithmetic and
//! function calls. cosy verifies it against a [`Policy`] (what it may call, the directory its
//! paths cannot leave, its limits) and runs it with plain system calls ([`Backend::Direct`],
//! the reference), through io_uring ([`Backend::Ring`]), or the cheaper of the two per call
//! class ([`Backend::Auto`], the default): the same results on each.
//!
//! ```
//! use cosy::{Builder, FdRef, Policy, RunOptions};
//!
//! let path = std::env::temp_dir().join(format!("cosy-lib-doc-{}", std::process::id()));
//! std::fs::write(&path, vec![b'x'; 10_000]).unwrap();
//!
//! // fd = open(path); do { n = read(fd, buf); total += n } while n == buf.len(); close(fd)
//! let mut c = Builder::new();
//! let name = c.input_path("path", path.as_os_str().as_encoded_bytes());
//! let buf = c.buffer("buf", 4096);
//! let fd = c.openat(FdRef::Cwd, name, libc_free::O_RDONLY, Mode::empty());
//! let total = c.value("total", 0);
//! c.do_while(1 << 20, |c| {
//!     let n = c.read(fd, buf);
//!     c.accumulate(total, n);
//!     cosy::builder::cond(n, cosy::BinOp::Eq, 4096)
//! });
//! c.close(fd);
//! c.output("total", total);
//!
//! let verified = cosy::verify(c.finish(), &Policy::trusted()).unwrap();
//! let out = cosy::run(&verified, &RunOptions::default()).unwrap();
//! assert_eq!(out.get("total"), Some(10_000));
//! # std::fs::remove_file(&path).unwrap();
//! # mod libc_free { pub const O_RDONLY: i64 = 0; }
//! ```

use std::fmt;

pub use cosy_exec::session;
pub use cosy_exec::{
    Backend, CallError, Error, FnArg, FnArgs, FnResult, Function, Functions, Parallel, RunOptions,
    Stats, TraceEntry, Verified,
};
pub use cosy_format::{binary, text};
pub use cosy_model::{BinOp, Builder, Compound, ErrorMode, FdRef, Policy, Sys, builder};
pub use cosy_opt::{Passes, optimize};
pub use cosy_verify::verify;

/// What a run that went to its end gave: the compound's outputs, the calls that failed in
/// `continue` mode, and the statistics.
#[derive(Clone, Debug)]
pub struct Outputs {
    values: Vec<(String, i64)>,
    /// The calls that failed in `continue` mode, in order (empty in `stop` mode).
    pub errors: Vec<CallError>,
    /// Counters: operations, system calls by name, bytes, ring enters, elapsed time.
    pub stats: Stats,
}

impl Outputs {
    /// The output named `name`, if the compound declares one.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Every output, in the order the compound declares them.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.values.iter().map(|(n, v)| (n.as_str(), *v))
    }
}

/// A run that stopped before its end: why, where, and what it had done by then.
#[derive(Clone, Debug)]
pub struct RunError {
    /// Why it stopped (a call that failed in `stop` mode, a limit, a range error...).
    pub error: Error,
    /// The outputs' values when it stopped: not results, for diagnosis only.
    pub partial: Vec<(String, i64)>,
    /// The calls that failed in `continue` mode before it stopped.
    pub errors: Vec<CallError>,
    /// Counters up to the stop.
    pub stats: Stats,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Runs a verified compound under its policy on the backend of `opts`
/// (docs/semantics.md says what running means).
pub fn run(v: &Verified, opts: &RunOptions) -> Result<Outputs, RunError> {
    let out = cosy_exec::run(v, opts);
    match out.error {
        None => Ok(Outputs {
            values: out.outputs,
            errors: out.errors,
            stats: out.stats,
        }),
        Some(error) => Err(RunError {
            error,
            partial: out.outputs,
            errors: out.errors,
            stats: out.stats,
        }),
    }
}

/// The crates under this one, for code the `compound!` macro generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use cosy_exec;
    pub use cosy_format;
    pub use cosy_model;
    pub use cosy_verify;
}
