//! The cosy executors: run a [`Verified`] compound and report its [`Outcome`].
//!
//! Three executors, one outcome (docs/semantics.md): the same outputs, error, `continue`-mode
//! errors and files left behind for every compound.
//!
//! - [`DirectExecutor`] (`direct`, the reference): each call is a plain system call, issued in
//!   program order.
//! - [`RingExecutor`] (`ring`, docs/ring.md): the same interpreter with calls queued on an
//!   io_uring and submitted when it needs a result, as few `io_uring_enter` calls as the
//!   dependencies allow: a hard-linked chain per lane, direct descriptors, the arena
//!   registered as the ring's buffer, windows of map iterations, SQPOLL on request; plain
//!   system calls where io_uring cannot do the same ([`Stats::fallbacks`]).
//! - [`AutoExecutor`] (`auto`, the default [`Backend`]): the cheaper of the two per operation
//!   class, from costs measured on the machine ([`auto`]).
//!
//! The pieces (only [`auto`], [`funcs`] and [`session`] are public; the others are the
//! crate's own):
//!
//! - `arena`: one zeroed, 4 KiB-aligned block holding every buffer (the ring's region for
//!   `ring`); bounds-checked resolution of ranges computed at run time; the bytes written, so
//!   that every map iteration starts with zeroed local buffers;
//! - `sys`: one arm per row of the operation table, issuing the system call (the issuing
//!   functions are crate-private: they act on raw descriptor numbers);
//! - `confine` (crate-private): the policy root (`openat2` with `RESOLVE_BENEATH`, parent-directory
//!   resolution);
//! - `interp`: the interpreter core, the only place the semantics live (registers, fd slots,
//!   control flow, maps, limits, error modes), issuing calls through the `Issuer` trait,
//!   which answers ready or pending; concurrent map iterations as several lanes;
//! - `direct` and `ring`: the two issuers (plain system calls; io_uring chains);
//! - `plan`: the structural check and per-map facts computed before a run;
//! - [`funcs`]: the built-in and user functions;
//! - `outcome`: outputs, errors, statistics, trace;
//! - [`session`]: send calls one by one and get their results later (the asynchronous
//!   interface: `send`, `get`, `barrier`), on `direct` or `ring`.
//!
//! ```
//! use cosy_exec::{RunOptions, run};
//! use cosy_model::{Builder, FdRef, Policy, flags::{Mode, OFlags}};
//!
//! let path = std::env::temp_dir().join(format!("cosy-doc-{}.txt", std::process::id()));
//! std::fs::write(&path, "one\ntwo\nthree\n").unwrap();
//!
//! // open; do { n = read(fd, buf); lines += count_lines(buf[0..n]) } while n > 0; close
//! let mut c = Builder::new();
//! let name = c.input_path("file", path.as_os_str().as_encoded_bytes());
//! let buf = c.buffer("buf", 4096);
//! let fd = c.openat(FdRef::Cwd, name, OFlags::RDONLY, Mode::empty());
//! let lines = c.value("lines", 0);
//! c.do_while(1 << 20, |c| {
//!     let n = c.read(fd, buf);
//!     let k = c.call("count_lines", buf.prefix(n));
//!     c.accumulate(lines, k);
//!     n.gt(0)
//! });
//! c.close(fd);
//! c.output("lines", lines);
//!
//! let verified = cosy_verify::verify(c.finish(), &Policy::trusted()).unwrap();
//! let outcome = run(&verified, &RunOptions::default());
//! assert!(outcome.is_ok(), "{outcome}");
//! assert_eq!(outcome.output("lines"), Some(3));
//! std::fs::remove_file(&path).unwrap();
//! ```

pub(crate) mod alarm;
// Parts of the arena's, the plan's and the outcome's interfaces have no caller since the
// modules stopped being public; they stay as the modules' complete interfaces.
#[allow(dead_code)]
mod arena;
pub mod auto;
pub(crate) mod clock;
pub(crate) mod confine;
mod direct;
#[cfg(feature = "fault-injection")]
pub mod faults;
pub mod funcs;
mod interp;
#[allow(dead_code)]
mod outcome;
#[allow(dead_code)]
mod plan;
mod ring;
pub mod session;
mod sys;
/// The operation table's io_uring facts (which opcode issues each call, what breaks a link):
/// for the table's tests and the bench, not an API.
#[doc(hidden)]
pub mod uring_ops;

use std::fmt;
use std::str::FromStr;

pub use auto::AutoExecutor;
pub use cosy_verify::Verified;
pub use direct::DirectExecutor;
pub use funcs::{FnArg, FnArgs, FnResult, Function, Functions};
pub use interp::{DirEntry, parse_dirents};

