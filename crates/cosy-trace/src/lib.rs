//! Find the code worth compounding: count and time every system call of a program, and see
//! where the time goes.
//!
//! [`trace`] runs a program (or attaches to a running one) and records every system call of it
//! ([`Call`]: thread, number, entry and exit times, result), with the lowest-overhead mechanism
//! the machine allows:
//!
//! - [`perf`]: perf_event tracepoints (`raw_syscalls:sys_enter` / `sys_exit`) sampled into
//!   mmap'ed ring buffers, read while the program runs; the program never stops;
//! - [`ptrace`]: the fallback, a stop at the entry and exit of every call (of the listed
//!   calls only, with [`Options::calls`], under a [`seccomp`] filter).
//!
//! Then:
//!
//! - [`stats`]: the table of `strace -c` (count, errors, total, minimum, average, maximum per
//!   call), and the time in user space between calls against the time in the kernel;
//! - [`bursts`]: maximal runs of calls separated by little user time, and the recurring
//!   sequences of calls inside them (openat → read → close per file, a newfstatat per
//!   directory entry), with what a compound of each would save on this machine
//!   ([`cosy_uring::Calibration`]);
//! - [`suggest`]: a compound skeleton in cosy's text format for a sequence;
//! - [`report`]: all of it as text or JSON.
//!
//! # Example
//!
//! ```no_run
//! use cosy_trace::{Options, Target, trace, report::Report};
//!
//! let options = Options::new(Target::Command(vec!["ls".into(), "-l".into()]));
//! let traced = trace(&options)?;
//! let report = Report::build(&traced, &Default::default(), &cosy_uring::Calibration::cached());
//! println!("{}", report.text());
//! assert!(report.calls.iter().any(|row| row.name == "execve"));
//! # Ok::<(), cosy_trace::Error>(())
//! ```

#![warn(missing_docs)]

pub mod bursts;
pub mod calls;
pub mod child;
pub mod error;
pub mod perf;
pub mod ptrace;
pub mod report;
pub mod seccomp;
pub mod stats;
pub mod suggest;

use std::ffi::OsString;

pub use calls::Call;
pub use cosy_uring::Calibration;
pub use error::{Error, Result};

/// What to trace.
#[derive(Clone, Debug)]
pub enum Target {
    /// Start this command (`argv[0]` searched in `$PATH`) and trace it from its execve(2).
    Command(Vec<OsString>),
    /// Attach to this running process.
    Pid(i32),
}

/// How calls are recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// perf_event tracepoints ([`perf`]).
    Perf,
    /// ptrace(2) ([`ptrace`]).
    Ptrace,
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mechanism::Perf => "perf_event tracepoints",
            Mechanism::Ptrace => "ptrace",
        })
    }
}

/// What [`trace`] does.
#[derive(Clone, Debug)]
pub struct Options {
    /// The program.
    pub target: Target,
    /// Follow threads and child processes (`-f`).
    pub follow: bool,
    /// The mechanism; `None` chooses perf_event where permitted, else ptrace.
    pub mechanism: Option<Mechanism>,
    /// Pages of each per-CPU perf ring buffer (rounded up to a power of two).
    pub buffer_pages: usize,
    /// Trace only these calls (numbers), like `strace -e trace=...`; `None`: every call.
    /// perf filters them in the kernel (a tracepoint filter), ptrace with a seccomp filter
    /// (started programs) or by ignoring the others' stops (attached ones).
    pub calls: Option<Vec<u32>>,
}

impl Options {
    /// Trace `target`, without following children, with the best mechanism.
    pub fn new(target: Target) -> Self {
        Options {
            target,
            follow: false,
            mechanism: None,
            buffer_pages: 2048,
            calls: None,
        }
    }
}

/// A finished trace.
#[derive(Clone, Debug)]
pub struct Trace {
    /// The mechanism that recorded it.
    pub mechanism: Mechanism,
    /// The completed calls, by thread, each thread's in order.
    pub calls: Vec<Call>,
    /// Calls entered that never returned (exit_group, or cut by the end of tracing).
    pub unfinished: usize,
    /// The program's exit status (or 128 + signal); `None` when attached.
    pub exit: Option<i32>,
    /// Wall time traced.
    pub wall_ns: u64,
    /// Whether tracing was interrupted (Ctrl-C).
    pub interrupted: bool,
    /// What the reader should know (a fallback, lost events).
    pub notes: Vec<String>,
}

impl Trace {
    fn new(
        mechanism: Mechanism,
        collector: calls::Collector,
        exit: Option<i32>,
        wall_ns: u64,
        interrupted: bool,
        notes: Vec<String>,
    ) -> Trace {
        let (mut calls, unfinished) = collector.finish();
        calls.sort_by_key(|c| (c.tid, c.enter_ns, c.exit_ns));
        Trace {
            mechanism,
            calls,
            unfinished,
            exit,
            wall_ns,
            interrupted,
            notes,
        }
    }

    /// The calls of each thread, in order.
    pub fn threads(&self) -> impl Iterator<Item = &[Call]> {
        self.calls.chunk_by(|a, b| a.tid == b.tid)
    }
}

/// Traces `options.target` to its end (or until Ctrl-C, see [`child::catch_interrupts`]).
///
/// With no mechanism chosen, perf_event is tried first; if the kernel refuses it (no
/// permission, no tracefs), ptrace runs instead and a note says why.
pub fn trace(options: &Options) -> Result<Trace> {
    let mut notes = Vec::new();
    let mut traced = match options.mechanism {
        Some(Mechanism::Perf) => perf::trace(options, &mut notes),
        Some(Mechanism::Ptrace) => ptrace::trace(options, &mut notes),
        None => match perf::trace(options, &mut notes) {
            Err(e @ (Error::Permission(_) | Error::Unavailable(_))) => {
                notes.push(format!("perf_event unavailable ({e}); traced with ptrace"));
                ptrace::trace(options, &mut notes)
            }
            r => r,
        },
    }?;
    if let Some(nrs) = &options.calls {
        traced.calls.retain(|c| nrs.contains(&c.nr));
    }
    Ok(traced)
}
