//! The operation table: every system call a compound can make, declared once.
//!
//! Each row of `sys_table!` gives, for one call:
//!
//! | column | type | read by |
//! |---|---|---|
//! | name, code | `&str`, `u8` | the text and binary formats ([`Sys::from_name`], [`Sys::from_code`]) |
//! | operands | [`ArgKind`]s | formats, verifier, builder, executors' operand resolution |
//! | `ret` | [`RetKind`] | verifier, formats, builder |
//! | `effect` | [`Effect`] | [`may_write`], policies, optimizer, maps on threads |
//! | `uring` | `Option<`[`UringOp`]`>` | ring executor's plan (`cosy-exec` `ring/plan.rs`; opcode numbers in `uring_ops.rs`) |
//! | `cost` | [`CostClass`] | the `auto` executor's cost model, the ring's routing |
//! | `fixed` | operand indices | which descriptors may be direct descriptors on the ring |
//! | `position` | `bool` | maps on threads and on the ring, the `pread` rewrite |
//! | `breaks_link` | `bool` | a fact measured on the kernel by a test; the ring issuer hard-links its chains, so none of its ordering depends on it |
//! | `confine` | [`Confine`] | the policy root (`cosy-exec` `confine.rs`, an exhaustive match) |
//! | `min_buf` | `usize` | verifier ([`SysSpec::min_buf`]), executors' range checks |
//! | `blocks` | `bool` | executors: whether a run arms the alarm that interrupts blocking calls at the time limit |
//! | `man` | `&str` | documentation |
//!
//! Adding a call touches, besides this row: its issuing function and the arm of `issue` in
//! `cosy-exec/src/sys.rs`, and the arm of the test of opcodes (`cosy-exec/src/uring_ops.rs`)
//! — the compiler points to both; optionally a [`Builder`](crate::Builder) method, and the
//! ring issuer's lowering (`cosy-exec/src/ring/issuer.rs`) to send it to the ring (without
//! one it is issued as a plain call, in order, confined like on `direct`); and tests. Its
//! confinement is the row's `confine` column: a path-taking row marked `NoPath` fails this
//! module's tests, and a new [`Confine`] kind does not compile until `confine.rs` implements
//! it. A new [`UringOp`] also needs its opcode number (`uring_ops::opcode`) and whether the
//! ring issuer builds it (`ring/issuer.rs` `builds`), both exhaustive matches. The test that
//! walks [`Sys::ALL`] for ways out of a policy root (`cosy-exec/tests/confine.rs`) derives its
//! //! attempts from the row.

use crate::flags::FlagSet;

/// The kind of one operand of a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgKind {
    /// A descriptor the call uses: an fd slot or a standard stream (not `cwd`).
    Fd,
    /// A directory descriptor for a path: an fd slot or `cwd`.
    DirFd,
    /// An fd slot the call fills with a new descriptor (pipe2).
    NewFd,
    /// A path the kernel resolves: a data constant or a path variable. The policy root
    /// confines it (the row's [`Confine`]).
    Path,
    /// A string the kernel does not resolve as a path (an extended attribute's name, a
    /// symbolic link's target): a data constant or a path variable, like a path.
    Str,
    /// An arena range the kernel reads (write's buffer).
    BufIn,
    /// An arena range the kernel writes (read's buffer).
    BufOut,
    /// An integer: offset, length, count (`-1` means "no offset" where the call allows it).
    Int,
    /// An integer printed with the symbolic names of a flag set.
    Flags(FlagSet),
}

/// The kind of a system call's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetKind {
    /// An integer (a count, an offset, 0).
    Value,
    /// A new file descriptor, stored in an fd slot.
    Fd,
}

/// Whether a call changes anything outside the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Reads state only (or changes only the process's own descriptors and positions).
    Read,
    /// Changes files or the file system (writes, creates, removes, renames, syncs).
    Write,
}

