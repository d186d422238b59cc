//! The cosy optimizer: rewrites that keep every observable result of a compound — its
//! outputs, the error that stops it (at the same original operation, with the same errno) and
//! the files it leaves behind — and make it cheaper to run.
//!
//! It runs after verification and before an executor. Each rewrite is a separate pass, on by
//! default and switchable off in [`Passes`]; they run in this order:
//!
//! | pass | rewrite | why |
//! |---|---|---|
//! | [`pread`](Passes::pread) | `lseek fd OFF SEEK_SET` + `read`/`write fd` → `pread`/`pwrite fd OFF`, when the file position is not observed afterwards | one call instead of two, and the calls no longer depend on each other through the file position (the database workload of the thesis) |
//! | [`zero_copy`](Passes::zero_copy) | `n = read A buf` + `write B buf[0..n]` → `n = copy_file_range A -1 B -1 LEN 0` (or `sendfile` to a standard stream), when nothing else looks at the buffer | the data never crosses into user space (the thesis's COSY-FAST) |
//! | [`dir_prefix`](Passes::dir_prefix) | three or more paths `"/a/b/x"`, `"/a/b/y"`, … under `cwd` → one `openat cwd "/a/b" O_PATH\|O_DIRECTORY`, right before the first of them, and names relative to it | the kernel walks the common directories once |
//! | [`loop_to_map`](Passes::loop_to_map) | a counted `do … while (i < END)` loop whose iterations are independent → `map i in range(START, END, STEP)` | the ring executor runs a map's iterations as bursts |
//! | [`dead_results`](Passes::dead_results) | results nobody reads are dropped; arithmetic, moves and loads into registers nobody reads are removed | less work, fewer dependencies |
//!
//! [`optimize`] returns the new compound with, for each operation, the index of the original
//! operation it comes from ([`Optimized::origin`]): an executor's error at operation `i` of the
//! optimized compound is reported at `origin[i]` of the original.
//!
//! What is kept: the outputs, the error that stops the run (its kind, its errno, its operation
//! through `origin`), the errors recorded in mode `continue`, and the files left behind. What is
//! not: the number of operations executed (so a run at the edge of its fuel may stop
//! elsewhere), the system calls made and the statistics. Each pass's documentation lists its
//! preconditions and the few differences that no analysis before the run can exclude (a
//! `copy_file_range` between files that are not regular, a directory renamed through a
//! symlink).
//!
//! The passes only rewrite what they can analyse: a compound that is not well formed (a jump
//! or map index out of range, maps badly nested or nested deeper than the verifier allows, a
//! jump into a map body) is returned as it is, and so is any part of a compound a pass does
//! not understand. `optimize` never panics. The control flow and map nesting the passes work
//! on are the verifier's ([`cosy_verify::Structure::of`]), asked again after every rewrite.
//!
//! ```
//! use cosy_model::{Builder, FdRef, Op, Sys};
//! use cosy_model::flags::{Mode, OFlags, Whence};
//! use cosy_opt::{optimize, Passes};
//!
//! // Random access: seek to a page, read it.
//! let mut c = Builder::new();
//! let page = c.buffer("page", 4096);
//! let db = c.path("db.bin");
//! let fd = c.openat(FdRef::Cwd, db, OFlags::RDONLY, Mode::empty());
//! c.lseek(fd, 8192, Whence::Set);
//! let n = c.read(fd, page);
//! c.close(fd);
//! c.output("n", n);
//! let original = c.finish();
//!
//! let opt = optimize(&original, &Passes::default());
//! let calls: Vec<Sys> = opt
//!     .compound
//!     .ops
//!     .iter()
//!     .filter_map(|op| match op {
//!         Op::Sys { call, .. } => Some(*call),
//!         _ => None,
//!     })
//!     .collect();
//! assert_eq!(calls, [Sys::Openat, Sys::Pread, Sys::Close]);
//! // The pread comes from the read (operation 2 of the original).
//! assert_eq!(opt.origin, [0, 2, 3]);
//! assert!(opt.applied.contains(&("pread", 1)));
//!
//! // Every pass can be switched off.
//! let none = optimize(&original, &Passes::none());
//! assert_eq!(none.compound, original);
//! ```

#![forbid(unsafe_code)]

mod analysis;
pub mod dead_results;
pub mod dir_prefix;
pub mod loop_to_map;
pub mod pread;
pub mod zero_copy;

use cosy_model::Compound;

use analysis::{Cfg, Program};