/// A direct descriptor of a ring (a slot `k` of its registered file table) appears in slots,
/// traces and results as `DIRECT_FD_BASE + k`: it has no number in the process's descriptor
/// table.
pub const DIRECT_FD_BASE: i32 = 1 << 30;
pub use outcome::{CallError, Error, Limit, Outcome, Stats, TraceEntry};
pub use ring::{RingExecutor, RingOptions, drop_cached_rings};

/// Which executor runs a compound.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Plain system calls, in program order (the reference).
    Direct,
    /// io_uring, with as few io_uring_enter calls as the dependencies allow (docs/ring.md).
    Ring,
    /// Chooses per operation class between plain system calls and the ring, from costs
    /// measured on the machine ([`auto`]). The default.
    #[default]
    Auto,
}

impl Backend {
    /// Every backend, by name.
    pub const ALL: [Backend; 3] = [Backend::Direct, Backend::Ring, Backend::Auto];

    /// The backend's name (`direct`, `ring`, `auto`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Direct => "direct",
            Backend::Ring => "ring",
            Backend::Auto => "auto",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A backend name that is not one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend `{0}` (expected direct, ring or auto)")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownBackend(s.to_string()))
    }
}

/// How to run a compound.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// The user functions (built-ins are always there).
    pub functions: Functions,
    /// Whether to record every call in [`Outcome::trace`].
    pub trace: bool,
    /// The executor.
    pub backend: Backend,
    /// How the ring executor (and `auto`, when it uses the ring) sets up its ring.
    pub ring: RingOptions,
    /// The costs `auto` decides with (default: [`cosy_uring::Calibration::cached`], or the
    /// file named by `COSY_CALIBRATION`).
    pub calibration: Option<std::sync::Arc<cosy_uring::Calibration>>,
    /// Whether the direct executor (and `auto`, when it runs directly) may run the iterations
    /// of a map on several threads.
    pub parallel: Parallel,
}

/// How the direct executor runs a map's iterations on several threads
/// (the interpreter's maps).
///
/// A map qualifies when its body only reads (no call with `Effect::Write`, no open that
/// creates or truncates, no call that moves the file position of a descriptor it did not
/// open, only built-in functions) and it has enough work: its items times the calls of its
/// body that walk a path (opens, statx) reach [`Parallel::min_calls`]. The outcome is the direct executor's in every
/// case; only the statistics show the work done by the threads (iterations after a failure
/// may have run on another thread, and a map is run again on one thread when the fuel would
/// not cover it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parallel {
    /// Threads per map: `0` lets the backend decide (one for `direct`, the reference; the
    /// machine's cores, at most 8, for `auto`), `1` never runs a map on several threads.
    pub workers: usize,
    /// The least number of path walks (items × opens and statx in the body) worth the
    /// threads: starting a thread costs tens of microseconds.
    pub min_calls: usize,
}

impl Default for Parallel {
    fn default() -> Self {
        Parallel {
            workers: 0,
            min_calls: 512,
        }
    }
}

impl Parallel {
    /// `workers` threads for every qualifying map, however small (for tests).
    pub fn always(workers: usize) -> Self {
        Parallel {
            workers,
            min_calls: 0,
        }
    }

    /// The threads `backend` uses per map.
    pub fn workers_for(self, backend: Backend) -> usize {
        match (self.workers, backend) {
            (0, Backend::Auto) => {
                // Asking costs tens of microseconds (cgroup files): once per process.
                static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
                *CORES.get_or_init(|| {
                    std::thread::available_parallelism()
                        .map_or(1, std::num::NonZero::get)
                        .min(8)
                })
            }
            (0, _) => 1,
            (n, _) => n,
        }
    }
}

impl RunOptions {
    /// Options with the trace on.
    pub fn traced() -> Self {
        RunOptions {
            trace: true,
            ..Self::default()
        }
    }
}

/// Whether the executors can run `v` with the functions `funcs`: what they refuse before a
/// run that the verifier does not see (an unregistered user function, more fd slots than the
/// policy's `open_fds`). `Err` says what.
pub fn runnable(v: &Verified, funcs: &Functions) -> Result<(), String> {
    plan::Plan::new(v, funcs).map(drop)
}

/// Runs `v` under its policy with the backend of `opts`.
pub fn run(v: &Verified, opts: &RunOptions) -> Outcome {
    match opts.backend {
        Backend::Direct => DirectExecutor::run(v, opts),
        Backend::Ring => RingExecutor::run(v, opts),
        Backend::Auto => AutoExecutor::run(v, opts),
    }
}

/// Helpers for tests of executors.
pub mod testing {
    /// Number of descriptors open in this process (entries of `/proc/self/fd`, without the
    /// one used to list them).
    pub fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count().saturating_sub(1))
            .unwrap_or(0)
    }
}