/// The io_uring opcode a call goes to the ring as (pure data: `cosy-exec` maps each to the
/// opcode number of its io_uring binding, `uring_ops::opcode`, checked by a test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UringOp {
    /// `IORING_OP_NOP`.
    Nop,
    /// `IORING_OP_OPENAT`.
    OpenAt,
    /// `IORING_OP_OPENAT2`.
    OpenAt2,
    /// `IORING_OP_CLOSE`.
    Close,
    /// `IORING_OP_READ` (`IORING_OP_READ_FIXED` from a registered buffer).
    Read,
    /// `IORING_OP_WRITE` (`IORING_OP_WRITE_FIXED` from a registered buffer).
    Write,
    /// `IORING_OP_STATX`.
    Statx,
    /// `IORING_OP_MKDIRAT`.
    MkDirAt,
    /// `IORING_OP_UNLINKAT`.
    UnlinkAt,
    /// `IORING_OP_RENAMEAT`.
    RenameAt,
    /// `IORING_OP_FSYNC` (`IORING_FSYNC_DATASYNC` for fdatasync).
    Fsync,
    /// `IORING_OP_FTRUNCATE`.
    Ftruncate,
    /// `IORING_OP_SPLICE`.
    Splice,
    /// `IORING_OP_LINKAT`.
    LinkAt,
    /// `IORING_OP_SYMLINKAT`.
    SymlinkAt,
    /// `IORING_OP_FGETXATTR`.
    FGetXattr,
    /// `IORING_OP_FSETXATTR`.
    FSetXattr,
}

/// What a call costs, as the `auto` executor's cost model classes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CostClass {
    /// An io_uring opcode exists and usually completes inline (reads, writes, opens of cached
    /// paths, close, nop).
    Inline,
    /// An io_uring opcode exists but the kernel always hands it to a worker thread (statx,
    /// mkdirat, unlinkat, renameat, fsync, linkat, symlinkat, the xattr calls): on warm caches
    /// this can cost more than a syscall.
    Worker,
    /// No io_uring opcode: issued as a plain system call, in program order.
    Syscall,
}

/// How the policy root confines a call (docs/semantics.md, "Paths and the policy root";
/// implemented by `cosy-exec`'s `confine` module, which matches on it exhaustively). Every
/// row with a [`ArgKind::Path`] operand has a kind other than `NoPath` (a test checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Confine {
    /// No path operand: issued as it is (descriptors are the compound's own).
    NoPath,
    /// An open (`dirfd, path, flags, mode[, resolve]`): issued as openat2(2) with
    /// `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` added to its resolve flags.
    Open,
    /// The path names the object the call acts on (`dirfd, path, …, flags` with `AT_*`
    /// flags): the path is opened `O_PATH` beneath the root (`O_NOFOLLOW` when the flags hold
    /// `AT_SYMLINK_NOFOLLOW`), then the call is issued on that descriptor with an empty path
    /// and `AT_EMPTY_PATH` (statx, fchmodat, fchownat, utimensat, faccessat2).
    Object,
    /// The call acts on the last component without following it (`dirfd, path, …`): the
    /// parent directory is opened beneath the root and the call issued on the last
    /// component, which must not be `.` or `..` (mkdirat, unlinkat, readlinkat).
    Parent,
    /// Two paths (`olddirfd, oldpath, newdirfd, newpath, …`), each resolved as
    /// [`Confine::Parent`] (renameat2).
    TwoParents,
    /// linkat(2): as [`Confine::TwoParents`]; with `AT_SYMLINK_FOLLOW` the old path is
    /// resolved as [`Confine::Object`] and linked from its descriptor.
    Link,
    /// symlinkat(2) (`target, newdirfd, linkpath`): the link path as [`Confine::Parent`]; the
    /// target, a string the kernel stores without resolving it, must be relative with no `..`
    /// component (else `EXDEV`), so that no link created under the root points out of it.
    Symlink,
}

