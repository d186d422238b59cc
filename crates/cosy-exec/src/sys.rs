//! Issuing the calls of the operation table as plain system calls.
//!
//! Every call goes through `syscalls::syscall!` by number with raw integer arguments. (rustix
//! wraps most of these calls, but its `BorrowedFd` cannot hold `-1`, and the semantics require
//! an empty fd slot to be *issued* as descriptor `-1` so the kernel answers `EBADF`; raw
//! numbers also keep the arguments exactly those of the man pages.) Operands arrive resolved
//! ([`ResolvedArgs`]): integers, raw descriptors, NUL-terminated paths and bounds-checked arena
//! spans of the arena's block, passed as a slice. This module is the only one of the crate
//! with `unsafe` code.
//!
//! The functions that issue calls are crate-private: they act on raw descriptor numbers
//! (`close` of any number, for one), which safe code outside the executor must not be able
//! to do (I/O safety). The operand types are public for [`crate::Issuer`] implementations.

use std::ffi::CStr;
use std::sync::Arc;

use cosy_model::Sys;
use syscalls::{Errno, Sysno, syscall};

use crate::arena::{self, Span};

/// Size of `struct statx`, which statx(2) always writes whole.
pub const STATX_SIZE: usize = cosy_model::flags::STATX_BYTES;

/// Size of the `struct timespec[2]` utimensat(2) reads.
pub const TIMES_SIZE: usize = cosy_model::flags::TIMES_BYTES;

/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = libc::AT_FDCWD;

/// One operand after evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// An integer (offset, length, flags, mode).
    Int(i64),
    /// A raw descriptor (`-1` for an empty slot, `AT_FDCWD` for `cwd`).
    Fd(i32),
    /// A path: shared with the plan (a data constant, made once per compound) or with the
    /// lane (a path variable, made once per binding), so resolving it allocates nothing.
    Path(Arc<CStr>),
    /// An arena range.
    Buf(Span),
    /// A slot the call fills (pipe2): `-1` until the call succeeds, then the new descriptor.
    NewFd(i32),
}

/// The operands of one call, in table order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedArgs {
    /// The operands.
    pub items: Vec<Resolved>,
}

impl ResolvedArgs {
    fn get(&self, i: usize) -> Result<&Resolved, Errno> {
        self.items.get(i).ok_or(Errno::EINVAL)
    }

