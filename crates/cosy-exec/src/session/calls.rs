//! The calls a session sends, with their man pages.

use super::*;
use cosy_model::flags::{
    Access, AtFlags, FlagBits, Mode, OFlags, RenameFlags, StatxFlags, Whence, XattrFlags,
};

/// Typed flags as the integer operand of the call.
fn flag(f: impl FlagBits) -> Operand {
    Operand::Int(Val::Imm(f.to_operand()))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Operand {
    Fd(Fd),
    Path(Vec<u8>),
    Buf(Buf),
    Int(Val),
}

/// A system call to send, its result a handle of kind `H`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call<H> {
    pub(super) sys: Sys,
    pub(super) args: Vec<Operand>,
    pub(super) plain: bool,
    pub(super) kind: PhantomData<fn() -> H>,
}

pub(super) fn path_of(p: impl AsRef<Path>) -> Operand {
    Operand::Path(p.as_ref().as_os_str().as_encoded_bytes().to_vec())
}

impl<H: Handle> Call<H> {
    pub(super) fn new(sys: Sys, args: Vec<Operand>) -> Self {
        Call {
            sys,
            args,
            plain: false,
            kind: PhantomData,
        }
    }

    /// The system call.
    pub fn sys(&self) -> Sys {
        self.sys
    }
}

impl Call<FdHandle> {
    /// [openat(2)](https://man7.org/linux/man-pages/man2/openat.2.html): opens `path`
    /// relative to `dir` (under a policy root: openat2(2) with `RESOLVE_BENEATH`). On the ring
    /// the descriptor is a direct descriptor unless the flags hold `O_DIRECTORY` or `O_PATH`
    /// or the call is made [`plain`](Call::plain); `mode` counts with `O_CREAT` or `O_TMPFILE`
    /// only.
    pub fn openat(dir: impl Into<Fd>, path: impl AsRef<Path>, flags: OFlags, mode: Mode) -> Self {
        Call::new(
            Sys::Openat,
            vec![
                Operand::Fd(dir.into()),
                path_of(path),
                flag(flags),
                flag(mode),
            ],
        )
    }

    /// Makes the descriptor a descriptor of the process on every backend (never a direct
    /// descriptor of the ring): needed for calls other than close, read, pread, write,
    /// pwrite, fsync, fdatasync and ftruncate (fstat, lseek, getdents64, a directory of
    /// openat, …). A descriptor opened with `O_DIRECTORY` or `O_PATH` is always plain.
    pub fn plain(mut self) -> Self {
        self.plain = true;
        self
    }
}

impl Call<ValueHandle> {
    /// [close(2)](https://man7.org/linux/man-pages/man2/close.2.html).
    pub fn close(fd: FdHandle) -> Self {
        Call::new(Sys::Close, vec![Operand::Fd(Fd::Handle(fd))])
    }

    /// [read(2)](https://man7.org/linux/man-pages/man2/read.2.html) into `buf`.
    pub fn read(fd: impl Into<Fd>, buf: impl Into<Buf>) -> Self {
        Call::new(
            Sys::Read,
            vec![Operand::Fd(fd.into()), Operand::Buf(buf.into())],
        )
    }

    /// [pread64(2)](https://man7.org/linux/man-pages/man2/pread.2.html) into `buf` from
    /// `offset`.
    pub fn pread(fd: impl Into<Fd>, buf: impl Into<Buf>, offset: impl Into<Val>) -> Self {
        Call::new(
            Sys::Pread,
            vec![
                Operand::Fd(fd.into()),
                Operand::Buf(buf.into()),
                Operand::Int(offset.into()),
            ],
        )
    }

    /// [write(2)](https://man7.org/linux/man-pages/man2/write.2.html) of `buf`.
    pub fn write(fd: impl Into<Fd>, buf: impl Into<Buf>) -> Self {
        Call::new(
            Sys::Write,
            vec![Operand::Fd(fd.into()), Operand::Buf(buf.into())],
        )
    }