/// One operand of a table row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArgSpec {
    /// The operand's name (as in the man page).
    pub name: &'static str,
    /// Its kind.
    pub kind: ArgKind,
}

/// One row of the operation table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysSpec {
    /// The call.
    pub sys: Sys,
    /// Mnemonic in the text format.
    pub name: &'static str,
    /// Code in the binary format.
    pub code: u8,
    /// Operands, in order.
    pub args: &'static [ArgSpec],
    /// Result kind.
    pub ret: RetKind,
    /// Side effects (for opens see also [`may_write`]: creating flags make an open write).
    pub effect: Effect,
    /// The io_uring opcode it goes to the ring as (`None`: io_uring has none).
    pub uring: Option<UringOp>,
    /// Its cost class (the `auto` executor's cost model).
    pub cost: CostClass,
    /// The indices of the operands that may be direct descriptors (io_uring fixed files).
    pub fixed: &'static [usize],
    /// Whether the call uses and moves the file position of its first descriptor operand.
    pub position: bool,
    /// Whether a failure of its io_uring request breaks a soft link (`IOSQE_IO_LINK`): the
    /// linked request is then cancelled. Measured per opcode (`cosy-uring/tests/links.rs`); a
    /// call without an opcode is never on a ring and is marked `true`.
    pub breaks_link: bool,
    /// How the policy root confines it.
    pub confine: Confine,
    /// The smallest buffer range the call accepts, in bytes, for each of its buffer operands
    /// (statx writes a whole `struct statx`, utimensat reads a whole `struct timespec[2]`).
    pub min_buf: usize,
    /// Whether the call can wait without end: an open of a FIFO, a read or write of a pipe,
    /// terminal or socket, and the copies that read or write them. A run whose compound has
    /// such a call arms the executor's alarm, which interrupts it at the time limit.
    pub blocks: bool,
    /// The man page of the call issued.
    pub man: &'static str,
}

impl SysSpec {
    /// Whether any operand names a path (the policy's root applies).
    pub fn takes_path(&self) -> bool {
        self.args.iter().any(|a| a.kind == ArgKind::Path)
    }

    /// Whether operand `i` may be a direct descriptor (io_uring fixed file).
    pub fn may_be_fixed(&self, i: usize) -> bool {
        self.fixed.contains(&i)
    }

    /// The index of the first operand of kind `kind`.
    pub fn arg_of(&self, kind: ArgKind) -> Option<usize> {
        self.args.iter().position(|a| a.kind == kind)
    }

    /// Whether the call may change the file system, given `flags(i)`, the value of operand
    /// `i` when it is known (`None`: not known before the run). See [`may_write`].
    pub fn may_write_with(&self, flags: impl Fn(usize) -> Option<i64>) -> bool {
        if self.effect == Effect::Write {
            return true;
        }
        if self.ret != RetKind::Fd {
            return false;
        }
        match self.arg_of(ArgKind::Flags(FlagSet::Open)) {
            Some(i) => flags(i).is_none_or(crate::flags::open_may_write),
            None => false,
        }
    }
}

/// The rule for "this call may change the file system": a call with [`Effect::Write`], or an
/// open whose flags create or truncate (`O_CREAT`, `O_TRUNC`, `O_TMPFILE`) or are not an
/// immediate (known only when the call runs). Every layer that needs the fact asks here.
pub fn may_write(call: Sys, args: &[crate::Arg]) -> bool {
    call.spec().may_write_with(|i| match args.get(i) {
        Some(crate::Arg::Value(crate::Value::Imm(v))) => Some(*v),
        _ => None,
    })
}

macro_rules! uring_op {
    (None) => {
        None
    };
    ($op:ident) => {
        Some(UringOp::$op)
    };
}

