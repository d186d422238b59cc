//! Tracing with ptrace(2): the fallback where perf_event is refused.
//!
//! The tracee stops at the entry and at the exit of every system call (`PTRACE_SYSCALL`); the
//! tracer reads the call's number and result with `PTRACE_GET_SYSCALL_INFO` and time-stamps
//! each stop when waitpid(2) reports it, so a call's time includes about one stop's worth of
//! scheduling. A started program makes itself a tracee (`PTRACE_TRACEME`) and stops before
//! its execve(2), so tracing starts there; `PTRACE_O_EXITKILL` ends it if the tracer dies. A
//! running process is attached with `PTRACE_SEIZE` (every thread with `-f`) and detached
//! at the end, left running. `-f` follows clone, fork and vfork.
//!
//! When only some calls are traced ([`Options::calls`](crate::Options::calls)), a started
//! program runs under a seccomp filter ([`crate::seccomp`]) that stops it at those calls only
//! (`PTRACE_O_TRACESECCOMP`; the tracer resumes a seccomp stop with `PTRACE_SYSCALL` to see the
//! call's exit, and everything else with `PTRACE_CONT`); every other call runs without a stop.
//! Tracing every call, the filter would stop as often as `PTRACE_SYSCALL`, and is not used.

use std::collections::HashSet;

use crate::calls::Collector;
use crate::child::{self, Start};
use crate::error::{Error, Result};
use crate::{Mechanism, Options, Target, Trace};

