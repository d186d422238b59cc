//! Which failing requests break a soft link, measured on the running kernel.
//!
//! io_uring cancels the rest of a soft-linked chain (`IOSQE_IO_LINK`) when a request fails
//! (io_uring_enter(2)), but some opcodes complete with their error without marking the request
//! failed, and the next request of the chain then runs. The ring executor must know which: a
//! call with side effects queued behind such a request would run where the direct executor
//! stops before it. [`failure_breaks_link`] measures it for one opcode: a request made to fail
//! (in a scratch directory, on descriptors it opens there), soft-linked to a NOP; the link was
//! broken when the NOP completes with `-ECANCELED`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use io_uring::{IoUring, opcode, squeue, types};

use crate::{Error, Probe, Result};

/// The opcodes [`failure_breaks_link`] knows how to make fail.
pub const MEASURABLE: &[u8] = &[
    opcode::OpenAt::CODE,
    opcode::OpenAt2::CODE,
    opcode::Close::CODE,
    opcode::Read::CODE,
    opcode::Write::CODE,
    opcode::Statx::CODE,
    opcode::MkDirAt::CODE,
    opcode::UnlinkAt::CODE,
    opcode::RenameAt::CODE,
    opcode::Fsync::CODE,
    opcode::Ftruncate::CODE,
    opcode::Splice::CODE,
    opcode::LinkAt::CODE,
    opcode::SymlinkAt::CODE,
    opcode::FGetXattr::CODE,
    opcode::FSetXattr::CODE,
];

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| Error::Path)
}

fn open(p: &Path, flags: rustix::fs::OFlags) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        flags | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .map_err(|e| Error::Measure(format!("open {}: {e}", p.display())))
}