macro_rules! sys_table {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $code:literal, $name:literal,
            ( $( $an:ident : $ak:expr ),* ) -> $ret:ident {
                effect: $effect:ident,
                uring: $uring:ident,
                cost: $cost:ident,
                fixed: [ $( $fx:literal ),* ],
                position: $pos:literal,
                breaks_link: $brk:literal,
                confine: $confine:ident,
                min_buf: $minbuf:expr,
                blocks: $blocks:literal,
                man: $man:literal $(,)?
            }
    )*) => {
        /// A system call of the operation table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Sys {
            $( $(#[$doc])* $variant, )*
        }

        impl Sys {
            /// Every call, in table order.
            pub const ALL: &'static [Sys] = &[ $( Sys::$variant, )* ];

            /// The number of calls (rows of the table).
            pub const COUNT: usize = Sys::ALL.len();

            /// The call's position in [`Sys::ALL`] (`0..Sys::COUNT`), for tables indexed by
            /// call.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The call's row of the table.
            pub fn spec(self) -> &'static SysSpec {
                match self {
                    $( Sys::$variant => {
                        const SPEC: SysSpec = SysSpec {
                            sys: Sys::$variant,
                            name: $name,
                            code: $code,
                            args: &[ $( ArgSpec { name: stringify!($an), kind: $ak }, )* ],
                            ret: RetKind::$ret,
                            effect: Effect::$effect,
                            uring: uring_op!($uring),
                            cost: CostClass::$cost,
                            fixed: &[ $( $fx, )* ],
                            position: $pos,
                            breaks_link: $brk,
                            confine: Confine::$confine,
                            min_buf: $minbuf,
                            blocks: $blocks,
                            man: $man,
                        };
                        &SPEC
                    } )*
                }
            }
        }
    };
}

use crate::flags::{STATX_BYTES, TIMES_BYTES};
use ArgKind::{BufIn, BufOut, DirFd, Fd, Int, NewFd, Path, Str};
use FlagSet as F;

