//! What a run gives back: outputs, the error that stopped it, the call errors recorded in
//! `continue` mode, statistics and (optionally) a trace of every call.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use cosy_model::Sys;

/// `NAME: description` of an errno value (`ENOENT: No such file or directory`): the name
/// from the `syscalls` table, the description from the C library (`strerror_r`).
pub fn errno_text(errno: i32) -> String {
    let desc = std::io::Error::from_raw_os_error(errno).to_string();
    let desc = desc
        .strip_suffix(&format!(" (os error {errno})"))
        .unwrap_or(&desc)
        .to_string();
    match syscalls::Errno::new(errno).name() {
        Some(name) => format!("{name}: {desc}"),
        None => format!("errno {errno}: {desc}"),
    }
}

/// The symbolic name of an errno value (`ENOENT`), or its number.
pub fn errno_name(errno: i32) -> String {
    syscalls::Errno::new(errno)
        .name()
        .map_or_else(|| errno.to_string(), str::to_string)
}

/// Why a run stopped (see docs/semantics.md).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A system call failed in `stop` mode.
    #[error("op {op} ({}): {}", call.name(), errno_text(*errno))]
    Call {
        /// Index of the operation.
        op: u32,
        /// The call.
        call: Sys,
        /// The errno (positive).
        errno: i32,
    },
    /// A buffer range, `load`/`store` offset or directory record did not fit its buffer;
    /// nothing was issued.
    #[error("op {op}: range error in buffer `{buffer}`: {detail}")]
    Range {
        /// Index of the operation.
        op: u32,
        /// The buffer's name.
        buffer: String,
        /// What did not fit.
        detail: String,
    },
    /// Division or remainder by zero, or a `range` map with a step `<= 0`.
    #[error("op {op}: arithmetic error (division or remainder by zero, or a map step <= 0)")]
    Arith {
        /// Index of the operation.
        op: u32,
    },
    /// A backward jump was taken once more than its bound.
    #[error("op {op}: loop bound exceeded (the jump may be taken {bound} times)")]
    LoopBound {
        /// Index of the jump.
        op: u32,
        /// Its bound.
        bound: u32,
    },
    /// The policy's operation budget ran out before this operation.
    #[error("op {op}: out of fuel (the policy allows {fuel} operations)")]
    Fuel {
        /// Index of the operation that would have exceeded it.
        op: u32,
        /// The budget.
        fuel: u64,
    },
    /// The policy's time limit passed.
    #[error("op {op}: time limit of {limit:?} exceeded")]
    Time {
        /// Index of the operation about to run.
        op: u32,
        /// The limit.
        limit: Duration,
    },
    /// A call would have passed one of the policy's limits on bytes written; it was not
    /// issued (the bytes of the calls before it were written).
    #[error(
        "op {op} ({}): the policy's {limit} limit of {value} bytes would be passed: {used} \
         written, {asked} more asked",
        call.name()
    )]
    Limit {
        /// Index of the operation.
        op: u32,
        /// The call refused.
        call: Sys,
        /// Which limit.
        limit: Limit,
        /// The limit's value.
        value: u64,
        /// The bytes counted against it before the call (requested by calls still in
        /// flight included).
        used: u64,
        /// The bytes the call asked to write.
        asked: u64,
    },
    /// A function call failed (or panicked).
    #[error("op {op}: function `{func}` failed: {message}")]
    Function {
        /// Index of the operation.
        op: u32,
        /// The function's name.
        func: String,
        /// Its message.
        message: String,
    },
    /// The run could not start: the policy root cannot be opened, the arena is too large, a
    /// function is not registered, the compound is malformed (the verifier should have
    /// rejected it), the backend is not available.
    #[error("cannot run: {0}")]
    Setup(String),
}

impl Error {
    /// The operation the error happened at (none for setup errors).
    pub fn op(&self) -> Option<u32> {
        match self {
            Error::Call { op, .. }
            | Error::Range { op, .. }
            | Error::Arith { op }
            | Error::LoopBound { op, .. }
            | Error::Fuel { op, .. }
            | Error::Time { op, .. }
            | Error::Limit { op, .. }
            | Error::Function { op, .. } => Some(*op),
            Error::Setup(_) => None,
        }
    }

    /// The errno of a failed call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// A limit of the policy on bytes written ([`Error::Limit`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `written_bytes`: every byte the compound's calls write to a descriptor.
    WrittenBytes,
    /// `output_bytes`: the bytes written to the standard streams.
    OutputBytes,
}