fn ptrace(request: libc::c_uint, tid: i32, addr: usize, data: usize) -> std::io::Result<i64> {
    // SAFETY: the requests used here take integers, or (PTRACE_GET_SYSCALL_INFO) a pointer
    // and the size of the buffer behind it, which the caller provides.
    let r = unsafe { libc::ptrace(request, tid, addr, data) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Resumes `tid`, delivering `sig`: to its next system-call stop (`step`), or to its next
/// seccomp stop or signal; a task that has just died (`ESRCH`) is left to waitpid(2).
fn resume(tid: i32, sig: i32, step: bool) {
    let request = if step {
        libc::PTRACE_SYSCALL
    } else {
        libc::PTRACE_CONT
    };
    let _ = ptrace(request, tid, 0, sig as usize);
}

enum Stop {
    Entry(u32),
    Exit(i64),
    Other,
}

fn syscall_info(tid: i32) -> Result<Stop> {
    // SAFETY: all-zero bytes are a valid ptrace_syscall_info (plain integers and a union of
    // them).
    let mut info: libc::ptrace_syscall_info = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::ptrace_syscall_info>();
    ptrace(
        libc::PTRACE_GET_SYSCALL_INFO,
        tid,
        size,
        (&raw mut info) as usize,
    )
    .map_err(|e| Error::sys("PTRACE_GET_SYSCALL_INFO", e))?;
    // SAFETY: `op` says which member of the union the kernel filled in.
    Ok(unsafe {
        match info.op {
            libc::PTRACE_SYSCALL_INFO_ENTRY => Stop::Entry(info.u.entry.nr as u32),
            libc::PTRACE_SYSCALL_INFO_SECCOMP => Stop::Entry(info.u.seccomp.nr as u32),
            libc::PTRACE_SYSCALL_INFO_EXIT => Stop::Exit(info.u.exit.sval),
            _ => Stop::Other,
        }
    })
}

fn options(follow: bool, started: bool, seccomp: bool) -> usize {
    let mut o = libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_TRACEEXEC;
    if seccomp {
        o |= libc::PTRACE_O_TRACESECCOMP;
    }
    if follow {
        o |= libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_TRACEVFORK;
    }
    if started {
        o |= libc::PTRACE_O_EXITKILL;
    }
    o as usize
}

fn wait_any() -> std::io::Result<(i32, i32)> {
    let mut status = 0;
    // SAFETY: waitpid(2) with a valid pointer to a local.
    let r = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok((r, status))
    }
}

/// Stops every task of `tasks`, then detaches it (passing on a signal it was stopped for), so
/// an attached program runs on untraced.
fn detach_all(tasks: &HashSet<i32>) {
    let mut pending = tasks.clone();
    for &t in &pending {
        let _ = ptrace(libc::PTRACE_INTERRUPT, t, 0, 0);
    }
    while !pending.is_empty() {
        let (tid, status) = match wait_any() {
            Ok(x) => x,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(_) => break,
        };
        if libc::WIFSTOPPED(status) {
            let sig = libc::WSTOPSIG(status);
            let signal_stop = status >> 16 == 0 && sig != (libc::SIGTRAP | 0x80);
            let _ = ptrace(
                libc::PTRACE_DETACH,
                tid,
                0,
                if signal_stop { sig as usize } else { 0 },
            );
        }
        pending.remove(&tid);
    }
}

/// Traces with ptrace; `notes` receives what the reader should know.
pub fn trace(options: &Options, notes: &mut Vec<String>) -> Result<Trace> {
    let mut tasks = HashSet::new();
    // Only some calls of a started program: a seccomp filter stops the tracee at those only.
    let filter = match (&options.target, &options.calls) {
        (Target::Command(_), Some(nrs)) => crate::seccomp::filter(nrs),
        _ => None,
    };
    let seccomp = filter.is_some();
    if let Some(nrs) = options.calls.as_ref().filter(|_| seccomp) {
        notes.push(format!(
            "a seccomp filter stops the program at the {} calls traced only",
            nrs.len()
        ));
    }
    let (pid, started, spawned) = match &options.target {
        Target::Command(argv) => {
            let c = child::spawn(argv, Start::TraceMe(filter.as_deref()))?;
            let mut status = 0;
            // SAFETY: waitpid(2) on our child with a valid pointer to a local.
            let r = unsafe { libc::waitpid(c.pid, &mut status, libc::__WALL) };
            if r != c.pid || !libc::WIFSTOPPED(status) {
                if r == c.pid {
                    c.check_exec(&argv[0])?;
                }
                c.kill();
                return Err(Error::Unavailable(
                    "the program did not stop under PTRACE_TRACEME".into(),
                ));
            }
            if let Err(e) = ptrace(
                libc::PTRACE_SETOPTIONS,
                c.pid,
                0,
                self::options(options.follow, true, seccomp),
            ) {
                c.kill();
                return Err(Error::sys("PTRACE_SETOPTIONS", e));
            }
            tasks.insert(c.pid);
            resume(c.pid, 0, !seccomp);
            (c.pid, true, Some(c))
        }
        Target::Pid(pid) => {
            if !child::exists(*pid) {
                return Err(Error::NoProcess(*pid));
            }
            let list = if options.follow {
                crate::perf::threads(*pid)?
            } else {
                vec![*pid]
            };
            for t in list {
                let seized = ptrace(
                    libc::PTRACE_SEIZE,
                    t,
                    0,
                    self::options(options.follow, false, false),
                )
                .and_then(|_| ptrace(libc::PTRACE_INTERRUPT, t, 0, 0));
                match seized {
                    Ok(_) => {
                        tasks.insert(t);
                    }
                    // A thread that ended meanwhile.
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) && t != *pid => {}
                    Err(e) => {
                        detach_all(&tasks);
                        return Err(match e.raw_os_error() {
                            Some(libc::EPERM | libc::EACCES) => {
                                Error::Permission(format!("PTRACE_SEIZE of {t}: {e}"))
                            }
                            Some(libc::ESRCH) => Error::NoProcess(*pid),
                            _ => Error::sys(format!("PTRACE_SEIZE of {t}"), e),
                        });
                    }
                }
            }
            (*pid, false, None)
        }
    };

    let t0 = child::monotonic_ns();
    let mut collector = Collector::new();
    let mut exit = None;
    let mut seen_interrupts = child::interrupts();
    let mut interrupted = false;
    let mut fresh: HashSet<i32> = HashSet::new();
    // With the filter: tasks stopped at a seccomp stop, whose call's exit is still to come.
    let mut in_call: HashSet<i32> = HashSet::new();
    while !tasks.is_empty() {
        let n = child::interrupts();
        if n > seen_interrupts {
            seen_interrupts = n;
            interrupted = true;
            if started {
                let sig = if n > 1 { libc::SIGKILL } else { libc::SIGINT };
                // SAFETY: kill(2) on our unreaped child.
                unsafe { libc::kill(pid, sig) };
            } else {
                detach_all(&tasks);
                break;
            }
        }
        let (tid, status) = match wait_any() {
            Ok(x) => x,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ECHILD) => break,
            Err(e) => {
                if started {
                    // SAFETY: kill(2) on our unreaped child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                } else {
                    detach_all(&tasks);
                }
                return Err(Error::sys("waitpid", e));
            }
        };
        let t = child::monotonic_ns();
        if let Some(code) = child::exit_code(status) {
            tasks.remove(&tid);
            in_call.remove(&tid);
            collector.gone(tid as u32);
            if tid == pid {
                exit = Some(code);
            }
            continue;
        }
        if !libc::WIFSTOPPED(status) {
            continue;
        }
        if tasks.insert(tid) {
            // A new thread or process (-f): its first stop is the attach stop.
            fresh.insert(tid);
        }
        let sig = libc::WSTOPSIG(status);
        let event = status >> 16;
        let mut inject = 0;
        let seccomp_stop = sig == libc::SIGTRAP && event == libc::PTRACE_EVENT_SECCOMP;
        if sig == libc::SIGTRAP | 0x80 || seccomp_stop {
            match syscall_info(tid) {
                Ok(Stop::Entry(nr)) => {
                    collector.enter(tid as u32, nr, t);
                    if seccomp_stop {
                        in_call.insert(tid);
                    }
                }
                Ok(Stop::Exit(ret)) => {
                    collector.exit(tid as u32, None, ret, t);
                    in_call.remove(&tid);
                }
                Ok(Stop::Other) => {}
                Err(e) => {
                    if started {
                        // SAFETY: kill(2) on our unreaped child.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                        child::reap(pid);
                    } else {
                        detach_all(&tasks);
                    }
                    return Err(e);
                }
            }
        } else if event == 0 && !(sig == libc::SIGSTOP && fresh.remove(&tid)) {
            // A signal for the tracee: deliver it.
            inject = sig;
        }
        resume(tid, inject, !seccomp || in_call.contains(&tid));
    }
    let wall_ns = child::monotonic_ns().saturating_sub(t0);
    if started && exit.is_none() {
        exit = Some(child::wait_exit(pid)?);
    }
    // The child reports a failed execve(2) on its pipe (closed unread by a successful one).
    if let (Some(c), Target::Command(argv)) = (&spawned, &options.target) {
        c.check_exec(&argv[0])?;
    }
    Ok(Trace::new(
        Mechanism::Ptrace,
        collector,
        exit,
        wall_ns,
        interrupted,
        std::mem::take(notes),
    ))
}
