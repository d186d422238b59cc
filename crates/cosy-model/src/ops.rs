//! The operation table: every system call a compound can make, declared once.
//!
//! Each row gives the call's name (its text mnemonic), its code in the binary format, its
//! operands with their kinds, the kind of its result, whether it changes the file system, how
//! io_uring can carry it, and its man page. The formats (text and binary), the verifier and the
//! executors are all driven by this table: adding a call is adding a row here and one match arm
//! in each executor's `issue` function, which the compiler then demands.

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
    /// A path: a data constant or a path variable.
    Path,
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

/// How io_uring carries a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RingSupport {
    /// An io_uring opcode exists and usually completes inline (reads, writes, opens of cached
    /// paths, close, nop).
    Inline,
    /// An io_uring opcode exists but the kernel always hands it to a worker thread (statx,
    /// mkdirat, unlinkat, renameat, fsync): on warm caches this can cost more than a syscall.
    Worker,
    /// No io_uring opcode: issued as a plain system call, in program order.
    None,
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
    /// Side effects.
    pub effect: Effect,
    /// How io_uring carries it.
    pub ring: RingSupport,
    /// The man page of the call issued.
    pub man: &'static str,
}

impl SysSpec {
    /// Whether any operand names a path (the policy's root applies).
    pub fn takes_path(&self) -> bool {
        self.args.iter().any(|a| a.kind == ArgKind::Path)
    }
}

macro_rules! sys_table {
    ($(
        $(#[$doc:meta])*
        $variant:ident = $code:literal, $name:literal,
            ( $( $an:ident : $ak:expr ),* ) -> $ret:ident,
            $effect:ident, $ring:ident, $man:literal;
    )*) => {
        /// A system call of the operation table.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Sys {
            $( $(#[$doc])* $variant, )*
        }

        impl Sys {
            /// Every call, in table order.
            pub const ALL: &'static [Sys] = &[ $( Sys::$variant, )* ];

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
                            ring: RingSupport::$ring,
                            man: $man,
                        };
                        &SPEC
                    } )*
                }
            }
        }
    };
}

use ArgKind::{BufIn, BufOut, DirFd, Fd, Int, NewFd, Path};
use FlagSet as F;

sys_table! {
    /// Does nothing and returns 0 (an io_uring NOP on the ring).
    Nop = 0, "nop", () -> Value, Read, Inline, "io_uring_enter(2) IORING_OP_NOP";
    /// getpid(2).
    Getpid = 1, "getpid", () -> Value, Read, None, "getpid(2)";
    /// getppid(2).
    Getppid = 2, "getppid", () -> Value, Read, None, "getppid(2)";
    /// openat(2).
    Openat = 3, "openat",
        (dirfd: DirFd, path: Path, flags: ArgKind::Flags(F::Open), mode: ArgKind::Flags(F::Mode)) -> Fd,
        Read, Inline, "openat(2)";
    /// openat2(2) with `struct open_how { flags, mode, resolve }`.
    Openat2 = 4, "openat2",
        (dirfd: DirFd, path: Path, flags: ArgKind::Flags(F::Open), mode: ArgKind::Flags(F::Mode),
         resolve: ArgKind::Flags(F::Resolve)) -> Fd,
        Read, Inline, "openat2(2)";
    /// close(2).
    Close = 5, "close", (fd: Fd) -> Value, Read, Inline, "close(2)";
    /// read(2).
    Read = 6, "read", (fd: Fd, buf: BufOut) -> Value, Read, Inline, "read(2)";
    /// pread64(2).
    Pread = 7, "pread", (fd: Fd, buf: BufOut, offset: Int) -> Value, Read, Inline, "pread(2)";
    /// write(2).
    Write = 8, "write", (fd: Fd, buf: BufIn) -> Value, Write, Inline, "write(2)";
    /// pwrite64(2).
    Pwrite = 9, "pwrite", (fd: Fd, buf: BufIn, offset: Int) -> Value, Write, Inline, "pwrite(2)";
    /// lseek(2).
    Lseek = 10, "lseek", (fd: Fd, offset: Int, whence: ArgKind::Flags(F::Whence)) -> Value,
        Read, None, "lseek(2)";
    /// statx(2): writes a `struct statx` (256 bytes) into the buffer.
    Statx = 11, "statx",
        (dirfd: DirFd, path: Path, flags: ArgKind::Flags(F::At), mask: ArgKind::Flags(F::StatxMask),
         buf: BufOut) -> Value,
        Read, Worker, "statx(2)";
    /// fstat through statx(2) with `AT_EMPTY_PATH` and `STATX_BASIC_STATS`.
    Fstat = 12, "fstat", (fd: Fd, buf: BufOut) -> Value, Read, Worker, "statx(2)";
    /// getdents64(2): `linux_dirent64` records into the buffer.
    Getdents64 = 13, "getdents64", (fd: Fd, buf: BufOut) -> Value, Read, None, "getdents64(2)";
    /// mkdirat(2).
    Mkdirat = 14, "mkdirat", (dirfd: DirFd, path: Path, mode: ArgKind::Flags(F::Mode)) -> Value,
        Write, Worker, "mkdirat(2)";
    /// unlinkat(2).
    Unlinkat = 15, "unlinkat", (dirfd: DirFd, path: Path, flags: ArgKind::Flags(F::At)) -> Value,
        Write, Worker, "unlinkat(2)";
    /// renameat2(2).
    Renameat2 = 16, "renameat2",
        (olddirfd: DirFd, oldpath: Path, newdirfd: DirFd, newpath: Path,
         flags: ArgKind::Flags(F::Rename)) -> Value,
        Write, Worker, "renameat2(2)";
    /// fsync(2).
    Fsync = 17, "fsync", (fd: Fd) -> Value, Write, Worker, "fsync(2)";
    /// fdatasync(2).
    Fdatasync = 18, "fdatasync", (fd: Fd) -> Value, Write, Worker, "fdatasync(2)";
    /// ftruncate(2).
    Ftruncate = 19, "ftruncate", (fd: Fd, length: Int) -> Value, Write, Worker, "ftruncate(2)";
    /// copy_file_range(2); an offset of -1 passes NULL (use and advance the file position).
    CopyFileRange = 20, "copy_file_range",
        (fd_in: Fd, off_in: Int, fd_out: Fd, off_out: Int, len: Int, flags: Int) -> Value,
        Write, None, "copy_file_range(2)";
    /// splice(2); an offset of -1 passes NULL. One side must be a pipe.
    Splice = 21, "splice",
        (fd_in: Fd, off_in: Int, fd_out: Fd, off_out: Int, len: Int,
         flags: ArgKind::Flags(F::Splice)) -> Value,
        Write, Inline, "splice(2)";
    /// sendfile(2); an offset of -1 passes NULL.
    Sendfile = 22, "sendfile", (out_fd: Fd, in_fd: Fd, offset: Int, count: Int) -> Value,
        Write, None, "sendfile(2)";
    /// pipe2(2): fills two fd slots (read end, write end).
    Pipe2 = 23, "pipe2", (read_end: NewFd, write_end: NewFd, flags: ArgKind::Flags(F::Open)) -> Value,
        Read, None, "pipe2(2)";
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
    fn calls_that_return_descriptors_are_the_opens() {
        let fd_returning: Vec<_> = Sys::ALL
            .iter()
            .filter(|s| s.spec().ret == RetKind::Fd)
            .map(|s| s.name())
            .collect();
        assert_eq!(fd_returning, ["openat", "openat2"]);
    }
}