impl Limit {
    /// The name of the policy's field.
    pub fn name(self) -> &'static str {
        match self {
            Limit::WrittenBytes => "written_bytes",
            Limit::OutputBytes => "output_bytes",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A call that failed in `continue` mode (the run went on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallError {
    /// Index of the operation.
    pub op: u32,
    /// The call.
    pub call: Sys,
    /// The errno (positive).
    pub errno: i32,
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "op {} ({}): {}",
            self.op,
            self.call.name(),
            errno_text(self.errno)
        )
    }
}

/// One call of the trace: the operation it belongs to, the call made, its descriptor operand,
/// its result (`-errno` on failure).
///
/// Besides the operations' own calls the trace holds the calls the executor makes for them:
/// closes of a reassigned slot (at the opening operation), of the fds of a map iteration (at
/// the `MapEnd`), of every fd left at the end (at `ops.len()`), and the helper calls of the
/// policy root (`openat2` with `O_PATH`, `close`). A path refused before any call (an absolute
/// path outside the root: `-EXDEV`) and `nop` appear too, without counting as system calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// Index of the operation (`ops.len()` for the final closes).
    pub op: u32,
    /// The call made.
    pub call: Sys,
    /// Its first descriptor operand (`-100`, `AT_FDCWD`, for `cwd`; `-1` for none or an empty
    /// slot): for `close`, the descriptor closed.
    pub fd: i32,
    /// Its result.
    pub result: i64,
}

impl fmt::Display for TraceEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "op {:>4}  {:<16} fd {:<4} -> ",
            self.op,
            self.call.name(),
            self.fd
        )?;
        if self.result < 0 {
            let e = i32::try_from(-self.result).unwrap_or(i32::MAX);
            write!(f, "-{}", errno_name(e))
        } else {
            write!(f, "{}", self.result)
        }
    }
}

/// Counters of one run.
///
/// Every call made is counted in [`by_call`](Stats::by_call), whether it was issued as a
/// system call or through io_uring; [`syscalls`](Stats::syscalls) counts those issued as
/// system calls and [`ring_ops`](Stats::ring_ops) those submitted to a ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Operations executed (the fuel used).
    pub ops: u64,
    /// System calls issued directly (including implicit closes and the helper calls of the
    /// policy root; `nop` is none on the direct executor). `io_uring_enter` calls are counted
    /// apart, in [`ring_enters`](Stats::ring_enters).
    pub syscalls: u64,
    /// Calls made, by name of the call actually made (an `openat` under a root is counted as
    /// `openat2`), issued directly or through a ring.
    pub by_call: BTreeMap<&'static str, u64>,
    /// Bytes returned by `read` and `pread`, and moved by `copy_file_range`, `splice` and
    /// `sendfile`.
    pub bytes_read: u64,
    /// Bytes accepted by `write` and `pwrite`, and moved by `copy_file_range`, `splice` and
    /// `sendfile`.
    pub bytes_written: u64,
    /// `io_uring_enter` calls (ring executor).
    pub ring_enters: u64,
    /// Operations submitted to a ring and completed (ring executor).
    pub ring_ops: u64,
    /// Operations the ring executor issued as plain system calls: calls io_uring lacks (or
    /// the kernel's io_uring lacks, or io_uring is unavailable), calls confined to the policy
    /// root that the ring cannot confine, and calls the `auto` executor chose to issue
    /// directly.
    pub fallbacks: u64,
    /// Maps whose iterations ran on several threads ([`crate::Parallel`]), and the threads
    /// they used in all.
    pub threaded_maps: u64,
    /// Threads started for [`threaded_maps`](Stats::threaded_maps), this one not counted.
    pub threads: u64,
    /// Wall time of the run, setup included.
    pub elapsed: Duration,
}

impl Stats {
    /// Operations per io_uring_enter(2) (`ring_ops / ring_enters`; 0 without enters).
    pub fn ops_per_enter(&self) -> f64 {
        if self.ring_enters == 0 {
            0.0
        } else {
            self.ring_ops as f64 / self.ring_enters as f64
        }
    }

