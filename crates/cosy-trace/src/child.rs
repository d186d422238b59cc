//! Starting the traced program so that tracing begins exactly at its execve(2), its exit
//! status, the tracer's clock, and Ctrl-C.
//!
//! The child is forked by hand (not with `std::process::Command`, whose `spawn` returns only
//! once the child has exec'd): between fork(2) and execve(2) it waits on a pipe (perf: the
//! parent opens the events with `enable_on_exec`, then lets it go) or stops itself under
//! `PTRACE_TRACEME` (ptrace). Everything it needs is allocated before the fork; after it, it
//! makes only async-signal-safe calls.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// `CLOCK_MONOTONIC` in nanoseconds (the clock perf's samples are taken with, see perf.rs).
pub fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Finds `program` as execvp(3) would: as given if it contains a `/`, else in `$PATH`.
pub fn resolve(program: &OsStr) -> Result<PathBuf> {
    let shown = program.to_string_lossy().into_owned();
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.as_bytes().contains(&b'/') {
        let path = PathBuf::from(program);
        return match std::fs::metadata(&path) {
            Err(e) => Err(Error::Program {
                program: shown,
                reason: e.to_string(),
            }),
            Ok(_) if !executable(&path) => Err(Error::Program {
                program: shown,
                reason: "not an executable file".into(),
            }),
            Ok(_) => Ok(path),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
        .ok_or(Error::Program {
            program: shown,
            reason: "command not found".into(),
        })
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| Error::Program {
        program: s.to_string_lossy().into_owned(),
        reason: "contains a NUL byte".into(),
    })
}

/// How the child waits for the tracer before its execve(2).
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// Blocks reading a pipe until [`Child::release`].
    Gate,
    /// `PTRACE_TRACEME`, then stops itself with `SIGSTOP`; the tracer resumes it. With a
    /// seccomp filter, installs it once resumed (setting `no_new_privs` first if the kernel
    /// requires it), so that the tracer has set `PTRACE_O_TRACESECCOMP` by then.
    TraceMe(Option<&'a [libc::sock_filter]>),
}

/// Marks the errno the child reports when installing the seccomp filter failed.
const SECCOMP_FAILED: i32 = 1 << 30;

/// A forked child that has not yet exec'd (or is exec'ing).
#[derive(Debug)]
pub struct Child {
    /// Its PID.
    pub pid: i32,
    gate: Option<OwnedFd>,
    exec_error: OwnedFd,
}

/// Forks a child that runs `argv` (`argv[0]` resolved with [`resolve`]) once the tracer lets
/// it, with the tracer's environment.
pub fn spawn(argv: &[OsString], start: Start<'_>) -> Result<Child> {
    let Some(program) = argv.first() else {
        return Err(Error::Program {
            program: String::new(),
            reason: "no command given".into(),
        });
    };
    let path = cstring(resolve(program)?.as_os_str())?;
    let args = argv
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<Vec<_>>>()?;
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(&kv)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());

    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| Error::sys("pipe2", e))
    };
    let (gate_r, gate_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let filter = match start {
        Start::TraceMe(Some(prog)) => Some(libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr().cast_mut(),
        }),
        _ => None,
    };
    let (gate_r_fd, gate_w_fd, err_r_fd, err_w_fd) = (
        gate_r.as_raw_fd(),
        gate_w.as_raw_fd(),
        err_r.as_raw_fd(),
        err_w.as_raw_fd(),
    );

    // SAFETY: the child calls only async-signal-safe functions (close, read, ptrace, getpid,
    // kill, prctl, execve, write, _exit) on memory allocated before the fork (the C strings,
    // the pointer arrays and the filter above, which outlive the call in the parent and are
    // copied in the child), and never returns from this block.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(Error::last("fork"));
    }
    if pid == 0 {
        // SAFETY: see above; this is the child, which leaves only through execve or _exit.
        unsafe {
            libc::close(gate_w_fd);
            libc::close(err_r_fd);
            match start {
                Start::Gate => {
                    let mut b = 0u8;
                    let n = libc::read(gate_r_fd, (&raw mut b).cast(), 1);
                    if n != 1 {
                        libc::_exit(127);
                    }
                }
                Start::TraceMe(_) => {
                    libc::close(gate_r_fd);
                    if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                        let e = *libc::__errno_location();
                        libc::write(err_w_fd, (&raw const e).cast(), 4);
                        libc::_exit(127);
                    }
                    libc::kill(libc::getpid(), libc::SIGSTOP);
                    if let Some(fprog) = &filter {
                        let install = || {
                            libc::prctl(
                                libc::PR_SET_SECCOMP,
                                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                                fprog as *const libc::sock_fprog,
                            )
                        };
                        let mut r = install();
                        if r != 0 && *libc::__errno_location() == libc::EACCES {
                            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0);
                            r = install();
                        }
                        if r != 0 {
                            let e = *libc::__errno_location() | SECCOMP_FAILED;
                            libc::write(err_w_fd, (&raw const e).cast(), 4);
                            libc::_exit(127);
                        }
                    }
                }
            }
            libc::execve(path.as_ptr(), arg_ptrs.as_ptr(), env_ptrs.as_ptr());
            let e = *libc::__errno_location();
            libc::write(err_w_fd, (&raw const e).cast(), 4);
            libc::_exit(127);
        }
    }
    drop((gate_r, err_w));
    Ok(Child {
        pid,
        gate: matches!(start, Start::Gate).then_some(gate_w),
        exec_error: err_r,
    })
}

