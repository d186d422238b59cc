//! **cosy**: compound system calls for Linux, the one crate a program depends on.
//!
//! A *compound* is a small program of system calls, the data dependencies between them (the
//! descriptor `openat` returns feeds `read`), bounded loops, conditionals, arithmetic and
//! function calls. cosy verifies it against a [`Policy`] (what it may call, the directory its
//! paths cannot leave, its limits) and runs it with plain system calls ([`Backend::Direct`],
//! the reference), through io_uring ([`Backend::Ring`]), or the cheaper of the two per call
//! class ([`Backend::Auto`], the default): the same results on each.
//!
//! The pieces, all from this crate (docs/api.md describes them):
//!
//! - [`Builder`] writes a compound: one method per system call (named after its man page),
//!   each returning a handle to its result ([`Reg`] for a value, [`FdRef`] for a descriptor)
//!   that later calls take as operands; buffers ([`Buf`]) of a fixed size; typed flags
//!   ([`flags`]: [`OFlags`], [`AtFlags`], [`Mode`], [`StatxFlags`]…, no `libc` needed);
//!   conditions as comparisons (`n.eq(buf.len())`, `n.gt(0)`: a [`Comparison`]); loops
//!   ([`Builder::do_while`], [`Builder::while_`], [`Builder::loop_`] and the maps);
//!   functions ([`Builder::call`] with operands as a tuple).
//! - [`verify`] checks a compound against a [`Policy`] and gives a [`Verified`] compound, or
//!   the [`Problems`] found.
//! - [`run`] runs a verified compound: [`Outputs`] when it went to its end, a [`RunError`]
//!   when it stopped (a failed call in `stop` mode, a limit, a loop bound…).
//! - [`Functions`] registers user functions a compound may call ([`Function`], [`FnArgs`]).
//! - [`session`] sends system calls one at a time and collects their results later, on the
//!   same executors.
//! - [`text`] and [`binary`] read and write compounds as text and in the binary format;
//!   [`optimize`] rewrites a compound into a cheaper equivalent one.
//!
//! ```
//! use cosy::flags::{Mode, OFlags};
//! use cosy::{Builder, FdRef, Policy, RunOptions};
//!
//! let path = std::env::temp_dir().join(format!("cosy-lib-doc-{}", std::process::id()));
//! std::fs::write(&path, vec![b'x'; 10_000]).unwrap();
//!
//! // fd = open(path); do { n = read(fd, buf); total += n } while n == buf.len(); close(fd)
//! let mut c = Builder::new();
//! let name = c.input_path("path", path.as_os_str().as_encoded_bytes());
//! let buf = c.buffer("buf", 4096);
//! let fd = c.openat(FdRef::Cwd, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty());
//! let total = c.value("total", 0);
//! c.do_while(1 << 20, |c| {
//!     let n = c.read(fd, buf);
//!     c.accumulate(total, n);
//!     n.eq(buf.len())
//! });
//! c.close(fd);
//! c.output("total", total);
//!
//! let verified = cosy::verify(c.finish(), &Policy::trusted()).unwrap();
//! let out = cosy::run(&verified, &RunOptions::default()).unwrap();
//! assert_eq!(out.get("total"), Some(10_000));
//! # std::fs::remove_file(&path).unwrap();
//! ```
//!
//! A function over the bytes read, and a run that stops (the file is missing):
//!
//! ```
//! use cosy::flags::{Mode, OFlags};
//! use cosy::{Builder, Error, FdRef, Policy, RunOptions};
//!
//! let mut c = Builder::new();
//! let name = c.input_path("path", "/nonexistent/cosy-doc");
//! let buf = c.buffer("buf", 4096);
//! let fd = c.openat(FdRef::Cwd, name, OFlags::RDONLY, Mode::empty());
//! let n = c.read(fd, buf);
//! let lines = c.call("count_lines", buf.prefix(n));
//! c.output("lines", lines);
//!
//! let verified = cosy::verify(c.finish(), &Policy::trusted()).unwrap();
//! let err = cosy::run(&verified, &RunOptions::default()).unwrap_err();
//! assert!(matches!(err.error, Error::Call { .. }), "{err}");
//! ```
//!
//! # Compounds written in Rust
//!
//! [`compound!`] compiles a function of a Rust subset into a compound while the crate
//! compiles, verifies it then (a violation is a compile error at the span that caused it), and
//! generates a module to run it with (docs/macro.md lists what it accepts):
//!
//! ```
//! cosy::compound! {
//!     /// The size of every regular file of a directory, and how many there are.
//!     pub fn dirsize(dir: &Path) -> Sizes {
//!         let d = openat(cwd, dir, O_RDONLY | O_DIRECTORY, 0)?;
//!         let mut total = 0;
//!         let mut files = 0;
//!         for e in dirents(d) {
//!             if e.kind != DT_REG {
//!                 continue;
//!             }
//!             let mut st = [0u8; 256];
//!             statx(d, e, AT_SYMLINK_NOFOLLOW, STATX_SIZE, &mut st)?;
//!             total += load_u64(&st, STATX_SIZE_OFFSET);
//!             files += 1;
//!         }
//!         close(d)?;
//!         Sizes { total, files }
//!     }
//! }
//!
//! let out = dirsize::run(&cosy::Policy::trusted(), &cosy::RunOptions::default(), "src")?;
//! let expected: u64 = std::fs::read_dir("src")?
//!     .map(|e| e.unwrap().metadata().unwrap())
//!     .filter(|m| m.is_file())
//!     .map(|m| m.len())
//!     .sum();
//! assert_eq!(out.total as u64, expected);
//! assert!(out.files > 0 && out.stats.syscalls > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

pub use cosy_exec::session;
pub use cosy_exec::{
    Backend, CallError, DirEntry, Error, FnArg, FnArgs, FnResult, Function, Functions, Limit,
    Parallel, RingOptions, RunOptions, Stats, TraceEntry, Verified, parse_dirents,
};
pub use cosy_format::{LoadError, Loaded, binary, load, text};
pub use cosy_macros::compound;
pub use cosy_model::builder;
pub use cosy_model::{
    BinOp, Buf, BufId, BufRange, Builder, CmpOp, Comparison, Compound, DataId, Dirent, ErrorMode,
    FdRef, FlagOperand, FnOperand, IntoFnArgs, Loop, PathRef, Policy, Reg, Sys, Value, Width,
};
pub use cosy_opt::{Optimized, Passes, optimize};
pub use cosy_verify::{Problem, Problems, Rule, verify};

/// The typed flags the [`Builder`] and the [`session`] calls take (rustix's bitflags types,
/// re-exported: no `rustix` or `libc` dependency needed), the `whence` of lseek(2), the
/// `d_type` of a directory entry, and the layout of `struct statx` for loads from a statx(2)
/// buffer.
pub mod flags {
    pub use cosy_model::flags::{
        Access, AtFlags, DirentType, Mode, OFlags, PipeFlags, RenameFlags, ResolveFlags,
        STATX_BLOCKS_OFFSET, STATX_BYTES, STATX_INO_OFFSET, STATX_MODE_OFFSET, STATX_MTIME_OFFSET,
        STATX_NLINK_OFFSET, STATX_SIZE_OFFSET, SpliceFlags, StatxFlags, TIMES_BYTES, Whence,
        XattrFlags,
    };
}

pub use flags::{AtFlags, Mode, OFlags, StatxFlags};

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
/// (docs/semantics.md says what running means): its outputs, or why and where it stopped.
// A run's error is made once per run, after its system calls: its size costs nothing next to
// them, and boxing it would make every caller unwrap a box.
#[allow(clippy::result_large_err)]
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