sys_table! {
    /// Does nothing and returns 0 (an io_uring NOP on the ring).
    Nop = 0, "nop", () -> Value {
        effect: Read, uring: Nop, cost: Inline, fixed: [], position: false,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "io_uring_enter(2) IORING_OP_NOP",
    }
    /// getpid(2).
    Getpid = 1, "getpid", () -> Value {
        effect: Read, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "getpid(2)",
    }
    /// getppid(2).
    Getppid = 2, "getppid", () -> Value {
        effect: Read, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "getppid(2)",
    }
    /// openat(2).
    Openat = 3, "openat",
        (dirfd: DirFd, path: Path, flags: ArgKind::Flags(F::Open), mode: ArgKind::Flags(F::Mode)) -> Fd {
        effect: Read, uring: OpenAt, cost: Inline, fixed: [], position: false,
        breaks_link: true, confine: Open, min_buf: 0, blocks: true, man: "openat(2)",
    }
    /// openat2(2) with `struct open_how { flags, mode, resolve }`.
    Openat2 = 4, "openat2",
        (dirfd: DirFd, path: Path, flags: ArgKind::Flags(F::Open), mode: ArgKind::Flags(F::Mode),
         resolve: ArgKind::Flags(F::Resolve)) -> Fd {
        effect: Read, uring: OpenAt2, cost: Inline, fixed: [], position: false,
        breaks_link: true, confine: Open, min_buf: 0, blocks: true, man: "openat2(2)",
    }
    /// close(2).
    Close = 5, "close", (fd: Fd) -> Value {
        effect: Read, uring: Close, cost: Inline, fixed: [0], position: false,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "close(2)",
    }
    /// read(2).
    Read = 6, "read", (fd: Fd, buf: BufOut) -> Value {
        effect: Read, uring: Read, cost: Inline, fixed: [0], position: true,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: true, man: "read(2)",
    }
    /// pread64(2).
    Pread = 7, "pread", (fd: Fd, buf: BufOut, offset: Int) -> Value {
        effect: Read, uring: Read, cost: Inline, fixed: [0], position: false,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: true, man: "pread(2)",
    }
    /// write(2).
    Write = 8, "write", (fd: Fd, buf: BufIn) -> Value {
        effect: Write, uring: Write, cost: Inline, fixed: [0], position: true,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: true, man: "write(2)",
    }
    /// pwrite64(2).
    Pwrite = 9, "pwrite", (fd: Fd, buf: BufIn, offset: Int) -> Value {
        effect: Write, uring: Write, cost: Inline, fixed: [0], position: false,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "pwrite(2)",
    }
    /// lseek(2).
    Lseek = 10, "lseek", (fd: Fd, offset: Int, whence: ArgKind::Flags(F::Whence)) -> Value {
        effect: Read, uring: None, cost: Syscall, fixed: [], position: true,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "lseek(2)",
    }
    /// statx(2): writes a `struct statx` (256 bytes) into the buffer.
    Statx = 11, "statx",
        (dirfd: DirFd, path: Path, flags: ArgKind::Flags(F::At), mask: ArgKind::Flags(F::StatxMask),
         buf: BufOut) -> Value {
        effect: Read, uring: Statx, cost: Worker, fixed: [], position: false,
        breaks_link: false, confine: Object, min_buf: STATX_BYTES, blocks: false, man: "statx(2)",
    }
    /// fstat through statx(2) with `AT_EMPTY_PATH` and `STATX_BASIC_STATS`.
    Fstat = 12, "fstat", (fd: Fd, buf: BufOut) -> Value {
        effect: Read, uring: Statx, cost: Worker, fixed: [], position: false,
        breaks_link: false, confine: NoPath, min_buf: STATX_BYTES, blocks: false, man: "statx(2)",
    }
    /// getdents64(2): `linux_dirent64` records into the buffer.
    Getdents64 = 13, "getdents64", (fd: Fd, buf: BufOut) -> Value {
        effect: Read, uring: None, cost: Syscall, fixed: [], position: true,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "getdents64(2)",
    }
    /// mkdirat(2).
    Mkdirat = 14, "mkdirat", (dirfd: DirFd, path: Path, mode: ArgKind::Flags(F::Mode)) -> Value {
        effect: Write, uring: MkDirAt, cost: Worker, fixed: [], position: false,
        breaks_link: false, confine: Parent, min_buf: 0, blocks: false, man: "mkdirat(2)",
    }
    /// unlinkat(2).
    Unlinkat = 15, "unlinkat", (dirfd: DirFd, path: Path, flags: ArgKind::Flags(F::At)) -> Value {
        effect: Write, uring: UnlinkAt, cost: Worker, fixed: [], position: false,
        breaks_link: false, confine: Parent, min_buf: 0, blocks: false, man: "unlinkat(2)",
    }
    /// renameat2(2).
    Renameat2 = 16, "renameat2",
        (olddirfd: DirFd, oldpath: Path, newdirfd: DirFd, newpath: Path,
         flags: ArgKind::Flags(F::Rename)) -> Value {
        effect: Write, uring: RenameAt, cost: Worker, fixed: [], position: false,
        breaks_link: false, confine: TwoParents, min_buf: 0, blocks: false, man: "renameat2(2)",
    }
    /// fsync(2).
    Fsync = 17, "fsync", (fd: Fd) -> Value {
        effect: Write, uring: Fsync, cost: Worker, fixed: [0], position: false,
        breaks_link: false, confine: NoPath, min_buf: 0, blocks: false, man: "fsync(2)",
    }
    /// fdatasync(2).
    Fdatasync = 18, "fdatasync", (fd: Fd) -> Value {
        effect: Write, uring: Fsync, cost: Worker, fixed: [0], position: false,
        breaks_link: false, confine: NoPath, min_buf: 0, blocks: false, man: "fdatasync(2)",
    }
    /// ftruncate(2).
    Ftruncate = 19, "ftruncate", (fd: Fd, length: Int) -> Value {
        effect: Write, uring: Ftruncate, cost: Worker, fixed: [0], position: false,
        breaks_link: false, confine: NoPath, min_buf: 0, blocks: false, man: "ftruncate(2)",
    }
    /// copy_file_range(2); an offset of -1 passes NULL (use and advance the file position).
    CopyFileRange = 20, "copy_file_range",
        (fd_in: Fd, off_in: Int, fd_out: Fd, off_out: Int, len: Int, flags: Int) -> Value {
        effect: Write, uring: None, cost: Syscall, fixed: [], position: true,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: true, man: "copy_file_range(2)",
    }
    /// splice(2); an offset of -1 passes NULL. One side must be a pipe.
    Splice = 21, "splice",
        (fd_in: Fd, off_in: Int, fd_out: Fd, off_out: Int, len: Int,
         flags: ArgKind::Flags(F::Splice)) -> Value {
        effect: Write, uring: Splice, cost: Inline, fixed: [0, 2], position: true,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: true, man: "splice(2)",
    }
    /// sendfile(2); an offset of -1 passes NULL.
    Sendfile = 22, "sendfile", (out_fd: Fd, in_fd: Fd, offset: Int, count: Int) -> Value {
        effect: Write, uring: None, cost: Syscall, fixed: [], position: true,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: true, man: "sendfile(2)",
    }
    /// pipe2(2): fills two fd slots (read end, write end).
    Pipe2 = 23, "pipe2", (read_end: NewFd, write_end: NewFd, flags: ArgKind::Flags(F::Open)) -> Value {
        effect: Read, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "pipe2(2)",
    }
    /// linkat(2): a new name `newpath` for the file `oldpath` (its symbolic link itself unless
    /// the flags hold `AT_SYMLINK_FOLLOW`).
    Linkat = 24, "linkat",
        (olddirfd: DirFd, oldpath: Path, newdirfd: DirFd, newpath: Path,
         flags: ArgKind::Flags(F::At)) -> Value {
        effect: Write, uring: LinkAt, cost: Worker, fixed: [], position: false,
        breaks_link: false, confine: Link, min_buf: 0, blocks: false, man: "linkat(2)",
    }
    /// symlinkat(2): a symbolic link `linkpath` holding `target` (a string, not resolved).
    Symlinkat = 25, "symlinkat", (target: Str, newdirfd: DirFd, linkpath: Path) -> Value {
        effect: Write, uring: SymlinkAt, cost: Worker, fixed: [], position: false,
        breaks_link: false, confine: Symlink, min_buf: 0, blocks: false, man: "symlinkat(2)",
    }
    /// readlinkat(2): the target of the symbolic link `path` into the buffer (not
    /// NUL-terminated); returns the bytes written (a result equal to the range's length may
    /// be truncated).
    Readlinkat = 26, "readlinkat", (dirfd: DirFd, path: Path, buf: BufOut) -> Value {
        effect: Read, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: Parent, min_buf: 0, blocks: false, man: "readlinkat(2)",
    }
    /// fchmodat2(2) (fchmodat(2) with a flags operand: `AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH`;
    /// issued as fchmodat(2) when the flags are 0; under a policy root always as fchmodat2,
    /// Linux 6.6 or later, since the call is made with `AT_EMPTY_PATH`).
    Fchmodat = 27, "fchmodat",
        (dirfd: DirFd, path: Path, mode: ArgKind::Flags(F::Mode), flags: ArgKind::Flags(F::At)) -> Value {
        effect: Write, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: Object, min_buf: 0, blocks: false, man: "fchmodat2(2)",
    }
    /// fchownat(2); an owner or group of -1 leaves it unchanged.
    Fchownat = 28, "fchownat",
        (dirfd: DirFd, path: Path, owner: Int, group: Int, flags: ArgKind::Flags(F::At)) -> Value {
        effect: Write, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: Object, min_buf: 0, blocks: false, man: "fchownat(2)",
    }
    /// utimensat(2): the access and modification times from a range holding a
    /// `struct timespec[2]` (32 bytes: `tv_sec` i64 and `tv_nsec` i64, twice, native byte
    /// order); a `tv_nsec` of `UTIME_NOW` sets that time to now, `UTIME_OMIT` leaves it (the
    /// man page's NULL times is `UTIME_NOW` twice).
    Utimensat = 29, "utimensat",
        (dirfd: DirFd, path: Path, times: BufIn, flags: ArgKind::Flags(F::At)) -> Value {
        effect: Write, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: Object, min_buf: TIMES_BYTES, blocks: false, man: "utimensat(2)",
    }
    /// fgetxattr(2): the value of the extended attribute `name` into the buffer; returns its
    /// length (an empty range asks for the length only).
    Fgetxattr = 30, "fgetxattr", (fd: Fd, name: Str, value: BufOut) -> Value {
        effect: Read, uring: FGetXattr, cost: Worker, fixed: [0], position: false,
        breaks_link: false, confine: NoPath, min_buf: 0, blocks: false, man: "fgetxattr(2)",
    }
    /// fsetxattr(2): sets the extended attribute `name` to the range's bytes.
    Fsetxattr = 31, "fsetxattr",
        (fd: Fd, name: Str, value: BufIn, flags: ArgKind::Flags(F::Xattr)) -> Value {
        effect: Write, uring: FSetXattr, cost: Worker, fixed: [0], position: false,
        breaks_link: false, confine: NoPath, min_buf: 0, blocks: false, man: "fsetxattr(2)",
    }
    /// flistxattr(2): the NUL-terminated names of the file's extended attributes into the
    /// buffer; returns their total length (an empty range asks for the length only).
    Flistxattr = 32, "flistxattr", (fd: Fd, list: BufOut) -> Value {
        effect: Read, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: NoPath, min_buf: 0, blocks: false, man: "flistxattr(2)",
    }
    /// faccessat2(2): checks `mode` (`F_OK` or `R_OK|W_OK|X_OK`) on the file; returns 0 or
    /// fails (`EACCES`, `ENOENT`, …).
    Faccessat2 = 33, "faccessat2",
        (dirfd: DirFd, path: Path, mode: ArgKind::Flags(F::Access), flags: ArgKind::Flags(F::At)) -> Value {
        effect: Read, uring: None, cost: Syscall, fixed: [], position: false,
        breaks_link: true, confine: Object, min_buf: 0, blocks: false, man: "faccessat2(2)",
    }
}