    /// [pwrite64(2)](https://man7.org/linux/man-pages/man2/pwrite.2.html) of `buf` at
    /// `offset`.
    pub fn pwrite(fd: impl Into<Fd>, buf: impl Into<Buf>, offset: impl Into<Val>) -> Self {
        Call::new(
            Sys::Pwrite,
            vec![
                Operand::Fd(fd.into()),
                Operand::Buf(buf.into()),
                Operand::Int(offset.into()),
            ],
        )
    }

    /// [faccessat2(2)](https://man7.org/linux/man-pages/man2/faccessat2.2.html): checks
    /// `mode` ([`Access::EXISTS`], or bits of `READ_OK`, `WRITE_OK`, `EXEC_OK`) on `path`; 0
    /// or an error.
    pub fn faccessat2(
        dir: impl Into<Fd>,
        path: impl AsRef<Path>,
        mode: Access,
        flags: AtFlags,
    ) -> Self {
        Call::new(
            Sys::Faccessat2,
            vec![
                Operand::Fd(dir.into()),
                path_of(path),
                flag(mode),
                flag(flags),
            ],
        )
    }

    /// [statx(2)](https://man7.org/linux/man-pages/man2/statx.2.html): a `struct statx` of
    /// `path` into `buf` (at least 256 bytes).
    pub fn statx(
        dir: impl Into<Fd>,
        path: impl AsRef<Path>,
        flags: AtFlags,
        mask: StatxFlags,
        buf: impl Into<Buf>,
    ) -> Self {
        Call::new(
            Sys::Statx,
            vec![
                Operand::Fd(dir.into()),
                path_of(path),
                flag(flags),
                flag(mask),
                Operand::Buf(buf.into()),
            ],
        )
    }

    /// fstat: [statx(2)](https://man7.org/linux/man-pages/man2/statx.2.html) of `fd` with
    /// `AT_EMPTY_PATH` and `STATX_BASIC_STATS` into `buf` (at least 256 bytes; a plain
    /// descriptor).
    pub fn fstat(fd: impl Into<Fd>, buf: impl Into<Buf>) -> Self {
        Call::new(
            Sys::Fstat,
            vec![Operand::Fd(fd.into()), Operand::Buf(buf.into())],
        )
    }

    /// [getdents64(2)](https://man7.org/linux/man-pages/man2/getdents64.2.html): directory
    /// entries of `fd` into `buf` (a plain descriptor: open the directory with `O_DIRECTORY`).
    pub fn getdents64(fd: impl Into<Fd>, buf: impl Into<Buf>) -> Self {
        Call::new(
            Sys::Getdents64,
            vec![Operand::Fd(fd.into()), Operand::Buf(buf.into())],
        )
    }

    /// [renameat2(2)](https://man7.org/linux/man-pages/man2/renameat2.2.html).
    pub fn renameat2(
        olddir: impl Into<Fd>,
        oldpath: impl AsRef<Path>,
        newdir: impl Into<Fd>,
        newpath: impl AsRef<Path>,
        flags: RenameFlags,
    ) -> Self {
        Call::new(
            Sys::Renameat2,
            vec![
                Operand::Fd(olddir.into()),
                path_of(oldpath),
                Operand::Fd(newdir.into()),
                path_of(newpath),
                flag(flags),
            ],
        )
    }

    /// [fdatasync(2)](https://man7.org/linux/man-pages/man2/fdatasync.2.html).
    pub fn fdatasync(fd: impl Into<Fd>) -> Self {
        Call::new(Sys::Fdatasync, vec![Operand::Fd(fd.into())])
    }

    /// [lseek(2)](https://man7.org/linux/man-pages/man2/lseek.2.html) (a plain descriptor).
    pub fn lseek(fd: impl Into<Fd>, offset: impl Into<Val>, whence: Whence) -> Self {
        Call::new(
            Sys::Lseek,
            vec![
                Operand::Fd(fd.into()),
                Operand::Int(offset.into()),
                flag(whence),
            ],
        )
    }