/// Whether a failure of a request with opcode `code` breaks a soft link on this kernel:
/// `Ok(None)` when io_uring or the opcode is unavailable here, or when the opcode is not one
/// of [`MEASURABLE`]. `scratch` is an empty directory the measurement may fill (it creates a
/// file `f`, a directory `d`, a pipe's descriptors and nothing outside).
pub fn failure_breaks_link(code: u8, scratch: &Path) -> Result<Option<bool>> {
    let probe = Probe::detect();
    if !probe.available() || !probe.supports(code) || !MEASURABLE.contains(&code) {
        return Ok(None);
    }
    let file = scratch.join("f");
    std::fs::write(&file, b"data").map_err(|e| Error::Measure(format!("scratch file: {e}")))?;
    let dir = scratch.join("d");
    if !dir.exists() {
        std::fs::create_dir(&dir).map_err(|e| Error::Measure(format!("scratch dir: {e}")))?;
    }
    let missing = cstr(&scratch.join("missing"))?;
    let missing2 = cstr(&scratch.join("missing2"))?;
    let existing_dir = cstr(&dir)?;
    let file_c = cstr(&file)?;
    let target = CString::from(c"f");
    let attr = CString::from(c"user.cosy-missing");
    let mut buf = [0u8; 16];
    let ro = open(&file, rustix::fs::OFlags::RDONLY)?;
    let dirfd = open(
        &dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY,
    )?;
    let (pipe_r, _pipe_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::Measure(format!("pipe: {e}")))?;
    let how = types::OpenHow::new().flags(libc::O_RDONLY as u64);
    let fd = |f: &OwnedFd| types::Fd(f.as_raw_fd());
    let cwd = types::Fd(libc::AT_FDCWD);
    let mut statx_buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // Each request fails with its own error, the descriptors and paths valid.
    let failing = match code {
        c if c == opcode::OpenAt::CODE => opcode::OpenAt::new(cwd, missing.as_ptr()).build(),
        c if c == opcode::OpenAt2::CODE => {
            opcode::OpenAt2::new(cwd, missing.as_ptr(), &how).build()
        }
        // A descriptor number nothing holds.
        c if c == opcode::Close::CODE => opcode::Close::new(types::Fd(1 << 20)).build(),
        // read(2) of a directory: EISDIR.
        c if c == opcode::Read::CODE => {
            opcode::Read::new(fd(&dirfd), buf.as_mut_ptr(), buf.len() as u32).build()
        }
        // write(2) to a descriptor opened read-only: EBADF.
        c if c == opcode::Write::CODE => {
            opcode::Write::new(fd(&ro), buf.as_ptr(), buf.len() as u32).build()
        }
        c if c == opcode::Statx::CODE => opcode::Statx::new(
            cwd,
            missing.as_ptr(),
            statx_buf.as_mut_ptr().cast::<types::statx>(),
        )
        .mask(libc::STATX_BASIC_STATS)
        .build(),
        c if c == opcode::MkDirAt::CODE => opcode::MkDirAt::new(cwd, existing_dir.as_ptr()).build(),
        c if c == opcode::UnlinkAt::CODE => opcode::UnlinkAt::new(cwd, missing.as_ptr()).build(),
        c if c == opcode::RenameAt::CODE => {
            opcode::RenameAt::new(cwd, missing.as_ptr(), cwd, missing2.as_ptr()).build()
        }
        // fsync(2) of a pipe: EINVAL.
        c if c == opcode::Fsync::CODE => opcode::Fsync::new(fd(&pipe_r)).build(),
        // ftruncate(2) of a descriptor opened read-only: EINVAL.
        c if c == opcode::Ftruncate::CODE => opcode::Ftruncate::new(fd(&ro), 0).build(),
        // splice(2) between two files, neither a pipe: EINVAL.
        c if c == opcode::Splice::CODE => opcode::Splice::new(fd(&ro), 0, fd(&ro), 0, 4).build(),
        c if c == opcode::LinkAt::CODE => {
            opcode::LinkAt::new(cwd, missing.as_ptr(), cwd, missing2.as_ptr()).build()
        }
        // The link path exists: EEXIST.
        c if c == opcode::SymlinkAt::CODE => {
            opcode::SymlinkAt::new(cwd, target.as_ptr(), file_c.as_ptr()).build()
        }
        // No such attribute (ENODATA), or none on this file system (EOPNOTSUPP).
        c if c == opcode::FGetXattr::CODE => opcode::FGetXattr::new(
            fd(&ro),
            attr.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len() as u32,
        )
        .build(),
        // XATTR_REPLACE of an attribute that does not exist: ENODATA (or EOPNOTSUPP).
        c if c == opcode::FSetXattr::CODE => opcode::FSetXattr::new(
            fd(&ro),
            attr.as_ptr(),
            buf.as_ptr().cast(),
            buf.len() as u32,
        )
        .flags(libc::XATTR_REPLACE)
        .build(),
        _ => return Ok(None),
    };
    let mut ring = IoUring::new(4).map_err(Error::Setup)?;
    let entries = [
        failing.flags(squeue::Flags::IO_LINK).user_data(1),
        opcode::Nop::new().build().user_data(2),
    ];
    for e in &entries {
        // SAFETY: every pointer the entries hold (paths, `buf`, `statx_buf`, `how`) is a local
        // of this function, and the function waits below for both completions before any of
        // them is dropped; the descriptors stay open until then too.
        unsafe { ring.submission().push(e) }
            .map_err(|_| Error::Measure("submission queue full".into()))?;
    }
    ring.submit_and_wait(2).map_err(Error::Enter)?;
    let mut failed = None;
    let mut nop = None;
    for c in ring.completion() {
        match c.user_data() {
            1 => failed = Some(c.result()),
            2 => nop = Some(c.result()),
            _ => {}
        }
    }
    match (failed, nop) {
        (Some(f), Some(n)) if f < 0 => Ok(Some(n == -libc::ECANCELED)),
        (Some(f), _) if f >= 0 => Err(Error::Measure(format!(
            "the request meant to fail (opcode {code}) succeeded with {f}"
        ))),
        _ => Err(Error::Measure("missing completions".into())),
    }
}