impl Child {
    /// Lets a [`Start::Gate`] child go on to its execve(2) and waits until it has exec'd;
    /// an error if the exec failed (the child is then reaped).
    pub fn release(&mut self, program: &OsStr) -> Result<()> {
        if let Some(gate) = self.gate.take() {
            rustix::io::write(&gate, &[1]).map_err(|e| Error::sys("releasing the child", e))?;
        }
        self.check_exec(program)
    }

    /// Reads the exec-error pipe (blocking until the child exec'd or failed to).
    pub fn check_exec(&self, program: &OsStr) -> Result<()> {
        let mut b = [0u8; 4];
        let n = loop {
            match rustix::io::read(&self.exec_error, &mut b) {
                Err(rustix::io::Errno::INTR) => continue,
                r => break r.unwrap_or(0),
            }
        };
        if n == 4 {
            let errno = i32::from_ne_bytes(b);
            reap(self.pid);
            if errno & SECCOMP_FAILED != 0 {
                return Err(Error::Unavailable(format!(
                    "cannot install the seccomp filter: {}",
                    std::io::Error::from_raw_os_error(errno & !SECCOMP_FAILED)
                )));
            }
            return Err(Error::Program {
                program: program.to_string_lossy().into_owned(),
                reason: std::io::Error::from_raw_os_error(errno).to_string(),
            });
        }
        Ok(())
    }

    /// Kills the child (it has not been let go, or tracing failed) and reaps it.
    pub fn kill(&self) {
        // SAFETY: kill(2) on our own child's PID; it is not reaped yet, so the PID is not
        // reused.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        reap(self.pid);
    }
}

/// Waits for child `pid` to end (retrying on EINTR), ignoring errors.
pub fn reap(pid: i32) {
    let _ = wait_exit(pid);
}

/// Waits for child `pid` to end and returns its status as a shell does: the exit code, or
/// 128 + the signal that killed it. An interrupted wait is retried.
pub fn wait_exit(pid: i32) -> Result<i32> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid(2) with a valid pointer to a local.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        if r == pid {
            if let Some(code) = exit_code(status) {
                return Ok(code);
            }
            continue;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::sys("waitpid", e));
        }
    }
}

/// The shell's view of a wait status: exit code, or 128 + signal; `None` for a stop.
pub fn exit_code(status: i32) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

/// Catches SIGINT, SIGTERM and SIGHUP from now on: each one is counted ([`interrupts`]) and
/// interrupts a blocking wait of the tracer (no `SA_RESTART`), which then stops tracing.
pub fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid; the handler only touches an atomic, which is
        // async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_interrupt as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// How many interrupting signals arrived since [`catch_interrupts`].
pub fn interrupts() -> usize {
    INTERRUPTS.load(Ordering::SeqCst)
}

/// Whether a process `pid` exists (kill(2) with signal 0).
pub fn exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