    /// Bytes moved (read and written).
    pub fn bytes_moved(&self) -> u64 {
        self.bytes_read.saturating_add(self.bytes_written)
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "operations     {}", self.ops)?;
        write!(f, "system calls   {}", self.syscalls)?;
        if !self.by_call.is_empty() {
            let parts: Vec<String> = self
                .by_call
                .iter()
                .map(|(name, n)| format!("{name} {n}"))
                .collect();
            if self.ring_ops > 0 {
                write!(f, " direct + {} through the ring", self.ring_ops)?;
            }
            write!(f, "  ({})", parts.join(", "))?;
        }
        writeln!(f)?;
        writeln!(f, "bytes read     {}", self.bytes_read)?;
        writeln!(f, "bytes written  {}", self.bytes_written)?;
        if self.ring_enters != 0 || self.ring_ops != 0 || self.fallbacks != 0 {
            writeln!(
                f,
                "ring           {} enters, {} ops ({:.1} per enter), {} fallbacks",
                self.ring_enters,
                self.ring_ops,
                self.ops_per_enter(),
                self.fallbacks
            )?;
        }
        if self.threaded_maps != 0 {
            writeln!(
                f,
                "threads        {} maps on {} more threads",
                self.threaded_maps, self.threads
            )?;
        }
        write!(f, "elapsed        {:?}", self.elapsed)
    }
}

/// The result of running a compound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The compound's outputs: each named register's value when the run ended (also when it
    /// stopped on an error; empty when it could not start).
    pub outputs: Vec<(String, i64)>,
    /// Why the run stopped early, if it did.
    pub error: Option<Error>,
    /// The calls that failed in `continue` mode, in order.
    pub errors: Vec<CallError>,
    /// Counters.
    pub stats: Stats,
    /// Every call made, in order, when tracing was asked for.
    pub trace: Vec<TraceEntry>,
}

impl Outcome {
    /// The output named `name`.
    pub fn output(&self, name: &str) -> Option<i64> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
    }

    /// Whether the run went to its end (calls that failed in `continue` mode may still be in
    /// [`Outcome::errors`]).
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }

    /// An outcome for a run that could not start.
    pub fn setup_error(message: impl Into<String>, elapsed: Duration) -> Outcome {
        Outcome {
            error: Some(Error::Setup(message.into())),
            stats: Stats {
                elapsed,
                ..Stats::default()
            },
            ..Outcome::default()
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, v) in &self.outputs {
            writeln!(f, "{name} = {v}")?;
        }
        for e in &self.errors {
            writeln!(f, "error (continued): {e}")?;
        }
        if let Some(e) = &self.error {
            writeln!(f, "error: {e}")?;
        }
        write!(f, "{}", self.stats)
    }
}

/// How a counted call was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// As a system call.
    Syscall,
    /// Through a ring.
    Ring,
    /// Not made at all (`nop` on the direct executor, a path refused before the kernel):
    /// traced, not counted.
    Nothing,
}

/// Collects the statistics and trace while a run goes on; issuers report every call here.
#[derive(Debug)]
pub struct Recorder {
    /// Calls made, by [`Sys::index`].
    by_call: [u64; Sys::COUNT],
    syscalls: u64,
    ring_ops: u64,
    bytes_read: u64,
    bytes_written: u64,
    /// Operations issued directly by the ring executor.
    pub fallbacks: u64,
    /// io_uring_enter(2) calls.
    pub ring_enters: u64,
    /// Maps run on several threads.
    pub threaded_maps: u64,
    /// Threads started for them.
    pub threads: u64,
    /// The trace, if asked for.
    pub trace: Option<Vec<TraceEntry>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            by_call: [0; Sys::COUNT],
            syscalls: 0,
            ring_ops: 0,
            bytes_read: 0,
            bytes_written: 0,
            fallbacks: 0,
            ring_enters: 0,
            threaded_maps: 0,
            threads: 0,
            trace: None,
        }
    }
}

impl Recorder {
    /// A recorder, tracing or not.
    pub fn new(trace: bool) -> Self {
        Recorder {
            trace: trace.then(Vec::new),
            ..Recorder::default()
        }
    }

    /// Records `call` made for operation `op` on descriptor `fd` (its first descriptor operand,
    /// `-1` if none) with `result`; `issued` is false when no system call was made (nop on the
    /// direct executor, a path refused before the kernel).
    pub fn call(&mut self, op: u32, call: Sys, fd: i32, result: i64, issued: bool) {
        self.count(
            call,
            result,
            if issued { Via::Syscall } else { Via::Nothing },
        );
        self.trace(op, call, fd, result);
    }