    /// Operand `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, Errno> {
        match self.get(i)? {
            Resolved::Int(v) => Ok(*v),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Operand `i` as a descriptor.
    pub fn fd(&self, i: usize) -> Result<i32, Errno> {
        match self.get(i)? {
            Resolved::Fd(v) => Ok(*v),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Operand `i` as a path.
    pub fn path(&self, i: usize) -> Result<&CStr, Errno> {
        match self.get(i)? {
            Resolved::Path(p) => Ok(p),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Operand `i` as an arena span.
    pub fn buf(&self, i: usize) -> Result<Span, Errno> {
        match self.get(i)? {
            Resolved::Buf(s) => Ok(*s),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The first descriptor operand (`-1` if there is none): what a trace shows.
    pub fn first_fd(&self) -> i32 {
        self.items
            .iter()
            .find_map(|r| match r {
                Resolved::Fd(fd) => Some(*fd),
                _ => None,
            })
            .unwrap_or(-1)
    }

    /// The descriptors written into the `NewFd` operands, in order.
    pub fn new_fds(&self) -> impl Iterator<Item = i32> + '_ {
        self.items.iter().filter_map(|r| match r {
            Resolved::NewFd(fd) => Some(*fd),
            _ => None,
        })
    }

    fn set_new_fd(&mut self, nth: usize, fd: i32) {
        if let Some(Resolved::NewFd(slot)) = self
            .items
            .iter_mut()
            .filter(|r| matches!(r, Resolved::NewFd(_)))
            .nth(nth)
        {
            *slot = fd;
        }
    }
}

/// Smallest buffer range a call accepts (the row's [`min_buf`](cosy_model::SysSpec::min_buf):
/// statx writes a whole `struct statx`, utimensat reads a whole `struct timespec[2]`).
pub fn min_buf_len(call: Sys) -> usize {
    call.spec().min_buf
}

/// A call's result as the semantics carry it: the value, or `-errno`.
pub fn to_ret(r: Result<i64, Errno>) -> i64 {
    match r {
        Ok(v) => v,
        Err(e) => -i64::from(e.into_raw()),
    }
}

/// `struct open_how` of openat2(2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

fn ok(r: Result<usize, Errno>) -> Result<i64, Errno> {
    r.map(|v| v as i64)
}

fn no_offset(off: i64) -> bool {
    off == -1
}

/// Issues `call` with resolved operands, unconfined (paths resolved as given; the policy root
/// is applied by [`crate::confine`] before this). `Nop` returns 0 without a system call.
/// Descriptors opened get `O_CLOEXEC`.
pub(crate) fn issue(call: Sys, a: &mut ResolvedArgs, mem: &mut [u8]) -> Result<i64, Errno> {
    match call {
        // io_uring_enter(2) IORING_OP_NOP: nothing to issue on the direct path.
        Sys::Nop => Ok(0),
        // getpid(2)
        Sys::Getpid => {
            // SAFETY: getpid takes no arguments and touches no memory.
            ok(unsafe { syscall!(Sysno::getpid) })
        }
        // getppid(2)
        Sys::Getppid => {
            // SAFETY: getppid takes no arguments and touches no memory.
            ok(unsafe { syscall!(Sysno::getppid) })
        }
        // openat(2)
        Sys::Openat => openat(
            a.fd(0)?,
            a.path(1)?,
            a.int(2)? | i64::from(libc::O_CLOEXEC),
            a.int(3)?,
        ),
        // openat2(2)
        Sys::Openat2 => openat2(
            a.fd(0)?,
            a.path(1)?,
            a.int(2)? as u64 | libc::O_CLOEXEC as u64,
            a.int(3)? as u64,
            a.int(4)? as u64,
        ),
        // close(2)
        Sys::Close => close(a.fd(0)?),
        // read(2)
        Sys::Read => {
            let fd = a.fd(0)?;
            let (p, n) = raw_mut(mem, a.buf(1)?);
            // SAFETY: `p..p+n` is a bounds-checked range of the arena, exclusively borrowed for
            // the call; the kernel writes at most `n` bytes there.
            ok(unsafe { syscall!(Sysno::read, fd, p, n) })
        }
        // pread(2) (pread64)
        Sys::Pread => {
            let fd = a.fd(0)?;
            let off = a.int(2)?;
            let (p, n) = raw_mut(mem, a.buf(1)?);
            // SAFETY: as for read.
            ok(unsafe { syscall!(Sysno::pread64, fd, p, n, off) })
        }
        // write(2)
        Sys::Write => {
            let fd = a.fd(0)?;
            let (p, n) = raw(mem, a.buf(1)?);
            // SAFETY: `p..p+n` is a bounds-checked range of the arena the kernel only reads.
            ok(unsafe { syscall!(Sysno::write, fd, p, n) })
        }
        // pwrite(2) (pwrite64)
        Sys::Pwrite => {
            let fd = a.fd(0)?;
            let off = a.int(2)?;
            let (p, n) = raw(mem, a.buf(1)?);
            // SAFETY: as for write.
            ok(unsafe { syscall!(Sysno::pwrite64, fd, p, n, off) })
        }
        // lseek(2)
        Sys::Lseek => {
            let (fd, off, whence) = (a.fd(0)?, a.int(1)?, a.int(2)?);
            // SAFETY: integers only.
            ok(unsafe { syscall!(Sysno::lseek, fd, off, whence) })
        }
        // statx(2)
        Sys::Statx => statx(a.fd(0)?, a.path(1)?, a.int(2)?, a.int(3)?, mem, a.buf(4)?),
        // statx(2) with AT_EMPTY_PATH and STATX_BASIC_STATS (fstat)
        Sys::Fstat => statx(
            a.fd(0)?,
            c"",
            i64::from(libc::AT_EMPTY_PATH),
            i64::from(libc::STATX_BASIC_STATS),
            mem,
            a.buf(1)?,
        ),
        // getdents64(2)
        Sys::Getdents64 => {
            let fd = a.fd(0)?;
            let (p, n) = raw_mut(mem, a.buf(1)?);
            // SAFETY: as for read: the kernel writes at most `n` bytes of records at `p`.
            ok(unsafe { syscall!(Sysno::getdents64, fd, p, n) })
        }
        // mkdirat(2)
        Sys::Mkdirat => mkdirat(a.fd(0)?, a.path(1)?, a.int(2)?),
        // unlinkat(2)
        Sys::Unlinkat => unlinkat(a.fd(0)?, a.path(1)?, a.int(2)?),
        // renameat2(2)
        Sys::Renameat2 => renameat2(a.fd(0)?, a.path(1)?, a.fd(2)?, a.path(3)?, a.int(4)?),
        // fsync(2)
        Sys::Fsync => {
            let fd = a.fd(0)?;
            // SAFETY: integers only.
            ok(unsafe { syscall!(Sysno::fsync, fd) })
        }
        // fdatasync(2)
        Sys::Fdatasync => {
            let fd = a.fd(0)?;
            // SAFETY: integers only.
            ok(unsafe { syscall!(Sysno::fdatasync, fd) })
        }
        // ftruncate(2)
        Sys::Ftruncate => {
            let (fd, len) = (a.fd(0)?, a.int(1)?);
            // SAFETY: integers only.
            ok(unsafe { syscall!(Sysno::ftruncate, fd, len) })
        }
        // copy_file_range(2): an offset of -1 passes NULL.
        Sys::CopyFileRange => {
            let (fd_in, off_in, fd_out, off_out) = (a.fd(0)?, a.int(1)?, a.fd(2)?, a.int(3)?);
            let (len, flags) = (a.int(4)?, a.int(5)?);
            let (mut o_in, mut o_out) = (off_in, off_out);
            let p_in = offset_ptr(&mut o_in);
            let p_out = offset_ptr(&mut o_out);
            // SAFETY: the offset pointers are null or point to locals that outlive the call.
            let r = ok(unsafe {
                syscall!(
                    Sysno::copy_file_range,
                    fd_in,
                    p_in,
                    fd_out,
                    p_out,
                    len,
                    flags
                )
            });
            copied_or_fallback(r, fd_in, off_in, fd_out, off_out, len)
        }
        // splice(2): an offset of -1 passes NULL.
        Sys::Splice => {
            let (fd_in, mut off_in, fd_out, mut off_out) =
                (a.fd(0)?, a.int(1)?, a.fd(2)?, a.int(3)?);
            let (len, flags) = (a.int(4)?, a.int(5)?);
            let p_in = offset_ptr(&mut off_in);
            let p_out = offset_ptr(&mut off_out);
            // SAFETY: as for copy_file_range.
            ok(unsafe { syscall!(Sysno::splice, fd_in, p_in, fd_out, p_out, len, flags) })
        }
        // sendfile(2): an offset of -1 passes NULL.
        Sys::Sendfile => {
            let (out_fd, in_fd, off, count) = (a.fd(0)?, a.fd(1)?, a.int(2)?, a.int(3)?);
            let mut o = off;
            let p = offset_ptr(&mut o);
            // SAFETY: as for copy_file_range.
            let r = ok(unsafe { syscall!(Sysno::sendfile, out_fd, in_fd, p, count) });
            copied_or_fallback(r, in_fd, off, out_fd, -1, count)
        }
        // pipe2(2): the two descriptors go to the NewFd operands.
        Sys::Pipe2 => {
            let flags = a.int(2)? | i64::from(libc::O_CLOEXEC);
            let mut fds = [-1i32; 2];
            // SAFETY: `fds` is a local `int[2]` that outlives the call.
            let r = ok(unsafe { syscall!(Sysno::pipe2, fds.as_mut_ptr(), flags) })?;
            a.set_new_fd(0, fds[0]);
            a.set_new_fd(1, fds[1]);
            Ok(r)
        }
        // linkat(2)
        Sys::Linkat => linkat(a.fd(0)?, a.path(1)?, a.fd(2)?, a.path(3)?, a.int(4)?),
        // symlinkat(2)
        Sys::Symlinkat => symlinkat(a.path(0)?, a.fd(1)?, a.path(2)?),
        // readlinkat(2)
        Sys::Readlinkat => readlinkat(a.fd(0)?, a.path(1)?, mem, a.buf(2)?),
        // fchmodat2(2), fchmodat(2) for flags 0
        Sys::Fchmodat => fchmodat(a.fd(0)?, a.path(1)?, a.int(2)?, a.int(3)?),
        // fchownat(2)
        Sys::Fchownat => fchownat(a.fd(0)?, a.path(1)?, a.int(2)?, a.int(3)?, a.int(4)?),
        // utimensat(2)
        Sys::Utimensat => utimensat(a.fd(0)?, a.path(1)?, mem, a.buf(2)?, a.int(3)?),
        // fgetxattr(2)
        Sys::Fgetxattr => fgetxattr(a.fd(0)?, a.path(1)?, mem, a.buf(2)?),
        // fsetxattr(2)
        Sys::Fsetxattr => fsetxattr(a.fd(0)?, a.path(1)?, mem, a.buf(2)?, a.int(3)?),
        // flistxattr(2)
        Sys::Flistxattr => flistxattr(a.fd(0)?, mem, a.buf(1)?),
        // faccessat2(2)
        Sys::Faccessat2 => faccessat2(a.fd(0)?, a.path(1)?, a.int(2)?, a.int(3)?),
    }
}

/// A pointer and length for the kernel to write `span` of `mem` (length 0 if outside).
fn raw_mut(mem: &mut [u8], span: Span) -> (*mut u8, usize) {
    let b = arena::bytes_mut(mem, span);
    (b.as_mut_ptr(), b.len())
}

/// A pointer and length for the kernel to read `span` of `mem` (length 0 if outside).
fn raw(mem: &[u8], span: Span) -> (*const u8, usize) {
    let b = arena::bytes(mem, span);
    (b.as_ptr(), b.len())
}

/// The errors with which the kernel refuses a zero-copy transfer between two descriptors it
/// cannot do one between (an `O_APPEND` output, a FIFO, a `/proc` file, two file systems, an
/// old kernel), where a read and a write of the same bytes would succeed.
const NO_ZERO_COPY: [Errno; 5] = [
    Errno::EINVAL,
    Errno::EXDEV,
    Errno::ENOSYS,
    Errno::EOPNOTSUPP,
    Errno::ESPIPE,
];

/// Bytes moved by one fallback transfer at most (the call may return fewer than asked, as
/// the zero-copy calls may).
const FALLBACK_CHUNK: usize = 1 << 20;

/// The result of a zero-copy call (`sendfile`, `copy_file_range`), or, if the kernel refused
/// it with one of [`NO_ZERO_COPY`], the same transfer made as `std::io::copy` and GNU cp make it:
/// one read (pread at `off_in` unless it is -1) of up to `len` bytes, then writes (pwrite at
/// `off_out` unless -1) until all of them are written. Its result is the bytes written, or the
/// error of the read or of the first write (what a read and a write would have said).
fn copied_or_fallback(
    r: Result<i64, Errno>,
    fd_in: i32,
    off_in: i64,
    fd_out: i32,
    off_out: i64,
    len: i64,
) -> Result<i64, Errno> {
    match r {
        Err(e) if NO_ZERO_COPY.contains(&e) && len >= 0 => {}
        r => return r,
    }
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0).min(FALLBACK_CHUNK)];
    let (p, cap) = (buf.as_mut_ptr(), buf.len());
    // SAFETY: `p..p+cap` is the local buffer, exclusively borrowed; the kernel writes at most
    // `cap` bytes there.
    let n = ok(unsafe {
        if no_offset(off_in) {
            syscall!(Sysno::read, fd_in, p, cap)
        } else {
            syscall!(Sysno::pread64, fd_in, p, cap, off_in)
        }
    })?;
    let n = usize::try_from(n).unwrap_or(0).min(cap);
    let mut done = 0usize;
    while done < n {
        let rest = &buf[done..n];
        let at = off_out.saturating_add(done as i64);
        // SAFETY: `rest` is a range of the local buffer the kernel only reads.
        let w = ok(unsafe {
            if no_offset(off_out) {
                syscall!(Sysno::write, fd_out, rest.as_ptr(), rest.len())
            } else {
                syscall!(Sysno::pwrite64, fd_out, rest.as_ptr(), rest.len(), at)
            }
        });
        match w {
            Ok(0) => break,
            Ok(w) => done += usize::try_from(w).unwrap_or(0),
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done as i64)
}

fn offset_ptr(off: &mut i64) -> *mut i64 {
    if no_offset(*off) {
        std::ptr::null_mut()
    } else {
        off
    }
}

/// openat(2).
pub(crate) fn openat(dirfd: i32, path: &CStr, flags: i64, mode: i64) -> Result<i64, Errno> {
    // SAFETY: `path` is NUL-terminated and outlives the call; the rest are integers.
    ok(unsafe { syscall!(Sysno::openat, dirfd, path.as_ptr(), flags, mode) })
}

/// openat2(2) with `open_how { flags, mode, resolve }`.
pub(crate) fn openat2(
    dirfd: i32,
    path: &CStr,
    flags: u64,
    mode: u64,
    resolve: u64,
) -> Result<i64, Errno> {
    let how = OpenHow {
        flags,
        mode,
        resolve,
    };
    let size = std::mem::size_of::<OpenHow>();
    // SAFETY: `path` is NUL-terminated and `how` a local `struct open_how` of `size` bytes,
    // both outliving the call.
    ok(unsafe {
        syscall!(
            Sysno::openat2,
            dirfd,
            path.as_ptr(),
            &how as *const OpenHow,
            size
        )
    })
}

/// close(2).
pub(crate) fn close(fd: i32) -> Result<i64, Errno> {
    // SAFETY: integers only; the descriptor is one the caller owns (or -1).
    ok(unsafe { syscall!(Sysno::close, fd) })
}

/// statx(2) into `buf` (which must hold [`STATX_SIZE`] bytes, else `EINVAL` and nothing is
/// issued).
pub(crate) fn statx(
    dirfd: i32,
    path: &CStr,
    flags: i64,
    mask: i64,
    mem: &mut [u8],
    buf: Span,
) -> Result<i64, Errno> {
    let (p, n) = raw_mut(mem, buf);
    if n < STATX_SIZE {
        return Err(Errno::EINVAL);
    }
    // SAFETY: `path` is NUL-terminated; `p` points to at least STATX_SIZE writable bytes of the
    // arena (checked above), exclusively borrowed for the call.
    ok(unsafe { syscall!(Sysno::statx, dirfd, path.as_ptr(), flags, mask, p) })
}

/// mkdirat(2).
pub(crate) fn mkdirat(dirfd: i32, path: &CStr, mode: i64) -> Result<i64, Errno> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    ok(unsafe { syscall!(Sysno::mkdirat, dirfd, path.as_ptr(), mode) })
}

/// unlinkat(2).
pub(crate) fn unlinkat(dirfd: i32, path: &CStr, flags: i64) -> Result<i64, Errno> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    ok(unsafe { syscall!(Sysno::unlinkat, dirfd, path.as_ptr(), flags) })
}

/// renameat2(2).
pub(crate) fn renameat2(
    olddirfd: i32,
    old: &CStr,
    newdirfd: i32,
    new: &CStr,
    flags: i64,
) -> Result<i64, Errno> {
    // SAFETY: both paths are NUL-terminated and outlive the call.
    ok(unsafe {
        syscall!(
            Sysno::renameat2,
            olddirfd,
            old.as_ptr(),
            newdirfd,
            new.as_ptr(),
            flags
        )
    })
}

/// linkat(2): `newpath` (relative to `newdirfd`) becomes a name of `oldpath`.
pub(crate) fn linkat(
    olddirfd: i32,
    oldpath: &CStr,
    newdirfd: i32,
    newpath: &CStr,
    flags: i64,
) -> Result<i64, Errno> {
    // SAFETY: both paths are NUL-terminated and outlive the call.
    ok(unsafe {
        syscall!(
            Sysno::linkat,
            olddirfd,
            oldpath.as_ptr(),
            newdirfd,
            newpath.as_ptr(),
            flags
        )
    })
}

/// symlinkat(2): a symbolic link `linkpath` (relative to `newdirfd`) holding `target`.
pub(crate) fn symlinkat(target: &CStr, newdirfd: i32, linkpath: &CStr) -> Result<i64, Errno> {
    // SAFETY: both strings are NUL-terminated and outlive the call.
    ok(unsafe {
        syscall!(
            Sysno::symlinkat,
            target.as_ptr(),
            newdirfd,
            linkpath.as_ptr()
        )
    })
}

/// readlinkat(2): the target of the symbolic link `path` into `buf` of `mem` (not
/// NUL-terminated); returns the bytes written.
pub(crate) fn readlinkat(dirfd: i32, path: &CStr, mem: &mut [u8], buf: Span) -> Result<i64, Errno> {
    let (p, n) = raw_mut(mem, buf);
    // SAFETY: `path` is NUL-terminated; `p..p+n` is a bounds-checked range of the arena,
    // exclusively borrowed for the call; the kernel writes at most `n` bytes there.
    ok(unsafe { syscall!(Sysno::readlinkat, dirfd, path.as_ptr(), p, n) })
}

/// fchmodat2(2) with `flags` (`AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`); fchmodat(2), which has
/// no flags, when `flags` is 0 (kernels before 6.6 lack fchmodat2).
pub(crate) fn fchmodat(dirfd: i32, path: &CStr, mode: i64, flags: i64) -> Result<i64, Errno> {
    if flags == 0 {
        // SAFETY: `path` is NUL-terminated and outlives the call.
        return ok(unsafe { syscall!(Sysno::fchmodat, dirfd, path.as_ptr(), mode) });
    }
    // SAFETY: as above.
    ok(unsafe { syscall!(Sysno::fchmodat2, dirfd, path.as_ptr(), mode, flags) })
}

/// fchownat(2); an owner or group of -1 (as `uid_t`, `gid_t`) is left unchanged.
pub(crate) fn fchownat(
    dirfd: i32,
    path: &CStr,
    owner: i64,
    group: i64,
    flags: i64,
) -> Result<i64, Errno> {
    // The kernel's uid_t and gid_t are 32 bits: -1 is 0xffff_ffff.
    let (uid, gid) = (owner as u32, group as u32);
    // SAFETY: `path` is NUL-terminated and outlives the call.
    ok(unsafe { syscall!(Sysno::fchownat, dirfd, path.as_ptr(), uid, gid, flags) })
}

/// utimensat(2) with the `struct timespec[2]` at the start of `times` in `mem` (which must
/// hold [`TIMES_SIZE`] bytes, else `EINVAL` and nothing is issued).
pub(crate) fn utimensat(
    dirfd: i32,
    path: &CStr,
    mem: &[u8],
    times: Span,
    flags: i64,
) -> Result<i64, Errno> {
    let b = arena::bytes(mem, times);
    let Some(b) = b.get(..TIMES_SIZE) else {
        return Err(Errno::EINVAL);
    };
    // The arena is bytes: copy into an aligned `struct timespec[2]`.
    let field = |i: usize| {
        let mut x = [0u8; 8];
        x.copy_from_slice(&b[i * 8..i * 8 + 8]);
        i64::from_ne_bytes(x)
    };
    let ts = [
        libc::timespec {
            tv_sec: field(0),
            tv_nsec: field(1),
        },
        libc::timespec {
            tv_sec: field(2),
            tv_nsec: field(3),
        },
    ];
    // SAFETY: `path` is NUL-terminated and `ts` a local `struct timespec[2]`, both outliving
    // the call.
    ok(unsafe { syscall!(Sysno::utimensat, dirfd, path.as_ptr(), ts.as_ptr(), flags) })
}

/// fgetxattr(2): the value of attribute `name` of `fd` into `buf` of `mem`; returns its
/// length (with an empty range, the length only).
pub(crate) fn fgetxattr(fd: i32, name: &CStr, mem: &mut [u8], buf: Span) -> Result<i64, Errno> {
    let (p, n) = raw_mut(mem, buf);
    // SAFETY: `name` is NUL-terminated; `p..p+n` is a bounds-checked range of the arena,
    // exclusively borrowed for the call; the kernel writes at most `n` bytes there.
    ok(unsafe { syscall!(Sysno::fgetxattr, fd, name.as_ptr(), p, n) })
}

/// fsetxattr(2): attribute `name` of `fd` set to the bytes of `buf` in `mem`.
pub(crate) fn fsetxattr(
    fd: i32,
    name: &CStr,
    mem: &[u8],
    buf: Span,
    flags: i64,
) -> Result<i64, Errno> {
    let (p, n) = raw(mem, buf);
    // SAFETY: `name` is NUL-terminated; `p..p+n` is a bounds-checked range of the arena the
    // kernel only reads.
    ok(unsafe { syscall!(Sysno::fsetxattr, fd, name.as_ptr(), p, n, flags) })
}

/// flistxattr(2): the NUL-terminated attribute names of `fd` into `buf` of `mem`; returns
/// their total length (with an empty range, the length only).
pub(crate) fn flistxattr(fd: i32, mem: &mut [u8], buf: Span) -> Result<i64, Errno> {
    let (p, n) = raw_mut(mem, buf);
    // SAFETY: `p..p+n` is a bounds-checked range of the arena, exclusively borrowed for the
    // call; the kernel writes at most `n` bytes there.
    ok(unsafe { syscall!(Sysno::flistxattr, fd, p, n) })
}

/// faccessat2(2): checks `mode` (`F_OK`, or bits of `R_OK | W_OK | X_OK`) on `path`.
pub(crate) fn faccessat2(dirfd: i32, path: &CStr, mode: i64, flags: i64) -> Result<i64, Errno> {
    // SAFETY: `path` is NUL-terminated and outlives the call.
    ok(unsafe { syscall!(Sysno::faccessat2, dirfd, path.as_ptr(), mode, flags) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_descriptor_is_ebadf() {
        assert_eq!(close(-1), Err(Errno::EBADF));
        let mut a = ResolvedArgs {
            items: vec![Resolved::Fd(-1), Resolved::Buf(Span::default())],
        };
        assert_eq!(issue(Sys::Read, &mut a, &mut []), Err(Errno::EBADF));
    }

    #[test]
    fn wrong_operand_kind_is_einval_not_a_panic() {
        for &call in Sys::ALL {
            let mut a = ResolvedArgs::default();
            let r = issue(call, &mut a, &mut []);
            if call.spec().args.is_empty() {
                assert!(r.is_ok(), "{call:?}");
            } else {
                assert_eq!(r, Err(Errno::EINVAL), "{call:?}");
            }
        }
    }

    #[test]
    fn pipe2_fills_new_fds() {
        let mut a = ResolvedArgs {
            items: vec![Resolved::NewFd(-1), Resolved::NewFd(-1), Resolved::Int(0)],
        };
        assert_eq!(issue(Sys::Pipe2, &mut a, &mut []), Ok(0));
        let fds: Vec<i32> = a.new_fds().collect();
        assert!(fds.iter().all(|&fd| fd > 2));
        for fd in fds {
            assert_eq!(close(fd), Ok(0));
        }
    }
}
