//! Completed system calls, paired from the entry and exit events both mechanisms report.

use std::collections::HashMap;

/// One completed system call of one thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// Thread id.
    pub tid: u32,
    /// System call number (of the tracer's architecture).
    pub nr: u32,
    /// When the thread entered the kernel, in nanoseconds of `CLOCK_MONOTONIC`.
    pub enter_ns: u64,
    /// When it returned.
    pub exit_ns: u64,
    /// The raw return value (`-errno` on failure).
    pub ret: i64,
}

impl Call {
    /// Time in the kernel.
    pub fn duration_ns(&self) -> u64 {
        self.exit_ns.saturating_sub(self.enter_ns)
    }

    /// Whether the call failed (a return value in `-4095..=-1`, as the kernel reports errors).
    pub fn failed(&self) -> bool {
        (-4095..0).contains(&self.ret)
    }
}

/// The name of system call `nr` (`syscall_NNN` when the `syscalls` crate does not know it).
pub fn name(nr: u32) -> String {
    match syscalls::Sysno::new(nr as usize) {
        Some(s) => s.name().to_string(),
        None => format!("syscall_{nr}"),
    }
}

/// The number of the system call named `name` (as in [`name`]).
pub fn number(name: &str) -> Option<u32> {
    syscalls::Sysno::iter()
        .find(|s| s.name() == name)
        .map(|s| s.id() as u32)
}

/// Whether `nr` is execve(2) or execveat(2): the call a trace of a started program begins with.
pub fn is_exec(nr: u32) -> bool {
    nr == syscalls::Sysno::execve.id() as u32 || nr == syscalls::Sysno::execveat.id() as u32
}

/// Pairs entry and exit events per thread into [`Call`]s.
///
/// A call is counted when its exit is seen (as `strace -c` does: `exit_group` never returns
/// and is not counted). An exit without an entry is dropped (the call was under way when
/// tracing began), except for an exec: a trace that starts at the exec of the program sees its
/// execve(2) return without having seen it enter, and counts it with a duration of zero.
#[derive(Debug, Default)]
pub struct Collector {
    open: HashMap<u32, (u32, u64)>,
    calls: Vec<Call>,
}

impl Collector {
    /// A collector with no calls.
    pub fn new() -> Self {
        Self::default()
    }

    /// Thread `tid` entered call `nr` at `t`.
    pub fn enter(&mut self, tid: u32, nr: u32, t: u64) {
        self.open.insert(tid, (nr, t));
    }

    /// Thread `tid` returned `ret` from a call at `t`; `nr` is the call's number when the
    /// mechanism reports it at the exit (perf does, ptrace does not).
    pub fn exit(&mut self, tid: u32, nr: Option<u32>, ret: i64, t: u64) {
        let call = match self.open.remove(&tid) {
            // rt_sigreturn(2) restores the registers, its number with them: its exit says -1.
            Some((entered, enter_ns)) if nr.is_none_or(|n| n == entered || n == u32::MAX) => Call {
                tid,
                nr: entered,
                enter_ns,
                exit_ns: t,
                ret,
            },
            _ => match nr {
                Some(nr) if is_exec(nr) => Call {
                    tid,
                    nr,
                    enter_ns: t,
                    exit_ns: t,
                    ret,
                },
                _ => return,
            },
        };
        self.calls.push(call);
    }

    /// Thread `tid` ended (a call it had entered never returns).
    pub fn gone(&mut self, tid: u32) {
        self.open.remove(&tid);
    }

    /// The completed calls, in the order their exits were seen, and the number of calls entered
    /// that had not returned.
    pub fn finish(self) -> (Vec<Call>, usize) {
        (self.calls, self.open.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_per_thread_and_counts_only_returned_calls() {
        let mut c = Collector::new();
        c.enter(1, 0, 10);
        c.enter(2, 1, 11);
        c.exit(2, Some(1), 5, 15);
        c.exit(1, None, -2, 20);
        c.enter(1, 231, 30); // exit_group: never returns
        let (calls, unfinished) = c.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].tid, calls[0].nr, calls[0].duration_ns()),
            (2, 1, 4)
        );
        assert_eq!(
            (calls[1].tid, calls[1].nr, calls[1].duration_ns()),
            (1, 0, 10)
        );
        assert!(calls[1].failed() && !calls[0].failed());
        assert_eq!(unfinished, 1);
    }

    #[test]
    fn an_exit_without_entry_counts_only_for_exec() {
        let mut c = Collector::new();
        c.exit(1, Some(0), 3, 5);
        c.exit(1, Some(syscalls::Sysno::execve.id() as u32), 0, 6);
        // rt_sigreturn: the exit's number is that of the restored registers (-1).
        c.enter(1, 15, 7);
        c.exit(1, Some(u32::MAX), 0, 8);
        let (calls, _) = c.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!(name(calls[1].nr), "rt_sigreturn");
        assert!(is_exec(calls[0].nr));
        assert_eq!(name(calls[0].nr), "execve");
        assert_eq!(number("execve"), Some(calls[0].nr));
        assert_eq!(number("no_such_call"), None);
    }
}