    /// Counts `call` with `result`, made `via` (no trace entry).
    #[inline]
    pub fn count(&mut self, call: Sys, result: i64, via: Via) {
        match via {
            Via::Syscall => self.syscalls += 1,
            Via::Ring => self.ring_ops += 1,
            Via::Nothing => return,
        }
        if let Some(n) = self.by_call.get_mut(call.index()) {
            *n += 1;
        }
        if result > 0 {
            let n = result as u64;
            match call {
                Sys::Read | Sys::Pread => self.bytes_read += n,
                Sys::Write | Sys::Pwrite => self.bytes_written += n,
                Sys::CopyFileRange | Sys::Splice | Sys::Sendfile => {
                    self.bytes_read += n;
                    self.bytes_written += n;
                }
                _ => {}
            }
        }
    }

    /// Adds the counts of `other` (the calls another thread made for this run).
    pub fn absorb(&mut self, other: &Recorder) {
        for (n, m) in self.by_call.iter_mut().zip(other.by_call) {
            *n += m;
        }
        self.syscalls += other.syscalls;
        self.ring_ops += other.ring_ops;
        self.bytes_read += other.bytes_read;
        self.bytes_written += other.bytes_written;
        self.fallbacks += other.fallbacks;
        self.ring_enters += other.ring_enters;
        self.threaded_maps += other.threaded_maps;
        self.threads += other.threads;
    }

    /// Appends a trace entry (if tracing).
    #[inline]
    pub fn trace(&mut self, op: u32, call: Sys, fd: i32, result: i64) {
        if let Some(t) = &mut self.trace {
            t.push(TraceEntry {
                op,
                call,
                fd,
                result,
            });
        }
    }

    /// Whether a trace is being recorded.
    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// The counters so far (`ops` and `elapsed` are left at 0).
    pub fn stats(&self) -> Stats {
        let mut by_call = BTreeMap::new();
        for &call in Sys::ALL {
            let n = self.by_call.get(call.index()).copied().unwrap_or(0);
            if n > 0 {
                by_call.insert(call.name(), n);
            }
        }
        Stats {
            ops: 0,
            syscalls: self.syscalls,
            by_call,
            bytes_read: self.bytes_read,
            bytes_written: self.bytes_written,
            ring_enters: self.ring_enters,
            ring_ops: self.ring_ops,
            fallbacks: self.fallbacks,
            threaded_maps: self.threaded_maps,
            threads: self.threads,
            elapsed: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_where() {
        let e = Error::Call {
            op: 3,
            call: Sys::Openat,
            errno: libc::ENOENT,
        };
        assert_eq!(
            e.to_string(),
            "op 3 (openat): ENOENT: No such file or directory"
        );
        assert_eq!(errno_name(libc::EXDEV), "EXDEV");
        assert!(errno_text(99999).starts_with("errno 99999"));
        let t = TraceEntry {
            op: 1,
            call: Sys::Read,
            fd: -1,
            result: -i64::from(libc::EBADF),
        };
        assert!(t.to_string().ends_with("-EBADF"), "{t}");
    }

    #[test]
    fn recorder_counts_issued_calls_only() {
        let mut r = Recorder::new(true);
        r.call(0, Sys::Nop, -1, 0, false);
        r.call(1, Sys::Read, 3, 10, true);
        r.call(2, Sys::Sendfile, 4, 5, true);
        r.count(Sys::Read, 7, Via::Ring);
        let stats = r.stats();
        assert_eq!(stats.syscalls, 2);
        assert_eq!(stats.ring_ops, 1);
        assert_eq!(stats.by_call["read"], 2);
        assert_eq!(stats.bytes_read, 22);
        assert_eq!(stats.bytes_written, 5);
        assert_eq!(r.trace.as_ref().map(Vec::len), Some(3));
        let shown = stats.to_string();
        assert!(shown.contains("read 2"), "{shown}");
        assert!(shown.contains("1 through the ring"), "{shown}");
    }

    #[test]
    fn every_call_of_the_table_is_counted() {
        let mut r = Recorder::new(false);
        for &call in Sys::ALL {
            r.count(call, 0, Via::Syscall);
        }
        let stats = r.stats();
        for &call in Sys::ALL {
            assert_eq!(stats.by_call.get(call.name()), Some(&1), "{call:?}");
        }
    }
}