impl Sys {
    /// The call whose text mnemonic is `name`.
    pub fn from_name(name: &str) -> Option<Sys> {
        Sys::ALL.iter().copied().find(|s| s.spec().name == name)
    }

    /// The call whose binary code is `code`.
    pub fn from_code(code: u8) -> Option<Sys> {
        Sys::ALL.iter().copied().find(|s| s.spec().code == code)
    }

    /// The text mnemonic.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// The built-in functions every executor provides, callable from files.
///
/// | name | operands | result |
/// |---|---|---|
/// | `find` | haystack range, needle range or data constant | occurrences of the needle (non-overlapping) |
/// | `count_lines` | range | number of `\n` bytes |
/// | `checksum` | range | FNV-1a 64-bit hash of the bytes (as `i64`) |
pub const BUILTINS: &[&str] = &["find", "count_lines", "checksum"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_are_unique_and_round_trip() {
        for (i, a) in Sys::ALL.iter().enumerate() {
            assert_eq!(Sys::from_name(a.name()), Some(*a));
            assert_eq!(Sys::from_code(a.spec().code), Some(*a));
            for b in &Sys::ALL[i + 1..] {
                assert_ne!(a.spec().code, b.spec().code);
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn index_is_the_position_in_all() {
        for (i, call) in Sys::ALL.iter().enumerate() {
            assert_eq!(call.index(), i);
        }
        assert_eq!(Sys::COUNT, Sys::ALL.len());
    }

    #[test]
    fn calls_that_return_descriptors_are_the_opens() {
        let fd_returning: Vec<_> = Sys::ALL
            .iter()
            .filter(|s| s.spec().ret == RetKind::Fd)
            .map(|s| s.name())
            .collect();
        assert_eq!(fd_returning, ["openat", "openat2"]);
    }

    fn kinds(s: &SysSpec) -> Vec<ArgKind> {
        s.args.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn every_path_taking_row_has_a_confinement_that_fits_its_operands() {
        for &call in Sys::ALL {
            let s = call.spec();
            let k = kinds(s);
            let at = k.contains(&ArgKind::Flags(FlagSet::At));
            let ok = match s.confine {
                Confine::NoPath => !s.takes_path(),
                Confine::Open => k[..2] == [DirFd, Path] && s.ret == RetKind::Fd,
                Confine::Object => k[..2] == [DirFd, Path] && at,
                Confine::Parent => k[..2] == [DirFd, Path],
                Confine::TwoParents => k[..4] == [DirFd, Path, DirFd, Path],
                Confine::Link => k[..4] == [DirFd, Path, DirFd, Path] && at,
                Confine::Symlink => k[..3] == [Str, DirFd, Path],
            };
            assert!(ok, "{call:?}: {:?} does not fit {k:?}", s.confine);
            let paths = k.iter().filter(|&&x| x == Path).count();
            let expected = match s.confine {
                Confine::NoPath => 0,
                Confine::TwoParents | Confine::Link => 2,
                _ => 1,
            };
            assert_eq!(paths, expected, "{call:?}: path operands");
        }
    }

    #[test]
    fn ring_columns_agree() {
        for &call in Sys::ALL {
            let s = call.spec();
            assert_eq!(
                s.uring.is_none(),
                s.cost == CostClass::Syscall,
                "{call:?}: an opcode exactly when the cost class is not Syscall"
            );
            if s.uring.is_none() {
                assert!(
                    s.fixed.is_empty(),
                    "{call:?}: direct descriptors need the ring"
                );
                assert!(
                    s.breaks_link,
                    "{call:?}: calls off the ring are marked as breaking"
                );
            }
            for &i in s.fixed {
                assert_eq!(
                    s.args.get(i).map(|a| a.kind),
                    Some(Fd),
                    "{call:?} operand {i}"
                );
            }
            if s.position {
                assert_eq!(s.args.first().map(|a| a.kind), Some(Fd), "{call:?}");
            }
            if s.min_buf > 0 {
                assert!(
                    kinds(s).iter().any(|k| matches!(k, BufIn | BufOut)),
                    "{call:?}"
                );
            }
        }
    }

    #[test]
    fn may_write_is_the_effect_or_a_creating_open() {
        use crate::{Arg, FdRef, PathRef, Value};
        let open = |flags: Value| {
            vec![
                Arg::Fd(FdRef::Cwd),
                Arg::Path(PathRef::Data(crate::DataId(0))),
                Arg::Value(flags),
                Arg::Value(Value::Imm(0)),
            ]
        };
        let rd = Value::Imm(i64::from(libc::O_RDONLY));
        let creat = Value::Imm(i64::from(libc::O_WRONLY | libc::O_CREAT));
        assert!(!may_write(Sys::Openat, &open(rd)));
        assert!(may_write(Sys::Openat, &open(creat)));
        assert!(may_write(Sys::Openat, &open(Value::Reg(crate::Reg(0)))));
        assert!(may_write(Sys::Write, &[]));
        assert!(!may_write(Sys::Pread, &[]));
        // pipe2 has open flags but opens no file.
        assert!(!may_write(
            Sys::Pipe2,
            &[Arg::Value(Value::Reg(crate::Reg(0)))]
        ));
    }
}