    /// [fsync(2)](https://man7.org/linux/man-pages/man2/fsync.2.html).
    pub fn fsync(fd: impl Into<Fd>) -> Self {
        Call::new(Sys::Fsync, vec![Operand::Fd(fd.into())])
    }

    /// [ftruncate(2)](https://man7.org/linux/man-pages/man2/ftruncate.2.html).
    pub fn ftruncate(fd: impl Into<Fd>, length: impl Into<Val>) -> Self {
        Call::new(
            Sys::Ftruncate,
            vec![Operand::Fd(fd.into()), Operand::Int(length.into())],
        )
    }

    /// [mkdirat(2)](https://man7.org/linux/man-pages/man2/mkdirat.2.html).
    pub fn mkdirat(dir: impl Into<Fd>, path: impl AsRef<Path>, mode: Mode) -> Self {
        Call::new(
            Sys::Mkdirat,
            vec![Operand::Fd(dir.into()), path_of(path), flag(mode)],
        )
    }

    /// [unlinkat(2)](https://man7.org/linux/man-pages/man2/unlinkat.2.html) (a directory
    /// with [`AtFlags::REMOVEDIR`]).
    pub fn unlinkat(dir: impl Into<Fd>, path: impl AsRef<Path>, flags: AtFlags) -> Self {
        Call::new(
            Sys::Unlinkat,
            vec![Operand::Fd(dir.into()), path_of(path), flag(flags)],
        )
    }

    /// [readlinkat(2)](https://man7.org/linux/man-pages/man2/readlinkat.2.html): the target
    /// of the symbolic link `path` into `buf` (not NUL-terminated); the result is its length
    /// (equal to the range's length: perhaps truncated).
    pub fn readlinkat(dir: impl Into<Fd>, path: impl AsRef<Path>, buf: impl Into<Buf>) -> Self {
        Call::new(
            Sys::Readlinkat,
            vec![
                Operand::Fd(dir.into()),
                path_of(path),
                Operand::Buf(buf.into()),
            ],
        )
    }

    /// [linkat(2)](https://man7.org/linux/man-pages/man2/linkat.2.html): a new name for a
    /// file (`AT_SYMLINK_FOLLOW` in `flags` to link what a symbolic link points to).
    pub fn linkat(
        olddir: impl Into<Fd>,
        oldpath: impl AsRef<Path>,
        newdir: impl Into<Fd>,
        newpath: impl AsRef<Path>,
        flags: AtFlags,
    ) -> Self {
        Call::new(
            Sys::Linkat,
            vec![
                Operand::Fd(olddir.into()),
                path_of(oldpath),
                Operand::Fd(newdir.into()),
                path_of(newpath),
                flag(flags),
            ],
        )
    }

    /// [symlinkat(2)](https://man7.org/linux/man-pages/man2/symlinkat.2.html): a symbolic
    /// link `linkpath` holding `target` (stored as it is, not resolved).
    pub fn symlinkat(
        target: impl AsRef<Path>,
        newdir: impl Into<Fd>,
        linkpath: impl AsRef<Path>,
    ) -> Self {
        Call::new(
            Sys::Symlinkat,
            vec![
                path_of(target),
                Operand::Fd(newdir.into()),
                path_of(linkpath),
            ],
        )
    }

    /// [fchmodat(2)](https://man7.org/linux/man-pages/man2/fchmodat.2.html) (fchmodat2 with
    /// `flags`: `AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`).
    pub fn fchmodat(
        dir: impl Into<Fd>,
        path: impl AsRef<Path>,
        mode: Mode,
        flags: AtFlags,
    ) -> Self {
        Call::new(
            Sys::Fchmodat,
            vec![
                Operand::Fd(dir.into()),
                path_of(path),
                flag(mode),
                flag(flags),
            ],
        )
    }

    /// [fchownat(2)](https://man7.org/linux/man-pages/man2/fchownat.2.html); an owner or
    /// group of -1 leaves it as it is.
    pub fn fchownat(
        dir: impl Into<Fd>,
        path: impl AsRef<Path>,
        owner: i64,
        group: i64,
        flags: AtFlags,
    ) -> Self {
        Call::new(
            Sys::Fchownat,
            vec![
                Operand::Fd(dir.into()),
                path_of(path),
                Operand::Int(Val::Imm(owner)),
                Operand::Int(Val::Imm(group)),
                flag(flags),
            ],
        )
    }