/// Which passes run. [`Default`] turns every pass on; [`Passes::none`] turns them all off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Passes {
    /// `lseek` + `read`/`write` → `pread`/`pwrite` ([`pread`](mod@pread)).
    pub pread: bool,
    /// `read` + `write` of the same bytes → `copy_file_range`/`sendfile`
    /// ([`zero_copy`](mod@zero_copy)).
    pub zero_copy: bool,
    /// Shared directory prefixes → one directory fd ([`dir_prefix`](mod@dir_prefix)).
    pub dir_prefix: bool,
    /// Counted loops with independent iterations → maps ([`loop_to_map`](mod@loop_to_map)).
    pub loop_to_map: bool,
    /// Unread results dropped, dead computations removed ([`dead_results`](mod@dead_results)).
    pub dead_results: bool,
}

impl Default for Passes {
    /// Every pass on.
    fn default() -> Self {
        Passes {
            pread: true,
            zero_copy: true,
            dir_prefix: true,
            loop_to_map: true,
            dead_results: true,
        }
    }
}

impl Passes {
    /// Every pass off: [`optimize`] returns the compound unchanged.
    pub fn none() -> Self {
        Passes {
            pread: false,
            zero_copy: false,
            dir_prefix: false,
            loop_to_map: false,
            dead_results: false,
        }
    }

    /// Only the pass named `name` (one of [`PASS_NAMES`]); `None` for an unknown name.
    pub fn only(name: &str) -> Option<Self> {
        let mut p = Self::none();
        *p.flag_mut(name)? = true;
        Some(p)
    }

    /// The switch of the pass named `name`, to turn it on or off by name (a command line's
    /// `--no-opt=zero_copy`).
    pub fn flag_mut(&mut self, name: &str) -> Option<&mut bool> {
        Some(match name {
            "pread" => &mut self.pread,
            "zero_copy" => &mut self.zero_copy,
            "dir_prefix" => &mut self.dir_prefix,
            "loop_to_map" => &mut self.loop_to_map,
            "dead_results" => &mut self.dead_results,
            _ => return None,
        })
    }
}

/// The passes' names, in the order they run (the names [`Optimized::applied`] reports).
pub const PASS_NAMES: [&str; 5] = [
    "pread",
    "zero_copy",
    "dir_prefix",
    "loop_to_map",
    "dead_results",
];

/// The result of [`optimize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Optimized {
    /// The optimized compound.
    pub compound: Compound,
    /// For each operation of `compound`, the index of the original operation it comes from:
    /// errors are reported at the original operation.
    pub origin: Vec<u32>,
    /// For each pass that ran, its name and the number of rewrites it made (see each pass's
    /// documentation for what one rewrite is).
    pub applied: Vec<(&'static str, usize)>,
    /// The number of operations of the original compound (where `ops.len()` of the optimized
    /// one — the end, where executors close what is left open — maps to).
    pub original_len: u32,
}

impl Optimized {
    /// The original operation that operation `op` of the optimized compound comes from: an
    /// executor's error or trace entry at `op` belongs there. The end (`ops.len()`) maps to the
    /// original's end; anything past it is returned as it is.
    pub fn original_op(&self, op: u32) -> u32 {
        match self.origin.get(op as usize) {
            Some(&o) => o,
            None if op as usize == self.origin.len() => self.original_len,
            None => op,
        }
    }

    /// The number of rewrites pass `name` made (0 when it did not run).
    pub fn count(&self, name: &str) -> usize {
        self.applied
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, k)| k)
            .sum()
    }
}

/// Runs the enabled passes over `compound` (which should have passed verification) and
/// returns the optimized compound, the origin of each operation, and what each pass did.
///
/// A compound that is not well formed is returned as it is (with every enabled pass reported
/// as having made no rewrite).
pub fn optimize(compound: &Compound, passes: &Passes) -> Optimized {
    type Pass = fn(&mut Program) -> usize;
    let table: [(&'static str, bool, Pass); 5] = [
        ("pread", passes.pread, pread::run),
        ("zero_copy", passes.zero_copy, zero_copy::run),
        ("dir_prefix", passes.dir_prefix, dir_prefix::run),
        ("loop_to_map", passes.loop_to_map, loop_to_map::run),
        ("dead_results", passes.dead_results, dead_results::run),
    ];
    let mut p = Program::new(compound);
    let well_formed = Cfg::new(compound).is_some();
    let mut applied = Vec::new();
    for (name, on, pass) in table {
        if !on {
            continue;
        }
        let n = if well_formed { pass(&mut p) } else { 0 };
        applied.push((name, n));
    }
    Optimized {
        compound: p.c,
        origin: p.origin,
        applied,
        original_len: u32::try_from(compound.ops.len()).unwrap_or(u32::MAX),
    }
}