    /// [utimensat(2)](https://man7.org/linux/man-pages/man2/utimensat.2.html): the access and
    /// modification times from `times`, a `struct timespec[2]` (32 bytes, native byte order;
    /// `UTIME_NOW`, `UTIME_OMIT` in `tv_nsec`).
    pub fn utimensat(
        dir: impl Into<Fd>,
        path: impl AsRef<Path>,
        times: impl Into<Buf>,
        flags: AtFlags,
    ) -> Self {
        Call::new(
            Sys::Utimensat,
            vec![
                Operand::Fd(dir.into()),
                path_of(path),
                Operand::Buf(times.into()),
                flag(flags),
            ],
        )
    }

    /// [fgetxattr(2)](https://man7.org/linux/man-pages/man2/fgetxattr.2.html): the value of
    /// the extended attribute `name` into `buf` (a plain descriptor); an empty range asks for
    /// its length.
    pub fn fgetxattr(fd: impl Into<Fd>, name: impl AsRef<Path>, buf: impl Into<Buf>) -> Self {
        Call::new(
            Sys::Fgetxattr,
            vec![
                Operand::Fd(fd.into()),
                path_of(name),
                Operand::Buf(buf.into()),
            ],
        )
    }

    /// [fsetxattr(2)](https://man7.org/linux/man-pages/man2/fsetxattr.2.html): sets the
    /// extended attribute `name` to the bytes of `value` (a plain descriptor).
    pub fn fsetxattr(
        fd: impl Into<Fd>,
        name: impl AsRef<Path>,
        value: impl Into<Buf>,
        flags: XattrFlags,
    ) -> Self {
        Call::new(
            Sys::Fsetxattr,
            vec![
                Operand::Fd(fd.into()),
                path_of(name),
                Operand::Buf(value.into()),
                flag(flags),
            ],
        )
    }

    /// [flistxattr(2)](https://man7.org/linux/man-pages/man2/flistxattr.2.html): the
    /// NUL-terminated names of the file's extended attributes into `buf` (a plain
    /// descriptor); an empty range asks for their length.
    pub fn flistxattr(fd: impl Into<Fd>, buf: impl Into<Buf>) -> Self {
        Call::new(
            Sys::Flistxattr,
            vec![Operand::Fd(fd.into()), Operand::Buf(buf.into())],
        )
    }

    /// [copy_file_range(2)](https://man7.org/linux/man-pages/man2/copy_file_range.2.html):
    /// up to `len` bytes from `fd_in` to `fd_out` (offsets of -1: the file positions); where
    /// the kernel refuses the copy, a read and a write of the same bytes (docs/semantics.md).
    pub fn copy_file_range(
        fd_in: impl Into<Fd>,
        off_in: impl Into<Val>,
        fd_out: impl Into<Fd>,
        off_out: impl Into<Val>,
        len: impl Into<Val>,
    ) -> Self {
        Call::new(
            Sys::CopyFileRange,
            vec![
                Operand::Fd(fd_in.into()),
                Operand::Int(off_in.into()),
                Operand::Fd(fd_out.into()),
                Operand::Int(off_out.into()),
                Operand::Int(len.into()),
                Operand::Int(Val::Imm(0)),
            ],
        )
    }

    /// [getpid(2)](https://man7.org/linux/man-pages/man2/getpid.2.html).
    pub fn getpid() -> Self {
        Call::new(Sys::Getpid, Vec::new())
    }

    /// Nothing, returning 0: no system call on `direct`, an io_uring NOP
    /// ([io_uring_enter(2)](https://man7.org/linux/man-pages/man2/io_uring_enter.2.html))
    /// on `ring`.
    pub fn nop() -> Self {
        Call::new(Sys::Nop, Vec::new())
    }
}
